"""Claims end to end: a base model, a dataset and a fine-tune, attested, signed and verified.

Real signers (key, and Sigstore keyless against the loopback stack with the real sigstore-python
client and verifier), the real CLI, real files; nothing of ours is mocked.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import json
import platform
from pathlib import Path

import pytest

from modelsign import hash_model
from modelsign._frameworks import DEFAULT_PACKAGES
from modelsign.claims import read_claims
from modelsign.cli._app import run
from modelsign.signing import KeylessSigner, KeySigner, load_trust_config, sign_model
from modelsign.statements._models import DERIVATION_BUILD_TYPE, SLSA_PROVENANCE_V1
from modelsign.testing import LoopbackSigstore
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify import Identity, Trust, verify_model
from modelsign.verify._claims import verify_claims

ISSUER_ID = "trainer@acme.test"
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _check_report_schema(doc: dict) -> None:  # type: ignore[type-arg]
    """The report matches schemas/claims-report.schema.json (signer as in the verify report)."""
    import jsonschema
    from referencing import Registry, Resource

    registry: Registry = Registry()
    for name in ("claims-report.schema.json", "verify-report.schema.json"):
        schema = json.loads((SCHEMAS / name).read_text())
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    claims_schema = json.loads((SCHEMAS / "claims-report.schema.json").read_text())
    jsonschema.Draft202012Validator(claims_schema, registry=registry).validate(doc)


def _model(path: Path, seed: int) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"seed": seed}))
    (path / "model.safetensors").write_bytes(bytes([seed % 256]) * 4096)
    return path


def _dataset(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "train.jsonl").write_text('{"text": "hello"}\n{"text": "world"}\n')
    (path / "README.md").write_text("a tiny dataset\n")
    return path


def _installed() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in DEFAULT_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def _ok(*args: str | Path) -> str:
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = run([str(a) for a in args])
    assert rc == 0, (rc, out.getvalue(), err.getvalue())
    return out.getvalue()


@pytest.fixture
def release(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", "release")


def test_key_signed_chain(tmp_path: Path, release: KeyPair) -> None:
    """The acceptance chain with key signing, through the CLI."""
    base = _model(tmp_path / "base", 1)
    data = _dataset(tmp_path / "chat-data")
    ft = _model(tmp_path / "ft", 2)
    signer = KeySigner.from_pem_file(release.private)
    sign_model(base, signer=signer)
    data_root = hash_model(data).root_hex  # `modelsign hash` of a dataset directory
    sign_model(data, signer=signer)
    base_root = verify_model(base, key=release.public).root_digest
    assert verify_model(data, key=release.public).root_digest == data_root

    out = _ok("attest", ft, "--relation", "finetune", "--method", "lora", "--param", "lora_r=16",
              "--base-model", base, "--dataset", data, "--dataset-split", "train",
              "--key", release.private, "--parent-key", release.public, "--no-hardware",
              "--invocation-id", "run-7", "--started-on", "2025-03-01T10:00:00Z",
              "--finished-on", "2025-03-01T12:30:00+00:00")
    assert "line 1" in out

    lines = read_claims(ft).lines
    assert len(lines) == 1
    ft_root = sign_model(ft, signer=signer).root_digest  # signing after attesting is fine
    report = verify_claims(ft, ft_root, key=release.public)
    assert report.ok, report.describe_failures()
    (claim,) = report.claims
    assert claim.status == "ok" and claim.recognized and claim.line == 1
    assert claim.predicate_type == SLSA_PROVENANCE_V1
    assert claim.signer is not None and claim.signer.kind == "key"
    v = claim.derivation
    assert v is not None and v.subject_digest == ft_root and v.relation == "finetune"
    # exactly the parents' root digests, each marked as verified-signed
    assert [(d.sha256, d.signed) for d in v.base_models] == [(base_root, True)]
    assert [(d.sha256, d.signed, d.split) for d in v.datasets] == [(data_root, True, "train")]
    # the frameworks of this environment, with versions, and nothing else
    assert {f.name: f.version for f in v.frameworks} == _installed()
    assert v.params == {"lora_r": "16"} and v.invocation_id == "run-7"
    assert v.finished_on is not None and v.started_on is not None
    assert (v.finished_on - v.started_on).total_seconds() == 9000

    # any in-toto reader sees a plain Statement v1 with SLSA provenance
    _check_report_schema(json.loads(json.dumps(report.to_json())))
    payload = json.loads(claim.verified.statement.raw)  # type: ignore[union-attr]
    assert payload["_type"] == "https://in-toto.io/Statement/v1"
    assert payload["predicate"]["buildDefinition"]["buildType"] == DERIVATION_BUILD_TYPE


def test_unsigned_and_referenced_parents(tmp_path: Path, release: KeyPair) -> None:
    base = _model(tmp_path / "base", 3)  # no model.sig: hashed, recorded as unsigned
    ft = _model(tmp_path / "ft", 4)
    other = "cd" * 32
    _ok("attest", ft, "--relation", "merge", "--base-model", base,
        "--base-model", f"sha256:{other}", "--uri", "https://models.acme.example/other",
        "--dataset", "hf://datasets/acme/chat@" + "a" * 40,
        "--code", "https://github.com/acme/train@" + "b" * 40,
        "--framework", "torch==9.9.9", "--framework", "cuda==12.4",
        "--key", release.private, "--no-hardware")
    report = verify_claims(ft, hash_model(ft).root_hex, key=release.public)
    v = report.claims[0].derivation
    assert v is not None
    assert [(d.sha256, d.uri, d.signed) for d in v.base_models] == [
        (hash_model(base).root_hex, None, False),
        (other, "https://models.acme.example/other", False)]
    assert [(d.uri, d.git_commit, d.sha256) for d in v.datasets] == [
        ("hf://datasets/acme/chat", "a" * 40, None)]
    assert v.code[0].git_commit == "b" * 40
    assert {f.name: f.version for f in v.frameworks}["torch"] == "9.9.9"
    assert [str(r) for r in v.runtimes] == ["cuda==12.4"]


def test_a_parent_whose_signature_fails_stops_attest(tmp_path: Path, release: KeyPair,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    base = _model(tmp_path / "base", 5)
    ft = _model(tmp_path / "ft", 6)
    sign_model(base, signer=KeySigner.from_pem_file(release.private))
    (base / "model.safetensors").write_bytes(b"swapped")
    rc = run(["attest", str(ft), "--relation", "finetune", "--base-model", str(base),
              "--key", str(release.private), "--parent-key", str(release.public),
              "--no-hardware"])
    assert rc == 1, capsys.readouterr()
    assert not (ft / "claims.jsonl").exists()
    rc = run(["attest", str(ft), "--relation", "finetune", "--base-model", str(base),
              "--key", str(release.private), "--no-hardware"])
    assert rc == 2 and "nobody said who may sign it" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with LoopbackSigstore() as s:
        d = tmp_path_factory.mktemp("sigstore")
        yield s, s.write_trust_config(d / "trust_config.json")


def test_keyless_chain_with_the_real_sigstore_verifier(tmp_path: Path, sigstore) -> None:  # type: ignore[no-untyped-def]
    s, tc = sigstore
    trust = Trust.from_trust_config(tc)
    base = _model(tmp_path / "base", 7)
    data = _dataset(tmp_path / "data")
    ft = _model(tmp_path / "ft", 8)
    publisher = KeylessSigner(trust_config=load_trust_config(path=tc),
                              identity_token=s.mint_token("publisher@acme.test"))
    base_root = sign_model(base, signer=publisher).root_digest
    data_root = sign_model(data, signer=publisher).root_digest

    _ok("attest", ft, "--relation", "finetune", "--base-model", base, "--dataset", data,
        "--trust-config", tc, "--identity-token", s.mint_token(ISSUER_ID),
        "--parent-identity", "publisher@acme.test", "--parent-issuer", s.url,
        "--parent-trust-config", tc, "--no-hardware")
    root = hash_model(ft).root_hex
    report = verify_claims(ft, root, identities=[Identity(issuer=s.url, identity=ISSUER_ID)],
                           trust=trust)
    assert report.ok, report.describe_failures()
    c = report.claims[0]
    assert c.signer is not None and (c.signer.kind, c.signer.identity, c.signer.issuer) == \
        ("keyless", ISSUER_ID, s.url)
    assert c.signer.log_index is not None
    assert c.derivation is not None
    assert [d.sha256 for d in c.derivation.base_models] == [base_root]
    assert [d.sha256 for d in c.derivation.datasets] == [data_root]
    _check_report_schema(json.loads(json.dumps(report.to_json())))

    # the same claim, checked against an identity that is not allowed: failed, with its line
    wrong = verify_claims(ft, root, identities=[Identity(issuer=s.url, identity="x@acme.test")],
                          trust=trust)
    assert not wrong.ok and wrong.failures[0].line == 1
    assert "x@acme.test" in (wrong.failures[0].reason or "")


def _flip_payload_byte(line: bytes) -> bytes:
    """Change one byte of the signed payload, keeping the line valid JSON and valid base64."""
    obj = json.loads(line)
    payload = base64.b64decode(obj["dsseEnvelope"]["payload"])
    i = payload.index(b'"relation":"') + len(b'"relation":"')
    edited = payload[:i] + b"X" + payload[i + 1:]
    new_b64 = base64.b64encode(edited).decode()
    old_b64 = obj["dsseEnvelope"]["payload"]
    j = next(k for k in range(len(old_b64)) if old_b64[k] != new_b64[k])
    edited_line = line.replace(old_b64.encode(), new_b64.encode())
    # exactly one byte of the base64 text differs? (base64 spreads a byte over 2 characters)
    assert sum(a != b for a, b in zip(line, edited_line, strict=True)) <= 2 and j >= 0
    return edited_line


def test_every_broken_line_is_reported_with_its_number(tmp_path: Path, release: KeyPair) -> None:
    mallory = make_key(tmp_path / "keys", "mallory")
    m = _model(tmp_path / "m", 9)
    other = _model(tmp_path / "other", 10)

    def attest_cli(target: Path, key: Path) -> None:
        _ok("attest", target, "--relation", "finetune", "--key", key, "--no-hardware")

    attest_cli(m, release.private)                              # 1 good
    attest_cli(other, release.private)                          # (moved to m below)
    attest_cli(m, release.private)                              # 2 good, to be byte-edited
    attest_cli(m, mallory.private)                              # 3 signed by a non-allowed key
    claims = m / "claims.jsonl"
    good, to_edit, by_mallory = claims.read_bytes().splitlines()
    moved = (other / "claims.jsonl").read_bytes().splitlines()[0]
    claims.write_bytes(b"\n".join([
        good,                                                   # 1 ok
        moved,                                                  # 2 subject of another model
        _flip_payload_byte(to_edit),                            # 3 one byte edited
        b"this is not a bundle",                                # 4 not a bundle
        by_mallory,                                             # 5 non-allowed signer
        good,                                                   # 6 ok
        good[: len(good) // 2],                                 # 7 truncated last line
    ]))
    report = verify_claims(m, hash_model(m).root_hex, key=release.public)
    status = {c.line: (c.status, c.reason or "") for c in report.claims}
    assert [n for n in status] == [1, 2, 3, 4, 5, 6, 7]
    assert status[1][0] == status[6][0] == "ok"
    assert status[2][0] == "failed" and "another artifact" in status[2][1] \
        and hash_model(other).root_hex in status[2][1]
    assert status[3][0] == "failed" and "signature" in status[3][1].lower()
    assert status[4][0] == "failed" and "not a valid claim bundle" in status[4][1]
    assert status[5][0] == "failed" and "different key" in status[5][1]
    assert status[7][0] == "failed" and "truncated" in status[7][1]
    assert not report.ok and [c.line for c in report.failures] == [2, 3, 4, 5, 7]
    lines = report.describe_failures()
    assert lines[0].startswith(f"{claims}:2: ")
    text = "\n".join(report.summary_lines())
    assert "7 in" in text and "2 verified, 5 failed" in text
    assert all(f"line {n}: FAILED" in text for n in (2, 3, 4, 5, 7))
    assert "line 1: verified, signed by sha256:" in text
    doc = report.to_json()
    assert doc["verdict"] == "failed" and doc["summary"] == {"total": 7, "ok": 2, "failed": 5}
    _check_report_schema(json.loads(json.dumps(doc)))


def test_unknown_predicate_types_are_reported_not_failed(tmp_path: Path,
                                                         release: KeyPair) -> None:
    from modelsign.claims import append_claim
    from modelsign.statements import make_statement

    m = _model(tmp_path / "m", 11)
    root = hash_model(m).root_hex
    st = make_statement("m", {"sha256": root}, "https://example.com/model-card/v1",
                        {"license": "apache-2.0"})
    append_claim(m, KeySigner.from_pem_file(release.private).sign(st).raw)
    report = verify_claims(m, root, key=release.public)
    assert report.ok
    (c,) = report.claims
    assert (c.status, c.recognized, c.predicate_type) == ("ok", False,
                                                          "https://example.com/model-card/v1")


def test_claims_command_prints_without_judging(tmp_path: Path, release: KeyPair) -> None:
    m = _model(tmp_path / "m", 12)
    base = _model(tmp_path / "base", 13)
    _ok("attest", m, "--relation", "adapter", "--method", "lora", "--base-model", base,
        "--key", release.private, "--no-hardware")
    with open(m / "claims.jsonl", "ab") as f:
        f.write(b"garbage\n")
    text = _ok("claims", m)
    assert "NOT verified" in text and "line 1: https://slsa.dev/provenance/v1" in text
    assert "relation     adapter (lora)" in text and "line 2: unreadable" in text
    assert f"sha256:{hash_model(base).root_hex}" in text and "python==" in text
    doc = json.loads(_ok("claims", m, "--format", "json"))
    assert doc["verified"] is False and [c["line"] for c in doc["claims"]] == [1, 2]
    assert doc["claims"][0]["derivation"]["relation"] == "adapter"
    assert doc["claims"][0]["claimed_signer"].startswith("key sha256:")
    assert doc["claims"][1]["problem"]
    assert "no claims file" in _ok("claims", base)


def test_the_subject_follows_the_serialization_of_the_artifacts_own_signature(
        tmp_path: Path, release: KeyPair) -> None:
    """A model signed in shards mode with blake3: the claim's subject is the root digest that
    signature's verifier computes, not the default files/sha256 one."""
    from modelsign import HashSpec

    m = _model(tmp_path / "m", 14)
    (m / "logs").mkdir()
    (m / "logs" / "train.log").write_text("step 1\n")
    spec = HashSpec(method="shards", algorithm="blake3", shard_size=1024, ignore_paths=("logs",))
    sign_model(m, signer=KeySigner.from_pem_file(release.private), spec=spec)
    verified_root = verify_model(m, key=release.public).root_digest
    assert verified_root != hash_model(m).root_hex
    _ok("attest", m, "--relation", "quantized", "--key", release.private, "--no-hardware")
    report = verify_claims(m, verified_root, key=release.public)
    assert report.ok, report.describe_failures()
    # and the claim file does not disturb the model's own verification
    assert verify_model(m, key=release.public).root_digest == verified_root


