"""Policy files: the strict model, line numbers in every error, the schema in sync, examples."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from modelsign.errors import PolicyFileError
from modelsign.policy import lint_policy, load_policy, parse_policy, policy_json_schema
from modelsign.policy._model import parse_duration
from modelsign.policy._report import schema_texts
from modelsign.testing._pki import make_cert_chain, make_key

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "policies"
HEAD = "apiVersion: modelsign/v1\nkind: ModelPolicy\n"
SIGNERS = "signers:\n  - {issuer: https://accounts.google.com, identity: a@b.example}\n"


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def d(text: str) -> str:
    return textwrap.dedent(text)


def problems(tmp_path: Path, body: str) -> list[str]:
    return [str(p).removeprefix(f"{tmp_path / 'p.yaml'}:") for p in
            lint_policy(write(tmp_path, body))]


def test_a_policy_loads_with_its_key_files(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from modelsign.statements._bundle import public_key_hint

    kp = make_key(tmp_path / "keys", "release")
    pki = make_cert_chain(tmp_path / "pki")
    (tmp_path / "keys" / "tc.json").write_text(
        '{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}')
    p = write(tmp_path, HEAD + d(f"""\
        signers:
          - {{publicKey: keys/{kp.public.name}}}
          - {{certificateChain: {pki.root}}}
          - issuer: https://token.actions.githubusercontent.com
            identityRegex: "^https://github\\\\.com/acme/"
            sourceRepository: https://github.com/acme/model
            extensions: {{"1.3.6.1.4.1.57264.1.20": push}}
        maxAge: 12h
        trustRoot: {{file: keys/tc.json}}
        """))
    policy = load_policy(p)
    key = serialization.load_pem_public_key(kp.public.read_bytes())
    assert policy.key_ids == {f"keys/{kp.public.name}": "sha256:" + public_key_hint(key)}
    assert [s for s, _ in policy.anchors[str(pki.root)]] == [
        load_policy_root_subject(pki.root)]
    assert policy.public_key_paths() == (tmp_path / "keys" / kp.public.name,)
    assert policy.certificate_chain_paths() == (pki.root,)
    rule = policy.document.signers[2]
    assert rule.kind == "keyless"
    assert rule.pins() == {"1.3.6.1.4.1.57264.1.12": ("sourceRepository",
                                                      "https://github.com/acme/model"),
                           "1.3.6.1.4.1.57264.1.20": ("1.3.6.1.4.1.57264.1.20", "push")}
    assert policy.document.max_age_delta is not None
    assert policy.document.max_age_delta.total_seconds() == 12 * 3600
    assert policy.line_of(("maxAge",)) == 10
    assert policy.line_of(("signers", 2, "sourceRepository")) == 8
    assert len(policy.sha256) == 64
    from modelsign.verify import Trust

    assert policy.trust() == Trust.from_trust_config(tmp_path / "keys" / "tc.json")


def load_policy_root_subject(path: Path) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()


def test_unknown_keys_are_rejected_with_path_line_and_a_suggestion(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + SIGNERS + d("""\
        lineage:
          maxDepth: 3
          parents:
            - match: "hf://acme/*"
              signers:
                - {issuer: https://accounts.google.com, identiy: x@y.example}
        requireClaim: []
        """))
    assert found[0].startswith("10: lineage.parents[0].signers[0].identiy: unknown key "
                               "'identiy'; did you mean 'identity'?")
    assert found[1].startswith("11: requireClaim: unknown key 'requireClaim'; did you mean "
                               "'requireClaims'?")
    assert len(found) == 2


def test_cel_syntax_errors_are_reported_at_lint_and_at_load(tmp_path: Path) -> None:
    body = HEAD + SIGNERS + d("""\
        requireClaims:
          - predicateType: https://slsa.dev/provenance/v1
            conditions:
              - "predicate.buildDefinition.externalParameters.relation == 'finetune'"
              - "predicate.buildDefinition.externalParameters.relation in ['finetune'"
        conditions:
          - {expr: "claims.size() >", message: m}
          - "lineage.depth <= unknown_thing"
        """)
    assert problems(tmp_path, body) == [
        "9: requireClaims[0].conditions[1]: CEL syntax error: '[' at column 58 is never closed",
        "11: conditions[0].expr: CEL syntax error at column 15, near `>`",
        "12: conditions[1]: unknown name 'unknown_thing'; a condition here may use: claims, "
        "files, frameworks, lineage, signature",
    ]
    with pytest.raises(PolicyFileError) as e:
        load_policy(tmp_path / "p.yaml")
    assert e.value.exit_code == 2
    assert str(e.value).startswith(f"{tmp_path / 'p.yaml'}:9: requireClaims[0].conditions[1]: "
                                   "CEL syntax error")
    assert "(and 2 more problem(s)); next: run `modelsign policy lint FILE`" in str(e.value)


def test_predicate_and_claim_exist_only_in_claim_conditions(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + SIGNERS + 'conditions: ["predicate.x == 1"]\n')
    assert found == ["5: conditions[0]: unknown name 'predicate'; a condition here may use: "
                     "claims, files, frameworks, lineage, signature"]


@pytest.mark.parametrize(("body", "expected"), [
    ("signers:\n  - {identity: a@b.example}\n",
     "4: signers[0]: a Sigstore identity needs its issuer"),
    ("signers:\n  - {publicKey: k.pub, identity: a@b.example, issuer: https://x}\n",
     "4: signers[0]: a signer is exactly one of: identity or identityRegex (with issuer), "
     "publicKey, certificateChain; found identity/identityRegex and publicKey"),
    ("signers:\n  - {publicKey: k.pub, sourceRepository: https://github.com/a/b}\n",
     "4: signers[0]: certificate-extension pins apply only to Sigstore identities"),
    ("signers:\n  - {issuer: https://x, identityRegex: '(unclosed'}\n",
     "4: signers[0].identityRegex: not a valid regular expression"),
    ("signers: []\n", "3: signers: Tuple should have at least 1 item"),
    ("signers:\n  - {issuer: https://x, identity: a, extensions: {'1.2.3': v}}\n",
     "4: signers[0].extensions.1.2.3: String should match pattern"),
    (SIGNERS + "lineage: {maxDepth: '8'}\n", "5: lineage.maxDepth: Input should be a valid "
     "integer, found '8'"),
    (SIGNERS + "lineage: {}\n", "5: lineage: lineage needs at least one rule"),
    (SIGNERS + "lineage: {allowedRelations: [finetune, finetunning]}\n",
     "5: lineage.allowedRelations[1]: Input should be 'pretrain', 'finetune'"),
    (SIGNERS + "frameworks: {torch: 2.6}\n",
     "5: frameworks.torch: Input should be a valid string, found 2.6 (quote it in YAML)"),
    (SIGNERS + "frameworks: {torch: 'two point six'}\n",
     "5: frameworks.torch: 'two point six' is not a PEP 440 version specifier"),
    (SIGNERS + "frameworks: {Torch: '>=2', torch: '>=2.6'}\n",
     "5: frameworks: names 'Torch' and 'torch' are the same package"),
    (SIGNERS + "maxAge: 1y\n", "5: maxAge: '1y' is not a duration"),
    (SIGNERS + "serialization: {pickle: maybe}\n",
     "5: serialization.pickle: Input should be 'deny', 'warn' or 'allow', found 'maybe'"),
    (SIGNERS + "datasets: {allow: [imagenet]}\n",
     "5: datasets.allow[0]: 'imagenet' is neither a root digest"),
    (SIGNERS + "datasets: {requireSigned: false}\n",
     "5: datasets: datasets needs at least one of allow, deny, requireSigned: true"),
    (SIGNERS + "trustRoot: prod\n", "5: trustRoot: Input should be 'production' or 'staging'"),
    (SIGNERS + "requireClaims: [{predicateType: x, minCount: 0}]\n",
     "5: requireClaims[0].minCount: Input should be greater than or equal to 1"),
])
def test_schema_errors_name_the_key_and_line(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(tmp_path, HEAD + body)
    assert any(p.startswith(expected) for p in found), found


def test_missing_required_keys_and_wrong_header(tmp_path: Path) -> None:
    assert problems(tmp_path, "apiVersion: modelsign/v2\nkind: ModelPolicy\n") == [
        "1: apiVersion: Input should be 'modelsign/v1', found 'modelsign/v2'",
        "1: signers: required key is missing",
    ]


@pytest.mark.parametrize(("body", "expected"), [
    (HEAD + SIGNERS + "maxAge: 1d\nmaxAge: 2d\n",
     "6: maxAge: duplicate key (first at line 5); YAML would silently keep only the last one"),
    (HEAD + SIGNERS + "maxAge: 2025-01-01\n", "5: maxAge: '2025-01-01' reads as a YAML date"),
    (HEAD + SIGNERS + "? [a]\n: 1\n", "5: a key is a list or a map, not a string"),
    (HEAD + SIGNERS + "1: x\n", "5: key '1' is not a string"),
    (HEAD + "base: &b {issuer: https://x, identity: a}\nsigners: [{<<: *b}]\n",
     "4: signers[0]: YAML merge keys (<<) are not supported"),
    (HEAD + "signers: [\n", "4: not valid YAML"),
    (HEAD + "---\n" + HEAD, "a policy file holds exactly one YAML document, found 2"),
    ("- a\n- b\n", "1: the policy must be a map"),
])
def test_yaml_traps(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(tmp_path, body)
    assert len(found) == 1 and expected in found[0], found


def test_alias_expansion_is_bounded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    found = problems(tmp_path, HEAD + "\n".join(lines) + "\n")
    assert len(found) == 1 and "expands to more than 100000 YAML nodes" in found[0]


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="policy file not found"):
        load_policy(tmp_path / "nope.yaml")
    (tmp_path / "big.yaml").write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(PolicyFileError, match="policy file is too large"):
        load_policy(tmp_path / "big.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    assert "not UTF-8" in str(lint_policy(tmp_path / "bin.yaml")[0])
    with pytest.raises(PolicyFileError, match="directory"):
        load_policy(tmp_path)


def test_files_the_policy_names_must_exist_and_parse(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    found = problems(tmp_path, HEAD + d("""\
        signers:
          - {publicKey: missing.pub}
          - {certificateChain: junk.pem}
        trustRoot: {file: nowhere.json}
        """))
    assert found[0] == f"4: signers[0].publicKey: file not found: {tmp_path / 'missing.pub'}"
    assert found[1].startswith(f"5: signers[1].certificateChain: {tmp_path / 'junk.pem'} is not "
                               "PEM certificates")
    assert found[2] == f"6: trustRoot.file: file not found: {tmp_path / 'nowhere.json'}"
    (tmp_path / "nowhere.json").write_text('{"mediaType": "text/plain"}')
    assert lint_policy(tmp_path / "p.yaml")[2].message.endswith(
        "is neither a Sigstore trusted_root.json nor a client trust config "
        "(mediaType 'text/plain')")
    assert parse_policy(HEAD + SIGNERS + "trustRoot: staging\n").trust().kind == "staging"


def test_json_is_yaml_too(tmp_path: Path) -> None:
    doc = {"apiVersion": "modelsign/v1", "kind": "ModelPolicy",
           "signers": [{"issuer": "https://x", "identity": "a"}], "maxAge": "7d"}
    policy = parse_policy(json.dumps(doc))
    assert policy.document.max_age == "7d" and policy.source == "<policy>"


def test_durations() -> None:
    assert parse_duration("365d").days == 365
    assert parse_duration("2w").days == 14
    assert parse_duration("90m").total_seconds() == 5400
    for bad in ("0d", "1y", "d", "1.5d", " 1d", "1000000d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# ------------------------------------------------------------------------------------ schema
def test_checked_in_schemas_match_the_models() -> None:
    for name, text in schema_texts().items():
        path = REPO / "schemas" / name
        assert path.read_text(encoding="utf-8") == text, (
            f"schemas/{name} drifted from the pydantic model; regenerate with "
            "`python -m modelsign.policy._report`")
    jsonschema.Draft202012Validator.check_schema(policy_json_schema())


@pytest.mark.parametrize("example", ["strict-registry", "consumer", "open-weights"])
def test_examples_lint_clean_and_match_the_schema(example: str) -> None:
    path = EXAMPLES / f"{example}.yaml"
    assert lint_policy(path) == []
    policy = load_policy(path)
    assert policy.document.metadata is not None
    jsonschema.Draft202012Validator(policy_json_schema()).validate(
        yaml.safe_load(path.read_text()))


def test_the_schema_rejects_what_the_model_rejects() -> None:
    validator = jsonschema.Draft202012Validator(policy_json_schema())
    base = {"apiVersion": "modelsign/v1", "kind": "ModelPolicy",
            "signers": [{"issuer": "https://x", "identity": "a"}]}
    assert validator.is_valid(base)
    for bad in ({**base, "extra": 1},
                {**base, "signers": [{"issuer": "https://x", "identiy": "a"}]},
                {**base, "maxAge": "1y"},
                {**base, "serialization": {"pickle": "maybe"}},
                {**base, "lineage": {"allowedRelations": ["finetunning"]}}):
        assert not validator.is_valid(bad), bad
