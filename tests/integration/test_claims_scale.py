"""Many claims verify fast; appends from several processes at once never interleave."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelsign import hash_model
from modelsign.claims import append_claim, read_claims
from modelsign.signing import KeySigner
from modelsign.statements._provenance import Dependency, Framework, provenance_statement
from modelsign.testing._pki import make_key
from modelsign.verify._claims import verify_claims

N_CLAIMS = 1000


def _model(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"\x07" * 8192)
    return path


def test_a_thousand_key_signed_claims_verify_well_under_a_second_per_hundred(
        tmp_path: Path) -> None:
    kp = make_key(tmp_path / "keys", "release")
    signer = KeySigner.from_pem_file(kp.private)
    m = _model(tmp_path / "m")
    root = hash_model(m).root_hex
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    frameworks = [Framework("python", "3.11.9", "generic"), Framework("torch", "2.6.0"),
                  Framework("transformers", "4.50.0"), Framework("peft", "0.15.0")]
    lines = []
    for i in range(N_CLAIMS):
        st = provenance_statement(
            "m", root, relation="finetune", method="lora", params={"step": i, "lr": 1e-4},
            dependencies=[Dependency("base_model", digest={"sha256": f"{i:064x}"}, signed=True),
                          Dependency("dataset", uri="hf://datasets/acme/chat",
                                     digest={"gitCommit": "a" * 40}, signed=False)],
            frameworks=frameworks, invocation_id=f"run-{i}",
            started_on=t0 + timedelta(hours=i), finished_on=t0 + timedelta(hours=i + 1))
        lines.append(signer.sign(st).raw.rstrip(b"\n"))
    (m / "claims.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    start = time.perf_counter()
    report = verify_claims(m, root, key=kp.public)
    elapsed = time.perf_counter() - start
    assert report.ok, report.describe_failures()[:3]
    assert len(report.claims) == N_CLAIMS
    assert [c.line for c in report.claims] == list(range(1, N_CLAIMS + 1))
    assert all(c.derivation is not None for c in report.claims)
    per_hundred = elapsed / (N_CLAIMS / 100)
    print(f"\nverify_claims: {N_CLAIMS} key-signed claims in {elapsed:.3f} s "
          f"({per_hundred * 1000:.1f} ms per hundred; "
          f"{(m / 'claims.jsonl').stat().st_size / 1e6:.2f} MB)")
    assert per_hundred < 0.5, f"{per_hundred:.3f} s per hundred claims"


def _append_many(path: str, tag: int, count: int, size: int) -> None:
    for i in range(count):
        body = json.dumps({"mediaType": "x", "writer": tag, "i": i, "pad": "p" * size},
                          separators=(",", ":")).encode()
        append_claim(path, body)


def test_appends_from_two_processes_never_interleave(tmp_path: Path) -> None:
    """Big lines (larger than a pipe buffer, written in one go) from two processes at once."""
    f = tmp_path / "claims.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(f), tag, 40, 100_000))
             for tag in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = read_claims(f).lines
    assert len(lines) == 80 and all(line.complete for line in lines)
    seen = sorted((obj["writer"], obj["i"]) for obj in (json.loads(x.raw) for x in lines))
    assert seen == [(w, i) for w in (1, 2) for i in range(40)]


def test_two_attest_processes_at_once_give_two_valid_claims(tmp_path: Path) -> None:
    kp = make_key(tmp_path / "keys", "release")
    m = _model(tmp_path / "m")
    cmd = [sys.executable, "-m", "modelsign", "attest", str(m), "--key", str(kp.private),
           "--no-hardware"]
    env = dict(os.environ)
    procs = [subprocess.Popen([*cmd, "--relation", rel], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
             for rel in ("finetune", "quantized")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    report = verify_claims(m, hash_model(m).root_hex, key=kp.public)
    assert report.ok, report.describe_failures()
    assert sorted(c.derivation.relation for c in report.claims  # type: ignore[union-attr]
                  ) == ["finetune", "quantized"]


@pytest.mark.parametrize("count", [3])
def test_a_crash_mid_append_leaves_earlier_lines_intact(tmp_path: Path, count: int) -> None:
    """Simulate a writer killed half-way: the torn line is reported, earlier and later lines
    are untouched and readable."""
    f = tmp_path / "claims.jsonl"
    for i in range(count):
        append_claim(f, b'{"i":%d}' % i)
    before = f.read_bytes()
    with open(f, "ab") as fh:
        fh.write(b'{"i":99, "torn')
    append_claim(f, b'{"i":100}')
    assert f.read_bytes().startswith(before)
    lines = read_claims(f).lines
    assert [x.raw for x in lines][-2:] == [b'{"i":99, "torn', b'{"i":100}']