def test_an_artifact_cannot_be_its_own_parent(tmp_path: Path, release: KeyPair,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    m = _model(tmp_path / "m", 15)
    rc = run(["attest", str(m), "--relation", "finetune", "--base-model", str(m),
              "--key", str(release.private), "--no-hardware"])
    assert rc == 2 and "same root digest" in capsys.readouterr().err
    assert not (m / "claims.jsonl").exists()


def test_hashing_options_before_signing_and_against_a_signature(
        tmp_path: Path, release: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    from modelsign import HashSpec

    m = _model(tmp_path / "m", 16)
    (m / "logs").mkdir()
    (m / "logs" / "run.log").write_text("x\n")
    # attest first, with the options the model will be signed with
    _ok("attest", m, "--relation", "pruning", "--hash-method", "shards", "--shard-size", "1000",
        "--ignore-path", "logs", "--key", release.private, "--no-hardware")
    spec = HashSpec(method="shards", shard_size=1000, ignore_paths=("logs",))
    root = sign_model(m, signer=KeySigner.from_pem_file(release.private), spec=spec).root_digest
    assert verify_claims(m, root, key=release.public).ok
    # once signed, options that contradict the signature are refused
    rc = run(["attest", str(m), "--relation", "pruning", "--algorithm", "blake3",
              "--key", str(release.private), "--no-hardware"])
    assert rc == 2 and "differ from the ones the artifact's signature" in capsys.readouterr().err
    assert len(read_claims(m).lines) == 1


def test_a_single_file_artifact_keeps_its_claims_beside_it(tmp_path: Path,
                                                           release: KeyPair) -> None:
    w = tmp_path / "model.gguf"
    w.write_bytes(b"GGUF" + b"\0" * 2048)
    root = sign_model(w, signer=KeySigner.from_pem_file(release.private)).root_digest
    _ok("attest", w, "--relation", "format_conversion", "--key", release.private,
        "--no-hardware")
    assert (tmp_path / "model.gguf.claims.jsonl").is_file()
    report = verify_claims(w, root, key=release.public)
    assert report.ok and len(report.claims) == 1, report.describe_failures()
    assert "format_conversion" in _ok("claims", w)
