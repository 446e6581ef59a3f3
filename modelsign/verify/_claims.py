"""``verify_claims``: every line of ``claims.jsonl`` verified on its own, reported by line number.

For each line: the bundle's signature and signer (:func:`verify_bundle`, with the identity
options the caller gives for claim signers), then the statement's subject, which must be the
artifact's *verified* root digest (so a claim copied beside another model fails), then the
predicate: a derivation (SLSA Provenance v1, buildType ``.../derivation/v1``) must be well formed;
a predicate type this version does not know is reported, not failed. One bad line never hides the
others: each gets its own status and reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# The claims file's reader only: the statement models (pydantic, the in-toto protobufs) are
# imported when a line has verified, so that a model without claims verifies without them.
from modelsign._claimsfile import MAX_CLAIM_LINE_BYTES, ClaimLine, claims_path, read_claims
from modelsign.errors import InputError, SignatureFormatError, VerificationError
from modelsign.verify._identity import Identity
from modelsign.verify._result import Signer, VerifiedStatement
from modelsign.verify._signature import select_mode, verify_bundle
from modelsign.verify._trust import Trust

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.statements._provenance import DerivationView

__all__ = [
    "CLAIMS_REPORT_SCHEMA_ID",
    "ClaimResult",
    "ClaimStatus",
    "ClaimsReport",
    "verify_claims",
]

ClaimStatus = Literal["ok", "failed"]
CLAIMS_REPORT_SCHEMA_ID = "https://modelsign.dev/schemas/claims-report/v1"
PathLike = str | os.PathLike[str]
_HEX64 = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The outcome for one line. ``status`` is ``ok`` only when the signature, the signer and the
    subject verified (and, for a derivation, the predicate is well formed). ``recognized`` is
    false for a predicate type this version does not interpret (reported, not failed).
    ``derivation`` is set for verified derivation claims only."""

    line: int
    status: ClaimStatus
    reason: str | None = None
    predicate_type: str | None = None
    recognized: bool = False
    signer: Signer | None = None
    subject_name: str | None = None
    subject_digest: str | None = None
    derivation: DerivationView | None = None
    verified: VerifiedStatement | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "status": self.status,
            "reason": self.reason,
            "predicate_type": self.predicate_type,
            "recognized": self.recognized,
            "signer": self.signer.to_json() if self.signer is not None else None,
            "subject": None if self.subject_digest is None else {
                "name": self.subject_name, "digest": {"sha256": self.subject_digest}},
            "derivation": self.derivation.to_json() if self.derivation is not None else None,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class ClaimsReport:
    """Every claim of an artifact, line by line. ``ok`` when no line and no file problem failed
    (an artifact without claims is ``ok``: whether claims are required is the policy's call)."""

    path: str
    root_digest: str
    exists: bool
    claims: tuple[ClaimResult, ...]
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.claims)

    @property
    def failures(self) -> tuple[ClaimResult, ...]:
        return tuple(c for c in self.claims if not c.ok)

    @property
    def verified(self) -> tuple[ClaimResult, ...]:
        return tuple(c for c in self.claims if c.ok)

    def describe_failures(self) -> list[str]:
        """One line per failure: ``claims.jsonl:3: <reason>``."""
        out = [f"{self.path}: {p}" for p in self.problems]
        out += [f"{self.path}:{c.line}: {c.reason}" for c in self.failures]
        return out

    def summary_lines(self) -> list[str]:
        """Human lines for a report: a header, then one or more lines per claim."""
        if not self.exists:
            return [f"claims: none ({self.path} does not exist)"]
        out = [f"claims: {len(self.claims)} in {self.path}: {len(self.verified)} verified, "
               f"{len(self.failures)} failed"]
        out += [f"  problem: {p}" for p in self.problems]
        for c in self.claims:
            if not c.ok:
                out.append(f"  line {c.line}: FAILED: {c.reason}")
                continue
            who = c.signer.identity if c.signer is not None else "-"
            if c.derivation is None:
                out.append(f"  line {c.line}: verified, signed by {who}: {c.predicate_type} "
                           "(not interpreted by this version)")
                continue
            v = c.derivation
            out.append(f"  line {c.line}: verified, signed by {who}: {v.relation}"
                       + (f" ({v.method})" if v.method else ""))
            out += [f"    base model {d.label()}" + ("" if d.signed else " (unsigned)")
                    for d in v.base_models]
            out += [f"    dataset    {d.label()}" + ("" if d.signed else " (unsigned)")
                    for d in v.datasets]
            if v.frameworks:
                out.append("    frameworks " + ", ".join(str(f) for f in v.frameworks))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CLAIMS_REPORT_SCHEMA_ID,
            "verdict": "verified" if self.ok else "failed",
            "path": self.path,
            "exists": self.exists,
            "root_digest": {"sha256": self.root_digest},
            "summary": {"total": len(self.claims), "ok": len(self.verified),
                        "failed": len(self.failures)},
            "claims": [c.to_json() for c in self.claims],
            "problems": list(self.problems),
        }


