"""``scripts/bench.py --executor dask`` at its smoke size: the API and CLI rows of the shards-mode
single file run on a Dask LocalCluster and give the thread pool's root digest.

Speed is not judged here (docs/decisions/0011 has the measurements); this keeps the hook working:
it once passed the string "dask" as the executor, and a cluster left open hung the child's exit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench.py"
ROWS = "modelsign.api.single.warm,modelsign.cli.single.warm"


def test_bench_executor_dask(tmp_path: Path) -> None:
    from modelsign import HashSpec, hash_model

    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--size", "smoke", "--repeat", "1", "--only", ROWS,
         "--json", str(out), "--workdir", str(tmp_path / "work"), "--executor", "dask"],
        capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["config"]["executor"] == "dask"
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == set(ROWS.split(","))
    for name, row in rows.items():
        assert row["status"] == "ok", row
        data = "single" if ".single." in name else "dataset"
        method = "shards" if data == "single" else "files"
        expected = hash_model(result["data"][data]["path"], HashSpec(method=method,
                                                                     use_cache=False))
        assert row["digest"] == expected.root_hex, name  # the thread pool's root digest
