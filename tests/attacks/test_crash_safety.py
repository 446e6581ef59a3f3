"""Crash safety: ``modelsign sign`` and ``modelsign attest`` killed with SIGKILL at random points,
many times, never leave a truncated ``model.sig`` or a broken ``claims.jsonl`` line.

``_kill_driver.py`` (a separate process) runs each command and kills it after a random delay
within the time an undisturbed run takes, mostly near its end where the writes are. A few runs
use the installed ``modelsign`` executable (a kill may land in Python's start-up); the others are
forked from a process that imported modelsign already, so their kills land in the command's own
work. After every kill the driver snapshots the files; this test then checks every snapshot:

* ``model.sig``: present (the old one, intact) or a complete new one; either way it verifies
  against the model with the signing key;
* ``claims.jsonl``: every line verifies; the line count is the lines before plus whole new ones
  (at least the runs that finished, at most every run so far).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelsign.claims import read_claims
from modelsign.cli._app import run
from modelsign.verify import verify_model
from modelsign.verify._claims import verify_claims

from .conftest import Party, make_model

DRIVER = Path(__file__).with_name("_kill_driver.py")
RUNS = int(os.environ.get("MODELSIGN_CRASH_RUNS", "30"))
REAL = 1  # of RUNS, kills of the real `modelsign` executable (slow to start under load)


def _big_model(path: Path) -> Path:
    """Big enough that hashing takes a noticeable part of a run (kills land in every phase)."""
    return make_model(path, {
        "config.json": b'{"layers": 2}',
        "model-00001-of-00002.safetensors": os.urandom(1 << 20),
        "model-00002-of-00002.safetensors": os.urandom(1 << 20),
        "tokenizer/vocab.txt": b"a\nb\n",
    })


def _drive(tmp: Path, argv: list[str], model: Path, files: list[str],
           seed: int) -> list[dict[str, Any]]:
    snaps = tmp / "snapshots"
    cfg = {"argv": argv, "model": str(model), "files": files, "snapshots": str(snaps),
           "runs": RUNS, "seed": seed, "real": REAL}
    proc = subprocess.run([sys.executable, str(DRIVER), json.dumps(cfg)], capture_output=True,
                          text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(runs) == RUNS
    return runs


@pytest.fixture(scope="module")
def killed_signs(tmp_path_factory: pytest.TempPathFactory,
                 publisher: Party) -> tuple[Path, Path, list[dict[str, Any]]]:
    """``modelsign sign --key`` killed RUNS times: (model, snapshots, runs)."""
    tmp = tmp_path_factory.mktemp("killed-signs")
    model = _big_model(tmp / "m")
    argv = ["sign", str(model), "--key", str(publisher.private), "--no-cache"]
    assert run(argv) == 0
    return model, tmp / "snapshots", _drive(tmp, argv, model, ["model.sig"], seed=8)


@pytest.mark.slow
def test_sigkill_during_sign_never_leaves_a_broken_model_sig(
        killed_signs: tuple[Path, Path, list[dict[str, Any]]], publisher: Party) -> None:
    """Leftover temp files (``leftovers``) are removed by the driver after each snapshot and
    covered by the next test."""
    model, snaps, runs = killed_signs
    assert sum(r["killed"] for r in runs) >= RUNS // 4, runs  # the kills did happen
    for r in runs:
        sig = snaps / str(r["run"]) / "model.sig"
        assert sig.is_file(), f"run {r}: model.sig disappeared"
        raw = sig.read_bytes()
        assert raw.endswith(b"}\n"), f"run {r}: truncated model.sig ({len(raw)} bytes)"
        verify_model(model, signature=sig, key=publisher.public)


@pytest.mark.slow
def test_sigkill_during_attest_never_leaves_a_broken_claim_line(tmp_path: Path,
                                                                publisher: Party) -> None:
    model = _big_model(tmp_path / "m")
    assert run(["sign", str(model), "--key", str(publisher.private), "--no-cache"]) == 0
    argv = ["attest", str(model), "--relation", "finetune", "--key", str(publisher.private),
            "--no-hardware", "--no-cache", "--base-model", "sha256:" + "ab" * 32]
    assert run(argv) == 0 and run(argv) == 0
    runs = _drive(tmp_path, argv, model, ["claims.jsonl"], seed=11)
    before = len(read_claims(tmp_path / "snapshots" / "base" / "claims.jsonl").lines)
    assert before >= 3  # two here, and the driver's undisturbed runs
    assert sum(r["killed"] for r in runs) >= RUNS // 4, runs
    root = verify_model(model, key=publisher.public).root_digest
    finished = 0
    for r in runs:
        finished += r["exit"] == 0
        snap = tmp_path / "snapshots" / str(r["run"]) / "claims.jsonl"
        report = verify_claims(model, root, key=publisher.public, claims_file=snap)
        assert report.ok, (r, report.describe_failures())
        read = read_claims(snap)
        assert all(line.complete for line in read.lines), r
        assert before + finished <= len(read.lines) <= before + r["run"] + 1, (r, finished)


def test_a_killed_signs_temp_file_is_not_signed_next_time(tmp_path: Path,
                                                          publisher: Party) -> None:
    """The state a kill between ``mkstemp`` and ``os.replace`` leaves, made deterministically."""
    from modelsign.hashing import HashSpec
    from modelsign.signing import sign_model

    model = make_model(tmp_path / "m")
    (model / ".model.sig.k3j2h1q0.tmp").write_bytes(b'{"dsseEnvelope":{"payl')
    result = sign_model(model, signer=publisher.signer, spec=HashSpec(use_cache=False))
    assert ".model.sig.k3j2h1q0.tmp" not in {r.path for r in result.manifest.resources}
