"""Sigstore bundles as OMS uses them: media types, DSSE envelopes, the public-key hint.

Shared by ``signing`` (which writes bundles) and ``verify`` (which reads them). Nothing here signs
or verifies: the only cryptography is hashing a public key's PEM for the key hint. The layout is
the one ``model_signing`` 1.1.1 writes (docs/decisions/0005-signing.md)::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": "<hex sha256 of the public key PEM>"},
                              "tlogEntries": []},
     "dsseEnvelope": {"payload": "<base64 statement>",
                      "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": "<base64 DER ECDSA>", "keyid": ""}]}}

``verificationMaterial`` holds ``publicKey`` (key), ``x509CertificateChain`` (certificate, leaf
first) or ``certificate`` + ``tlogEntries`` (Sigstore keyless).

Reading is bounded (:data:`MAX_BUNDLE_BYTES`, the JSON depth cap of :func:`load_json`) and strict
(base64 must be canonical), and every problem is a :class:`SignatureFormatError` (exit 2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelsign._io import open_regular
from modelsign.errors import PathError, SignatureFormatError
from modelsign.hashing._spec import SIGNATURE_FILE
from modelsign.statements._json import MAX_JSON_BYTES, canonical_bytes, load_json
from modelsign.statements._statement import IN_TOTO_PAYLOAD_TYPE

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "DSSE_PAYLOAD_TYPE",
    "MAX_BUNDLE_BYTES",
    "READABLE_BUNDLE_MEDIA_TYPES",
    "DsseEnvelope",
    "DsseSignature",
    "MaterialKind",
    "b64decode",
    "b64encode",
    "bundle_bytes",
    "default_signature_path",
    "load_bundle",
    "material_kind",
    "pae",
    "parse_envelope",
    "public_key_hint",
    "read_bundle",
]

#: The media type we write: Sigstore bundle v0.3, what ``model_signing`` 1.1.x writes and requires
#: for key and certificate bundles.
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: Media types accepted when reading (older Sigstore clients wrote the ``;version=`` spellings).
READABLE_BUNDLE_MEDIA_TYPES: tuple[str, ...] = (
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
#: The only DSSE payload type OMS and our claims use.
DSSE_PAYLOAD_TYPE = IN_TOTO_PAYLOAD_TYPE
#: Cap on a bundle file: a statement at the JSON cap, base64-encoded, plus room for certificates.
MAX_BUNDLE_BYTES = MAX_JSON_BYTES * 4 // 3 + 4 * 1024 * 1024

MaterialKind = Literal["publicKey", "x509CertificateChain", "certificate"]
_MATERIAL_KINDS: tuple[MaterialKind, ...] = ("publicKey", "x509CertificateChain", "certificate")


@dataclass(frozen=True, slots=True)
class DsseSignature:
    sig: bytes
    keyid: str | None = None


@dataclass(frozen=True, slots=True)
class DsseEnvelope:
    """A DSSE envelope with its payload decoded. ``payload`` is exactly the signed bytes."""

    payload_type: str
    payload: bytes
    signatures: tuple[DsseSignature, ...]

    def pae(self) -> bytes:
        """The bytes the signatures are over."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> dict[str, Any]:
        """The envelope as a JSON object, ``keyid`` written as ``""`` when unset (as the peer)."""
        return {
            "payload": b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"sig": b64encode(s.sig), "keyid": s.keyid or ""}
                           for s in self.signatures],
        }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 <len> <type> <len> <payload>``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def public_key_hint(public_key: PublicKeyTypes) -> str:
    """``verificationMaterial.publicKey.hint``: hex SHA-256 of the key's SubjectPublicKeyInfo PEM.

    Computed from the key, never from a file's bytes, so line endings or comments in a PEM file
    do not change it. This is how ``model_signing`` computes and checks it.
    """
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (what protobuf JSON and DSSE use)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: Any, *, what: str) -> bytes:
    """Strict standard base64 (padding required, no stray characters)."""
    if not isinstance(text, str):
        raise SignatureFormatError(f"{what} must be a base64 string", actual=type(text).__name__)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise SignatureFormatError(f"{what} is not valid base64",
                                   actual=f"{text[:40]!r}{'...' if len(text) > 40 else ''}") from e


def read_bundle(path: str | os.PathLike[str], *, max_bytes: int = MAX_BUNDLE_BYTES) -> bytes:
    """Read a bundle file, refusing anything that is not a regular file or is over ``max_bytes``."""
    p = Path(path)
    try:
        # Never a blocking open(): a FIFO named model.sig would hang the verifier for ever.
        with open_regular(p, what="signature", hint="pass the model.sig file itself") as f:
            st = os.fstat(f.fileno())
            if st.st_size > max_bytes:
                raise SignatureFormatError("signature file is too large", path=p,
                                           expected=f"<= {max_bytes} bytes",
                                           actual=f"{st.st_size} bytes")
            data = f.read(max_bytes + 1)
    except FileNotFoundError as e:
        raise PathError("signature file not found", path=p,
                        hint="sign the model first (modelsign sign), or pass --signature") from e
    except PermissionError as e:
        raise PathError("signature file is not readable (permission denied)", path=p) from e
    except OSError as e:
        raise PathError(f"cannot read the signature file: {e.strerror or e}", path=p) from e
    if len(data) > max_bytes:
        raise SignatureFormatError("signature file is too large", path=p,
                                   expected=f"<= {max_bytes} bytes", actual=f"> {max_bytes} bytes")
    return data


