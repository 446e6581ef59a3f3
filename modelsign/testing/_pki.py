"""Test key material: EC keys (any OMS curve, optionally encrypted, plus unsupported kinds for
negative tests) and a root CA -> intermediate CA -> code-signing leaf chain, written as PEM files.

For tests and demos only: keys are generated fresh, written unencrypted unless a password is
given, and the CA is throwaway. Example::

    from modelsign.testing._pki import make_key, make_cert_chain
    kp = make_key(tmp_path, curve="secp384r1")    # kp.private, kp.public
    pki = make_cert_chain(tmp_path)               # pki.leaf, pki.key, pki.chain, pki.root
    # modelsign sign MODEL --key {pki.key} --cert {pki.leaf} --chain {pki.chain}
    # model_signing verify certificate MODEL --certificate_chain {pki.root}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertChain", "KeyKind", "KeyPair", "make_cert_chain", "make_key"]

#: Supported OMS curves first; the rest exist to test that they are refused.
KeyKind = Literal["secp256r1", "secp384r1", "secp521r1", "secp256k1", "rsa2048", "ed25519"]

_CURVES: dict[str, ec.EllipticCurve] = {
    "secp256r1": ec.SECP256R1(),
    "secp384r1": ec.SECP384R1(),
    "secp521r1": ec.SECP521R1(),
    "secp256k1": ec.SECP256K1(),
}


@dataclass(frozen=True, slots=True)
class KeyPair:
    """PEM files of one key pair. ``password`` is set when ``private`` is encrypted."""

    private: Path
    public: Path
    password: bytes | None = None


@dataclass(frozen=True, slots=True)
class CertChain:
    """PEM files of a three-level PKI. ``chain`` holds the intermediate then the root (what
    ``--chain`` takes); ``root`` alone is the trust anchor a verifier is given."""

    root: Path
    intermediate: Path
    leaf: Path
    key: Path
    public_key: Path
    chain: Path
    root_key: Path
    intermediate_key: Path


def _generate(kind: str) -> CertificateIssuerPrivateKeyTypes:
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind])
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)
    return path


def _private_pem(key: CertificateIssuerPrivateKeyTypes, password: bytes | None,
                 traditional: bool) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           and not isinstance(key, ed25519.Ed25519PrivateKey)
           else serialization.PrivateFormat.PKCS8)
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def _public_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def make_key(directory: str | os.PathLike[str], name: str = "key", *,
             curve: KeyKind = "secp256r1", password: bytes | str | None = None,
             traditional: bool = False) -> KeyPair:
    """Write ``<name>.pem`` (private) and ``<name>.pub.pem`` (public) into ``directory``.

    ``traditional=True`` writes the OpenSSL "EC PRIVATE KEY" format instead of PKCS#8.
    """
    d = Path(directory)
    pw = password.encode("utf-8") if isinstance(password, str) else password
    key = _generate(curve)
    priv = _write(d / f"{name}.pem", _private_pem(key, pw, traditional), private=True)
    pub = _write(d / f"{name}.pub.pem", _public_pem(key))
    return KeyPair(priv, pub, pw)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelsign test PKI"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: CertificateIssuerPrivateKeyTypes, issuer: x509.Certificate | None,
          issuer_key: CertificateIssuerPrivateKeyTypes, *, ca: bool, path_length: int | None,
          not_before: datetime, not_after: datetime, code_signing: bool,
          key_usage: bool) -> x509.Certificate:
    pub = key.public_key()
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject))
         .issuer_name(issuer.subject if issuer else _name(subject))
         .public_key(pub)
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before)
         .not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        if key_usage:
            b = b.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
        eku = [ExtendedKeyUsageOID.CODE_SIGNING] if code_signing else \
            [ExtendedKeyUsageOID.SERVER_AUTH]
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(issuer_key, algorithm)


def make_cert_chain(directory: str | os.PathLike[str], *, curve: KeyKind = "secp256r1",
                    leaf_key: KeyPair | None = None, subject: str = "modelsign test signer",
                    code_signing: bool = True, not_before: datetime | None = None,
                    valid_for: timedelta = timedelta(days=1)) -> CertChain:
    """Write a root CA, an intermediate CA and a leaf certificate (+ its key) into ``directory``.

    The leaf has key usage digitalSignature and extended key usage codeSigning; with
    ``code_signing=False`` it has neither (serverAuth only), which signers must refuse.
    ``leaf_key`` certifies an existing key instead of a new one. The CAs are valid from a day
    before the leaf, so verifiers that check the chain at the leaf's start time accept it.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    start = not_before or (datetime.now(UTC) - timedelta(hours=1))
    ca_start, ca_end = start - timedelta(days=1), start + valid_for + timedelta(days=365)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _cert("modelsign test root CA", root_key, None, root_key, ca=True, path_length=1,
                 not_before=ca_start, not_after=ca_end, code_signing=False, key_usage=False)
    int_key = ec.generate_private_key(ec.SECP384R1())
    inter = _cert("modelsign test intermediate CA", int_key, root, root_key, ca=True,
                  path_length=0, not_before=ca_start, not_after=ca_end, code_signing=False,
                  key_usage=False)
    kp = make_key(d, "leaf", curve=curve) if leaf_key is None else leaf_key
    key = serialization.load_pem_private_key(kp.private.read_bytes(), kp.password)
    leaf = _cert(subject, key, inter, int_key, ca=False, path_length=None,  # type: ignore[arg-type]
                 not_before=start, not_after=start + valid_for, code_signing=code_signing,
                 key_usage=code_signing)
    pem = serialization.Encoding.PEM
    return CertChain(
        root=_write(d / "root-ca.pem", root.public_bytes(pem)),
        intermediate=_write(d / "intermediate-ca.pem", inter.public_bytes(pem)),
        leaf=_write(d / "leaf-cert.pem", leaf.public_bytes(pem)),
        key=kp.private,
        public_key=kp.public,
        chain=_write(d / "chain.pem", inter.public_bytes(pem) + root.public_bytes(pem)),
        root_key=_write(d / "root-ca-key.pem", _private_pem(root_key, None, False), private=True),
        intermediate_key=_write(d / "intermediate-ca-key.pem",
                                _private_pem(int_key, None, False), private=True),
    )
