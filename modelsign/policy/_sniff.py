"""Which files of a verified model are pickle-based (they can run code when loaded).

Detected by content first, extension second:

* a pickle stream of protocol 2 to 5 (``\\x80`` then the protocol byte), or of protocol 0/1
  (starts with a ``MARK``/``EMPTY_LIST``/``EMPTY_DICT``/``GLOBAL`` opcode and ends with ``STOP``);
* a PyTorch zip archive (``torch.save`` since 1.6): a zip with a ``*.pkl`` member;
* a NumPy ``.npy`` array of Python objects (``'descr': '|O'``: pickled elements), or an
  ``.npz`` archive holding one;
* otherwise, an extension that is conventionally a pickle (``.bin``, ``.pt``, ``.pth``,
  ``.ckpt``, ``.pkl``, ``.pickle``, ``.joblib``) unless the content is recognisably something
  else (safetensors, GGUF, ...).

Reads at most a few KiB of each file, plus a zip's central directory.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Literal

__all__ = ["PICKLE_FORMATS", "FileFormat", "sniff"]

FileFormat = Literal["pickle", "pytorch-zip", "numpy-object", "safetensors", "gguf", "zip",
                     "numpy", "other", "unknown"]  # unknown: not inspected
#: Formats whose loading runs pickle.
PICKLE_FORMATS: frozenset[str] = frozenset({"pickle", "pytorch-zip", "numpy-object"})

_PICKLE_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".pk")
_HEAD = 4096
_MAX_ZIP_MEMBERS = 100_000
# Protocol 0/1 openings: GLOBAL "c<module>\n<name>\n", MARK then a container or value opcode,
# EMPTY_LIST / EMPTY_DICT then MARK or BINPUT.
_OLD_PICKLE = re.compile(rb"\A(?:c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n|\((?:dp|lp|tp|I|S'|V|F|L|i)"
                         rb"|[\]}][(q])")


def _npy_is_object(head: bytes) -> bool:
    # \x93NUMPY major minor, header length (2 or 4 bytes little endian), then a dict literal.
    header = head[8:_HEAD]
    return b"'descr': '|O'" in header or b"'descr': 'O'" in header or b"|O" in header[:200]


def _zip_kind(path: Path) -> FileFormat:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if len(names) > _MAX_ZIP_MEMBERS:
                return "zip"
            if any(n.endswith(".pkl") for n in names):
                return "pytorch-zip"
            for n in names:
                if n.endswith(".npy"):
                    with zf.open(n) as member:
                        head = member.read(_HEAD)
                    if head.startswith(b"\x93NUMPY") and _npy_is_object(head):
                        return "numpy-object"
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "other"
    return "zip"


def sniff(path: str | os.PathLike[str]) -> FileFormat:
    """The format of the file at ``path``, as far as the pickle question goes."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(_HEAD)
            tail = b""
            if size > 0:
                f.seek(max(0, size - 1))
                tail = f.read(1)
    except OSError:
        return "other"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if tail == b"." and _OLD_PICKLE.match(head):
        return "pickle"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(p)
    if head.startswith(b"\x93NUMPY"):
        return "numpy-object" if _npy_is_object(head) else "numpy"
    if head.startswith(b"GGUF"):
        return "gguf"
    if len(head) >= 9 and head[8:9] == b"{" and p.suffix == ".safetensors":
        return "safetensors"
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 0 < n <= size - 8:
            return "safetensors"
    if p.name.lower().endswith(_PICKLE_EXTENSIONS):
        return "pickle"
    return "other"
