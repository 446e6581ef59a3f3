"""Verified objects: what only the verifier may construct.

:class:`VerifiedStatement` and :class:`VerificationResult` are frozen values. Their constructors
demand a private token that lives in this package, so code outside ``modelsign.verify`` cannot
make one by accident; lineage and policy accept nothing else. The token is an ``InitVar``: it is
not stored, so ``dataclasses.replace`` on a verified object cannot re-use it to forge another.
(Python cannot make forgery impossible; the token makes it deliberate and easy to spot in review.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from typing import Any, Literal

from modelsign.errors import IntegrityError, InternalError
from modelsign.manifest import Manifest
from modelsign.statements import Statement

__all__ = [
    "SignerKind",
    "FileStatus",
    "Extensions",
    "Signer",
    "FileResult",
    "VerifiedStatement",
    "VerificationResult",
    "IntegrityFailure",
]

SignerKind = Literal["keyless", "key", "certificate"]
FileStatus = Literal["ok", "changed", "missing", "extra", "unsigned"]


class _Token:
    """The capability to construct verified objects. One instance, private to this package."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<modelsign.verify token>"


_TOKEN = _Token()


def _check_token(token: object, what: str) -> None:
    if token is not _TOKEN:
        raise InternalError(
            f"{what} can only be created by modelsign.verify",
            hint="call modelsign.verify.verify_model or verify_bundle to obtain one")


class Extensions(Mapping[str, str]):
    """A read-only, hashable mapping of certificate extensions: dotted OID -> decoded value.

    Kept in the order given (the verifier gives it sorted by OID number). Equal to any mapping
    with the same items, so ``signer.extensions == {...}`` reads naturally in tests and policies.
    """

    __slots__ = ("_items", "_index")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        pairs = tuple((str(k), str(v)) for k, v in (items or {}).items())
        self._items: tuple[tuple[str, str], ...] = pairs
        self._index: dict[str, str] = dict(pairs)

    def __getitem__(self, oid: str) -> str:
        return self._index[oid]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._index == dict(other.items())

    def __repr__(self) -> str:
        return f"Extensions({self._index!r})"


