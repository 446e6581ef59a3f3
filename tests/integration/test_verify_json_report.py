"""``modelsign verify --format json``: one document on stdout, valid against
schemas/verify-report.schema.json, for every outcome (verified, failed, bad input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from modelsign.cli._app import run
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify._result import REPORT_SCHEMA_ID

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "verify-report.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    from referencing import Registry, Resource

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == REPORT_SCHEMA_ID
    others = [json.loads(p.read_text()) for p in SCHEMA_PATH.parent.glob("*.schema.json")]
    registry: Registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d)) for d in others if "$id" in d)
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", curve="secp384r1")


@pytest.fixture
def model(tmp_path: Path, key: KeyPair) -> Path:
    m = tmp_path / "model"
    m.mkdir()
    (m / "a.bin").write_bytes(b"a" * 100)
    (m / "b.txt").write_bytes(b"b\n")
    sign_model(m, signer=KeySigner.from_pem_file(key.private))
    return m


def _report(capsys: pytest.CaptureFixture[str], argv: list[str],
            code: int) -> dict[str, Any]:
    assert run(argv) == code
    out = capsys.readouterr().out
    doc = json.loads(out)  # exactly one document: json.loads refuses trailing data
    assert isinstance(doc, dict)
    return doc


def test_verified(model: Path, key: KeyPair, validator: Any,
                  capsys: pytest.CaptureFixture[str]) -> None:
    doc = _report(capsys, ["verify", str(model), "--key", str(key.public), "--format", "json"], 0)
    validator.validate(doc)
    assert doc["verdict"] == "verified"
    assert doc["signer"]["kind"] == "key" and doc["signer"]["identity"].startswith("sha256:")
    assert doc["summary"] == {"ok": 2, "changed": 0, "missing": 0, "extra": 0, "unsigned": 0}
    assert doc["serialization"]["method"] == "files"


def test_integrity_failure_lists_every_file(model: Path, key: KeyPair, validator: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (model / "a.bin").write_bytes(b"A" * 100)
    (model / "b.txt").unlink()
    (model / "c.py").write_bytes(b"print()\n")
    doc = _report(capsys, ["verify", str(model), "--key", str(key.public), "--format", "json"], 1)
    validator.validate(doc)
    assert doc["verdict"] == "failed"
    assert doc["error"]["type"] == "IntegrityFailure" and doc["error"]["exit_code"] == 1
    files = {f["name"]: f for f in doc["files"]}
    assert files["a.bin"]["status"] == "changed"
    assert files["a.bin"]["expected"] != files["a.bin"]["actual"]
    assert files["b.txt"]["status"] == "missing" and files["b.txt"]["actual"] is None
    assert files["c.py"]["status"] == "extra" and files["c.py"]["expected"] is None
    assert doc["summary"]["changed"] == doc["summary"]["missing"] == doc["summary"]["extra"] == 1


def test_unsigned_files_tolerated(model: Path, key: KeyPair, validator: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (model / "README.md").write_bytes(b"# notes\n")
    doc = _report(capsys, ["verify", str(model), "--key", str(key.public), "--format", "json",
                           "--ignore-unsigned-files"], 0)
    validator.validate(doc)
    assert {f["name"]: f["status"] for f in doc["files"]}["README.md"] == "unsigned"
    assert any("README.md" in w for w in doc["warnings"])


def test_signature_failure(model: Path, tmp_path: Path, validator: Any,
                           capsys: pytest.CaptureFixture[str]) -> None:
    other = make_key(tmp_path / "other", curve="secp384r1")
    doc = _report(capsys, ["verify", str(model), "--key", str(other.public),
                           "--format", "json"], 1)
    validator.validate(doc)
    assert doc["verdict"] == "failed" and doc["error"]["type"] == "SignatureError"
    assert doc["signer"] is None and doc["files"] == []


def test_bad_input(model: Path, key: KeyPair, validator: Any,
                   capsys: pytest.CaptureFixture[str]) -> None:
    (model / "model.sig").write_text("not json")
    doc = _report(capsys, ["verify", str(model), "--key", str(key.public), "--format", "json"], 2)
    validator.validate(doc)
    assert doc["verdict"] == "error" and doc["error"]["exit_code"] == 2
    assert doc["error"]["path"] == str(model / "model.sig")
