"""Lineage values: who may sign what (rules), the remote budget, and the frozen graph.

:class:`LineageGraph` is the result of :func:`modelsign.lineage.verify_lineage`: one
:class:`LineageNode` per artifact (the subject first, as ``root``; its ancestors in ``nodes``) and
one :class:`LineageEdge` per "child was derived from parent" link a verified claim states. A node's
``state`` says whether it verified on its *own* signature, under the rule chosen for *it*; a child
never vouches for its parent. Only :mod:`modelsign.lineage` builds graphs (a private token, as
for the verifier's objects), and every signer in one is a :class:`~modelsign.verify.Signer` that
:mod:`modelsign.verify` established.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from modelsign.errors import InputError, InternalError
from modelsign.verify import Identity, Signer, VerificationResult

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "LINEAGE_SCHEMA_ID",
    "NODE_STATES",
    "Budget",
    "BytesCheck",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "NodeState",
    "ParentRule",
    "Role",
    "SignerRule",
    "Source",
]

#: The six node states (issue 5), spelled as the policy layer reads them.
NodeState = Literal["verified", "identity_not_allowed", "unsigned", "digest_mismatch",
                    "unresolved", "claim_invalid"]
NODE_STATES: tuple[NodeState, ...] = ("verified", "identity_not_allowed", "unsigned",
                                      "digest_mismatch", "unresolved", "claim_invalid")
#: ``subject`` is the artifact lineage was asked about; the others are how a child names a parent.
Role = Literal["subject", "base_model", "dataset"]
#: Where a node's signature came from: the artifact's own directory (the subject, or
#: ``--upstream``), the provenance store, or the Hugging Face Hub.
Source = Literal["local", "store", "hub"]
#: How a node's bytes were checked: re-hashed from disk, compared with the Hub's per-file sha256
#: metadata, or not at all (a store node: only the signature and its root digest are there).
BytesCheck = Literal["rehashed", "hub_metadata", "not_checked"]

DEFAULT_MAX_DEPTH = 16
LINEAGE_SCHEMA_ID = "https://modelsign.dev/schemas/lineage-report/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_PATTERN = 1024

PathLike = str | os.PathLike[str]


# ------------------------------------------------------------------------------------- rules
@dataclass(frozen=True, slots=True, kw_only=True)
class SignerRule:
    """Who may sign one artifact: its ``model.sig`` *and* its ``claims.jsonl`` lines.

    Any of: keyless ``identities`` (any may match), public ``keys`` (PEM files; any may match) and
    ``cert_chain`` (PEM CA files the signing certificate must chain to). Which one applies to a
    bundle is decided by the bundle's verification material, never by the payload.
    """

    identities: tuple[Identity, ...] = ()
    keys: tuple[Path, ...] = ()
    cert_chain: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "identities", tuple(self.identities))
        object.__setattr__(self, "keys", tuple(Path(k) for k in self.keys))
        object.__setattr__(self, "cert_chain", tuple(Path(c) for c in self.cert_chain))
        for rule in self.identities:
            if not isinstance(rule, Identity):
                raise InputError("a signer rule's identities must be modelsign.verify.Identity",
                                 actual=type(rule).__name__)
        if not (self.identities or self.keys or self.cert_chain):
            raise InputError("a signer rule needs at least one identity, key or CA certificate",
                             hint="e.g. SignerRule(keys=[Path('release.pub')])")

    @classmethod
    def of(cls, *, identities: Sequence[Identity] | Identity = (), key: PathLike | None = None,
           cert_chain: Sequence[PathLike] | PathLike | None = None) -> SignerRule:
        """The rule the verify options describe (``identities`` / ``key`` / ``cert_chain``)."""
        ids = (identities,) if isinstance(identities, Identity) else tuple(identities)
        if cert_chain is None:
            chain: tuple[Path, ...] = ()
        elif isinstance(cert_chain, (str, os.PathLike)):
            chain = (Path(cert_chain),)
        else:
            chain = tuple(Path(c) for c in cert_chain)
        return cls(identities=ids, keys=(Path(key),) if key is not None else (),
                   cert_chain=chain)

    def merged(self, other: SignerRule) -> SignerRule:
        return SignerRule(identities=(*self.identities, *other.identities),
                          keys=(*self.keys, *other.keys),
                          cert_chain=(*self.cert_chain, *other.cert_chain))

    def describe(self) -> str:
        parts = [r.describe() for r in self.identities]
        parts += [f"key {os.fspath(k)}" for k in self.keys]
        parts += [f"a certificate chaining to {os.fspath(c)}" for c in self.cert_chain]
        return " or ".join(parts)


@dataclass(frozen=True, slots=True)
class ParentRule:
    """Who may sign the ancestors ``pattern`` selects.

    ``pattern`` is ``sha256:<64 hex>`` (one artifact, by root digest) or a glob (``fnmatch``,
    case-sensitive) over the URI the child recorded for the parent (``hf://meta-llama/*``), or
    over its recorded name when it has no URI; ``*`` selects every parent. Digest patterns are
    tried first; among globs the first pattern that matches wins, and every rule given with that
    same pattern applies (any of their signers may have signed).

    The URI and name are what the *child's* claim says: a glob only chooses which signer the
    parent must have; the parent must then verify under it. Digest patterns are exact.
    """

    pattern: str
    signer: SignerRule

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern \
                or len(self.pattern) > _MAX_PATTERN:
            raise InputError("a parent pattern must be 1 to 1024 characters",
                             expected="sha256:<hex> or a URI glob such as hf://acme/*",
                             actual=repr(self.pattern)[:80])
        if self.pattern.startswith("sha256:") and not _HEX64.match(self.pattern[7:]):
            raise InputError("a digest pattern must be sha256:<64 lowercase hex>",
                             actual=self.pattern[:80])
        if not isinstance(self.signer, SignerRule):
            raise InputError("ParentRule.signer must be a SignerRule",
                             actual=type(self.signer).__name__)

    @property
    def is_digest(self) -> bool:
        return self.pattern.startswith("sha256:")

    def matches(self, *, digest: str | None, uri: str | None, name: str | None) -> bool:
        if self.is_digest:
            return digest is not None and self.pattern == f"sha256:{digest}"
        target = uri if uri is not None else name
        if self.pattern == "*":
            return True
        return target is not None and fnmatchcase(target, self.pattern)


def rule_for(rules: Sequence[ParentRule], *, digest: str | None, uri: str | None,
             name: str | None) -> tuple[SignerRule | None, str | None]:
    """The signer rule for one parent and the pattern that chose it (see :class:`ParentRule`)."""
    chosen: str | None = None
    for r in rules:
        if r.is_digest and r.matches(digest=digest, uri=uri, name=name):
            chosen = r.pattern
            break
    if chosen is None:
        for r in rules:
            if not r.is_digest and r.matches(digest=digest, uri=uri, name=name):
                chosen = r.pattern
                break
    if chosen is None:
        return None, None
    signer: SignerRule | None = None
    for r in rules:
        if r.pattern == chosen:
            signer = r.signer if signer is None else signer.merged(r.signer)
    return signer, chosen


@dataclass(frozen=True, slots=True)
class Budget:
    """Bounds on remote resolution (the Hub), for the whole walk: wall time and bytes fetched.

    Local directories and the store are not counted: nothing is fetched from them.
    """

    max_seconds: float = 120.0
    max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.max_seconds > 0:
            raise InputError("the remote time budget must be positive",
                             actual=repr(self.max_seconds))
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) \
                or self.max_bytes <= 0:
            raise InputError("the remote byte budget must be a positive integer",
                             actual=repr(self.max_bytes))


# ------------------------------------------------------------------------------------- graph
@dataclass(frozen=True, slots=True)
class LineageNode:
    """One artifact of the lineage, checked on its own signature under its own rule.

    ``key`` identifies the node in ``edges`` (``sha256:<hex>``, or ``hf://org/name@<commit>``
    for a Hub parent the child named by revision only). ``digest`` is its root digest (hex): the
    one the child recorded, or the signed one of a Hub parent named by revision; empty when
    neither is known (an unresolved Hub revision).

    ``role``, ``uri``, ``name``, ``relation`` and ``child`` come from the first edge that reached
    the node (breadth first: a shallowest child); ``edges`` has every link. ``depth`` is the
    greatest number of generations between the subject and this node (0 for the subject),
    ``min_depth`` the least; the walk's depth limit applies to ``min_depth``.

    ``signer`` is set only when the signature verified *and* its signer is allowed for this node;
    ``state`` tells the rest, with ``reason`` (``None`` when verified). ``bytes_check`` says how
    the artifact's bytes were checked, ``notes`` what else the reader should know (e.g. that a
    store node's bytes were not re-hashed).
    """

    key: str
    digest: str
    role: Role
    state: NodeState
    reason: str | None
    depth: int
    min_depth: int
    uri: str | None = None
    name: str | None = None
    git_commit: str | None = None
    relation: str | None = None
    child: str | None = None
    signer: Signer | None = None
    rule: str | None = None
    source: Source | None = None
    location: str | None = None
    bytes_check: BytesCheck | None = None
    claims_total: int = 0
    claims_verified: int = 0
    claim_failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    result: VerificationResult | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.state == "verified"

    def label(self) -> str:
        """A short human name: URI, else name, then the digest's first 12 hex."""
        who = self.uri or self.name or ""
        if self.digest:
            return f"{who} sha256:{self.digest[:12]}".strip()
        return who or self.key

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "digest": {"sha256": self.digest} if self.digest else None,
            "role": self.role,
            "name": self.name,
            "uri": self.uri,
            "gitCommit": self.git_commit,
            "relation": self.relation,
            "child": self.child,
            "state": self.state,
            "reason": self.reason,
            "depth": self.depth,
            "minDepth": self.min_depth,
            "signer": self.signer.to_json() if self.signer is not None else None,
            "rule": self.rule,
            "source": self.source,
            "location": self.location,
            "bytes": self.bytes_check,
            "claims": {"total": self.claims_total, "verified": self.claims_verified,
                       "failures": list(self.claim_failures)},
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """``child`` (a node key) was derived from ``parent``, as the child's verified claim at
    ``claim_line`` of its ``claims.jsonl`` says. ``role`` is what the parent was to the child
    (``base_model`` or ``dataset``), ``relation`` the claim's relation (``finetune``, ``merge``,
    ...). ``digest``/``git_commit``/``uri``/``name`` are what the child recorded for the parent.
    ``cycle`` marks the edge that closes a cycle (the child's claim names one of its own
    descendants, impossible for honest content-addressed artifacts)."""

    child: str
    parent: str
    role: Literal["base_model", "dataset"]
    relation: str
    claim_line: int
    digest: str | None = None
    git_commit: str | None = None
    uri: str | None = None
    name: str | None = None
    cycle: bool = False

    @property
    def label(self) -> str:
        return self.relation if self.role == "base_model" else f"dataset ({self.relation})"

    def to_json(self) -> dict[str, Any]:
        return {"child": self.child, "parent": self.parent, "role": self.role,
                "relation": self.relation, "claimLine": self.claim_line,
                "digest": {"sha256": self.digest} if self.digest else None,
                "gitCommit": self.git_commit, "uri": self.uri, "name": self.name,
                "cycle": self.cycle}


class _Token:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<modelsign.lineage token>"


_TOKEN = _Token()


@dataclass(frozen=True, slots=True)
class LineageGraph:
    """The verified lineage of one artifact: a DAG (a merge has several parents), frozen.

    ``root`` is the subject; ``nodes`` its ancestors (base models and datasets, each once, in
    breadth-first order); ``edges`` every derivation link. ``ok`` only when every node, the
    subject included, is ``verified``. Nodes carry the fields the policy layer reads
    (``digest, role, uri, relation, state, depth, child, signer, reason``); edges carry every
    relation, including those of a node's second and later children.
    """

    path: str
    root: LineageNode
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]
    max_depth: int
    warnings: tuple[str, ...] = ()
    _token: InitVar[object] = None

    def __post_init__(self, _token: object) -> None:
        if _token is not _TOKEN:
            raise InternalError("a LineageGraph can only be built by modelsign.lineage",
                                hint="call modelsign.lineage.verify_lineage")

    @property
    def all_nodes(self) -> tuple[LineageNode, ...]:
        return (self.root, *self.nodes)

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.all_nodes)

    @property
    def verdict(self) -> Literal["verified", "failed"]:
        return "verified" if self.ok else "failed"

    @property
    def failures(self) -> tuple[LineageNode, ...]:
        return tuple(n for n in self.all_nodes if not n.ok)

    @property
    def depth(self) -> int:
        """Generations of ancestors: the longest chain from the subject (0 without parents)."""
        return max((n.depth for n in self.nodes), default=0)

    def node(self, key: str) -> LineageNode:
        for n in self.all_nodes:
            if n.key == key:
                return n
        raise KeyError(key)

    def by_digest(self, digest: str) -> LineageNode:
        for n in self.all_nodes:
            if n.digest == digest:
                return n
        raise KeyError(digest)

    def parents(self, key: str) -> tuple[LineageEdge, ...]:
        return tuple(e for e in self.edges if e.child == key)

    def children(self, key: str) -> tuple[LineageEdge, ...]:
        return tuple(e for e in self.edges if e.parent == key)

    def describe_failures(self) -> list[str]:
        """One line per failed node: ``<label>: <state>: <reason>``."""
        return [f"{n.label() or n.key}: {n.state.replace('_', ' ')}: {n.reason}"
                for n in self.failures]

    def summary(self) -> Mapping[str, int]:
        counts: dict[str, int] = {s: 0 for s in NODE_STATES}
        for n in self.all_nodes:
            counts[n.state] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The report document (schemas/lineage.schema.json)."""
        return {
            "schema": LINEAGE_SCHEMA_ID,
            "verdict": self.verdict,
            "path": self.path,
            "root": self.root.key,
            "maxDepth": self.max_depth,
            "depth": self.depth,
            "summary": {"nodes": len(self.all_nodes), "edges": len(self.edges),
                        **self.summary()},
            "nodes": [n.to_json() for n in self.all_nodes],
            "edges": [e.to_json() for e in self.edges],
            "warnings": list(self.warnings),
            "error": None,
        }

    def to_mermaid(self) -> str:
        from modelsign.lineage._render import mermaid

        return mermaid(self)

    def to_dot(self) -> str:
        from modelsign.lineage._render import dot

        return dot(self)