_NO_EXTENSIONS = Extensions()


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed, as established by verification (never read from the signed payload).

    * ``keyless``: ``identity`` is the SAN and ``issuer`` the OIDC issuer extension of the Fulcio
      certificate that chained to the trusted root; ``log_index`` / ``integrated_time`` come from
      the transparency-log entry whose signed entry timestamp verified.
    * ``key``: ``identity`` is ``"sha256:<hex>"`` of the public key PEM (the OMS key hint);
      ``issuer`` is ``None``.
    * ``certificate``: ``identity`` is the leaf's first SAN, else its subject (RFC 4514);
      ``issuer`` is the subject of the trust anchor the chain ended at.

    ``extensions`` maps dotted OIDs to the decoded values of the Fulcio extensions
    (``1.3.6.1.4.1.57264.1.*``: source repository, workflow ref, runner environment, ...) of
    the *verified* certificate (keyless; certificate mode too, where a private CA may set them);
    empty for a key. ``anchor_fingerprint`` is the hex SHA-256 of the DER of the trust anchor:
    the ``--cert-chain`` certificate the chain ended at, or for keyless the Fulcio root of the
    trusted root that issued the certificate (``None`` if that is not unambiguous; always
    ``None`` for a key).
    """

    kind: SignerKind
    identity: str | None
    issuer: str | None
    log_index: int | None = None
    integrated_time: datetime | None = None
    cert_not_before: datetime | None = None
    cert_not_after: datetime | None = None
    cert_fingerprint: str | None = None  # sha256 hex of the leaf certificate (DER)
    extensions: Mapping[str, str] = field(default=_NO_EXTENSIONS)
    anchor_fingerprint: str | None = None  # sha256 hex of the trust anchor (DER)

    def __post_init__(self) -> None:
        if not isinstance(self.extensions, Extensions):
            object.__setattr__(self, "extensions", Extensions(self.extensions))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "identity": self.identity,
            "issuer": self.issuer,
            "log_index": self.log_index,
            "integrated_time": _iso(self.integrated_time),
            "certificate": None if self.cert_not_before is None else {
                "not_before": _iso(self.cert_not_before),
                "not_after": _iso(self.cert_not_after),
                "sha256": self.cert_fingerprint,
                "anchor_sha256": self.anchor_fingerprint,
            },
            "extensions": {oid: self.extensions[oid] for oid in sorted(
                self.extensions, key=_oid_key)},
        }


@dataclass(frozen=True, slots=True)
class FileResult:
    """One resource (file, or byte range in shards mode) compared against the signature.

    ``expected`` is the signed hex digest (``None`` for a resource the signature does not list);
    ``actual`` the digest computed from disk (``None`` when the resource is missing).
    """

    name: str
    status: FileStatus
    expected: str | None
    actual: str | None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "unsigned")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "expected": self.expected,
                "actual": self.actual}


@dataclass(frozen=True, slots=True)
class VerifiedStatement:
    """An in-toto statement whose DSSE signature and signer were verified.

    Nothing here judges the predicate: a caller that wants a model signature checks
    ``statement.predicate_type`` itself (``verify_model`` does).
    """

    statement: Statement
    payload_type: str
    signer: Signer
    bundle_sha256: str
    warnings: tuple[str, ...]
    _token: InitVar[object] = None

    def __post_init__(self, _token: object) -> None:
        _check_token(_token, "VerifiedStatement")


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The outcome of :func:`modelsign.verify.verify_model`.

    ``verified`` is true only when the signature, the signer and every file checked out. A result
    with ``verified == False`` is only ever seen attached to an :class:`IntegrityFailure`.
    """

    verified: bool
    path: str
    signature_path: str
    root_digest: str
    subject_name: str
    predicate_type: str
    manifest: Manifest
    signer: Signer
    files: tuple[FileResult, ...]
    warnings: tuple[str, ...]
    statement: VerifiedStatement
    _token: InitVar[object] = None

    def __post_init__(self, _token: object) -> None:
        _check_token(_token, "VerificationResult")

    @property
    def verdict(self) -> Literal["verified", "failed"]:
        return "verified" if self.verified else "failed"

    @property
    def failures(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if not f.ok)

    def to_json(self) -> dict[str, Any]:
        """The report document (schemas/verify-report.schema.json)."""
        ser = self.manifest.serialization
        counts: dict[str, int] = {k: 0 for k in ("ok", "changed", "missing", "extra", "unsigned")}
        for f in self.files:
            counts[f.status] += 1
        return {
            "schema": REPORT_SCHEMA_ID,
            "verdict": self.verdict,
            "path": self.path,
            "signature": self.signature_path,
            "root_digest": {"sha256": self.root_digest},
            "subject_name": self.subject_name,
            "predicate_type": self.predicate_type,
            "serialization": {
                "method": ser.method,
                "hash_type": ser.hash_type,
                "shard_size": ser.shard_size,
                "allow_symlinks": ser.allow_symlinks,
                "ignore_paths": list(ser.ignore_paths),
            },
            "signer": self.signer.to_json(),
            "summary": counts,
            "files": [f.to_json() for f in self.files],
            "warnings": list(self.warnings),
            "error": None,
        }


REPORT_SCHEMA_ID = "https://modelsign.dev/schemas/verify-report/v1"


class IntegrityFailure(IntegrityError):
    """The signature verified but the files differ from it; ``result`` lists every difference."""

    def __init__(self, result: VerificationResult, problem: str, *, path: str,
                 hint: str) -> None:
        self.result = result
        super().__init__(problem, path=path, hint=hint)


def _oid_key(oid: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in oid.split("."))
    except ValueError:
        return (1 << 62,)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")
