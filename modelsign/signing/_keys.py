"""Signing with a private key, or with a private key and its certificate chain.

Both write the bundle ``model_signing`` 1.1.1 writes (docs/decisions/0005-signing.md): a DSSE
envelope whose one signature is ECDSA over the DSSE PAE, with the hash that matches the curve
(P-256: SHA-256, P-384: SHA-384, P-521: SHA-512), DER-encoded; ``keyid`` empty; no log entries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign.errors import KeyMaterialError, PathError
from modelsign.signing._types import SignedBundle
from modelsign.statements import Statement
from modelsign.statements._bundle import (
    BUNDLE_MEDIA_TYPE,
    DSSE_PAYLOAD_TYPE,
    DsseEnvelope,
    DsseSignature,
    b64encode,
    bundle_bytes,
    public_key_hint,
)

if TYPE_CHECKING:  # x509 costs ~30 ms to import: only certificate signing loads it
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

__all__ = [
    "SUPPORTED_CURVES",
    "CertificateSigner",
    "Curve",
    "KeySigner",
    "load_private_key",
    "read_password_file",
]

Curve = Literal["secp256r1", "secp384r1", "secp521r1"]
#: The curves OMS (and Sigstore's protobuf specs) allow, with the hash each signs with.
SUPPORTED_CURVES: dict[Curve, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_MAX_PEM_BYTES = 1024 * 1024
_SUPPORTED = "an EC private key on P-256, P-384 or P-521"


_CREATE_KEY = "openssl ecparam -name prime256v1 -genkey -noout -out key.pem"
#: What each kind of file read here should be, and the flag that takes it (for "not found").
_FILE_KINDS = {
    "private key": ("a PEM private key file",
                    f"pass the PEM private key to --key (create one: {_CREATE_KEY})"),
    "password file": ("a file holding the key's password",
                      "pass the file holding the key's password to --password-file"),
    "certificate": ("a PEM certificate file", "pass the PEM leaf certificate to --cert"),
    "certificate chain file": ("a PEM certificate file",
                               "pass the PEM intermediate/root certificates to --chain"),
}


def _read_small(path: str | os.PathLike[str], what: str) -> bytes:
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(_MAX_PEM_BYTES + 1)
    except FileNotFoundError as e:
        expected, hint = _FILE_KINDS.get(what, (None, None))
        raise PathError(f"{what} not found", path=p, expected=expected, actual="no such file",
                        hint=hint) from e
    except IsADirectoryError as e:
        raise PathError(f"{what} is a directory, not a file", path=p) from e
    except PermissionError as e:
        raise PathError(f"{what} is not readable (permission denied)", path=p) from e
    except OSError as e:
        raise PathError(f"cannot read the {what}: {e.strerror or e}", path=p) from e
    if len(data) > _MAX_PEM_BYTES:
        raise KeyMaterialError(f"{what} is too large to be a PEM file", path=p,
                               expected=f"<= {_MAX_PEM_BYTES} bytes", actual="more")
    return data


def read_password_file(path: str | os.PathLike[str]) -> bytes:
    """A key password from a file: its bytes without one trailing newline (LF or CRLF)."""
    data = _read_small(path, "password file")
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return data


def _is_encrypted_pem(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def _check_curve(key: object, *, source: str | os.PathLike[str] | None) -> Curve:
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        kind = type(key).__name__.lstrip("_").replace("PrivateKey", "").replace("PublicKey", "")
        raise KeyMaterialError("unsupported key type", path=source, expected=_SUPPORTED,
                               actual=kind or type(key).__name__,
                               hint="create one with: openssl ecparam -name prime256v1 -genkey "
                                    "-noout -out key.pem")
    name = key.curve.name
    if name not in SUPPORTED_CURVES:
        raise KeyMaterialError("unsupported elliptic curve", path=source, expected=_SUPPORTED,
                               actual=name,
                               hint="create one with: openssl ecparam -name prime256v1 -genkey "
                                    "-noout -out key.pem")
    return name


def load_private_key(data: bytes, *, password: bytes | str | None = None,
                     source: str | os.PathLike[str] | None = None) -> ec.EllipticCurvePrivateKey:
    """Load a PEM EC private key on a supported curve; every failure is a one-line
    :class:`KeyMaterialError` (``source`` names the file in the message)."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    if b"-----BEGIN" not in data:
        raise KeyMaterialError("not a PEM file", path=source,
                               expected="-----BEGIN PRIVATE KEY----- (PEM)",
                               actual="no PEM header",
                               hint="convert a DER key with: openssl pkey -inform DER -in KEY "
                                    "-out key.pem")
    if b"-----BEGIN PUBLIC KEY-----" in data or (
            b"-----BEGIN CERTIFICATE-----" in data and b"PRIVATE KEY-----" not in data):
        found = ("a PEM PUBLIC KEY" if b"-----BEGIN PUBLIC KEY-----" in data
                 else "a CERTIFICATE")
        raise KeyMaterialError("this is a public key or certificate, not a private key",
                               path=source, expected=_SUPPORTED, actual=found,
                               hint="--key takes the private key; the certificate goes in --cert")
    encrypted = _is_encrypted_pem(data)
    if encrypted and not password:
        raise KeyMaterialError("the private key is encrypted and no password was given",
                               path=source, hint="pass the password with --password-file FILE")
    if not encrypted and password:
        raise KeyMaterialError("a password was given but the private key is not encrypted",
                               path=source, hint="drop --password-file")
    try:
        key = serialization.load_pem_private_key(data, password or None)
    except UnsupportedAlgorithm as e:
        raise KeyMaterialError("unsupported key algorithm or curve", path=source,
                               expected=_SUPPORTED, actual=str(e)[:120]) from e
    except TypeError as e:  # password/encryption mismatch the header sniffing did not catch
        raise KeyMaterialError("the key's encryption and the password do not match", path=source,
                               actual=str(e)[:120]) from e
    except ValueError as e:
        if encrypted:
            raise KeyMaterialError("cannot decrypt the private key: wrong password?", path=source,
                                   hint="check the --password-file content (one trailing "
                                        "newline is ignored)") from e
        raise KeyMaterialError("cannot parse the private key", path=source, expected=_SUPPORTED,
                               actual=str(e).split("\n")[0][:120]) from e
    _check_curve(key, source=source)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _dsse_sign(key: ec.EllipticCurvePrivateKey, payload: bytes) -> DsseEnvelope:
    alg = SUPPORTED_CURVES[_check_curve(key, source=None)]
    env = DsseEnvelope(DSSE_PAYLOAD_TYPE, payload, ())
    sig = key.sign(env.pae(), ec.ECDSA(alg()))
    return DsseEnvelope(DSSE_PAYLOAD_TYPE, payload, (DsseSignature(sig, None),))


