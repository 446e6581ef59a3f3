"""The facts a policy judges, built only from verified objects.

:class:`Facts` is what :func:`~modelsign.policy.evaluate` takes, and :func:`build_facts` is the
only way to make one: it takes the :class:`~modelsign.verify.VerificationResult` of the model
(which only the verifier can construct), the claims that verified, and the lineage. It refuses a
result that did not verify, and it moves a claim whose subject is not this model's root digest to
``rejected_claims``. A claim that failed verification never contributes a fact: only its line and
the reason it failed are kept, so a report can say *why* a required claim is missing.

The CEL context (:meth:`Facts.cel_context`), documented in docs/decisions/0009-policy.md::

    signature   {kind, identity, issuer, extensions: {oid: value}, time, timeSource,
                 subject: {name, digest}, predicateType}
    claims      [{line, predicateType, signer: {kind, identity, issuer, extensions, time,
                  timeSource}, predicate}]                       -- verified claims only
    lineage     {resolved, depth, nodes: [{digest, role, uri, name, relation, state, depth,
                                           child, signer (or null)}],
                 edges: [{child, parent, role, relation}]}   -- parent/child: labels
    files       [{path, digest, format, pickle}]     -- format "unknown" if not inspected
    frameworks  {name: [versions]}                                -- from verified provenance

``time`` values are CEL timestamps (or null); ``digest`` values are lowercase hex SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from modelsign.errors import InternalError, ModelsignError
from modelsign.lineage import LineageGraph, NodeState
from modelsign.policy._sniff import PICKLE_FORMATS, FileFormat, sniff
from modelsign.statements._models import SLSA_PROVENANCE_V1
from modelsign.statements._provenance import DerivationView, parse_provenance
from modelsign.verify import Signer, VerificationResult, VerifiedStatement
from modelsign.verify._claims import ClaimsReport

__all__ = [
    "ClaimFacts",
    "Facts",
    "FileFacts",
    "LineageEdgeFacts",
    "LineageFacts",
    "LineageNodeFacts",
    "RejectedClaim",
    "SignerFacts",
    "build_facts",
]

class _Token:
    __slots__ = ()


_TOKEN = _Token()


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------- the facts
@dataclass(frozen=True, slots=True)
class SignerFacts:
    """Who signed and when, as the verifier established it.

    ``time`` is the transparency-log integration time when there is one (``timeSource ==
    "tlog"``), else the certificate's notBefore (``"certificate"``), else ``None`` (a bare key
    carries no trusted time). Never a time read from a predicate.
    """

    kind: Literal["keyless", "key", "certificate"]
    identity: str | None
    issuer: str | None
    extensions: Mapping[str, str]
    time: datetime | None
    time_source: Literal["tlog", "certificate"] | None
    anchor_sha256: str | None = None

    @classmethod
    def _from(cls, signer: Signer) -> SignerFacts:
        if signer.integrated_time is not None:
            t, src = signer.integrated_time, "tlog"
        elif signer.cert_not_before is not None:
            t, src = signer.cert_not_before, "certificate"
        else:
            t, src = None, None
        # Certificate extensions (OID -> value) and the fingerprint of the trust anchor a
        # certificate chain ended at, once the verifier reports them (docs/decisions/0009).
        ext = getattr(signer, "extensions", None) or {}
        anchor = getattr(signer, "anchor_fingerprint", None)
        return cls(signer.kind, signer.identity, signer.issuer,
                   {str(k): str(v) for k, v in dict(ext).items()}, t,
                   src, anchor if isinstance(anchor, str) else None)  # type: ignore[arg-type]

    def describe(self) -> str:
        if self.kind == "key":
            return f"the key {self.identity}"
        if self.kind == "certificate":
            return f"certificate {self.identity!r} (chained to {self.issuer!r})"
        return f"{self.identity} (issuer {self.issuer})"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "identity": self.identity, "issuer": self.issuer,
                "extensions": dict(self.extensions), "time": _iso(self.time),
                "timeSource": self.time_source}


@dataclass(frozen=True, slots=True)
class ClaimFacts:
    """A verified claim about this model. ``derivation`` is its parsed view when it is a
    modelsign derivation claim (SLSA provenance), else ``None``."""

    line: int | None
    predicate_type: str
    signer: SignerFacts
    predicate: Any
    derivation: DerivationView | None
    derivation_error: str | None = None

    def where(self) -> str:
        return f"claims.jsonl line {self.line}" if self.line is not None else "a claim"


@dataclass(frozen=True, slots=True)
class RejectedClaim:
    """A claim that did not verify. Only where it was and why: none of its content is a fact."""

    line: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class LineageNodeFacts:
    """An ancestor: a base model (``role == "base_model"``) or a dataset (``"dataset"``) of the
    model or of one of its ancestors. ``relation`` is how its child (``child``, a root digest)
    was derived from it; ``depth`` is 1 for a direct parent."""

    digest: str
    role: Literal["base_model", "dataset"]
    uri: str | None
    relation: str | None
    state: NodeState
    depth: int
    child: str
    signer: SignerFacts | None
    reason: str | None = None
    name: str | None = None

    def label(self) -> str:
        """As the lineage report names nodes: URI, else name, then the digest's first 12 hex."""
        who = self.uri or self.name or ""
        if not self.digest:
            return who or "?"
        return f"{who} sha256:{self.digest[:12]}".strip()