def verify_claims(
    path: PathLike,
    root_digest: str,
    *,
    identities: Sequence[Identity] = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] = (),
    trust: Trust | None = None,
    unsafe_skip_identity: bool = False,
    claims_file: PathLike | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ClaimsReport:
    """Verify every claim of the artifact at ``path`` against its verified ``root_digest``.

    ``root_digest`` must come from verification (``verify_model(...).root_digest``): it is what
    each claim's subject is compared with. Claim signers are given like model signers (exactly
    one of keyless ``identities``, ``key`` or ``cert_chain``). The claims file is
    ``PATH/claims.jsonl`` unless ``claims_file`` says otherwise.

    Never raises for a bad line: each line's failure is in the report. Raises
    :class:`~modelsign.errors.InputError` for bad arguments (no signer rule, an unreadable key).
    """
    select_mode(tuple(identities), key, tuple(cert_chain), unsafe_skip_identity)
    if not isinstance(root_digest, str) or len(root_digest) != 64 \
            or not set(root_digest) <= _HEX64:
        raise InputError("the root digest must be 64 lowercase hex characters",
                         actual=repr(root_digest)[:80])
    target = Path(claims_file) if claims_file is not None else claims_path(Path(path))
    read = read_claims(target)
    trust = trust or Trust()
    results = [_verify_line(line, str(target), root_digest, identities=identities, key=key,
                            cert_chain=cert_chain, trust=trust,
                            unsafe_skip_identity=unsafe_skip_identity, clock=clock)
               for line in read.lines]
    return ClaimsReport(str(target), root_digest, read.exists, tuple(results), read.problems)


def _verify_line(line: ClaimLine, source: str, root: str, *, identities: Sequence[Identity],
                 key: PathLike | None, cert_chain: Sequence[PathLike], trust: Trust,
                 unsafe_skip_identity: bool,
                 clock: Callable[[], datetime] | None) -> ClaimResult:
    where = f"{source}:{line.number}"
    if line.problem is not None:
        return ClaimResult(line.number, "failed", line.problem)
    if len(line.raw) > MAX_CLAIM_LINE_BYTES:  # pragma: no cover - read_claims already caps
        return ClaimResult(line.number, "failed", "line is too long")
    try:
        verified = verify_bundle(line.raw, identities=identities, key=key, cert_chain=cert_chain,
                                 trust=trust, unsafe_skip_identity=unsafe_skip_identity,
                                 source=where, clock=clock)
    except SignatureFormatError as e:
        reason = _without_path(e, where)
        if not line.complete:
            reason = ("truncated: the last line has no final newline and is not a complete "
                      f"bundle (an append was interrupted): {reason}")
        else:
            reason = f"not a valid claim bundle: {reason}"
        return ClaimResult(line.number, "failed", _short(reason))
    except VerificationError as e:
        return ClaimResult(line.number, "failed", _short(_without_path(e, where)))
    # Any other InputError (an unreadable key, a bad trust root) is the caller's, not this
    # line's: it propagates.
    st = verified.statement
    base = dict(predicate_type=st.predicate_type, signer=verified.signer,
                verified=verified, warnings=verified.warnings)
    if len(st.subjects) != 1:
        return ClaimResult(line.number, "failed",
                           f"a claim must have exactly one subject (it has {len(st.subjects)})",
                           **base)  # type: ignore[arg-type]
    subject = st.subjects[0]
    digest = subject.digest.get("sha256")
    named = dict(base, subject_name=subject.name, subject_digest=digest)
    if digest != root:
        return ClaimResult(
            line.number, "failed",
            f"the claim is about another artifact: subject sha256:{digest} is not this "
            f"artifact's root digest sha256:{root} (a claim copied from another model?)",
            **named)  # type: ignore[arg-type]
    from modelsign.statements._models import SLSA_PROVENANCE_V1
    from modelsign.statements._provenance import parse_provenance

    if st.predicate_type != SLSA_PROVENANCE_V1 or not _is_derivation(st.predicate):
        return ClaimResult(line.number, "ok", None, recognized=False,
                           **named)  # type: ignore[arg-type]
    try:
        view = parse_provenance(st)
    except SignatureFormatError as e:
        return ClaimResult(line.number, "failed",
                           _short(f"the derivation predicate is malformed: {e}"),
                           recognized=True, **named)  # type: ignore[arg-type]
    return ClaimResult(line.number, "ok", None, recognized=True, derivation=view,
                       **named)  # type: ignore[arg-type]


def _is_derivation(predicate: Any) -> bool:
    from modelsign.statements._models import DERIVATION_BUILD_TYPE

    bd = predicate.get("buildDefinition") if isinstance(predicate, dict) else None
    return isinstance(bd, dict) and bd.get("buildType") == DERIVATION_BUILD_TYPE


def _without_path(e: VerificationError | SignatureFormatError, where: str) -> str:
    return str(e)[len(where) + 2:] if str(e).startswith(where + ": ") else str(e)


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."
