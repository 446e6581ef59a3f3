"""Nothing of the distributed engine or of fsspec is imported unless asked for.

``modelsign --version`` and ``modelsign hash`` of a local directory, each in a fresh interpreter:
at exit, no module of dask, distributed, fsspec or a storage backend is loaded. A remote source is
the counter-check (it must load fsspec, else the test could not fail).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("dask", "distributed", "fsspec", "s3fs", "gcsfs", "botocore", "aiobotocore",
         "huggingface_hub", "cloudpickle", "tornado")

_CHILD = r"""
import json, sys
from modelsign.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _loaded(*args: str) -> tuple[int, list[str]]:
    code = f"HEAVY = {HEAVY!r}\n" + _CHILD
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return res["code"], res["heavy"]


def test_version_imports_no_engine() -> None:
    code, heavy = _loaded("--version")
    assert code == 0 and heavy == []


def test_hash_of_a_local_directory_imports_no_engine(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    code, heavy = _loaded("hash", str(tmp_path / "m"), "--no-cache")
    assert code == 0 and heavy == []
    code, heavy = _loaded("hash", str(tmp_path / "m"), "--format", "json", "--method", "shards")
    assert code == 0 and heavy == []


def test_a_remote_source_does_load_fsspec() -> None:
    """The counter-check: the probe sees fsspec when a remote source is used (here a Hub on a
    closed port: refused at once, no network)."""
    code, heavy = _loaded("hash", "s3://", "--storage-option", "anon=true")
    assert code == 2 and heavy == []  # refused before anything is imported: no bucket
    code, heavy = _loaded("hash", f"hf://datasets/org/name@{'0' * 40}",
                          "--storage-option", "endpoint=http://127.0.0.1:1")
    assert code == 2 and "fsspec" in heavy
