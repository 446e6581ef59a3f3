"""Pickle-based weight files are found by content, not only by extension."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from modelsign.policy._sniff import PICKLE_FORMATS, sniff


def _npy(obj_dtype: bool) -> bytes:
    descr = "'|O'" if obj_dtype else "'<f8'"
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}".encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x00" * 8


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return len(header).to_bytes(8, "little") + header + b"\x00" * 4


CASES = {
    # name on disk: (bytes, expected format)
    **{f"p{n}.dat": (pickle.dumps({"a": [1, 2]}, protocol=n), "pickle") for n in range(6)},
    "global.dat": (b"cos\nsystem\n(S'echo pwned'\ntR.", "pickle"),  # the classic payload
    "pytorch_model.bin": (_zip({"archive/data.pkl": pickle.dumps({"w": 1}),
                                "archive/data/0": b"\x00" * 8}), "pytorch-zip"),
    "weights.renamed": (_zip({"m/data.pkl": pickle.dumps(1)}), "pytorch-zip"),
    "objects.npy": (_npy(True), "numpy-object"),
    "arrays.npz": (_zip({"a.npy": _npy(True)}), "numpy-object"),
    "floats.npy": (_npy(False), "numpy"),
    "model.safetensors": (_safetensors(), "safetensors"),
    "model.weights": (_safetensors(), "safetensors"),
    "model.gguf": (b"GGUF\x03\x00\x00\x00" + b"\x00" * 16, "gguf"),
    "notes.zip": (_zip({"a.txt": b"hi"}), "zip"),
    "README.md": (b"c hello\nworld\n(a note).", "other"),
    "config.json": (b'{"a": 1}', "other"),
    "unknown.bin": (b"\x00\x01\x02\x03" * 8, "pickle"),  # unknown content, pickle extension
    "empty.pt": (b"", "pickle"),
    "tokenizer.model": (b"\x0a\x0b" * 8, "other"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sniff(tmp_path: Path, name: str) -> None:
    data, expected = CASES[name]
    (tmp_path / name).write_bytes(data)
    assert sniff(tmp_path / name) == expected


def test_pickle_formats() -> None:
    assert {"pickle", "pytorch-zip", "numpy-object"} == PICKLE_FORMATS


def test_unreadable_is_other(tmp_path: Path) -> None:
    assert sniff(tmp_path / "missing") == "other"
