"""Attacks on the policy layer: policy files and CEL conditions that never end, blow up, or
silently lose a rule, and unverified data trying to satisfy a rule.

A registry evaluates policies written by many teams (and sometimes by whoever opened a pull
request). Loading must refuse anything ambiguous (``PolicyFileError``, exit 2); evaluation must
stay bounded in time and memory and decide only over verified facts.
"""

from __future__ import annotations

import time
from pathlib import Path

from modelsign._frameworks import Environment
from modelsign.claims import attest
from modelsign.errors import PolicyFileError
from modelsign.policy import build_facts, evaluate, load_policy
from modelsign.policy._load import MAX_POLICY_BYTES
from modelsign.verify import verify_model
from modelsign.verify._claims import verify_claims

from .conftest import Party, assert_rejected, make_model, outcome, rejected, sign

HEAD = "apiVersion: modelsign/v1\nkind: ModelPolicy\nsigners:\n  - publicKey: publisher.pub\n"


def _policy(tmp: Path, party: Party, body: str) -> Path:
    (tmp / "publisher.pub").write_bytes(party.public.read_bytes())
    p = tmp / "policy.yaml"
    p.write_text(HEAD + body)
    return p


def _ten() -> str:
    return "[" + ",".join(str(i) for i in range(10)) + "]"


def test_policy_with_a_never_ending_cel_expression(model: Path, publisher: Party,
                                                   tmp_path: Path) -> None:
    """Six nested comprehensions over ten items: a million evaluations if nothing stopped it.
    The step budget ends it, the rule fails with the reason, and the other rules still run."""
    t = _ten()
    expr = (f"{t}.map(a, {t}.map(b, {t}.map(c, {t}.map(d, {t}.map(e, {t}.map(f, "
            "a + b + c + d + e + f)))))).size() > 0")
    policy = load_policy(_policy(tmp_path, publisher, f"conditions:\n  - \"{expr}\"\n"))
    facts = build_facts(verify_model(model, key=publisher.public), sniff_files=False)
    start = time.monotonic()
    report = evaluate(policy, facts)
    assert time.monotonic() - start < 8
    assert report.verdict == "fail"
    rule = next(r for r in report.rules if r.rule == "conditions[0]")
    assert rule.status == "fail"
    # the step budget normally ends it; on a loaded machine the 2 s deadline may come first
    assert "could not be evaluated: stopped after " in rule.reason
    assert "simplify the condition" in rule.reason
    assert next(r for r in report.rules if r.rule == "signers").status == "pass"


def test_policy_with_a_catastrophic_regex(tmp_path: Path, publisher: Party) -> None:
    """``(a+)+$`` against ``aaaa...b`` backtracks exponentially in a backtracking engine; the
    subject name is chosen by the (possibly malicious) publisher."""
    m = make_model(tmp_path / ("a" * 64 + "b"))
    sign(m, publisher)
    policy = load_policy(_policy(tmp_path, publisher, "conditions:\n"
                                 "  - \"signature.subject.name.matches('^(a+)+$')\"\n"))
    facts = build_facts(verify_model(m, key=publisher.public), sniff_files=False)
    start = time.monotonic()
    report = evaluate(policy, facts)
    assert time.monotonic() - start < 5
    rule = next(r for r in report.rules if r.rule == "conditions[0]")
    assert rule.status == "fail"


def test_policy_yaml_alias_bomb(tmp_path: Path, publisher: Party) -> None:
    """"Billion laughs": nine levels of aliases, each repeating the previous nine times."""
    lines = ["x0: &x0 [a, a, a, a, a, a, a, a, a]"]
    for i in range(1, 9):
        refs = ", ".join([f"*x{i - 1}"] * 9)
        lines.append(f"x{i}: &x{i} [{refs}]")
    body = "metadata:\n  name: bomb\n" + "\n".join(lines) + "\nconditions: [*x8]\n"
    with rejected(PolicyFileError, "YAML nodes (aliases?)"):
        load_policy(_policy(tmp_path, publisher, body))


