"""Interop: what `modelsign sign` writes verifies with model_signing 1.1.1 (the OMS reference
implementation), for keys, certificate chains and Sigstore keyless (against the loopback
Sigstore); one changed byte makes the peer reject it. Our payload is canonical, deterministic and
valid against the OMS JSON Schemas."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import rfc8785

from modelsign.cli._app import run
from modelsign.testing import LoopbackSigstore
from modelsign.testing._pki import make_cert_chain, make_key

model_signing = pytest.importorskip("model_signing", reason="the peer (model-signing 1.1.1) "
                                    "is a test dependency")
from model_signing import verifying  # noqa: E402

ME = "release@modelsign.test"


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoopbackSigstore, Path]:
    with LoopbackSigstore() as s:
        tc = s.write_trust_config(tmp_path_factory.mktemp("sigstore") / "trust_config.json")
        yield s, tc


def _model(root: Path) -> Path:
    m = root / "tiny-bert"
    (m / "weights").mkdir(parents=True)
    (m / "config.json").write_text('{"hidden_size": 8}')
    (m / "weights" / "model-00001.safetensors").write_bytes(bytes(range(256)) * 40)
    (m / "weights" / "model-00002.safetensors").write_bytes(b"\x07" * 5000)
    (m / "tokenizer.json").write_text('{"vocab": {"a": 0}}')
    (m / "README.md").write_text("# tiny\n")
    (m / ".gitattributes").write_text("*.safetensors filter=lfs\n")  # OMS ignores it
    return m


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return _model(tmp_path)


def _sign(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    rc = run(["sign", *map(str, args)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _payload(sig: Path) -> bytes:
    return base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"])


def _peer_accepts_then_rejects(model: Path, config: Callable[[], verifying.Config],
                               sig: Path | None = None) -> None:
    sig = sig or model / "model.sig"
    config().verify(model, sig)
    _flip_one_byte(model / "weights" / "model-00001.safetensors")
    with pytest.raises(ValueError, match=r"Hash mismatch|Signature mismatch"):
        config().verify(model, sig)


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
def test_key_signature_verifies_with_the_peer(model: Path, tmp_path: Path, curve: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "keys", curve=curve)  # type: ignore[arg-type]
    out = _sign(capsys, model, "--key", kp.private)
    assert str(model / "model.sig") in out and "sha256:" in out
    _peer_accepts_then_rejects(
        model, lambda: verifying.Config().use_elliptic_key_verifier(public_key=kp.public))


def test_encrypted_key_signature_verifies_with_the_peer(model: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "keys", password="correct horse")
    pw = tmp_path / "pw.txt"
    pw.write_text("correct horse\n")
    _sign(capsys, model, "--key", kp.private, "--password-file", pw)
    _peer_accepts_then_rejects(
        model, lambda: verifying.Config().use_elliptic_key_verifier(public_key=kp.public))


def test_certificate_signature_verifies_with_the_peer(model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_cert_chain(tmp_path / "pki", curve="secp384r1")
    _sign(capsys, model, "--key", pki.key, "--cert", pki.leaf, "--chain", pki.intermediate,
          "--chain", pki.root)
    _peer_accepts_then_rejects(
        model, lambda: verifying.Config().use_certificate_verifier(certificate_chain=[pki.root]))


def test_certificate_signature_from_a_foreign_ca_is_rejected_by_the_peer(
        model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_cert_chain(tmp_path / "pki")
    other = make_cert_chain(tmp_path / "other")
    _sign(capsys, model, "--key", pki.key, "--cert", pki.leaf, "--chain", pki.chain)
    from OpenSSL.crypto import X509StoreContextError

    with pytest.raises(X509StoreContextError):  # unable to get the issuer certificate
        verifying.Config().use_certificate_verifier(certificate_chain=[other.root]).verify(
            model, model / "model.sig")


def test_keyless_signature_verifies_with_the_peer(model: Path,
                                                  sigstore: tuple[LoopbackSigstore, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    s, tc = sigstore
    out = _sign(capsys, model, "--trust-config", tc, "--identity-token", s.mint_token(ME))
    assert ME in out and "log index" in out

    def peer(identity: str = ME) -> verifying.Config:
        return verifying.Config().use_sigstore_verifier(identity=identity, oidc_issuer=s.url,
                                                         trust_config=tc)
    from sigstore.errors import VerificationError

    with pytest.raises(VerificationError):  # the certificate's identity is not the one asked
        peer("mallory@modelsign.test").verify(model, model / "model.sig")
    _peer_accepts_then_rejects(model, peer)


def test_keyless_token_from_the_environment(model: Path, sigstore: tuple[LoopbackSigstore, Path],
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    s, tc = sigstore
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", s.mint_token("env@modelsign.test"))
    _sign(capsys, model, "--trust-config", tc)
    verifying.Config().use_sigstore_verifier(identity="env@modelsign.test", oidc_issuer=s.url,
                                             trust_config=tc).verify(model, model / "model.sig")


def test_keyless_ambient_github_actions_credentials(model: Path,
                                                    sigstore: tuple[LoopbackSigstore, Path],
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from modelsign.testing import GitHubWorkflow

    s, tc = sigstore
    wf = GitHubWorkflow()
    for name, value in s.github_actions_env(wf).items():
        monkeypatch.setenv(name, value)
    out = _sign(capsys, model, "--trust-config", tc)
    assert wf.identity in out
    verifying.Config().use_sigstore_verifier(
        identity=wf.identity, oidc_issuer="https://token.actions.githubusercontent.com",
        trust_config=tc).verify(model, model / "model.sig")


def test_shards_signature_has_the_peers_digests_in_the_schemas_form(
        model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Shard signatures: the same names and digests as the peer computes, written as the OMS
    schema says (integer shard_size, algorithm "sha256"). model_signing 1.1.1 itself labels
    shard digests "sha256-sharded-<N>" and compares labels, so it rejects every schema-valid
    shard signature, ours included (docs/decisions/0005-signing.md); we check the digests."""
    from model_signing import hashing as peer_hashing

    kp = make_key(tmp_path / "keys")
    _sign(capsys, model, "--key", kp.private, "--method", "shards", "--shard-size", "4096")
    st = json.loads(_payload(model / "model.sig"))
    ser = st["predicate"]["serialization"]
    assert ser["shard_size"] == 4096 and isinstance(ser["shard_size"], int)
    ours = {r["name"]: r["digest"] for r in st["predicate"]["resources"]}
    assert {r["algorithm"] for r in st["predicate"]["resources"]} == {"sha256"}
    cfg = peer_hashing.Config().use_shard_serialization(shard_size=4096)
    cfg.add_ignored_paths(model_path=model, paths=ser["ignore_paths"])
    peer = cfg.hash(model)
    theirs = {rd.identifier: rd.digest.digest_hex for rd in peer.resource_descriptors()}
    assert ours == theirs
    assert "weights/model-00001.safetensors:8192:10240" in ours