@dataclass(frozen=True, slots=True)
class LineageEdgeFacts:
    """``child`` was derived from ``parent`` (labels), as the child's verified claim says.
    ``digest``, ``uri`` and ``name`` are what that claim recorded for the parent;
    ``parent_digest`` is the parent node's root digest (the signed one of a Hub parent named by
    revision only; empty when unknown)."""

    child: str
    parent: str
    role: Literal["base_model", "dataset"]
    relation: str
    from_subject: bool
    digest: str | None = None
    uri: str | None = None
    name: str | None = None
    parent_digest: str = ""


@dataclass(frozen=True, slots=True)
class LineageFacts:
    """The ancestors of the model. ``resolved`` is false when the model has no verified
    provenance (nothing says what its parents are), or when its provenance names parents but
    the lineage was not walked; then ``nodes`` is empty and the lineage rules fail and say
    why. ``walked`` is true when a lineage graph was given (``verify --lineage``): only then
    are the ancestors' own claims (their datasets, their parents) known."""

    resolved: bool
    nodes: tuple[LineageNodeFacts, ...]
    why_unresolved: str | None = None
    edges: tuple[LineageEdgeFacts, ...] = ()
    walked: bool = False

    @property
    def models(self) -> tuple[LineageNodeFacts, ...]:
        """The base-model ancestors (what ``maxDepth``, ``requireSignedParents``,
        ``allowedRelations`` and ``parents`` judge); datasets are judged by ``datasets``."""
        return tuple(n for n in self.nodes if n.role == "base_model")

    @property
    def depth(self) -> int:
        return max((n.depth for n in self.models), default=0)


