"""``modelsign policy schema`` and ``modelsign policy lint`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelsign.cli import _app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "policies"


@pytest.fixture(autouse=True)
def _policy_commands() -> None:
    """`modelsign policy` is registered by _app's _COMMAND_MODULES; until that line lands, add
    the group to the app here (idempotent), so these tests drive the same `run` entry point."""
    if not any(g.name == "policy" for g in _app.app.registered_groups):
        from modelsign.cli import _policy

        _policy.register(_app.app)


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    rc = _app.run([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_schema_prints_the_checked_in_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "policy", "schema")
    assert rc == 0
    assert out == (REPO / "schemas" / "policy.schema.json").read_text()
    rc, out, _ = cli(capsys, "policy", "schema", "--report")
    assert rc == 0 and json.loads(out)["$id"].endswith("policy-report.schema.json")


def test_lint_clean_examples(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert [f.name for f in files] == ["consumer.yaml", "open-weights.yaml",
                                       "strict-registry.yaml"]
    rc, out, err = cli(capsys, "policy", "lint", *files)
    assert (rc, out) == (0, "")
    assert err.count(": ok\n") == 3


def test_lint_reports_every_problem_with_its_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: modelsign/v1\n"
        "kind: ModelPolicy\n"
        "signers:\n"
        "  - {issuer: https://accounts.google.com, identity: a@b.example, colour: red}\n"
        "requireClaims:\n"
        "  - predicateType: https://slsa.dev/provenance/v1\n"
        "    conditions: [\"predicate.relation in ['finetune'\"]\n"
        "maxAge: forever\n")
    rc, out, err = cli(capsys, "policy", "lint", bad, EXAMPLES / "consumer.yaml")
    assert rc == 2
    assert out.splitlines() == [
        f"{bad}:4: signers[0].colour: unknown key 'colour' (allowed here: buildTrigger, "
        "certificateChain, extensions, identity, identityRegex, issuer, publicKey, "
        "runnerEnvironment, sourceRepository, sourceRepositoryDigest, sourceRepositoryRef, "
        "workflowRef)",
        f"{bad}:7: requireClaims[0].conditions[0]: CEL syntax error: '[' at column 23 is never "
        "closed",
        f"{bad}:8: maxAge: 'forever' is not a duration; write a number and a unit, e.g. 365d, "
        "12h, 30m, 2w",
    ]
    assert "consumer.yaml: ok" in err and "3 problem(s) found" in err

    rc, out, _ = cli(capsys, "policy", "lint", bad, "--format", "json")
    doc = json.loads(out)
    assert rc == 2 and doc["ok"] is False
    assert [(p["line"], p["path"]) for p in doc["files"][0]["problems"]] == [
        (4, "signers[0].colour"), (7, "requireClaims[0].conditions[0]"), (8, "maxAge")]


def test_lint_a_missing_file_is_exit_2(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "policy", "lint", tmp_path / "nope.yaml")
    assert rc == 2 and "policy file not found" in out


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "policy", "--help")
    assert rc == 0 and "schema" in out and "lint" in out
    rc, out, _ = cli(capsys, "policy", "lint", "--help")
    assert rc == 0 and "modelsign policy lint registry.yaml" in out
