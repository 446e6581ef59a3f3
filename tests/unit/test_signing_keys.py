"""Key and certificate signers: the bundle layout of model_signing 1.1.1, real ECDSA, and refusals
of bad key material with one-line messages. No hashing engine needed: manifests built by hand."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign.errors import KeyMaterialError, PathError
from modelsign.hashing._spec import HashSpec
from modelsign.manifest import Manifest, Resource, Serialization
from modelsign.signing import (
    CertificateSigner,
    KeySigner,
    SignedBundle,
    Signer,
    load_private_key,
    read_password_file,
    sign_manifest,
)
from modelsign.statements import oms_statement
from modelsign.statements._bundle import BUNDLE_MEDIA_TYPE, load_bundle, pae, parse_envelope
from modelsign.testing._pki import make_cert_chain, make_key

HASH_FOR = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}


def _manifest(name: str = "tiny-model") -> Manifest:
    files = {"config.json": b"{}", "weights/model.safetensors": b"\x00" * 64, "README.md": b"hi"}
    resources = [Resource(p, "sha256", hashlib.sha256(b).digest()) for p, b in files.items()]
    return Manifest.build(name, Serialization.from_spec(HashSpec()), resources)


def _decode(bundle: SignedBundle) -> dict:
    obj = json.loads(bundle.raw)
    assert bundle.raw == rfc8785.dumps(obj) + b"\n", "bundle JSON is not canonical"
    return obj


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
def test_key_bundle_layout_matches_the_peer(tmp_path: Path, curve: str) -> None:
    kp = make_key(tmp_path, curve=curve)  # type: ignore[arg-type]
    signer = KeySigner.from_pem_file(kp.private)
    assert isinstance(signer, Signer)
    st = oms_statement(_manifest())
    bundle = signer.sign(st)
    obj = _decode(bundle)
    assert obj["mediaType"] == BUNDLE_MEDIA_TYPE
    # hint = hex SHA-256 of the public key PEM, computed here independently from the .pub file
    pub = serialization.load_pem_public_key(kp.public.read_bytes())
    pem = pub.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    assert obj["verificationMaterial"] == {
        "publicKey": {"hint": hashlib.sha256(pem).hexdigest()}, "tlogEntries": []}
    env = obj["dsseEnvelope"]
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(env["payload"]) == st.raw
    assert len(env["signatures"]) == 1 and env["signatures"][0]["keyid"] == ""
    sig = base64.b64decode(env["signatures"][0]["sig"])
    msg = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(st.raw), st.raw)
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(sig, msg, ec.ECDSA(HASH_FOR[curve]()))  # the hash that matches the curve
    if curve != "secp256r1":
        with pytest.raises(InvalidSignature):
            pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    assert bundle.method == "key" and bundle.key_hint == hashlib.sha256(pem).hexdigest()


def test_payload_is_deterministic_signatures_are_not(tmp_path: Path) -> None:
    signer = KeySigner.from_pem_file(make_key(tmp_path).private)
    a = sign_manifest(_manifest(), signer=signer)
    b = sign_manifest(_manifest(), signer=signer)
    env_a, env_b = _decode(a)["dsseEnvelope"], _decode(b)["dsseEnvelope"]
    assert env_a["payload"] == env_b["payload"]
    assert env_a["signatures"] != env_b["signatures"]  # ECDSA is randomized
    payload = base64.b64decode(env_a["payload"])
    assert payload == rfc8785.dumps(json.loads(payload))


def test_traditional_and_encrypted_keys_load(tmp_path: Path) -> None:
    trad = make_key(tmp_path, "trad", curve="secp384r1", traditional=True)
    assert b"BEGIN EC PRIVATE KEY" in trad.private.read_bytes()
    KeySigner.from_pem_file(trad.private)
    enc = make_key(tmp_path, "enc", password="s3cret")
    (tmp_path / "pw.txt").write_bytes(b"s3cret\n")
    KeySigner.from_pem_file(enc.private, password=read_password_file(tmp_path / "pw.txt"))
    enc_trad = make_key(tmp_path, "enc-trad", password=b"pw", traditional=True)
    assert b"Proc-Type: 4,ENCRYPTED" in enc_trad.private.read_bytes()
    KeySigner.from_pem_file(enc_trad.private, password="pw")


def test_password_file_strips_one_newline_only(tmp_path: Path) -> None:
    p = tmp_path / "pw"
    p.write_bytes(b"a b \r\n")
    assert read_password_file(p) == b"a b "
    p.write_bytes(b"x\n\n")
    assert read_password_file(p) == b"x\n"


def _one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("kind,needle", [
    ("secp256k1", "unsupported elliptic curve"),
    ("rsa2048", "unsupported key type"),
    ("ed25519", "unsupported key type"),
])
def test_unsupported_keys_are_refused(tmp_path: Path, kind: str, needle: str) -> None:
    kp = make_key(tmp_path, curve=kind)  # type: ignore[arg-type]
    with pytest.raises(KeyMaterialError) as e:
        KeySigner.from_pem_file(kp.private)
    msg = _one_line(e)
    assert needle in msg and str(kp.private) in msg and "P-256" in msg


def test_encrypted_key_without_password(tmp_path: Path) -> None:
    kp = make_key(tmp_path, password="pw")
    with pytest.raises(KeyMaterialError) as e:
        KeySigner.from_pem_file(kp.private)
    assert "encrypted and no password" in _one_line(e)


def test_wrong_password(tmp_path: Path) -> None:
    kp = make_key(tmp_path, password="right")
    with pytest.raises(KeyMaterialError) as e:
        KeySigner.from_pem_file(kp.private, password="wrong")
    assert "wrong password" in _one_line(e)


def test_password_for_unencrypted_key(tmp_path: Path) -> None:
    kp = make_key(tmp_path)
    with pytest.raises(KeyMaterialError) as e:
        KeySigner.from_pem_file(kp.private, password="pw")
    assert "not encrypted" in _one_line(e)


@pytest.mark.parametrize("content,needle", [
    (b"garbage", "not a PEM file"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "cannot parse"),
])
def test_unparsable_keys(tmp_path: Path, content: bytes, needle: str) -> None:
    p = tmp_path / "k.pem"
    p.write_bytes(content)
    with pytest.raises(KeyMaterialError) as e:
        KeySigner.from_pem_file(p)
    assert needle in _one_line(e)


def test_public_key_or_certificate_given_as_private_key(tmp_path: Path) -> None:
    kp = make_key(tmp_path)
    with pytest.raises(KeyMaterialError) as e:
        KeySigner.from_pem_file(kp.public)
    assert "not a private key" in _one_line(e)
    pki = make_cert_chain(tmp_path / "pki")
    with pytest.raises(KeyMaterialError):
        load_private_key(pki.leaf.read_bytes())


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(PathError) as e:
        KeySigner.from_pem_file(tmp_path / "nope.pem")
    assert "not found" in _one_line(e)
    with pytest.raises(PathError):
        KeySigner.from_pem_file(tmp_path)


# ------------------------------------------------------------------------------- certificates
def _load(p: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(p.read_bytes())


def test_certificate_bundle_layout(tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path, curve="secp384r1")
    signer = CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain])
    st = oms_statement(_manifest())
    bundle = signer.sign(st)
    obj = _decode(bundle)
    vm = obj["verificationMaterial"]
    assert set(vm) == {"x509CertificateChain", "tlogEntries"} and vm["tlogEntries"] == []
    ders = [base64.b64decode(c["rawBytes"]) for c in vm["x509CertificateChain"]["certificates"]]
    want = [c.public_bytes(serialization.Encoding.DER)
            for c in _load(pki.leaf) + _load(pki.intermediate) + _load(pki.root)]
    assert ders == want  # leaf first, then issuers upwards
    leaf = x509.load_der_x509_certificate(ders[0])
    env = parse_envelope(load_bundle(bundle.raw))
    assert env.payload == st.raw
    pub = leaf.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(env.signatures[0].sig, pae(env.payload_type, env.payload),
               ec.ECDSA(hashes.SHA384()))
    assert bundle.method == "certificate" and "modelsign test signer" in (bundle.identity or "")


def test_chain_is_ordered_whatever_the_input_order(tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path)
    signer = CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.root, pki.intermediate])
    assert [c.subject for c in signer.chain] == [
        _load(pki.intermediate)[0].subject, _load(pki.root)[0].subject]
    # leaf + chain in one file (a "fullchain.pem") works too
    full = tmp_path / "fullchain.pem"
    full.write_bytes(pki.leaf.read_bytes() + pki.chain.read_bytes())
    assert len(CertificateSigner.from_pem_files(pki.key, full).chain) == 2


def test_certificate_for_another_key(tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path / "pki")
    other = make_key(tmp_path, "other")
    with pytest.raises(KeyMaterialError) as e:
        CertificateSigner.from_pem_files(other.private, pki.leaf, [pki.chain])
    msg = _one_line(e)
    assert "does not match the private key" in msg and str(pki.leaf) in msg


def test_certificate_that_cannot_sign(tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path, code_signing=False)
    with pytest.raises(KeyMaterialError) as e:
        CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain])
    assert "does not allow signing" in _one_line(e)


def test_expired_or_future_certificate(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    pki = make_cert_chain(tmp_path, not_before=past, valid_for=timedelta(days=1))
    with pytest.raises(KeyMaterialError) as e:
        CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain])
    assert "not valid now" in _one_line(e)
    # the same certificate was fine while it was valid (the clock is injectable)
    CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain],
                                     clock=lambda: past + timedelta(hours=1))


def test_unrelated_or_duplicate_chain_certificates(tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path / "a")
    other = make_cert_chain(tmp_path / "b")
    with pytest.raises(KeyMaterialError) as e:
        CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain, other.intermediate])
    assert "not an issuer" in _one_line(e)
    with pytest.raises(KeyMaterialError) as e:
        CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain, pki.intermediate])
    assert "twice" in _one_line(e)


def test_certificate_file_without_certificates(tmp_path: Path) -> None:
    kp = make_key(tmp_path)
    with pytest.raises(KeyMaterialError) as e:
        CertificateSigner.from_pem_files(kp.private, kp.public)
    assert "no PEM certificate" in _one_line(e)
