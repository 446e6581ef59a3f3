"""Which files are pickle-based (they can run code when loaded): the one detector that both the
policy's ``serialization.pickle`` rule and ``modelsign.transformers.from_pretrained(pickle=...)``
use, so the two can never disagree about what a pickle is.

Detected by content first, extension second:

* a pickle stream of protocol 2 to 5 (``\\x80`` then the protocol byte), or of protocol 0/1
  (starts with a ``MARK``/``EMPTY_LIST``/``EMPTY_DICT``/``GLOBAL`` opcode and ends with ``STOP``);
* a PyTorch zip archive (``torch.save`` since 1.6): a zip with a ``*.pkl`` member;
* a NumPy ``.npy`` array of Python objects (``'descr': '|O'``: pickled elements), or an
  ``.npz`` archive holding one;
* otherwise, an extension that is conventionally a pickle (``.bin``, ``.pt``, ``.pth``,
  ``.ckpt``, ``.pkl``, ``.pickle``, ``.joblib``) unless the content is recognisably something
  else (safetensors, GGUF, ...): a pickle opcode sequence the patterns above miss is still
  refused under such a name (fail closed).

Reads at most a few KiB of each file, plus a zip's central directory, through one descriptor
opened without blocking (a FIFO or a device is ``"other"``, never waited on).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from modelsign._io import open_regular
from modelsign.errors import ModelsignError

__all__ = ["PICKLE_FORMATS", "FileFormat", "Sniffed", "sniff", "sniff_file"]

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


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file is, as far as the pickle question goes, and why (in words for messages)."""

    format: FileFormat
    detail: str

    @property
    def pickle(self) -> bool:
        """Loading it runs pickle."""
        return self.format in PICKLE_FORMATS


def _npy_is_object(head: bytes) -> bool:
    # \x93NUMPY major minor, header length (2 or 4 bytes little endian), then a dict literal.
    header = head[8:_HEAD]
    return b"'descr': '|O'" in header or b"'descr': 'O'" in header or b"|O" in header[:200]


def _zip_kind(f: BinaryIO) -> Sniffed:
    try:
        with zipfile.ZipFile(f) as zf:
            names = zf.namelist()
            if len(names) > _MAX_ZIP_MEMBERS:
                return Sniffed("zip", f"a zip archive of {len(names)} members (not inspected)")
            pkl = [n for n in names if n.endswith(".pkl")]
            if pkl:
                return Sniffed("pytorch-zip",
                               f"a zip archive holding {pkl[0]} (torch.save format)")
            for n in names:
                if n.endswith(".npy"):
                    with zf.open(n) as member:
                        head = member.read(_HEAD)
                    if head.startswith(b"\x93NUMPY") and _npy_is_object(head):
                        return Sniffed("numpy-object", f"a zip archive holding {n}, a NumPy "
                                                       "array of pickled objects")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return Sniffed("other", "not a readable zip archive")
    return Sniffed("zip", "a zip archive without pickles")


def sniff_file(path: str | os.PathLike[str]) -> Sniffed:
    """The format of the file at ``path``, with the reason in words."""
    p = Path(path)
    try:
        with open_regular(p, what="file") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(_HEAD)
            tail = b""
            if size > 0:
                f.seek(max(0, size - 1))
                tail = f.read(1)
            if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
                return _zip_kind(f)
    except (OSError, ModelsignError):
        return Sniffed("other", "not a readable regular file")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return Sniffed("pickle", f"a pickle (protocol {head[1]})")
    if tail == b"." and _OLD_PICKLE.match(head):
        return Sniffed("pickle", "a pickle (protocol 0 or 1)")
    if head.startswith(b"\x93NUMPY"):
        if _npy_is_object(head):
            return Sniffed("numpy-object", "a NumPy array of pickled objects")
        return Sniffed("numpy", "a NumPy array")
    if head.startswith(b"GGUF"):
        return Sniffed("gguf", "GGUF")
    if len(head) >= 9 and head[8:9] == b"{" and p.suffix == ".safetensors":
        return Sniffed("safetensors", "safetensors")
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 0 < n <= size - 8:
            return Sniffed("safetensors", "safetensors")
    if p.name.lower().endswith(_PICKLE_EXTENSIONS):
        return Sniffed("pickle", f"a pickle by its name ({p.suffix or p.name}); the content is "
                                 "no format known to be safe")
    return Sniffed("other", "not pickle-based")


def sniff(path: str | os.PathLike[str]) -> FileFormat:
    """The format of the file at ``path``, as far as the pickle question goes."""
    return sniff_file(path).format
