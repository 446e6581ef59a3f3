"""``modelsign verify --lineage`` and ``--policy``: one command gives one verdict over the
signature, the claims, the ancestors and the policy, with exit 1 and a named reason for any
failure, and one JSON document that validates against the report schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from modelsign.claims import ParentVerifier, attest
from modelsign.cli._app import run
from modelsign.signing import KeySigner, sign_model
from modelsign.testing import KeyPair, make_key

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture(scope="module")
def validator() -> Any:
    from referencing import Registry, Resource

    docs = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry: Registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d)) for d in docs.values() if "$id" in d)
    return jsonschema.Draft202012Validator(docs["verify-report.schema.json"], registry=registry)


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Any]:
    """A base model and a fine-tune of it, both signed with one release key."""
    key = make_key(tmp_path / "keys", curve="secp256r1")
    signer = KeySigner.from_pem_file(key.private)
    base = tmp_path / "base"
    base.mkdir()
    (base / "weights.bin").write_bytes(b"base" * 1024)
    base_root = sign_model(base, signer=signer).root_digest
    ft = tmp_path / "ft"
    ft.mkdir()
    (ft / "weights.bin").write_bytes(b"tuned" * 1024)
    sign_model(ft, signer=signer)
    attest(ft, signer=signer, relation="finetune", base_models=[base],
           parent_verifier=ParentVerifier(key=key.public), import_torch=False)
    return {"key": key, "base": base, "ft": ft, "base_root": base_root, "tmp": tmp_path}


def _lineage_args(c: dict[str, Any]) -> list[str]:
    key: KeyPair = c["key"]
    return ["verify", str(c["ft"]), "--key", str(key.public), "--lineage",
            "--upstream", f"sha256:{c['base_root']}={c['base']}",
            "--parent-key", f"*={key.public}"]


def test_verify_lineage_passes_and_reports_each_ancestor(
        chain: dict[str, Any], validator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*_lineage_args(chain), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    validator.validate(doc)
    assert doc["verdict"] == "verified"
    states = {(n["digest"] or {}).get("sha256"): n["state"] for n in doc["lineage"]["nodes"]}
    assert states[chain["base_root"]] == "verified"


def test_verify_lineage_fails_when_the_base_changed(
        chain: dict[str, Any], validator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    (chain["base"] / "weights.bin").write_bytes(b"evil" * 1024)
    assert run([*_lineage_args(chain), "--format", "json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    validator.validate(doc)
    assert doc["verdict"] == "failed" and doc["error"]["type"] == "LineageError"
    assert "lineage does not verify" in captured.err


def _policy(c: dict[str, Any], relations: list[str]) -> Path:
    p: Path = c["tmp"] / "policy.yaml"
    p.write_text(
        "apiVersion: modelsign/v1\nkind: ModelPolicy\n"
        f"signers:\n  - publicKey: {c['key'].public}\n"
        "requireClaims:\n  - predicateType: https://slsa.dev/provenance/v1\n"
        f"    signers: [{{publicKey: {c['key'].public}}}]\n"
        "    conditions:\n"
        f"      - \"predicate.buildDefinition.externalParameters.relation in {relations!r}\"\n")
    return p


def test_verify_policy_pass_and_fail_with_the_rule_named(
        chain: dict[str, Any], validator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ok = _policy(chain, ["finetune", "adapter"])
    assert run(["verify", str(chain["ft"]), "--policy", str(ok), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    validator.validate(doc)
    assert doc["verdict"] == "verified" and doc["policy"]["verdict"] == "pass"

    bad = _policy(chain, ["merge"])
    assert run(["verify", str(chain["ft"]), "--policy", str(bad), "--format", "json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    validator.validate(doc)
    assert doc["verdict"] == "failed" and doc["error"]["type"] == "PolicyViolation"
    assert "requireClaims" in doc["error"]["message"]


def test_policy_refuses_identity_options(chain: dict[str, Any],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    p = _policy(chain, ["finetune"])
    assert run(["verify", str(chain["ft"]), "--policy", str(p), "--key",
                str(chain["key"].public)]) == 2
    assert "--policy says who may sign" in capsys.readouterr().err
