"""``modelsign verify`` checks claims.jsonl too: each line verified with the same signer options,
a bad line fails the whole verification (exit 1) and is named by its line number, the other
lines still reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelsign.claims import attest
from modelsign.cli._app import run
from modelsign.signing import KeySigner, sign_model
from modelsign.testing import KeyPair, make_key


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, KeyPair]:
    key = make_key(tmp_path / "keys", curve="secp256r1")
    m = tmp_path / "model"
    m.mkdir()
    (m / "weights.bin").write_bytes(b"w" * 4096)
    (m / "config.json").write_text('{"layers": 2}')
    signer = KeySigner.from_pem_file(key.private)
    sign_model(m, signer=signer)
    attest(m, signer=signer, relation="finetune", base_models=["sha256:" + "ab" * 32 + "=hf://acme/base"],
           import_torch=False)
    attest(m, signer=signer, relation="quantized", base_models=["sha256:" + "cd" * 32 + "=hf://acme/ft"],
           import_torch=False)
    return m, key


def test_claims_verify_with_the_model(signed: tuple[Path, KeyPair],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    m, key = signed
    assert run(["verify", str(m), "--key", str(key.public), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "verified"
    assert [c["status"] for c in doc["claims"]["claims"]] == ["ok", "ok"]
    relations = [c["derivation"]["relation"] for c in doc["claims"]["claims"]]
    assert relations == ["finetune", "quantized"]


def test_an_edited_claim_line_fails_verify_with_its_line_number(
        signed: tuple[Path, KeyPair], capsys: pytest.CaptureFixture[str]) -> None:
    m, key = signed
    claims = m / "claims.jsonl"
    lines = claims.read_bytes().splitlines(keepends=True)
    second = json.loads(lines[1])
    sig = second["dsseEnvelope"]["signatures"][0]["sig"]
    second["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    lines[1] = (json.dumps(second) + "\n").encode()
    claims.write_bytes(b"".join(lines))

    assert run(["verify", str(m), "--key", str(key.public), "--format", "json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["verdict"] == "failed"
    assert doc["error"]["type"] == "ClaimError"
    statuses = {c["line"]: c["status"] for c in doc["claims"]["claims"]}
    assert statuses == {1: "ok", 2: "failed"}
    assert "claims.jsonl:2:" in captured.err


def test_no_claims_checks_the_signature_alone(signed: tuple[Path, KeyPair],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    m, key = signed
    (m / "claims.jsonl").write_bytes(b"not a bundle\n")
    assert run(["verify", str(m), "--key", str(key.public)]) == 1
    assert run(["verify", str(m), "--key", str(key.public), "--no-claims"]) == 0
