"""A loopback Sigstore: Fulcio v2, Rekor v1 and an OIDC issuer on one ``127.0.0.1`` port.

The real sigstore-python client signs against it, and the real verifier accepts what it produced
when given its trust root, so pipelines that sign and verify can be tested offline. It is a test
double: it hands out identity tokens for any identity to anyone who can reach the port. See
``docs/decisions/0004-loopback-sigstore.md`` for what differs from the public-good instance.

Layout of this module, bottom up:

* encodings (DER scraps, base64, PEM) and the RFC 6962 Merkle tree of the log;
* the three services, each a plain object without I/O: :class:`_OidcIssuer` (mints and checks
  tokens), :class:`_Fulcio` (a CA plus a CT log: certificates with an embedded SCT),
  :class:`_Rekor` (an append-only log with inclusion proofs, checkpoints and signed entry
  timestamps);
* the HTTP layer (:class:`_Server`, :class:`_Handler`): bounded request bodies, JSON errors;
* :class:`LoopbackSigstore`, which owns the services, routes requests to them and writes the trust
  material that sigstore-python reads.

Nothing here is global: every instance has its own keys, CA and log, so a second instance is a
"foreign" Sigstore to the first one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import parse_qs, quote, urlsplit

import jwt
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, ObjectIdentifier

if TYPE_CHECKING:  # sigstore is imported lazily: `modelsign sigstore serve` does not need it
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore.sign import SigningContext
    from sigstore.verify import Verifier

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "GITHUB_ACTIONS_ISSUER",
    "CertificateFault",
    "GitHubWorkflow",
    "LoopbackSigstore",
]

GITHUB_ACTIONS_ISSUER: Final = "https://token.actions.githubusercontent.com"
"""The issuer of GitHub Actions OIDC tokens, which :meth:`LoopbackSigstore.mint_github_token`
impersonates by default (only this instance's Fulcio believes it)."""

GITHUB_SERVER_URL: Final = "https://github.com"
DEFAULT_MAX_REQUEST_BYTES: Final = 16 * 1024 * 1024
"""Largest request body the server reads (a DSSE envelope of a big manifest fits easily)."""

SIGSTORE_AUDIENCE: Final = "sigstore"
_ACTIONS_REQUEST_AUDIENCE: Final = "modelsign-loopback-actions-runtime"
_FAULT_CLAIM: Final = "https://modelsign.dev/loopback/certificate-fault"
_MAX_TOKEN_TTL: Final = 24 * 3600
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
_MEDIA_TRUSTED_ROOT: Final = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_MEDIA_TRUST_CONFIG: Final = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
_MEDIA_SIGNING_CONFIG: Final = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
_OPERATOR: Final = "modelsign loopback"
_POLL_SECONDS: Final = 0.05  # how often the server loop checks for stop(): the cost of stopping

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateFault(StrEnum):
    """A deliberate defect in the next certificate, for tests of what a verifier must refuse.

    The fault travels inside the identity token (see :meth:`LoopbackSigstore.mint_token`), so it
    applies to exactly one signer and needs no shared switch on the server. The client still
    signs and the log still records the entry; verification against this instance's trust root
    must then fail.
    """

    EXPIRED = "expired"
    """The log records the entry a minute after the certificate expired. The certificate itself
    looks normal, so the client signs with it; only the verified time betrays it."""
    NOT_YET_VALID = "not-yet-valid"
    """The certificate's validity starts one lifetime after it was issued (and logged)."""
    UNTRUSTED_CA = "untrusted-ca"
    """Issued by a second CA that is *not* in the trust root, with a valid SCT and log entry."""


@dataclass(frozen=True, kw_only=True)
class GitHubWorkflow:
    """The claims GitHub Actions puts in an OIDC token for one workflow run.

    :meth:`claims` renders them as GitHub does; the loopback Fulcio maps them to the same
    certificate (SAN and extensions ``1.3.6.1.4.1.57264.1.*``) as the public Fulcio, so identity
    pins such as ``OIDCSourceRepositoryURI`` can be tested offline.
    """

    repository: str = "acme/model"
    workflow_file: str = "release.yml"
    ref: str = "refs/heads/main"
    sha: str = "3f1e0c9b5d2a4e6f8091a2b3c4d5e6f708192a3b"
    event_name: str = "push"
    workflow_name: str = "Release"
    runner_environment: str = "github-hosted"
    repository_id: str = "812345678"
    repository_owner_id: str = "91234567"
    repository_visibility: str = "public"
    actor: str = "octocat"
    run_id: str = "1000000001"
    run_attempt: str = "1"
    job_workflow_ref: str | None = None
    """For a reusable workflow: ``owner/repo/.github/workflows/f.yml@ref`` of the called workflow
    (it becomes the SAN). ``None``: the run's own workflow."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", self.repository):
            raise ValueError(f"repository must look like 'owner/name', got {self.repository!r}")
        if not re.fullmatch(r"[0-9a-f]{40}", self.sha):
            raise ValueError(f"sha must be 40 lowercase hex digits, got {self.sha!r}")
        if not self.ref.startswith("refs/"):
            raise ValueError(f"ref must start with 'refs/', got {self.ref!r}")

    @property
    def workflow_ref(self) -> str:
        """``owner/repo/.github/workflows/<file>@<ref>``, as in the token's ``workflow_ref``."""
        return f"{self.repository}/.github/workflows/{self.workflow_file}@{self.ref}"

    @property
    def identity(self) -> str:
        """The certificate's SAN: ``https://github.com/<job_workflow_ref>``."""
        return f"{GITHUB_SERVER_URL}/{self.job_workflow_ref or self.workflow_ref}"

    @property
    def source_repository_uri(self) -> str:
        """``https://github.com/owner/repo`` (certificate extension 1.3.6.1.4.1.57264.1.12)."""
        return f"{GITHUB_SERVER_URL}/{self.repository}"

    def claims(self) -> dict[str, str]:
        """The workflow-specific claims of the token (without ``iss``/``aud``/times)."""
        owner = self.repository.split("/", 1)[0]
        ref_type = "tag" if self.ref.startswith("refs/tags/") else "branch"
        return {
            "sub": f"repo:{self.repository}:ref:{self.ref}",
            "actor": self.actor,
            "event_name": self.event_name,
            "job_workflow_ref": self.job_workflow_ref or self.workflow_ref,
            "job_workflow_sha": self.sha,
            "ref": self.ref,
            "ref_type": ref_type,
            "repository": self.repository,
            "repository_id": self.repository_id,
            "repository_owner": owner,
            "repository_owner_id": self.repository_owner_id,
            "repository_visibility": self.repository_visibility,
            "run_attempt": self.run_attempt,
            "run_id": self.run_id,
            "runner_environment": self.runner_environment,
            "sha": self.sha,
            "workflow": self.workflow_name,
            "workflow_ref": self.workflow_ref,
            "workflow_sha": self.sha,
        }


# ------------------------------------------------------------------------------------ encodings
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _der_utf8_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"\x0c" + _der_length(len(raw)) + raw


def _der_octet_string(raw: bytes) -> bytes:
    return b"\x04" + _der_length(len(raw)) + raw


def _common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(_TIME_FORMAT)


def _ecdsa_hash(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The hash Sigstore pairs with each curve (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512)."""
    size = key.curve.key_size
    if size <= 256:
        return hashes.SHA256()
    if size <= 384:
        return hashes.SHA384()
    return hashes.SHA512()


# ----------------------------------------------------------------------- Merkle tree (RFC 6962)
def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class _MerkleTree:
    """An append-only RFC 6962 Merkle tree over leaf hashes.

    Complete (power-of-two) subtrees never change once filled, so their hashes are cached: a root
    or an inclusion proof costs O(log² n) hashes instead of O(n). Not locked: its owner is.
    """

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._complete: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, leaf_hash: bytes) -> int:
        """Add a leaf hash; return its index."""
        self._leaves.append(leaf_hash)
        return len(self._leaves) - 1

    def _subtree(self, start: int, size: int) -> bytes:
        """MTH(D[start:start+size])."""
        if size == 1:
            return self._leaves[start]
        complete = size & (size - 1) == 0
        if complete and (cached := self._complete.get((start, size))) is not None:
            return cached
        k = _split_point(size)
        digest = _node_hash(self._subtree(start, k), self._subtree(start + k, size - k))
        if complete:
            self._complete[(start, size)] = digest
        return digest

    def root(self, size: int) -> bytes:
        """The root hash of the first ``size`` leaves."""
        if not 0 <= size <= len(self._leaves):
            raise ValueError(f"tree size {size} out of range 0..{len(self._leaves)}")
        return hashlib.sha256(b"").digest() if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 PATH(index, D[0:size]): sibling hashes from the leaf up to the root."""
        if not 0 <= index < size <= len(self._leaves):
            raise ValueError(f"no leaf {index} in a tree of size {size}")
        siblings: list[bytes] = []  # collected top-down, returned bottom-up
        start, n, m = 0, size, index
        while n > 1:
            k = _split_point(n)
            if m < k:
                siblings.append(self._subtree(start + k, n - k))
                n = k
            else:
                siblings.append(self._subtree(start, k))
                start, n, m = start + k, n - k, m - k
        return siblings[::-1]


# ---------------------------------------------------------------------------------- HTTP errors
class _HttpError(Exception):
    """A request the services refuse, answered as ``{"code": status, "message": ...}``."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad_request(message: str) -> _HttpError:
    return _HttpError(HTTPStatus.BAD_REQUEST, message)


def _field(obj: object, *path: str, kind: type = str) -> Any:
    """``obj[path[0]][path[1]]...``, checked to be of ``kind``; a 400 naming the path otherwise."""
    value = obj
    for i, key in enumerate(path):
        if not isinstance(value, dict) or key not in value:
            raise _bad_request(f"missing field {'.'.join(path[: i + 1])!r}")
        value = value[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad_request(f"field {'.'.join(path)!r} must be a {kind.__name__}")
    return value


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:
        raise _bad_request(f"{what} is not valid base64") from e


# ------------------------------------------------------------------------------------- OIDC
class _OidcIssuer:
    """Mints ES256 identity tokens and checks them for Fulcio.

    One key signs every token this instance mints, whatever its ``iss`` claim says: it stands in
    for the JWKS of every issuer that Fulcio trusts. A second key signs the runtime tokens that
    the simulated GitHub Actions endpoint accepts, so neither kind can be used as the other.
    """

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._runtime_key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        thumbprint_input = rfc8785.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")})
        self.key_id = base64.urlsafe_b64encode(
            hashlib.sha256(thumbprint_input).digest()).rstrip(b"=").decode("ascii")  # RFC 7638
        self._jwk = {**jwk, "kid": self.key_id, "use": "sig", "alg": "ES256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}

    def mint(self, claims: Mapping[str, object], *, ttl: int) -> str:
        """Sign ``claims`` with fresh ``iat``/``nbf``/``exp`` (wall time: clients check it)."""
        now = int(time.time())
        body = {"iat": now, "nbf": now, "exp": now + ttl, **claims}
        return jwt.encode(body, self._key, algorithm="ES256", headers={"kid": self.key_id})

    def verify(self, token: str, *, audience: str = SIGSTORE_AUDIENCE) -> dict[str, Any]:
        """Claims of a token this instance minted for ``audience``; a 401 otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key.public_key(), algorithms=["ES256"], audience=audience,
                options={"require": ["iss", "sub", "aud", "iat", "exp"]})
        except jwt.PyJWTError as e:
            raise _HttpError(HTTPStatus.UNAUTHORIZED, f"invalid identity token: {e}") from e
        return claims

    def runtime_token(self, claims: Mapping[str, object], *, ttl: int) -> str:
        """A bearer token for the simulated Actions runtime endpoint, carrying ``claims``."""
        now = int(time.time())
        body = {"aud": _ACTIONS_REQUEST_AUDIENCE, "iat": now, "exp": now + ttl,
                "claims": dict(claims)}
        return jwt.encode(body, self._runtime_key, algorithm="ES256")

    def runtime_claims(self, token: str) -> dict[str, Any]:
        try:
            body = jwt.decode(token, self._runtime_key.public_key(), algorithms=["ES256"],
                              audience=_ACTIONS_REQUEST_AUDIENCE,
                              options={"require": ["aud", "exp", "iat"]})
        except jwt.PyJWTError as e:
            raise _HttpError(HTTPStatus.UNAUTHORIZED, f"invalid runtime token: {e}") from e
        claims = body.get("claims")
        if not isinstance(claims, dict):
            raise _HttpError(HTTPStatus.UNAUTHORIZED, "runtime token carries no claims")
        return claims


# ------------------------------------------------------------------------------------ Fulcio
_OID = "1.3.6.1.4.1.57264.1."
# Fulcio's extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md):
# OIDs .1 to .6 hold raw bytes (deprecated form), .8 onwards a DER UTF8String.
_RAW_EXTENSIONS: Final = frozenset({1, 2, 3, 4, 5, 6})


def _github_url(path: str | None) -> str | None:
    return None if not path else f"{GITHUB_SERVER_URL}/{path}"


def _github_run_url(claims: Mapping[str, str]) -> str | None:
    parts = [claims.get(k) for k in ("repository", "run_id", "run_attempt")]
    if not all(parts):
        return None
    repository, run_id, attempt = parts
    return f"{GITHUB_SERVER_URL}/{repository}/actions/runs/{run_id}/attempts/{attempt}"


# (OID suffix, value from the token's claims) as Fulcio's GitHub workflow principal renders them.
_GITHUB_EXTENSIONS: Final[tuple[tuple[int, Callable[[Mapping[str, str]], str | None]], ...]] = (
    (2, lambda c: c.get("event_name")),
    (3, lambda c: c.get("sha")),
    (4, lambda c: c.get("workflow")),
    (5, lambda c: c.get("repository")),
    (6, lambda c: c.get("ref")),
    (9, lambda c: _github_url(c.get("job_workflow_ref"))),
    (10, lambda c: c.get("job_workflow_sha")),
    (11, lambda c: c.get("runner_environment")),
    (12, lambda c: _github_url(c.get("repository"))),
    (13, lambda c: c.get("sha")),
    (14, lambda c: c.get("ref")),
    (15, lambda c: c.get("repository_id")),
    (16, lambda c: _github_url(c.get("repository_owner"))),
    (17, lambda c: c.get("repository_owner_id")),
    (18, lambda c: _github_url(c.get("workflow_ref"))),
    (19, lambda c: c.get("workflow_sha")),
    (20, lambda c: c.get("event_name")),
    (21, _github_run_url),
    (22, lambda c: c.get("repository_visibility")),
)


def _fulcio_extension(number: int, value: str) -> x509.Extension[x509.UnrecognizedExtension]:
    raw = value.encode("utf-8") if number in _RAW_EXTENSIONS else _der_utf8_string(value)
    oid = ObjectIdentifier(f"{_OID}{number}")
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, raw))


