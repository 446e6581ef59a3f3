"""Attacks on claims (``claims.jsonl``): the signed statements a registry relies on to know what
a model was derived from.

``verify_claims`` never raises for a bad line: each line gets a status and a reason, the whole
report fails, and ``build_facts`` keeps a failed line out of every policy decision. So the verdict
asserted here is the line's ``failed`` status, the exception class its reason came from (by its
distinctive message), and that the policy facts reject it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from modelsign._frameworks import Environment
from modelsign.claims import MAX_CLAIM_LINE_BYTES, append_claim, attest
from modelsign.errors import PathError
from modelsign.statements._provenance import MAX_DEPENDENCIES
from modelsign.verify import verify_model
from modelsign.verify._claims import ClaimsReport, verify_claims

from .conftest import Party, bundle_json, dump, make_model, rejected, sign, signed_obj

NO_ENV = Environment(frameworks=())


def _attest(model: Path, party: Party, **kw: Any) -> Any:
    kw.setdefault("relation", "finetune")
    return attest(model, signer=party.signer, environment=NO_ENV, use_cache=False, **kw)


def _claims(model: Path, party: Party) -> ClaimsReport:
    root = verify_model(model, key=party.public).root_digest
    return verify_claims(model, root, key=party.public)


def _only_failure(report: ClaimsReport) -> str:
    assert not report.ok
    failures = report.failures
    assert len(failures) == 1, report.describe_failures()
    assert failures[0].status == "failed"
    return failures[0].reason or ""


def _statement(model: Path) -> dict[str, Any]:
    line = (model / "claims.jsonl").read_bytes().splitlines()[-1]
    return json.loads(base64.b64decode(bundle_json(line)["dsseEnvelope"]["payload"]))


def _policy_rejects(model: Path, party: Party, report: ClaimsReport) -> None:
    from modelsign.policy import build_facts

    facts = build_facts(verify_model(model, key=party.public), claims=report, sniff_files=False)
    assert not facts.claims
    assert [r.line for r in facts.rejected_claims] == [c.line for c in report.failures]


def test_claim_moved_between_models(tmp_path: Path, publisher: Party) -> None:
    """A genuine claim about model A (e.g. "fine-tuned from a vetted base on a licensed
    dataset") is copied beside model B to lend B that provenance."""
    a = make_model(tmp_path / "a", seed=1)
    b = make_model(tmp_path / "b", seed=2)
    sign(a, publisher)
    sign(b, publisher)
    _attest(a, publisher)
    append_claim(b / "claims.jsonl", (a / "claims.jsonl").read_bytes())
    report = _claims(b, publisher)
    assert "the claim is about another artifact" in _only_failure(report)
    _policy_rejects(b, publisher, report)


def test_claim_signed_by_a_stranger(model: Path, publisher: Party, stranger: Party) -> None:
    _attest(model, stranger, base_models=["sha256:" + "ab" * 32])
    report = _claims(model, publisher)
    assert "signed with a different key" in _only_failure(report)
    _policy_rejects(model, publisher, report)


def test_claim_edited_after_signing(model: Path, publisher: Party) -> None:
    """The relation is changed (``pretrain`` instead of ``finetune``) inside a signed line."""
    _attest(model, publisher)
    path = model / "claims.jsonl"
    obj = bundle_json(path.read_bytes())
    st = _statement(model)
    st["predicate"]["buildDefinition"]["externalParameters"]["relation"] = "pretrain"
    obj["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    path.write_bytes(dump(obj))
    report = _claims(model, publisher)
    assert "the DSSE signature does not verify" in _only_failure(report)


def test_claim_with_two_subjects(model: Path, publisher: Party) -> None:
    """A validly signed claim names this model *and* another: which one is it about?"""
    _attest(model, publisher)
    st = _statement(model)
    st["subject"].append({"name": "other", "digest": {"sha256": "cd" * 32}})
    (model / "claims.jsonl").write_bytes(signed_obj(st, publisher))
    report = _claims(model, publisher)
    assert "a claim must have exactly one subject (it has 2)" in _only_failure(report)
    _policy_rejects(model, publisher, report)


def test_claim_dependency_bomb(model: Path, publisher: Party) -> None:
    """A validly signed claim listing more parents than anything legitimate (a breadth bomb
    for whoever walks the lineage)."""
    _attest(model, publisher)
    st = _statement(model)
    dep = {"uri": "hf://x/y", "digest": {"sha256": "ab" * 32},
           "annotations": {"modelsign.role": "base_model"}}
    st["predicate"]["buildDefinition"]["resolvedDependencies"] = [dep] * (MAX_DEPENDENCIES + 1)
    (model / "claims.jsonl").write_bytes(signed_obj(st, publisher))
    report = _claims(model, publisher)
    reason = _only_failure(report)
    assert "the derivation predicate is malformed" in reason
    assert "resolvedDependencies" in reason


def test_claim_line_with_deeply_nested_json(model: Path, publisher: Party) -> None:
    (model / "claims.jsonl").write_bytes(b"[" * 100_000 + b"]" * 100_000 + b"\n")
    report = _claims(model, publisher)
    assert "nests JSON too deeply" in _only_failure(report)


def test_claim_line_over_the_size_cap(model: Path, publisher: Party) -> None:
    """One line larger than any bundle: reported without being held in memory whole."""
    with (model / "claims.jsonl").open("wb") as f:
        f.write(b" " * (MAX_CLAIM_LINE_BYTES + 10) + b"\n")
    report = _claims(model, publisher)
    assert f"line is longer than {MAX_CLAIM_LINE_BYTES} bytes" in _only_failure(report)


def test_claims_file_planted_as_a_symlink(model: Path, publisher: Party, tmp_path: Path) -> None:
    """The attacker plants ``claims.jsonl`` as a link to a file of the publisher's (a shell
    profile) so that ``attest`` appends attacker-influenced JSON to it."""
    victim = tmp_path / "bashrc"
    victim.write_bytes(b"export PATH=/usr/bin\n")
    (model / "claims.jsonl").symlink_to(victim)
    with rejected(PathError, "the claims file is a symbolic link; refusing to write through it"):
        _attest(model, publisher)
    assert victim.read_bytes() == b"export PATH=/usr/bin\n"


def test_model_sig_planted_as_a_symlink(tmp_path: Path, publisher: Party) -> None:
    """``model.sig`` planted as a link to a file of the publisher's: ``sign`` replaces the link
    with a new regular file and never writes through it."""
    victim = tmp_path / "bashrc"
    victim.write_bytes(b"export PATH=/usr/bin\n")
    m = make_model(tmp_path / "m")
    (m / "model.sig").symlink_to(victim)
    sign(m, publisher)
    assert victim.read_bytes() == b"export PATH=/usr/bin\n"
    assert not (m / "model.sig").is_symlink()
    verify_model(m, key=publisher.public)