def test_policy_typo_that_would_silently_drop_a_rule(tmp_path: Path, publisher: Party) -> None:
    """``maxage`` instead of ``maxAge``: a lenient loader would ignore it and admit old
    signatures; the policy's author would never know."""
    with rejected(PolicyFileError, "unknown key 'maxage'; did you mean 'maxAge'?"):
        load_policy(_policy(tmp_path, publisher, "maxage: 30d\n"))


def test_policy_duplicate_key_overriding_a_rule(tmp_path: Path, publisher: Party) -> None:
    """A second ``serialization`` block further down (e.g. added by a pull request) would
    silently replace the first one with YAML's last-wins rule."""
    body = "serialization: {pickle: deny}\nmaxAge: 30d\nserialization: {pickle: allow}\n"
    with rejected(PolicyFileError, "duplicate key (first at line"):
        load_policy(_policy(tmp_path, publisher, body))


def test_policy_deeply_nested_yaml(tmp_path: Path, publisher: Party) -> None:
    import sys

    depth = max(2000, sys.getrecursionlimit())  # >= 2 frames a level: past this process's limit
    path = _policy(tmp_path, publisher, "metadata: " + "[" * depth + "\n")
    assert_rejected(outcome(lambda: load_policy(path)), PolicyFileError, "nest")


def test_policy_self_referencing_yaml_alias(tmp_path: Path, publisher: Party) -> None:
    path = _policy(tmp_path, publisher, "metadata: &a [*a]\n")
    assert_rejected(outcome(lambda: load_policy(path)), PolicyFileError, "alias")


def test_policy_file_too_large(tmp_path: Path, publisher: Party) -> None:
    body = "# " + "x" * MAX_POLICY_BYTES + "\n"
    with rejected(PolicyFileError, "policy file is too large"):
        load_policy(_policy(tmp_path, publisher, body))


def test_policy_yaml_python_object_tag(tmp_path: Path, publisher: Party) -> None:
    """A YAML tag that constructs a Python object in an unsafe loader, on a sequence: nothing
    is constructed (the tag is ignored) and the schema refuses the value."""
    body = "metadata: !!python/object/apply:os.system ['touch pwned']\n"
    with rejected(PolicyFileError, "metadata: Input should be an object, found a list"):
        load_policy(_policy(tmp_path, publisher, body))
    assert not (tmp_path / "pwned").exists()


def test_policy_yaml_unknown_scalar_tag(tmp_path: Path, publisher: Party) -> None:
    body = "maxAge: !!python/name:os.system\n"
    with rejected(PolicyFileError, "python/name:os.system"):
        load_policy(_policy(tmp_path, publisher, body))


def test_claim_signed_by_a_stranger_cannot_satisfy_require_claims(
        model: Path, publisher: Party, stranger: Party, tmp_path: Path) -> None:
    """The only provenance claim that would satisfy ``requireClaims`` is signed by a stranger:
    it fails verification, contributes no fact, and the rule fails saying why."""
    attest(model, signer=stranger.signer, relation="finetune",
           environment=Environment(frameworks=()), use_cache=False)
    policy = load_policy(_policy(tmp_path, publisher, (
        "requireClaims:\n  - predicateType: https://slsa.dev/provenance/v1\n"
        "    conditions: [\"predicate.buildDefinition.externalParameters.relation == "
        "'finetune'\"]\n")))
    result = verify_model(model, key=publisher.public)
    claims = verify_claims(model, result.root_digest, key=publisher.public)
    report = evaluate(policy, build_facts(result, claims=claims, sniff_files=False))
    assert report.verdict == "fail"
    rule = next(r for r in report.rules if r.rule.startswith("requireClaims[0]"))
    assert rule.status == "fail"
    assert "signed with a different key" in rule.reason