@dataclass(frozen=True)
class _Ca:
    """A two-level CA: a self-signed root and the intermediate that issues leaf certificates."""

    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, label: str, *, not_before: dt.datetime, not_after: dt.datetime) -> _Ca:
        root_key = ec.generate_private_key(ec.SECP384R1())
        inter_key = ec.generate_private_key(ec.SECP384R1())
        root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _OPERATOR),
                               x509.NameAttribute(NameOID.COMMON_NAME, f"{label} root")])
        inter_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _OPERATOR),
                                x509.NameAttribute(NameOID.COMMON_NAME, f"{label} intermediate")])
        ca_usage = x509.KeyUsage(digital_signature=False, content_commitment=False,
                                 key_encipherment=False, data_encipherment=False,
                                 key_agreement=False, key_cert_sign=True, crl_sign=True,
                                 encipher_only=False, decipher_only=False)
        root = (
            x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(ca_usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()),
                           critical=False)
            .sign(root_key, hashes.SHA384())
        )
        intermediate = (
            x509.CertificateBuilder().subject_name(inter_name).issuer_name(root_name)
            .public_key(inter_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ca_usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA384())
        )
        return cls(root=root, intermediate=intermediate, intermediate_key=inter_key)


class _Fulcio:
    """Fulcio v2 ``signingCert``: OIDC claims + CSR -> short-lived leaf with an embedded SCT.

    The CT log is only a key here: the SCT is signed, nothing is served.
    """

    def __init__(self, *, clock: Clock, lifetime: dt.timedelta,
                 ca_not_before: dt.datetime, ca_not_after: dt.datetime) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self.ca = _Ca.create("modelsign loopback Fulcio", not_before=ca_not_before,
                             not_after=ca_not_after)
        # Signs UNTRUSTED_CA certificates; never listed in the trust root.
        self._rogue_ca = _Ca.create("modelsign loopback rogue", not_before=ca_not_before,
                                    not_after=ca_not_after)
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_log_id = hashlib.sha256(_spki(self.ct_key.public_key())).digest()
        self._lock = threading.Lock()
        self._expired: dict[int, dt.datetime] = {}  # serial -> not_after, of EXPIRED faults

    def late_integration_time(self, cert: x509.Certificate) -> int | None:
        """For a certificate issued with :attr:`CertificateFault.EXPIRED`: a log time after it
        expired. ``None`` for every other certificate."""
        if cert.issuer != self.ca.intermediate.subject:
            return None
        with self._lock:
            not_after = self._expired.get(cert.serial_number)
        return None if not_after is None else int(not_after.timestamp()) + 60

    def issue(self, claims: Mapping[str, Any], csr_pem: bytes) -> list[x509.Certificate]:
        """The chain ``[leaf, intermediate, root]`` for the token's identity and the CSR's key."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as e:
            raise _bad_request(f"certificateSigningRequest is not a PEM CSR: {e}") from e
        if not csr.is_signature_valid:  # proof of possession of the private key
            raise _bad_request("the CSR's signature does not verify (no proof of possession)")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise _bad_request("only EC keys are supported by the loopback Fulcio")
        issuer = claims["iss"]
        if not isinstance(issuer, str) or not issuer:
            raise _HttpError(HTTPStatus.UNAUTHORIZED, "the token's 'iss' claim is empty")
        san, extensions = self._identity(claims)
        fault = claims.get(_FAULT_CLAIM)
        if fault is not None and fault not in set(CertificateFault):
            raise _bad_request(f"unknown certificate fault {fault!r}")
        ca = self._rogue_ca if fault == CertificateFault.UNTRUSTED_CA else self.ca

        now = self._clock().replace(microsecond=0)
        not_before = now + self._lifetime if fault == CertificateFault.NOT_YET_VALID else now
        # sigstore-python refuses a certificate that expired by the wall clock, so with a clock
        # in the past the validity stretches to a lifetime after the wall clock's now.
        not_after = max(not_before, _utcnow().replace(microsecond=0)) + self._lifetime
        serial = x509.random_serial_number()
        if fault == CertificateFault.EXPIRED:
            with self._lock:
                self._expired[serial] = not_after
        extensions = [_fulcio_extension(1, issuer), _fulcio_extension(8, issuer), *extensions]

        def build(sct_list: bytes) -> x509.Certificate:
            builder = (
                x509.CertificateBuilder().subject_name(x509.Name([]))
                .issuer_name(ca.intermediate.subject).public_key(public_key)
                .serial_number(serial)
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                               critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca.intermediate_key.public_key()), critical=False)
                .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            )
            for ext in extensions:
                builder = builder.add_extension(ext.value, critical=ext.critical)
            builder = builder.add_extension(x509.UnrecognizedExtension(
                ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, sct_list), critical=False)
            return builder.sign(ca.intermediate_key, hashes.SHA384())

        # The SCT signs the precertificate: the TBS without the SCT list extension.
        precert_tbs = build(_der_octet_string(b"\x00\x00")).tbs_precertificate_bytes
        sct = self._sct(precert_tbs, ca.intermediate_key.public_key())
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        leaf = build(_der_octet_string(sct_list))
        return [leaf, ca.intermediate, ca.root]

    def _sct(self, precert_tbs: bytes, issuer_key: ec.EllipticCurvePublicKey) -> bytes:
        """An RFC 6962 v1 SCT (section 3.2) over a precert entry, serialized for the list."""
        timestamp_ms = int(self._clock().timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(_spki(issuer_key)).digest()
        signed = (struct.pack("!BBQH", 0, 0, timestamp_ms, 1) + issuer_key_hash
                  + len(precert_tbs).to_bytes(3, "big") + precert_tbs + struct.pack("!H", 0))
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (b"\x00" + self.ct_log_id + struct.pack("!QH", timestamp_ms, 0)
                + bytes([4, 3])  # SHA-256, ECDSA
                + struct.pack("!H", len(signature)) + signature)

    @staticmethod
    def _identity(claims: Mapping[str, Any]) -> tuple[x509.GeneralName,
                                                      list[x509.Extension[Any]]]:
        """The SAN and the extra extensions, chosen as Fulcio's principal types do."""
        if "job_workflow_ref" in claims:  # a GitHub Actions workflow
            strings = {k: v for k, v in claims.items() if isinstance(v, str)}
            san_uri = _github_url(strings.get("job_workflow_ref"))
            if san_uri is None:
                raise _bad_request("the token's 'job_workflow_ref' claim is empty")
            extensions = [_fulcio_extension(number, value)
                          for number, render in _GITHUB_EXTENSIONS
                          if (value := render(strings))]
            return x509.UniformResourceIdentifier(san_uri), extensions
        if "email" in claims:
            if claims.get("email_verified") is not True:
                raise _HttpError(HTTPStatus.UNAUTHORIZED,
                                 "the token's email is not verified (email_verified != true)")
            email = claims["email"]
            if not isinstance(email, str) or "@" not in email:
                raise _bad_request("the token's 'email' claim is not an email address")
            return x509.RFC822Name(email), []
        subject = claims["sub"]
        parts = urlsplit(subject) if isinstance(subject, str) else None
        if parts is None or not parts.scheme or not parts.netloc:
            raise _bad_request(
                f"cannot derive an identity from the token: no verified email, and the subject "
                f"{subject!r} is not a URI (scheme://authority/...)")
        return x509.UniformResourceIdentifier(subject), []


