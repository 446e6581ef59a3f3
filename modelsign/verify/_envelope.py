"""A Sigstore bundle as the verifier sees it before checking anything: an unverified view.

Reading and the outer shape are ``modelsign.statements._bundle`` (shared with the signers); this
module adds what verification insists on: an in-toto payload, exactly one DSSE signature, and the
verification material decoded (key hint, DER certificates). Only ``_signature`` turns a view into a
:class:`~modelsign.verify.VerifiedStatement`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelsign.errors import SignatureFormatError
from modelsign.statements._bundle import (
    DSSE_PAYLOAD_TYPE,
    MAX_BUNDLE_BYTES,
    MaterialKind,
    b64decode,
    load_bundle,
    material_kind,
    parse_envelope,
)

__all__ = ["BundleView", "parse_bundle", "MAX_CHAIN"]

#: Most certificates a bundle's chain may carry (leaf, intermediates, maybe a root).
MAX_CHAIN = 16


@dataclass(frozen=True, slots=True)
class BundleView:
    """What a bundle claims, before anything is verified."""

    raw: bytes
    media_type: str
    material: MaterialKind
    key_hint: str | None
    certificates: tuple[bytes, ...]  # DER, leaf first
    tlog_entries: int
    payload_type: str
    payload: bytes
    signature: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def parse_bundle(data: bytes, *, what: str = "signature",
                 max_bytes: int = MAX_BUNDLE_BYTES) -> BundleView:
    """Parse and shape-check a bundle carrying a DSSE envelope of an in-toto statement."""
    obj = load_bundle(data, what=what, max_bytes=max_bytes)
    material = material_kind(obj, what=what)
    vm: Mapping[str, Any] = obj["verificationMaterial"]
    key_hint: str | None = None
    certs: tuple[bytes, ...] = ()
    if material == "publicKey":
        hint = vm["publicKey"].get("hint")
        if hint is not None and not isinstance(hint, str):
            raise SignatureFormatError(f"{what}: publicKey.hint must be a string",
                                       actual=type(hint).__name__)
        key_hint = hint or None
    elif material == "certificate":
        certs = (b64decode(vm["certificate"].get("rawBytes"),
                           what=f"{what}: certificate.rawBytes"),)
    else:
        raw_certs = vm["x509CertificateChain"].get("certificates")
        if not isinstance(raw_certs, list) or not 1 <= len(raw_certs) <= MAX_CHAIN:
            raise SignatureFormatError(
                f"{what}: x509CertificateChain.certificates must list 1 to {MAX_CHAIN} "
                "certificates", actual=repr(raw_certs)[:80])
        out = []
        for i, c in enumerate(raw_certs):
            if not isinstance(c, Mapping):
                raise SignatureFormatError(f"{what}: certificates[{i}] must be an object",
                                           actual=type(c).__name__)
            out.append(b64decode(c.get("rawBytes"), what=f"{what}: certificates[{i}].rawBytes"))
        certs = tuple(out)
    tlog = vm.get("tlogEntries", [])
    if not isinstance(tlog, list):
        raise SignatureFormatError(f"{what}: verificationMaterial.tlogEntries must be a list",
                                   actual=type(tlog).__name__)

    env = parse_envelope(obj, what=what)
    if env.payload_type != DSSE_PAYLOAD_TYPE:
        raise SignatureFormatError(f"{what}: wrong DSSE payloadType", expected=DSSE_PAYLOAD_TYPE,
                                   actual=repr(env.payload_type)[:120],
                                   hint="this is not an in-toto attestation")
    if len(env.signatures) != 1:
        raise SignatureFormatError(
            f"{what}: the DSSE envelope must carry exactly one signature",
            expected="1 signature", actual=f"{len(env.signatures)} signatures",
            hint="a model signature has one signer; sign again instead of adding signatures")
    return BundleView(data, obj["mediaType"], material, key_hint, certs, len(tlog),
                      env.payload_type, env.payload, env.signatures[0].sig)