def load_bundle(data: bytes | str, *, what: str = "signature",
                max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, Any]:
    """Parse bundle JSON and check its outer shape: a known media type, a DSSE envelope, and
    verification material. The inner parts are checked by :func:`parse_envelope` and the verifier.
    """
    obj = load_json(data, what=what, max_bytes=max_bytes)
    if not isinstance(obj, dict):
        raise SignatureFormatError(f"{what} is not a Sigstore bundle (not a JSON object)",
                                   expected="a JSON object", actual=type(obj).__name__)
    media_type = obj.get("mediaType")
    if media_type not in READABLE_BUNDLE_MEDIA_TYPES:
        resign = "re-sign with modelsign sign (a claim: modelsign attest)"
        if "mediaType" not in obj:
            found, hint = "no mediaType", f"not a Sigstore bundle; {resign}"
        else:
            found, hint = repr(media_type)[:100], f"{resign}, or upgrade modelsign if the " \
                "bundle is from a newer Sigstore client"
        raise SignatureFormatError(f"{what} has an unsupported bundle mediaType",
                                   expected=BUNDLE_MEDIA_TYPE, actual=found, hint=hint)
    if "messageSignature" in obj and "dsseEnvelope" not in obj:
        raise SignatureFormatError(f"{what} signs a blob, not an in-toto statement",
                                   expected="dsseEnvelope", actual="messageSignature",
                                   hint="model signatures are DSSE bundles (OMS v1.0)")
    if not isinstance(obj.get("dsseEnvelope"), dict):
        raise SignatureFormatError(f"{what} has no dsseEnvelope object", expected="dsseEnvelope",
                                   actual=repr(sorted(obj))[:100])
    if not isinstance(obj.get("verificationMaterial"), dict):
        raise SignatureFormatError(f"{what} has no verificationMaterial object",
                                   expected="verificationMaterial", actual=repr(sorted(obj))[:100])
    return obj


def material_kind(bundle: Mapping[str, Any], *, what: str = "signature") -> MaterialKind:
    """Which signing method the bundle's verification material says was used (exactly one)."""
    vm = bundle.get("verificationMaterial")
    if not isinstance(vm, Mapping):
        raise SignatureFormatError(f"{what} has no verificationMaterial object")
    kinds = [k for k in _MATERIAL_KINDS if k in vm]
    if len(kinds) != 1:
        raise SignatureFormatError(
            f"{what} must carry exactly one kind of verification material",
            expected=" | ".join(_MATERIAL_KINDS), actual=", ".join(kinds) or "none")
    if not isinstance(vm[kinds[0]], Mapping):
        raise SignatureFormatError(f"{what}: verificationMaterial.{kinds[0]} must be an object",
                                   actual=type(vm[kinds[0]]).__name__)
    return kinds[0]


def parse_envelope(bundle: Mapping[str, Any], *, what: str = "signature") -> DsseEnvelope:
    """Decode the bundle's DSSE envelope (strict base64; at least one signature)."""
    env = bundle.get("dsseEnvelope")
    if not isinstance(env, Mapping):
        raise SignatureFormatError(f"{what} has no dsseEnvelope object")
    payload_type = env.get("payloadType")
    if not isinstance(payload_type, str):
        raise SignatureFormatError(f"{what}: dsseEnvelope.payloadType must be a string",
                                   expected=DSSE_PAYLOAD_TYPE, actual=repr(payload_type)[:100])
    payload = b64decode(env.get("payload"), what=f"{what}: dsseEnvelope.payload")
    raw_sigs = env.get("signatures")
    if not isinstance(raw_sigs, list) or not raw_sigs:
        raise SignatureFormatError(f"{what}: dsseEnvelope.signatures must be a non-empty list",
                                   expected=">= 1 signature", actual=repr(raw_sigs)[:100])
    sigs = []
    for i, s in enumerate(raw_sigs):
        if not isinstance(s, Mapping):
            raise SignatureFormatError(f"{what}: dsseEnvelope.signatures[{i}] must be an object",
                                       actual=type(s).__name__)
        keyid = s.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise SignatureFormatError(f"{what}: dsseEnvelope.signatures[{i}].keyid must be a "
                                       "string", actual=type(keyid).__name__)
        sig = b64decode(s.get("sig"), what=f"{what}: dsseEnvelope.signatures[{i}].sig")
        if not sig:
            raise SignatureFormatError(f"{what}: dsseEnvelope.signatures[{i}].sig is empty")
        sigs.append(DsseSignature(sig, keyid or None))
    return DsseEnvelope(payload_type, payload, tuple(sigs))


def bundle_bytes(bundle: Mapping[str, Any]) -> bytes:
    """The bytes we write for a bundle: RFC 8785 canonical JSON plus a final newline.

    Stable: the same bundle object always gives the same file, whichever backend produced it.
    """
    return canonical_bytes(dict(bundle)) + b"\n"


def default_signature_path(model: str | os.PathLike[str]) -> Path:
    """Where a model's signature lives unless told otherwise: ``MODEL/model.sig`` for a
    directory, ``MODEL.sig`` beside a single-file model (``weights.safetensors.sig``)."""
    p = Path(model)
    if p.is_dir():
        return p / SIGNATURE_FILE
    return p.with_name(p.name + ".sig")