def _bundle(material: dict[str, object], env: DsseEnvelope) -> bytes:
    return bundle_bytes({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {**material, "tlogEntries": []},
        "dsseEnvelope": env.to_json(),
    })


class KeySigner:
    """Sign with an EC private key (P-256/384/521). The bundle names the key by its hint only:
    verifiers must be given the public key."""

    __slots__ = ("_hint", "_key")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        _check_curve(private_key, source=None)
        self._key = private_key
        self._hint = public_key_hint(private_key.public_key())

    @classmethod
    def from_pem_file(cls, path: str | os.PathLike[str], *,
                      password: bytes | str | None = None) -> KeySigner:
        """Load ``path`` (PEM, PKCS#8 or traditional, optionally encrypted)."""
        return cls(load_private_key(_read_small(path, "private key"), password=password,
                                    source=path))

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    @property
    def key_hint(self) -> str:
        """Hex SHA-256 of the public key PEM, as written to ``publicKey.hint``."""
        return self._hint

    def public_key_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, statement: Statement) -> SignedBundle:
        env = _dsse_sign(self._key, statement.raw)
        raw = _bundle({"publicKey": {"hint": self._hint}}, env)
        return SignedBundle(raw, statement, "key", key_hint=self._hint)


def _load_certs(path: str | os.PathLike[str], what: str) -> list[x509.Certificate]:
    from cryptography import x509

    data = _read_small(path, what)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise KeyMaterialError(f"{what} holds no PEM certificate", path=path,
                               expected="-----BEGIN CERTIFICATE-----", actual="none")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise KeyMaterialError(f"cannot parse the {what}", path=path,
                               actual=str(e).split("\n")[0][:120]) from e


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _order_chain(leaf: x509.Certificate,
                 pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Order ``pool`` from the leaf's issuer upwards; refuse certificates off that path."""
    fingerprints = [c.fingerprint(hashes.SHA256()) for c in pool]
    if len(set(fingerprints)) != len(fingerprints):
        raise KeyMaterialError("the certificate chain lists a certificate twice",
                               expected="each certificate once", actual="a duplicate",
                               hint="remove the duplicate from the --chain files")
    remaining = list(pool)
    path: list[x509.Certificate] = []
    current = leaf
    while remaining:
        nxt = next((c for c in remaining if _issued_by(current, c)), None)
        if nxt is None:
            break
        path.append(nxt)
        remaining.remove(nxt)
        if nxt.subject == nxt.issuer:  # reached a root
            break
        current = nxt
    if remaining:
        names = ", ".join(c.subject.rfc4514_string() or "<empty subject>" for c in remaining)
        raise KeyMaterialError(
            "a --chain certificate is not an issuer on the signing certificate's path",
            expected=f"issuers of {leaf.issuer.rfc4514_string()}", actual=names[:200],
            hint="pass only the intermediate (and root) certificates of this signing certificate")
    return path


def _can_sign(cert: x509.Certificate) -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    """The peer's rule: digitalSignature key usage, or else the codeSigning extended key usage."""
    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        return False


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


class CertificateSigner:
    """Sign with a private key and its X.509 certificate; the bundle carries the leaf and its
    chain (``x509CertificateChain``, leaf first, then issuers upwards), as ``model_signing`` does.

    Refuses a certificate whose key is not the private key's, that does not allow signing
    (digitalSignature or codeSigning), that is outside its validity period at ``clock()``, or a
    chain certificate that is not an issuer on the leaf's path.
    """

    __slots__ = ("_chain", "_hint", "_key", "_leaf")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate,
                 chain: Sequence[x509.Certificate] = (), *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 source: str | os.PathLike[str] | None = None) -> None:
        _check_curve(private_key, source=None)
        if _spki(certificate.public_key()) != _spki(private_key.public_key()):
            raise KeyMaterialError(
                "the certificate does not match the private key", path=source,
                expected=f"a certificate for key {public_key_hint(private_key.public_key())}",
                actual=f"{certificate.subject.rfc4514_string()} with another key",
                hint="pass the certificate issued for this --key")
        if not _can_sign(certificate):
            raise KeyMaterialError(
                "the certificate does not allow signing", path=source,
                expected="key usage digitalSignature or extended key usage codeSigning",
                actual="neither", hint="issue a code-signing certificate for this key")
        now = clock()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise KeyMaterialError(
                "the certificate is not valid now", path=source,
                expected=f"{certificate.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} .. "
                         f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
                actual=f"{now:%Y-%m-%dT%H:%M:%SZ}", hint="renew the certificate")
        self._key = private_key
        self._leaf = certificate
        self._chain = tuple(_order_chain(certificate, chain))
        self._hint = public_key_hint(private_key.public_key())

    @classmethod
    def from_pem_files(cls, key: str | os.PathLike[str], certificate: str | os.PathLike[str],
                       chain: Iterable[str | os.PathLike[str]] = (), *,
                       password: bytes | str | None = None,
                       clock: Callable[[], datetime] = lambda: datetime.now(UTC)
                       ) -> CertificateSigner:
        """Load the key, the leaf certificate (a file holding leaf + chain works too: the first
        certificate is the leaf) and any chain files (intermediates, optionally the root)."""
        private_key = load_private_key(_read_small(key, "private key"), password=password,
                                       source=key)
        leaf, *rest = _load_certs(certificate, "certificate")
        pool = list(rest)
        for path in chain:
            pool.extend(_load_certs(path, "certificate chain file"))
        return cls(private_key, leaf, pool, clock=clock, source=certificate)

    @property
    def certificate(self) -> x509.Certificate:
        return self._leaf

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The issuers written after the leaf, in order."""
        return self._chain

    def sign(self, statement: Statement) -> SignedBundle:
        env = _dsse_sign(self._key, statement.raw)
        certs = [{"rawBytes": b64encode(c.public_bytes(serialization.Encoding.DER))}
                 for c in (self._leaf, *self._chain)]
        raw = _bundle({"x509CertificateChain": {"certificates": certs}}, env)
        return SignedBundle(raw, statement, "certificate", key_hint=self._hint,
                            identity=self._leaf.subject.rfc4514_string())