def test_output_inside_the_model_is_left_out_and_peer_agrees(model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    kp = make_key(tmp_path / "keys")
    (model / "sigs").mkdir()
    sig = model / "sigs" / "release.sig"
    _sign(capsys, model, "--key", kp.private, "--output", sig)
    st = json.loads(_payload(sig))
    assert "sigs/release.sig" in st["predicate"]["serialization"]["ignore_paths"]
    assert all(r["name"] != "sigs/release.sig" for r in st["predicate"]["resources"])
    # signing again over the same output still works and still leaves it out
    _sign(capsys, model, "--key", kp.private, "--output", sig)
    _peer_accepts_then_rejects(
        model, lambda: verifying.Config().use_elliptic_key_verifier(public_key=kp.public),
        sig=sig)


# ------------------------------------------------------------------- canonical and schema-valid
def _registry(schemas: Path):  # type: ignore[no-untyped-def]
    from referencing import Registry, Resource

    resources = []
    for p in sorted(schemas.glob("*.schema.json")):
        doc = json.loads(p.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _validate(schemas: Path, sig: Path) -> None:
    from jsonschema import Draft202012Validator

    registry = _registry(schemas)

    def check(name: str, instance: object) -> None:
        schema = json.loads((schemas / f"{name}.schema.json").read_text())
        errors = list(Draft202012Validator(schema, registry=registry).iter_errors(instance))
        assert not errors, f"{sig} fails {name}.schema.json: {errors[0].message}"

    bundle = json.loads(sig.read_bytes())
    statement = json.loads(_payload(sig))
    check("bundle", bundle)
    check("envelope", bundle["dsseEnvelope"])
    check("statement", statement)
    check("predicate", statement["predicate"])


def test_payload_is_canonical_deterministic_and_schema_valid(
        model: Path, tmp_path: Path, sigstore: tuple[LoopbackSigstore, Path], oms_schemas: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    s, tc = sigstore
    kp = make_key(tmp_path / "keys", curve="secp384r1")
    pki = make_cert_chain(tmp_path / "pki")
    runs = {
        "key-1": ["--key", kp.private],
        "key-2": ["--key", kp.private],
        "certificate": ["--key", pki.key, "--cert", pki.leaf, "--chain", pki.chain],
        "keyless": ["--trust-config", tc, "--identity-token", s.mint_token(ME)],
        "shards": ["--key", kp.private, "--method", "shards", "--shard-size", "1000"],
    }
    sigs = {}
    for name, args in runs.items():
        sig = tmp_path / f"{name}.sig"
        _sign(capsys, model, *args, "--output", sig)
        sigs[name] = sig
        _validate(oms_schemas, sig)
        raw = sig.read_bytes()
        assert raw == rfc8785.dumps(json.loads(raw)) + b"\n", f"{name}: bundle not canonical"
        payload = _payload(sig)
        assert payload == rfc8785.dumps(json.loads(payload)), f"{name}: payload not canonical"
    # the same model gives byte-identical payloads whatever signs it; signatures differ (ECDSA)
    files_payloads = {_payload(sigs[n]) for n in ("key-1", "key-2", "certificate", "keyless")}
    assert len(files_payloads) == 1
    assert json.loads(sigs["key-1"].read_bytes())["dsseEnvelope"]["signatures"] != \
        json.loads(sigs["key-2"].read_bytes())["dsseEnvelope"]["signatures"]
    st = json.loads(_payload(sigs["key-1"]))
    assert st["subject"][0]["name"] == "tiny-bert"
    assert [r["name"] for r in st["predicate"]["resources"]] == [
        "README.md", "config.json", "tokenizer.json", "weights/model-00001.safetensors",
        "weights/model-00002.safetensors"]
    assert st["predicate"]["serialization"]["ignore_paths"] == sorted(
        st["predicate"]["serialization"]["ignore_paths"])


def test_keyless_signature_verifies_with_the_peer_cli(model: Path,
                                                      sigstore: tuple[LoopbackSigstore, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The user-facing flow: `model_signing verify sigstore --trust_config` in its own process."""
    import subprocess
    import sys

    s, tc = sigstore
    _sign(capsys, model, "--trust-config", tc, "--identity-token", s.mint_token(ME))

    def peer_cli() -> subprocess.CompletedProcess[str]:
        code = "import sys; from model_signing._cli import main; sys.exit(main())"
        return subprocess.run(
            [sys.executable, "-c", code, "verify", "sigstore", str(model),
             "--signature", str(model / "model.sig"), "--identity", ME,
             "--identity_provider", s.url, "--trust_config", str(tc)],
            capture_output=True, text=True, timeout=120, check=False)

    ok = peer_cli()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    _flip_one_byte(model / "config.json")
    bad = peer_cli()
    assert bad.returncode != 0 and "config.json" in bad.stdout + bad.stderr