@dataclass(frozen=True, slots=True)
class FileFacts:
    path: str
    digest: str
    format: FileFormat

    @property
    def pickle(self) -> bool:
        return self.format in PICKLE_FORMATS


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a policy may look at, all of it verified. Build with :func:`build_facts`."""

    subject_name: str
    root_digest: str
    predicate_type: str
    signature: SignerFacts
    claims: tuple[ClaimFacts, ...]
    rejected_claims: tuple[RejectedClaim, ...]
    lineage: LineageFacts
    files: tuple[FileFacts, ...]
    _token: object = field(default=None, repr=False, compare=False)
    _cel: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise InternalError("Facts can only be built by modelsign.policy.build_facts",
                                hint="pass the VerificationResult of verify_model to build_facts")

    # -- derived views ----------------------------------------------------------------------
    @property
    def derivations(self) -> tuple[tuple[ClaimFacts, DerivationView], ...]:
        return tuple((c, c.derivation) for c in self.claims if c.derivation is not None)

    def frameworks(self) -> dict[str, list[tuple[str, ClaimFacts]]]:
        """Canonical package name -> [(version, the claim that recorded it)]."""
        out: dict[str, list[tuple[str, ClaimFacts]]] = {}
        for claim, view in self.derivations:
            for fw in (*view.frameworks, *view.runtimes):
                if fw.version is None:
                    continue
                out.setdefault(str(canonicalize_name(fw.name)), []).append((fw.version, claim))
        return out

    def cel_context(self) -> dict[str, Any]:
        """The documented CEL variables, as celpy values (computed once)."""
        if not self._cel:
            from modelsign.policy._cel import to_cel

            sig = self.signature.to_json()
            sig["time"] = self.signature.time
            sig.update({"subject": {"name": self.subject_name, "digest": self.root_digest},
                        "predicateType": self.predicate_type})
            claims = []
            for c in self.claims:
                signer = c.signer.to_json()
                signer["time"] = c.signer.time
                claims.append({"line": c.line, "predicateType": c.predicate_type,
                               "signer": signer, "predicate": c.predicate})
            nodes = []
            for n in self.lineage.nodes:
                s = None
                if n.signer is not None:
                    s = n.signer.to_json()
                    s["time"] = n.signer.time
                nodes.append({"digest": n.digest, "role": n.role, "uri": n.uri,
                              "name": n.name, "relation": n.relation,
                              "state": n.state, "depth": n.depth, "child": n.child,
                              "signer": s})
            frameworks = {name: sorted({v for v, _ in entries})
                          for name, entries in self.frameworks().items()}
            plain = {
                "signature": sig,
                "claims": claims,
                "lineage": {"resolved": self.lineage.resolved, "depth": self.lineage.depth,
                            "nodes": nodes,
                            "edges": [{"child": e.child, "parent": e.parent, "role": e.role,
                                       "relation": e.relation} for e in self.lineage.edges]},
                "files": [{"path": f.path, "digest": f.digest, "format": f.format,
                           "pickle": f.pickle} for f in self.files],
                "frameworks": frameworks,
            }
            self._cel.update({k: to_cel(v) for k, v in plain.items()})
        return dict(self._cel)


# ------------------------------------------------------------------------ what comes in
@dataclass(frozen=True, slots=True)
class _ClaimInput:
    line: int | None
    statement: VerifiedStatement | None = None
    error: str | None = None


def _claim_inputs(claims: ClaimsReport | Iterable[VerifiedStatement]) -> list[_ClaimInput]:
    """Lines of a :class:`ClaimsReport` (only ``ok`` lines carry a statement), or bare
    verified statements (numbered from 1)."""
    if isinstance(claims, ClaimsReport):
        out = [_ClaimInput(None, None, p) for p in claims.problems]
        for c in claims.claims:
            if c.ok and c.verified is not None:
                out.append(_ClaimInput(c.line, c.verified))
            else:  # a failed line may still hold a verified signature: never use it
                out.append(_ClaimInput(c.line, None, c.reason or "did not verify"))
        return out
    bare = []
    for i, statement in enumerate(claims, start=1):
        if not isinstance(statement, VerifiedStatement):
            raise InternalError(
                f"claim {i} is a {type(statement).__name__}, not a verified statement",
                hint="only modelsign.verify produces claims a policy may judge")
        bare.append(_ClaimInput(i, statement))
    return bare


def _files(result: VerificationResult, sniff_files: bool) -> tuple[FileFacts, ...]:
    root = Path(result.path)
    seen: dict[str, FileFacts] = {}
    for r in result.manifest.resources:
        if r.path in seen:
            continue  # shards of one file
        if sniff_files:
            target = root / r.path if root.is_dir() else root
            fmt = sniff(target)
        else:
            fmt = "unknown"
        digest = r.hex if r.start is None else ""
        seen[r.path] = FileFacts(r.path, digest, fmt)
    return tuple(sorted(seen.values(), key=lambda f: f.path))


def _hex(key: str | None) -> str:
    return key[7:] if key is not None and key.startswith("sha256:") else (key or "")


def _lineage(lineage: LineageGraph | None, claims: Sequence[ClaimFacts],
             root: str) -> LineageFacts:
    derivations = [c.derivation for c in claims if c.derivation is not None]
    if lineage is not None and derivations:
        if not isinstance(lineage, LineageGraph):
            raise InternalError(f"lineage is a {type(lineage).__name__}, not a LineageGraph",
                                hint="walk it with modelsign.lineage.verify_lineage")
        if lineage.root.digest != root:
            raise InternalError("the lineage graph is about another artifact",
                                expected=f"sha256:{root}",
                                actual=f"sha256:{lineage.root.digest}")
        labels = {n.key: (n.label() or n.key) for n in lineage.all_nodes}
        digests = {n.key: n.digest for n in lineage.all_nodes}
        nodes = []
        for n in lineage.nodes:
            if n.role not in ("base_model", "dataset"):  # pragma: no cover - the walker's
                raise InternalError(f"lineage node {n.key} has role {n.role!r}")
            nodes.append(LineageNodeFacts(
                n.digest, n.role, n.uri, n.relation, n.state, n.depth, _hex(n.child),
                SignerFacts._from(n.signer) if n.signer is not None else None, n.reason,
                n.name))
        edges = tuple(LineageEdgeFacts(labels.get(e.child, e.child), labels.get(e.parent, e.parent),
                                       e.role, e.relation, e.child == lineage.root.key,
                                       e.digest, e.uri, e.name, digests.get(e.parent, ""))
                      for e in lineage.edges)
        return LineageFacts(True, tuple(nodes), None, edges, walked=True)
    if lineage is not None and not isinstance(lineage, LineageGraph):
        raise InternalError(f"lineage is a {type(lineage).__name__}, not a LineageGraph",
                            hint="walk it with modelsign.lineage.verify_lineage")
    if not derivations:
        return LineageFacts(False, (), "no verified provenance claim names this model's parents")
    if not any(d.base_models for d in derivations):
        return LineageFacts(True, ())  # a verified claim says: no parents
    return LineageFacts(False, (), "the provenance names parents, but the lineage was not "
                                   "resolved (run with --lineage)")


def build_facts(result: VerificationResult, *,
                claims: ClaimsReport | Iterable[VerifiedStatement] = (),
                lineage: LineageGraph | None = None,
                sniff_files: bool = True) -> Facts:
    """The facts of a verified model, for :func:`~modelsign.policy.evaluate`.

    ``result`` must come from :func:`modelsign.verify.verify_model` and have verified.
    ``claims`` is the :class:`~modelsign.verify._claims.ClaimsReport` of ``verify_claims`` (only
    its ``ok`` lines become facts; the others are kept as line + reason), or bare
    :class:`VerifiedStatement` objects; a claim whose subject is not this model's root digest
    is rejected here too (belt and braces). ``lineage`` is the graph of
    :func:`modelsign.lineage.verify_lineage` for this model, or ``None`` when lineage was not
    resolved. With ``sniff_files``
    (default) the first bytes of each signed file are read to tell pickle-based files; without,
    every format is ``unknown`` (and ``serialization.pickle: deny|warn`` fails).
    """
    if not isinstance(result, VerificationResult):
        raise InternalError(f"build_facts needs a VerificationResult, got "
                            f"{type(result).__name__}",
                            hint="verify the model with modelsign.verify.verify_model first")
    if not result.verified:
        raise InternalError("build_facts was given a model that did not verify",
                            hint="a policy only ever judges a verified model")
    verified: list[ClaimFacts] = []
    rejected: list[RejectedClaim] = []
    for c in _claim_inputs(claims):
        if c.statement is None:
            rejected.append(RejectedClaim(c.line, c.error or "did not verify"))
            continue
        if not isinstance(c.statement, VerifiedStatement):
            raise InternalError(  # pragma: no cover - ClaimsReport lines hold verified ones
                "a claim's statement is not a VerifiedStatement")
        stmt = c.statement.statement
        digests = [s.digest.get("sha256") for s in stmt.subjects]
        if digests != [result.root_digest]:
            rejected.append(RejectedClaim(
                c.line, f"its subject is sha256:{(digests or ['-'])[0]}, not this model's root "
                f"digest sha256:{result.root_digest}"))
            continue
        view: DerivationView | None = None
        error: str | None = None
        if stmt.predicate_type == SLSA_PROVENANCE_V1:
            try:
                view = parse_provenance(stmt)
            except ModelsignError as e:
                error = str(e)
        verified.append(ClaimFacts(c.line, stmt.predicate_type,
                                   SignerFacts._from(c.statement.signer), stmt.predicate,
                                   view, error))
    return Facts(
        subject_name=result.subject_name,
        root_digest=result.root_digest,
        predicate_type=result.predicate_type,
        signature=SignerFacts._from(result.signer),
        claims=tuple(verified),
        rejected_claims=tuple(rejected),
        lineage=_lineage(lineage, verified, result.root_digest),
        files=_files(result, sniff_files),
        _token=_TOKEN,
    )
