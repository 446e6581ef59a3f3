"""``verify_bundle``: signature and signer of any DSSE in-toto bundle, without judging the
predicate; trust roots; and that only the verifier can make verified objects."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign.errors import (
    InputError,
    InternalError,
    SignatureError,
    SignatureFormatError,
)
from modelsign.signing import KeySigner
from modelsign.statements import make_statement
from modelsign.statements._bundle import (
    BUNDLE_MEDIA_TYPE,
    DSSE_PAYLOAD_TYPE,
    b64encode,
    bundle_bytes,
    public_key_hint,
)
from modelsign.testing._pki import CertChain, KeyPair, make_cert_chain, make_key
from modelsign.verify import Identity, Signer, Trust, VerifiedStatement, verify_bundle
from modelsign.verify._keys import COMPAT_WARNING, _pae_compat

SLSA = "https://slsa.dev/provenance/v1"


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", curve="secp256r1")


@pytest.fixture
def pki(tmp_path: Path) -> CertChain:
    return make_cert_chain(tmp_path / "pki", curve="secp384r1")


def _claim() -> Any:
    return make_statement("model", {"sha256": "ab" * 32}, SLSA,
                          {"buildDefinition": {"buildType": "x"}, "runDetails": {}})


def _private(path: Path) -> ec.EllipticCurvePrivateKey:
    k = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    return k


def _handmade(payload: bytes, sig: bytes, material: dict[str, Any]) -> bytes:
    return bundle_bytes({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {**material, "tlogEntries": []},
        "dsseEnvelope": {"payload": b64encode(payload), "payloadType": DSSE_PAYLOAD_TYPE,
                         "signatures": [{"sig": b64encode(sig), "keyid": ""}]},
    })


def _chain_material(*certs: x509.Certificate) -> dict[str, Any]:
    return {"x509CertificateChain": {"certificates": [
        {"rawBytes": b64encode(c.public_bytes(serialization.Encoding.DER))} for c in certs]}}


# ----------------------------------------------------------------------------- key
def test_any_predicate_verifies_with_a_key(key: KeyPair) -> None:
    st = _claim()
    bundle = KeySigner.from_pem_file(key.private).sign(st).raw
    vs = verify_bundle(bundle, key=key.public, source="claims.jsonl:1")
    assert isinstance(vs, VerifiedStatement)
    assert vs.statement.raw == st.raw and vs.statement.predicate_type == SLSA
    assert vs.signer.kind == "key" and vs.signer.identity == \
        "sha256:" + public_key_hint(_private(key.private).public_key())
    assert vs.payload_type == DSSE_PAYLOAD_TYPE and not vs.warnings
    assert len(vs.bundle_sha256) == 64


def test_tampered_payload_fails(key: KeyPair) -> None:
    bundle = json.loads(KeySigner.from_pem_file(key.private).sign(_claim()).raw)
    other = make_statement("model", {"sha256": "cd" * 32}, SLSA, {})
    bundle["dsseEnvelope"]["payload"] = b64encode(other.raw)
    with pytest.raises(SignatureError, match="the DSSE signature does not verify") as ei:
        verify_bundle(json.dumps(bundle).encode(), key=key.public, source="x.sig")
    assert str(ei.value).startswith("x.sig: ")


def test_missing_key_hint_warns(key: KeyPair) -> None:
    st = _claim()
    priv = _private(key.private)
    sig = priv.sign(b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(st.raw), st.raw),
                    ec.ECDSA(hashes.SHA256()))
    vs = verify_bundle(_handmade(st.raw, sig, {"publicKey": {}}), key=key.public)
    assert any("does not name its key" in w for w in vs.warnings)


def test_pre_1_0_encoding_verifies_with_a_warning(key: KeyPair) -> None:
    st = _claim()
    sig = _private(key.private).sign(_pae_compat(DSSE_PAYLOAD_TYPE, st.raw),
                                     ec.ECDSA(hashes.SHA256()))
    hint = public_key_hint(_private(key.private).public_key())
    vs = verify_bundle(_handmade(st.raw, sig, {"publicKey": {"hint": hint}}), key=key.public)
    assert vs.warnings == (COMPAT_WARNING,)


def test_wrong_material_for_the_mode(key: KeyPair, pki: CertChain, shared_fixtures: Path) -> None:
    key_bundle = KeySigner.from_pem_file(key.private).sign(_claim()).raw
    with pytest.raises(SignatureError, match="verify with --key"):
        verify_bundle(key_bundle, cert_chain=[pki.root])
    with pytest.raises(SignatureError, match="verify with --key"):
        verify_bundle(key_bundle, identities=[Identity(identity="a", issuer="b")])
    keyless = (shared_fixtures / "oms-peer" / "v1.0.1-sigstore" / "model.sig").read_bytes()
    with pytest.raises(SignatureError, match="signed keylessly with Sigstore"):
        verify_bundle(keyless, key=key.public)


# ----------------------------------------------------------------------------- certificate
def test_certificate_chain(pki: CertChain) -> None:
    from modelsign.signing import CertificateSigner

    signer = CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain])
    vs = verify_bundle(signer.sign(_claim()).raw, cert_chain=[pki.root])
    assert vs.signer.kind == "certificate"
    assert vs.signer.issuer == "CN=modelsign test root CA,O=modelsign test PKI"
    assert vs.signer.cert_not_before is not None and vs.signer.cert_fingerprint


def test_certificate_checked_at_the_injected_time(pki: CertChain) -> None:
    from modelsign.signing import CertificateSigner

    bundle = CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain]).sign(_claim()).raw
    later = datetime.now(UTC) + timedelta(days=30)  # the leaf lives one day
    with pytest.raises(SignatureError, match="does not chain to the given CA"):
        verify_bundle(bundle, cert_chain=[pki.root], clock=lambda: later)


def test_leaf_without_code_signing_is_refused(tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path / "tls", code_signing=False)
    leaf = x509.load_pem_x509_certificate(pki.leaf.read_bytes())
    inter = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
    st = _claim()
    sig = _private(pki.key).sign(
        b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(st.raw), st.raw),
        ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureError, match="does not chain to the given CA") as ei:
        verify_bundle(_handmade(st.raw, sig, _chain_material(leaf, inter)),
                      cert_chain=[pki.root])
    assert "code signing" in (ei.value.actual or "")


def test_cert_signature_by_another_key_is_refused(pki: CertChain, key: KeyPair) -> None:
    leaf = x509.load_pem_x509_certificate(pki.leaf.read_bytes())
    inter = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
    st = _claim()
    sig = _private(key.private).sign(
        b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(st.raw), st.raw),
        ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureError, match="the DSSE signature does not verify"):
        verify_bundle(_handmade(st.raw, sig, _chain_material(leaf, inter)),
                      cert_chain=[pki.root])


# ----------------------------------------------------------------------------- keyless
IBM = Identity(identity="stefanb@us.ibm.com", issuer="https://sigstore.verify.ibm.com/oauth2")


def test_keyless_fixture_with_unanchored_regex_warns(shared_fixtures: Path) -> None:
    bundle = (shared_fixtures / "oms-peer" / "v1.0.1-sigstore" / "model.sig").read_bytes()
    vs = verify_bundle(bundle, identities=[Identity(identity_regex=r"stefanb@us\.ibm\.com",
                                                    issuer=IBM.issuer)])
    assert vs.signer.identity == IBM.identity
    assert any("not anchored" in w for w in vs.warnings)


def test_keyless_unsafe_skip(shared_fixtures: Path) -> None:
    bundle = (shared_fixtures / "oms-peer" / "v1.0.1-sigstore" / "model.sig").read_bytes()
    vs = verify_bundle(bundle, unsafe_skip_identity=True)
    assert vs.signer.identity == IBM.identity  # still read from the verified certificate
    assert "identity check SKIPPED" in vs.warnings[0]


def test_keyless_requires_an_identity_rule(shared_fixtures: Path) -> None:
    bundle = (shared_fixtures / "oms-peer" / "v1.0.1-sigstore" / "model.sig").read_bytes()
    with pytest.raises(InputError, match="without an identity rule"):
        verify_bundle(bundle)
    with pytest.raises(InputError, match="without an identity rule"):
        verify_bundle(bundle, identities=[])


def test_keyless_tampered_certificate_is_not_a_valid_bundle_or_fails(
        shared_fixtures: Path) -> None:
    obj = json.loads((shared_fixtures / "oms-peer" / "v1.0.1-sigstore" / "model.sig")
                     .read_bytes())
    obj["verificationMaterial"]["tlogEntries"] = []
    with pytest.raises(SignatureFormatError, match="not a valid Sigstore bundle"):
        verify_bundle(json.dumps(obj).encode(), identities=[IBM])


# ----------------------------------------------------------------------------- trust roots
def test_bundled_roots_load_offline_and_write_nothing(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from sigstore.models import TrustedRoot

    assert isinstance(Trust.production().load(), TrustedRoot)
    assert isinstance(Trust.staging().load(), TrustedRoot)
    assert not (tmp_path / "data").exists() and not (tmp_path / "cache").exists()


def test_trust_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(InputError, match="cannot read trust file") as ei:
        Trust.from_trust_config(missing).load()
    assert ei.value.path == str(missing)
    bad = tmp_path / "bad.json"
    bad.write_text('{"mediaType": "x"}')
    with pytest.raises(InputError, match="not a valid trust config"):
        Trust.from_trust_config(bad).load()
    with pytest.raises(InputError, match="not a valid trusted root"):
        Trust.from_trusted_root(bad).load()
    with pytest.raises(InputError):
        Trust("trust_config", None)
    with pytest.raises(InputError, match="--refresh-trust"):
        Trust("trusted_root", str(bad), True)


def test_trust_describe() -> None:
    assert Trust().describe() == "Sigstore production (bundled with sigstore, offline)"
    assert "refreshed over TUF" in Trust.staging(refresh=True).describe()
    assert Trust.from_trusted_root(os.path.join("a", "r.json")).describe().startswith(
        "trusted root ")


# ----------------------------------------------------------------------------- verified objects
def test_verified_objects_cannot_be_made_outside_the_verifier(key: KeyPair) -> None:
    vs = verify_bundle(KeySigner.from_pem_file(key.private).sign(_claim()).raw, key=key.public)
    with pytest.raises(InternalError, match="can only be created by modelsign.verify"):
        VerifiedStatement(vs.statement, vs.payload_type, vs.signer, vs.bundle_sha256, ())
    with pytest.raises(InternalError):
        VerifiedStatement(vs.statement, vs.payload_type, vs.signer, vs.bundle_sha256, (),
                          _token=object())
    import dataclasses

    forged = make_statement("evil", {"sha256": "00" * 32}, SLSA, {})
    with pytest.raises(InternalError):  # replace() cannot re-use the token: it is not stored
        dataclasses.replace(vs, statement=forged)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vs.signer = Signer("key", "x", None)  # type: ignore[misc]


def test_a_lone_rule_or_path_is_a_list_of_one(key: KeyPair, pki: CertChain,
                                              shared_fixtures: Path) -> None:
    from modelsign.signing import CertificateSigner

    bundle = CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain]).sign(_claim()).raw
    assert verify_bundle(bundle, cert_chain=pki.root).signer.kind == "certificate"
    assert verify_bundle(bundle, cert_chain=str(pki.root)).signer.kind == "certificate"
    keyless = (shared_fixtures / "oms-peer" / "v1.0.1-sigstore" / "model.sig").read_bytes()
    assert verify_bundle(keyless, identities=IBM).signer.identity == IBM.identity