# ------------------------------------------------------------------------------------- Rekor
@dataclass(frozen=True)
class _LogEntry:
    index: int
    body: bytes
    integrated_time: int
    signed_entry_timestamp: bytes

    @property
    def leaf_hash(self) -> bytes:
        return _leaf_hash(self.body)


class _Rekor:
    """Rekor v1: ``hashedrekord`` and ``dsse`` 0.0.1 entries in one append-only Merkle log.

    Each response carries what sigstore-python puts in a bundle: the canonical body, the
    integrated time, an inclusion proof with a signed checkpoint (note format, key hint = first 4
    bytes of the log id) and a signed entry timestamp over ``{body, integratedTime, logID,
    logIndex}`` (RFC 8785).
    """

    def __init__(self, *, clock: Clock,
                 late_integration_time: Callable[[x509.Certificate], int | None]) -> None:
        self._clock = clock
        self._late_integration_time = late_integration_time
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.log_id = hashlib.sha256(_spki(self.key.public_key())).digest()
        self.tree_id = secrets.randbelow(2**63 - 1) + 1
        self.origin = f"modelsign-loopback-rekor - {self.tree_id}"
        self._lock = threading.Lock()
        self._tree = _MerkleTree()
        self._entries: list[_LogEntry] = []
        self._by_leaf: dict[bytes, int] = {}

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._tree)

    def add(self, proposed: object) -> dict[str, Any]:
        """Check and log a proposed entry; the Rekor v1 ``{uuid: entry}`` response."""
        kind = _field(proposed, "kind")
        api_version = _field(proposed, "apiVersion")
        if api_version != "0.0.1":
            raise _bad_request(f"unsupported apiVersion {api_version!r} (expected '0.0.1')")
        if kind == "hashedrekord":
            body, certificates = self._hashedrekord(proposed)
        elif kind == "dsse":
            body, certificates = self._dsse(proposed)
        else:
            raise _bad_request(f"unsupported entry kind {kind!r} (hashedrekord, dsse)")
        canonical = rfc8785.dumps(body)
        late = [t for c in certificates if (t := self._late_integration_time(c)) is not None]
        with self._lock:
            if (existing := self._by_leaf.get(_leaf_hash(canonical))) is not None:
                raise _HttpError(HTTPStatus.CONFLICT,
                                 f"an equivalent entry already exists at index {existing}")
            index = len(self._tree)
            integrated_time = max(late, default=int(self._clock().timestamp()))
            set_payload = rfc8785.dumps({"body": _b64(canonical),
                                         "integratedTime": integrated_time,
                                         "logID": self.log_id.hex(), "logIndex": index})
            entry = _LogEntry(index, canonical, integrated_time,
                              self.key.sign(set_payload, ec.ECDSA(hashes.SHA256())))
            self._tree.append(entry.leaf_hash)
            self._entries.append(entry)
            self._by_leaf[entry.leaf_hash] = index
            return self._response(entry, len(self._tree))

    def get(self, uuid: str) -> dict[str, Any]:
        """An entry by UUID (64 hex, or 80 with the tree id prefix), proof at the current size."""
        if not re.fullmatch(r"(?:[0-9a-f]{16})?[0-9a-f]{64}", uuid):
            raise _bad_request("entry UUID must be 64 or 80 lowercase hex digits")
        with self._lock:
            index = self._by_leaf.get(bytes.fromhex(uuid[-64:]))
            if index is None:
                raise _HttpError(HTTPStatus.NOT_FOUND, f"no entry with UUID {uuid}")
            return self._response(self._entries[index], len(self._tree))

    def log_info(self) -> dict[str, Any]:
        with self._lock:
            size = len(self._tree)
            root = self._tree.root(size)
        return {"rootHash": root.hex(), "treeSize": size, "treeID": str(self.tree_id),
                "signedTreeHead": self._checkpoint(size, root)}

    def _response(self, entry: _LogEntry, size: int) -> dict[str, Any]:
        """Called with the lock held: proof and checkpoint for a tree of ``size`` leaves."""
        root = self._tree.root(size)
        proof = self._tree.inclusion_proof(entry.index, size)
        uuid = f"{self.tree_id:016x}{entry.leaf_hash.hex()}"
        return {uuid: {
            "body": _b64(entry.body),
            "integratedTime": entry.integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": entry.index,
            "verification": {
                "inclusionProof": {"checkpoint": self._checkpoint(size, root),
                                   "hashes": [h.hex() for h in proof],
                                   "logIndex": entry.index, "rootHash": root.hex(),
                                   "treeSize": size},
                "signedEntryTimestamp": _b64(entry.signed_entry_timestamp),
            },
        }}

    def _checkpoint(self, size: int, root: bytes) -> str:
        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        signature = self.key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        name = self.origin.split(" ", 1)[0]
        return f"{note}\n\u2014 {name} {_b64(self.log_id[:4] + signature)}\n"

    # ----------------------------------------------------------------- entry kinds
    @staticmethod
    def _load_verifier(pem_b64: str, what: str) -> tuple[ec.EllipticCurvePublicKey,
                                                          x509.Certificate | None]:
        """The EC public key of a base64 PEM certificate (or PEM public key), and the cert."""
        pem = _b64decode(pem_b64, what)
        cert: x509.Certificate | None = None
        try:
            cert = x509.load_pem_x509_certificate(pem)
            key: object = cert.public_key()
        except ValueError:
            try:
                key = serialization.load_pem_public_key(pem)
            except ValueError as e:
                raise _bad_request(f"{what} is neither a PEM certificate nor a PEM key") from e
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise _bad_request(f"{what}: only EC keys are supported by the loopback Rekor")
        return key, cert

    def _hashedrekord(self, proposed: object) -> tuple[dict[str, Any], list[x509.Certificate]]:
        algorithms: dict[str, hashes.HashAlgorithm] = {
            "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
        algorithm = _field(proposed, "spec", "data", "hash", "algorithm")
        if algorithm not in algorithms:
            raise _bad_request(f"unsupported hash algorithm {algorithm!r}")
        digest_hex = _field(proposed, "spec", "data", "hash", "value")
        if not re.fullmatch(r"[0-9a-f]+", digest_hex) or \
                len(digest_hex) != 2 * algorithms[algorithm].digest_size:
            raise _bad_request(f"spec.data.hash.value is not a {algorithm} hex digest")
        signature_b64 = _field(proposed, "spec", "signature", "content")
        key_b64 = _field(proposed, "spec", "signature", "publicKey", "content")
        key, cert = self._load_verifier(key_b64, "spec.signature.publicKey.content")
        try:
            key.verify(_b64decode(signature_b64, "spec.signature.content"),
                       bytes.fromhex(digest_hex), ec.ECDSA(Prehashed(algorithms[algorithm])))
        except InvalidSignature as e:
            raise _bad_request("the signature does not verify over the given digest") from e
        return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest_hex}},
            "signature": {"content": signature_b64, "publicKey": {"content": key_b64}},
        }}, [cert] if cert is not None else []

    def _dsse(self, proposed: object) -> tuple[dict[str, Any], list[x509.Certificate]]:
        envelope_text = _field(proposed, "spec", "proposedContent", "envelope")
        verifiers = _field(proposed, "spec", "proposedContent", "verifiers", kind=list)
        if not verifiers or not all(isinstance(v, str) for v in verifiers):
            raise _bad_request("spec.proposedContent.verifiers must be a non-empty string list")
        try:
            envelope = json.loads(envelope_text)
        except ValueError as e:
            raise _bad_request("spec.proposedContent.envelope is not JSON") from e
        payload = _b64decode(_field(envelope, "payload"), "envelope payload")
        payload_type = _field(envelope, "payloadType")
        signatures = _field(envelope, "signatures", kind=list)
        if not signatures:
            raise _bad_request("the envelope has no signatures")
        loaded = [self._load_verifier(v, "spec.proposedContent.verifiers[]") for v in verifiers]
        keys = [key for key, _ in loaded]
        type_bytes = payload_type.encode()
        pae = b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)
        recorded = []
        for i, item in enumerate(signatures):
            signature_b64 = _field(item, "sig")
            signature = _b64decode(signature_b64, f"signatures[{i}].sig")
            for key, verifier in zip(keys, verifiers, strict=True):
                try:
                    key.verify(signature, pae, ec.ECDSA(_ecdsa_hash(key)))
                except InvalidSignature:
                    continue
                recorded.append({"signature": signature_b64, "verifier": verifier})
                break
            else:
                raise _bad_request(f"envelope signature {i} does not verify with any verifier")
        return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256",
                             "value": hashlib.sha256(envelope_text.encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": recorded,
        }}, [cert for _, cert in loaded if cert is not None]


