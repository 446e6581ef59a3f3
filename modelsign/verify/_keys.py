"""Key and certificate-chain verification of a DSSE envelope (no Sigstore services involved).

Accepts what ``model_signing`` 1.1.1 writes and verifies: EC P-256/384/521 keys with the hash
matching the curve, ``publicKey.hint`` = hex SHA-256 of the public key PEM, and the pre-1.0 PAE
encoding (``pae_compat``) of model_signing 0.2 as a fallback that is reported as a warning.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign.errors import KeyMaterialError, SignatureError
from modelsign.statements._bundle import pae

# cryptography.x509 (~25 ms to import) is loaded by the certificate functions only: a
# `verify --key` does not need it.
if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509
    from cryptography.x509.verification import Policy

__all__ = ["load_public_key", "load_trust_anchors", "verify_envelope_sig", "verify_chain",
           "ChainResult"]

_CURVES: dict[str, hashes.HashAlgorithm] = {
    "secp256r1": hashes.SHA256(),
    "secp384r1": hashes.SHA384(),
    "secp521r1": hashes.SHA512(),
}
_MAX_KEY_FILE = 1024 * 1024
COMPAT_WARNING = ("the signature uses the pre-1.0 model_signing DSSE encoding; re-sign the model "
                  "with a current tool")


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as e:
        raise KeyMaterialError(f"cannot read {what}: {e.strerror or e}", path=p) from e
    if len(data) > _MAX_KEY_FILE:
        raise KeyMaterialError(f"{what} is too large", path=p, expected="<= 1 MiB")
    return data


def load_public_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePublicKey:
    """A PEM public key of a curve OMS allows (P-256, P-384, P-521)."""
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise KeyMaterialError("not a PEM public key", path=path,
                               expected="-----BEGIN PUBLIC KEY----- (EC P-256/384/521)",
                               actual=str(e)[:120]) from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        kind = (key.curve.name if isinstance(key, ec.EllipticCurvePublicKey)
                else type(key).__name__)
        raise KeyMaterialError("unsupported public key", path=path,
                               expected="an EC key on P-256, P-384 or P-521", actual=kind)
    return key


def load_trust_anchors(paths: Sequence[str | os.PathLike[str]]) -> list[x509.Certificate]:
    """Every certificate of every PEM file given with ``--cert-chain``: each is a trust anchor."""
    from cryptography import x509

    out: list[x509.Certificate] = []
    for path in paths:
        data = _read(path, "certificate file")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as e:
            raise KeyMaterialError("not a PEM certificate file", path=path,
                                   expected="-----BEGIN CERTIFICATE-----",
                                   actual=str(e)[:120]) from e
        out.extend(certs)
    if not out:
        raise KeyMaterialError("no trust anchor given", hint="pass the CA with --cert-chain")
    return out


def _pae_compat(payload_type: str, payload: bytes) -> bytes:
    """The encoding model_signing 0.2 signed (a str/bytes mix-up: the payload's ``repr``)."""
    return (f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}"
            ).encode()


def verify_envelope_sig(key: ec.EllipticCurvePublicKey, payload_type: str, payload: bytes,
                        signature: bytes, *, compat_sha256: bool = False) -> list[str]:
    """Check the DSSE signature; returns warnings. Raises :class:`SignatureError` on failure."""
    curve_hash = _CURVES.get(key.curve.name)
    if curve_hash is None:
        raise SignatureError("the signing key is on an unsupported curve",
                             expected="P-256, P-384 or P-521", actual=key.curve.name)
    try:
        key.verify(signature, pae(payload_type, payload), ec.ECDSA(curve_hash))
        return []
    except InvalidSignature:
        pass
    compat_hashes = [curve_hash] + ([hashes.SHA256()] if compat_sha256 else [])
    for h in compat_hashes:
        try:
            key.verify(signature, _pae_compat(payload_type, payload), ec.ECDSA(h))
            return [COMPAT_WARNING]
        except InvalidSignature:
            continue
    raise SignatureError(
        "the DSSE signature does not verify: the signed statement or the signature was altered, "
        "or it was made with a different key",
        hint="obtain the model and model.sig again from the publisher")


# ---------------------------------------------------------------------- certificate chains
@dataclass(frozen=True, slots=True)
class ChainResult:
    leaf: x509.Certificate
    anchor: x509.Certificate


def _code_signing_eku(_p: Policy, _c: x509.Certificate, eku: x509.ExtendedKeyUsage) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise ValueError("the signing certificate's extended key usage lacks code signing")


def _digital_signature_ku(_p: Policy, _c: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.digital_signature:
        raise ValueError("the signing certificate's key usage lacks digitalSignature")


def verify_chain(chain_der: Sequence[bytes], anchors: list[x509.Certificate],
                 at: datetime | None = None) -> ChainResult:
    """Verify the bundle's certificate chain (leaf first) to one of ``anchors`` at time ``at``.

    The leaf must carry the code-signing extended key usage (and digitalSignature when it has a
    key usage). The issuing CAs get the usual RFC 5280 / CA/B checks of ``cryptography``; the leaf
    is checked for its purpose only, because code-signing leaves (model_signing's own test PKI
    included) often do not look like TLS client certificates.
    """
    from cryptography import x509
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
    )
    from cryptography.x509.verification import VerificationError as X509VerificationError

    try:
        certs = [x509.load_der_x509_certificate(d) for d in chain_der]
    except ValueError as e:
        raise SignatureError("the bundle's certificate chain holds a malformed certificate",
                             actual=str(e)[:120]) from e
    leaf, intermediates = certs[0], certs[1:]
    when = at or datetime.now(UTC)
    ee_policy = (ExtensionPolicy.permit_all()
                 .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _code_signing_eku)
                 .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _digital_signature_ku))
    verifier = (PolicyBuilder().store(Store(anchors)).time(when)
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=ee_policy)
                .build_client_verifier())
    try:
        verified = verifier.verify(leaf, intermediates)
    except X509VerificationError as e:
        raise SignatureError(
            "the signing certificate does not chain to the given CA",
            expected="a chain to a --cert-chain certificate, valid at "
                     f"{when.isoformat(timespec='seconds')}, code-signing leaf",
            actual=str(e)[:300],
            hint="check that --cert-chain names the CA the publisher uses") from e
    return ChainResult(leaf, verified.chain[-1])