# ------------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Message
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as e:
            raise _bad_request(f"the request body is not JSON: {e}") from e

    def bearer_token(self) -> str:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _HttpError(HTTPStatus.UNAUTHORIZED, "missing 'Authorization: Bearer <token>'")
        return token.strip()


@dataclass(frozen=True)
class _Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, obj: object, status: HTTPStatus = HTTPStatus.OK) -> _Response:
        return cls(status, json.dumps(obj, indent=None).encode())

    @classmethod
    def text(cls, text: str, content_type: str = "text/plain; charset=utf-8") -> _Response:
        return cls(HTTPStatus.OK, text.encode(), content_type)


class _Server(ThreadingHTTPServer):
    """A threaded HTTP server that hands parsed, size-checked requests to ``app``."""

    daemon_threads = True

    def __init__(self, port: int, *, app: Callable[[_Request], _Response],
                 max_request_bytes: int, log: Callable[[str], None] | None) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.log = log
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "modelsign-loopback-sigstore"
    timeout = 30  # seconds a client may stall mid-request before the socket is dropped

    def do_GET(self) -> None:  # the name http.server dispatches to
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body() if method == "POST" else b""
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            response = self.server.app(_Request(method, url.path, query, self.headers, body))
        except _HttpError as e:
            response = _Response.json({"code": e.status.value, "message": e.message}, e.status)
        except Exception as e:  # noqa: BLE001 - a bug must answer 500, not kill the server
            self.log_error("internal error: %s: %s", type(e).__name__, e)
            response = _Response.json(
                {"code": 500, "message": f"internal error: {type(e).__name__}: {e}"},
                HTTPStatus.INTERNAL_SERVER_ERROR)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise _HttpError(HTTPStatus.LENGTH_REQUIRED,
                             "chunked bodies are not accepted: send Content-Length")
        declared = self.headers.get("Content-Length")
        if declared is None:
            raise _HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if not declared.isdigit():
            raise _bad_request(f"bad Content-Length {declared!r}")
        length = int(declared)
        if length > self.server.max_request_bytes:
            self.close_connection = True
            raise _HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"request body of {length} bytes exceeds the limit of "
                             f"{self.server.max_request_bytes} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _bad_request(f"request body ended after {len(body)} of {length} bytes")
        return body

    def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")


# ---------------------------------------------------------------------------- the whole stack
class LoopbackSigstore:
    """Fulcio v2 + Rekor v1 + an OIDC issuer, served on ``127.0.0.1`` for offline tests.

    ::

        with LoopbackSigstore() as sigstore:
            token = sigstore.mint_token("alice@example.com")
            ctx = sigstore.signing_context()           # sigstore.sign.SigningContext
            ...                                        # sign with IdentityToken(token)
            sigstore.verifier().verify_dsse(bundle, Identity(identity="alice@example.com",
                                                             issuer=sigstore.url))

    Each instance has its own keys, CA and log, so a second instance is a foreign trust root to
    the first. Key material is created in the constructor; the port is bound by :meth:`start`,
    and everything that names the URL (tokens, trust material) needs a started instance.

    Endpoints (all on :attr:`url`): ``POST /api/v2/signingCert``, ``GET /api/v2/trustBundle``
    (Fulcio); ``POST /api/v1/log/entries``, ``GET /api/v1/log/entries/{uuid}``,
    ``GET /api/v1/log``, ``GET /api/v1/log/publicKey`` (Rekor);
    ``GET /.well-known/openid-configuration``, ``GET /jwks`` (OIDC discovery);
    ``GET /token?sub=IDENTITY[&email=true|false][&ttl=SECONDS]`` (a token, as text: test use);
    ``GET /github-actions/token?audience=AUD`` with the bearer token of
    :meth:`github_actions_env` (GitHub Actions' ``ACTIONS_ID_TOKEN_REQUEST_URL``);
    ``GET /trust_config.json``, ``GET /trusted_root.json``.

    Args:
        port: TCP port on 127.0.0.1; 0 picks a free one.
        clock: current time for certificates, SCTs and log entries (tokens always use the wall
            clock, because clients check them against it). Inject a fixed past time to make
            signatures that look old: certificates then start at that time and stay valid until
            ``certificate_lifetime`` after the wall clock's now, since the client checks that.
        certificate_lifetime: validity of issued leaf certificates (Fulcio: 10 minutes).
        max_request_bytes: bodies larger than this are refused with 413 before being read.
        log: called with one line per request (e.g. ``print``); silent when ``None``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        clock: Clock | None = None,
        certificate_lifetime: dt.timedelta = dt.timedelta(minutes=10),
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be at least 1024, got {max_request_bytes}")
        if certificate_lifetime <= dt.timedelta(0):
            raise ValueError("certificate_lifetime must be positive")
        self._clock: Clock = clock or _utcnow
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("clock() must return timezone-aware datetimes")
        wall = _utcnow()
        # Trust material is valid from a day before the earlier of (clock, wall time): the
        # verifier checks the log entry time, the signing client checks the wall time.
        self._valid_from = min(now, wall).replace(microsecond=0) - dt.timedelta(days=1)
        self._port = port
        self._max_request_bytes = max_request_bytes
        self._log = log
        self._oidc = _OidcIssuer()
        self._fulcio = _Fulcio(clock=self._clock, lifetime=certificate_lifetime,
                               ca_not_before=self._valid_from,
                               ca_not_after=max(now, wall) + dt.timedelta(days=3650))
        self._rekor = _Rekor(clock=self._clock,
                             late_integration_time=self._fulcio.late_integration_time)
        self._lifecycle = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._url: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Bind 127.0.0.1 and serve in a background thread. Returns ``self``.

        Raises:
            OSError: the port cannot be bound (in use, or not permitted).
            RuntimeError: already started, or stopped (a stopped instance cannot restart).
        """
        with self._lifecycle:
            if self._stopped:
                raise RuntimeError("this LoopbackSigstore was stopped; create a new one")
            if self._server is not None:
                raise RuntimeError("this LoopbackSigstore is already running")
            server = _Server(self._port, app=self._route,
                             max_request_bytes=self._max_request_bytes, log=self._log)
            self._url = f"http://127.0.0.1:{server.server_address[1]}"
            self._thread = threading.Thread(target=server.serve_forever, args=(_POLL_SECONDS,),
                                            name=f"loopback-sigstore-{self._url}", daemon=True)
            self._server = server
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port. Safe to call twice, or before :meth:`start`."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
            self._stopped = self._stopped or server is not None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting requests."""
        return self._server is not None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the base URL of every service, and the OIDC issuer."""
        if self._url is None:
            raise RuntimeError("LoopbackSigstore is not started: call start() or use `with`")
        return self._url

    @property
    def issuer(self) -> str:
        """The default ``iss`` of minted tokens (the same as :attr:`url`)."""
        return self.url

    @property
    def log_size(self) -> int:
        """Number of entries in the transparency log."""
        return self._rekor.size

    def __repr__(self) -> str:
        state = self._url or ("stopped" if self._stopped else "not started")
        return f"<LoopbackSigstore {state}, {self.log_size} log entries>"

    # ------------------------------------------------------------------ identity tokens
    def mint_token(
        self,
        identity: str,
        *,
        email: bool | None = None,
        ttl: int = 600,
        issuer: str | None = None,
        audience: str = SIGSTORE_AUDIENCE,
        extra: Mapping[str, object] | None = None,
        certificate_fault: CertificateFault | None = None,
    ) -> str:
        """An OIDC identity token for ``identity``, which this instance's Fulcio accepts.

        Args:
            identity: the ``sub`` claim; the certificate's SAN is the email address (when
                ``email``) or this URI (otherwise; Fulcio refuses a non-URI subject).
            email: also set ``email``/``email_verified``; ``None`` guesses from ``identity``
                (an ``@`` and no ``://``).
            ttl: seconds until the token expires; zero or less mints an already expired token.
            issuer: the ``iss`` claim, by default :attr:`url`. Any issuer may be named
                (e.g. :data:`GITHUB_ACTIONS_ISSUER`): the loopback Fulcio trusts every token
                signed by this instance, whatever it claims to come from.
            audience: the ``aud`` claim (Fulcio wants ``"sigstore"``).
            extra: further claims, applied last (e.g. :meth:`GitHubWorkflow.claims`).
            certificate_fault: ask the loopback Fulcio for a defective certificate.
        """
        if not identity:
            raise ValueError("identity must not be empty")
        if ttl > _MAX_TOKEN_TTL:
            raise ValueError(f"ttl must be at most {_MAX_TOKEN_TTL} seconds, got {ttl}")
        if email is None:
            email = "@" in identity and "://" not in identity
        claims: dict[str, object] = {"iss": issuer or self.url, "aud": audience, "sub": identity}
        if email:
            claims.update(email=identity, email_verified=True)
        if certificate_fault is not None:
            claims[_FAULT_CLAIM] = CertificateFault(certificate_fault).value
        claims.update(extra or {})
        return self._oidc.mint(claims, ttl=ttl)

    def mint_github_token(
        self,
        workflow: GitHubWorkflow | None = None,
        *,
        ttl: int = 600,
        issuer: str = GITHUB_ACTIONS_ISSUER,
        audience: str = SIGSTORE_AUDIENCE,
        certificate_fault: CertificateFault | None = None,
    ) -> str:
        """A token as GitHub Actions issues it for ``workflow`` (default: ``GitHubWorkflow()``).

        The certificate's SAN is ``workflow.identity`` and it carries the GitHub extensions
        (source repository URI, workflow ref, runner environment, ...).
        """
        claims = (workflow or GitHubWorkflow()).claims()
        return self.mint_token(claims["sub"], email=False, ttl=ttl, issuer=issuer,
                               audience=audience, extra=claims,
                               certificate_fault=certificate_fault)

    def github_actions_env(
        self,
        workflow: GitHubWorkflow | None = None,
        *,
        issuer: str = GITHUB_ACTIONS_ISSUER,
        ttl: int = 3600,
    ) -> dict[str, str]:
        """Environment variables that make this process look like a GitHub Actions job.

        With them set, ``sigstore.oidc.detect_credential()`` (the ``id`` package) requests a
        token from this instance for ``workflow``, as it would from GitHub's runtime service.
        ``ttl`` is the lifetime of the runtime bearer token, not of the identity tokens.
        """
        claims = {**(workflow or GitHubWorkflow()).claims(), "iss": issuer}
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/github-actions/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self._oidc.runtime_token(claims, ttl=ttl),
        }

    # ------------------------------------------------------------------ trust material
    def trusted_root_json(self) -> dict[str, Any]:
        """The ``TrustedRoot`` (v0.1) document: this Fulcio CA, CT log and Rekor log."""
        start = {"start": _timestamp(self._valid_from)}

        def log(key: ec.EllipticCurvePrivateKey, log_id: bytes) -> dict[str, Any]:
            return {"baseUrl": self.url, "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": _b64(_spki(key.public_key())),
                                  "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": start},
                    "logId": {"keyId": _b64(log_id)}}

        ca = self._fulcio.ca
        return {
            "mediaType": _MEDIA_TRUSTED_ROOT,
            "tlogs": [log(self._rekor.key, self._rekor.log_id)],
            "certificateAuthorities": [{
                "subject": {"organization": _OPERATOR, "commonName": _common_name(ca.root)},
                "uri": self.url,
                "certChain": {"certificates": [
                    {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                    for c in (ca.intermediate, ca.root)]},
                "validFor": start,
            }],
            "ctlogs": [log(self._fulcio.ct_key, self._fulcio.ct_log_id)],
            "timestampAuthorities": [],
        }

    def signing_config_json(self) -> dict[str, Any]:
        """The ``SigningConfig`` (v0.2) document: OIDC, Fulcio and Rekor v1 at :attr:`url`."""
        service = {"url": self.url, "majorApiVersion": 1, "operator": _OPERATOR,
                   "validFor": {"start": _timestamp(self._valid_from)}}
        return {"mediaType": _MEDIA_SIGNING_CONFIG,
                "caUrls": [service], "oidcUrls": [service], "rekorTlogUrls": [service],
                "tsaUrls": [], "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"}}

    def trust_config_json(self) -> dict[str, Any]:
        """The ``ClientTrustConfig`` document that ``sigstore`` and ``--trust-config`` read."""
        return {"mediaType": _MEDIA_TRUST_CONFIG, "trustedRoot": self.trusted_root_json(),
                "signingConfig": self.signing_config_json()}

    def write_trust_config(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`trust_config_json` to ``path`` (atomically); return the path."""
        return _write_json(Path(path), self.trust_config_json())

    def write_trusted_root(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`trusted_root_json` to ``path`` (atomically); return the path."""
        return _write_json(Path(path), self.trusted_root_json())

    def client_trust_config(self) -> ClientTrustConfig:
        """:meth:`trust_config_json` as sigstore's ``ClientTrustConfig``."""
        from sigstore.models import ClientTrustConfig

        return ClientTrustConfig.from_json(json.dumps(self.trust_config_json()))

    def trusted_root(self) -> TrustedRoot:
        """:meth:`trusted_root_json` as sigstore's ``TrustedRoot``."""
        return self.client_trust_config().trusted_root

    def signing_context(self) -> SigningContext:
        """A sigstore ``SigningContext`` that signs against this instance."""
        from sigstore.sign import SigningContext

        return SigningContext.from_trust_config(self.client_trust_config())

    def verifier(self) -> Verifier:
        """A sigstore ``Verifier`` that trusts this instance (and nothing else)."""
        from sigstore.verify import Verifier

        return Verifier(trusted_root=self.trusted_root())

    # ------------------------------------------------------------------ HTTP routes
    def _route(self, request: _Request) -> _Response:
        key = (request.method, request.path.rstrip("/") or "/")
        if key == ("POST", "/api/v2/signingCert"):
            return self._signing_cert(request)
        if key == ("POST", "/api/v1/log/entries"):
            return _Response.json(self._rekor.add(request.json()), HTTPStatus.CREATED)
        if request.method == "GET":
            if key[1].startswith("/api/v1/log/entries/"):
                return _Response.json(self._rekor.get(key[1].rsplit("/", 1)[1]))
            handler = self._get_routes().get(key[1])
            if handler is not None:
                return handler(request)
        raise _HttpError(HTTPStatus.NOT_FOUND, f"no route for {request.method} {request.path}")

    def _get_routes(self) -> dict[str, Callable[[_Request], _Response]]:
        return {
            "/": lambda r: _Response.json(self._index()),
            "/.well-known/openid-configuration": lambda r: _Response.json(self._discovery()),
            "/jwks": lambda r: _Response.json(self._oidc.jwks()),
            "/token": self._token,
            "/github-actions/token": self._github_actions_token,
            "/trust_config.json": lambda r: _Response.json(self.trust_config_json()),
            "/trusted_root.json": lambda r: _Response.json(self.trusted_root_json()),
            "/api/v2/trustBundle": lambda r: _Response.json({"chains": [{"certificates": [
                _pem(self._fulcio.ca.intermediate), _pem(self._fulcio.ca.root)]}]}),
            "/api/v1/log": lambda r: _Response.json(self._rekor.log_info()),
            "/api/v1/log/publicKey": lambda r: _Response.text(
                self._rekor.key.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
                "application/x-pem-file"),
        }

    def _index(self) -> dict[str, Any]:
        return {"service": "modelsign loopback Sigstore (test use only)",
                "issuer": self.url,
                "token": f"{self.url}/token?sub={quote('you@example.com', safe='@')}",
                "trustConfig": f"{self.url}/trust_config.json"}

    def _discovery(self) -> dict[str, Any]:
        return {"issuer": self.url, "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"]}

    def _signing_cert(self, request: _Request) -> _Response:
        body = request.json()
        # Fulcio takes the token from the header, or from the body's credentials.
        credentials = body.get("credentials") if isinstance(body, dict) else None
        token = credentials.get("oidcIdentityToken") if isinstance(credentials, dict) else None
        claims = self._oidc.verify(token if isinstance(token, str) and token
                                   else request.bearer_token())
        csr_pem = _b64decode(_field(body, "certificateSigningRequest"),
                             "certificateSigningRequest")
        chain = self._fulcio.issue(claims, csr_pem)
        return _Response.json({"signedCertificateEmbeddedSct": {
            "chain": {"certificates": [_pem(c) for c in chain]}}}, HTTPStatus.CREATED)

    def _token(self, request: _Request) -> _Response:
        subject = request.query.get("sub")
        if not subject:
            raise _bad_request("give the identity as ?sub=IDENTITY")
        email = {"true": True, "false": False, "": None, None: None}.get(
            request.query.get("email"), "invalid")
        ttl_text = request.query.get("ttl", "600")
        if email == "invalid" or not ttl_text.isdigit() or \
                not 0 < int(ttl_text) <= _MAX_TOKEN_TTL:
            raise _bad_request(f"email must be true|false, ttl 1..{_MAX_TOKEN_TTL} seconds")
        assert email is None or isinstance(email, bool)
        return _Response.text(self.mint_token(subject, email=email, ttl=int(ttl_text)))

    def _github_actions_token(self, request: _Request) -> _Response:
        claims = self._oidc.runtime_claims(request.bearer_token())
        audience = request.query.get("audience") or GITHUB_SERVER_URL
        token = self._oidc.mint({**claims, "aud": audience}, ttl=300)
        return _Response.json({"count": len(token), "value": token})


def _write_json(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
