"""``verify_lineage``: walk the provenance in ``claims.jsonl`` upward, verifying every link.

For the subject and then, breadth first, for every parent a *verified* derivation claim names:

1. resolve the parent by the root digest the child recorded: ``upstream`` directories first,
   then the provenance ``store``, then (``hf://`` URIs pinned to a commit) the ``hub``;
2. verify its own ``model.sig`` under the rule chosen for *it* (:class:`ParentRule`; a child
   never vouches for its parent) and check its bytes: re-hashed for a directory, compared with
   the Hub's per-file sha256 metadata for the Hub, not at all for the store (said on the node);
3. check that its signed root digest is the digest the child recorded;
4. verify its ``claims.jsonl`` (same rule) and queue the parents its derivation claims name.

Every artifact is verified once (memoized by key), the walk stops ``max_depth`` generations up,
cycles are found after the walk (the edge closing one is marked and the node whose claim closes
it is ``claim_invalid``), and remote resolution is bounded by a time and byte :class:`Budget`.
Failures are recorded on the node, never raised: only bad arguments raise
(:class:`~modelsign.errors.InputError`, exit 2).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization

from modelsign.errors import (
    IdentityError,
    InputError,
    KeyMaterialError,
    ModelsignError,
    PathError,
    SignatureError,
    SignatureFormatError,
)
from modelsign.hashing._spec import CLAIMS_FILE, SIGNATURE_FILE, HashSpec
from modelsign.lineage._hub import (
    HubClient,
    HubFiles,
    HubRef,
    RemoteBudgetExceeded,
    RemoteMeter,
    parse_hub_uri,
)
from modelsign.lineage._model import (
    _TOKEN,
    DEFAULT_MAX_DEPTH,
    Budget,
    LineageEdge,
    LineageGraph,
    LineageNode,
    NodeState,
    ParentRule,
    SignerRule,
    rule_for,
)
from modelsign.lineage._store import store_entry
from modelsign.manifest import Manifest
from modelsign.statements import manifest_from_statement
from modelsign.statements._bundle import (
    default_signature_path,
    load_bundle,
    material_kind,
    public_key_hint,
    read_bundle,
)
from modelsign.statements._provenance import Dependency, DerivationView
from modelsign.verify import (
    Identity,
    IntegrityFailure,
    Trust,
    VerificationResult,
    VerifiedStatement,
    verify_bundle,
    verify_model,
)
from modelsign.verify._claims import ClaimResult, verify_claims

__all__ = ["verify_lineage", "verify_with_rule"]

PathLike = str | os.PathLike[str]
_MAX_DEPTH_LIMIT = 1024


class _NotAllowed(Exception):
    """The bundle's verification material is of a kind, or names a key, the rule does not allow.

    Internal: always turned into an ``identity_not_allowed`` node state."""


# ----------------------------------------------------------------------------- signer rules
def _key_hint(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except OSError as e:
            raise KeyMaterialError(f"cannot read the public key: {e.strerror or e}",
                                   path=path) from e
        except (ValueError, TypeError) as e:
            raise KeyMaterialError("not a PEM public key", path=path,
                                   hint="pass the PEM public key (.pub.pem)") from e
        cache[path] = public_key_hint(key)
    return cache[path]


def _modes(bundle: bytes, rule: SignerRule, hints: dict[Path, str],
           trust: Trust | None) -> list[dict[str, Any]]:
    """The verifier arguments to try for ``bundle`` under ``rule``, chosen by the bundle's
    verification material (never by its payload). Raises :class:`_NotAllowed` when the rule
    has nothing for that material, and :class:`SignatureFormatError` for a malformed bundle."""
    obj = load_bundle(bundle)
    kind = material_kind(obj)
    if kind == "certificate":
        if not rule.identities:
            raise _NotAllowed(f"signed keylessly (Sigstore), but the rule for it allows only "
                              f"{rule.describe()}")
        return [{"identities": rule.identities, "trust": trust}]
    if kind == "x509CertificateChain":
        if not rule.cert_chain:
            raise _NotAllowed(f"signed with a certificate chain, but the rule for it allows "
                              f"only {rule.describe()}")
        return [{"cert_chain": rule.cert_chain}]
    if not rule.keys:
        raise _NotAllowed(f"signed with a key, but the rule for it allows only "
                          f"{rule.describe()}")
    hint = obj["verificationMaterial"]["publicKey"].get("hint")
    if isinstance(hint, str) and hint:
        keys = [k for k in rule.keys if _key_hint(k, hints) == hint.lower()]
        if not keys:
            raise _NotAllowed(f"signed with the key sha256:{hint.lower()[:64]} (as the bundle "
                              f"names it), which is not an allowed key: {rule.describe()}")
        return [{"key": keys[0]}]
    return [{"key": k} for k in rule.keys]


def _try_modes(modes: list[dict[str, Any]], call: Callable[..., Any]) -> Any:
    """Call with each mode in turn; return the first success, else raise the first failure."""
    first: ModelsignError | None = None
    for kwargs in modes:
        try:
            return call(**kwargs)
        except (SignatureError, IdentityError) as e:
            first = first or e
    assert first is not None
    raise first


def verify_with_rule(path: PathLike, rule: SignerRule, *, trust: Trust | None = None,
                     use_cache: bool = False,
                     _hints: dict[Path, str] | None = None) -> VerificationResult:
    """``verify_model`` of the artifact at ``path`` under ``rule`` (whichever of its signer kinds
    matches the signature's material). Raises as ``verify_model`` does; a signature whose kind or
    key the rule does not allow raises :class:`~modelsign.errors.IdentityError`."""
    hints = _hints if _hints is not None else {}
    sig = default_signature_path(Path(path))
    try:
        modes = _modes(read_bundle(sig), rule, hints, trust)
    except _NotAllowed as e:
        raise IdentityError(str(e), path=sig) from e
    return _try_modes(modes, lambda **kw: verify_model(path, use_cache=use_cache, **kw))  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- the walk
@dataclass
class _Rec:
    """A node while the walk builds it: the :class:`LineageNode` so far (each check replaces it
    with its findings; ``depth`` is set once the graph is complete) and what the walk needs."""

    node: LineageNode
    derivations: list[tuple[int, DerivationView]] = field(default_factory=list)
    walk: bool = False

    def fail(self, state: NodeState, reason: str) -> None:
        if self.node.state == "verified":  # the first failure found is the node's state
            self.node = replace(self.node, state=state, reason=reason)
        else:
            self.note(f"also {state.replace('_', ' ')}: {reason}")

    def note(self, text: str) -> None:
        self.node = replace(self.node, notes=(*self.node.notes, text))


@dataclass
class _Walk:
    subject_rule: SignerRule
    parents: Sequence[ParentRule]
    upstream: Mapping[str, Path]
    store: Path | None
    hub: HubClient | None
    fetch_files: bool
    max_depth: int
    include_datasets: bool
    trust: Trust | None
    use_cache: bool
    meter: RemoteMeter
    hints: dict[Path, str] = field(default_factory=dict)
    used_patterns: set[str] = field(default_factory=set)

    # -- one node ---------------------------------------------------------------------------
    def rule_of(self, rec: _Rec) -> SignerRule | None:
        n = rec.node
        if n.role == "subject":
            return self.subject_rule
        rule, pattern = rule_for(self.parents, digest=n.digest or None, uri=n.uri, name=n.name)
        rec.node = replace(n, rule=pattern)
        if pattern is not None:
            self.used_patterns.add(pattern)
        return rule

    def no_rule(self, rec: _Rec) -> str:
        n = rec.node
        what = n.uri or n.name or f"sha256:{n.digest}"
        return (f"no --parent-identity/--parent-key rule covers this parent ({what}); who may "
                f"sign it was not said, so its signature was not accepted; add a rule, e.g. "
                f"--parent-key 'sha256:{n.digest or '<hex>'}=PUB.pem' or "
                f"--parent-identity '{n.uri or '*'}=ID@ISSUER'")

    def check_local(self, rec: _Rec, path: Path, expected: str | None) -> None:
        rec.node = replace(rec.node, source="local", location=str(path))
        rule = self.rule_of(rec)
        sig = default_signature_path(path)
        if not sig.exists() and not sig.is_symlink():
            from modelsign.manifest import hash_model

            root = hash_model(path, HashSpec(use_cache=self.use_cache)).root_hex
            if expected is not None and root != expected:
                rec.node = replace(rec.node, bytes_check="rehashed", digest=expected)
                rec.fail("digest_mismatch", _mismatch(expected, root, signed=False))
                return
            rec.node = replace(rec.node, bytes_check="rehashed", digest=root)
            rec.fail("unsigned", f"no {SIGNATURE_FILE}: nobody vouches for this artifact "
                     f"(its bytes hash to sha256:{root}"
                     + (", the digest its child recorded)" if expected else ")"))
            if rule is not None:  # its claims can still be checked against the bytes' digest
                self.check_claims(rec, path, None, rule)
            else:
                rec.note("its claims were not checked: no rule says who may sign them")
            return
        if rule is None:
            rec.fail("identity_not_allowed", self.no_rule(rec))
            return
        try:
            result = verify_with_rule(path, rule, trust=self.trust, use_cache=self.use_cache,
                                      _hints=self.hints)
        except IntegrityFailure as e:
            rec.node = replace(rec.node, bytes_check="rehashed", signer=e.result.signer,
                               result=e.result,
                               digest=rec.node.digest or e.result.root_digest)
            bad = [f"{f.status} {f.name} (signed {f.expected or '-'}, on disk {f.actual or '-'})"
                   for f in e.result.failures]
            rec.fail("digest_mismatch",
                     f"the files differ from its own signature, which is for sha256:"
                     f"{e.result.root_digest}: " + "; ".join(bad[:5])
                     + (f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
                     + " (changed after it was signed)")
            return
        except IdentityError as e:
            rec.fail("identity_not_allowed", _text(e))
            return
        except (SignatureError, SignatureFormatError) as e:
            rec.fail("unsigned", f"{SIGNATURE_FILE} does not verify: {_text(e)}")
            return
        rec.node = replace(rec.node, bytes_check="rehashed", signer=result.signer, result=result)
        self.accept(rec, result.root_digest, expected)
        if rec.node.ok:
            self.check_claims(rec, path, None, rule)

    def accept(self, rec: _Rec, signed_root: str, expected: str | None) -> None:
        if expected is not None and signed_root != expected:
            rec.node = replace(rec.node, digest=expected)
            rec.fail("digest_mismatch", _mismatch(expected, signed_root, signed=True))
            return
        rec.node = replace(rec.node, digest=signed_root)

    def check_signature(self, rec: _Rec, sig: Path, source: str, rule: SignerRule,
                        expected: str | None) -> Manifest | None:
        """Read and verify the ``model.sig`` at ``sig`` under ``rule``, then check its signed
        root digest against ``expected``: the signed manifest, or ``None`` when the node failed."""
        try:
            data = read_bundle(sig)
        except (PathError, SignatureFormatError) as e:
            rec.fail("unsigned", f"{SIGNATURE_FILE} cannot be read: {_text(e)}")
            return None
        try:
            modes = _modes(data, rule, self.hints, self.trust)
            verified: VerifiedStatement = _try_modes(modes, lambda **kw: verify_bundle(
                data, source=source, **kw))
        except _NotAllowed as e:
            rec.fail("identity_not_allowed", str(e))
            return None
        except IdentityError as e:
            rec.fail("identity_not_allowed", _text(e))
            return None
        except (SignatureError, SignatureFormatError) as e:
            rec.fail("unsigned", f"{SIGNATURE_FILE} does not verify: {_text(e)}")
            return None
        rec.node = replace(rec.node, signer=verified.signer)
        try:
            manifest = manifest_from_statement(verified.statement)
        except SignatureFormatError as e:
            rec.fail("unsigned", f"{SIGNATURE_FILE} is not a model signature: {_text(e)}")
            return None
        self.accept(rec, manifest.root_hex, expected)
        return manifest if rec.node.ok else None

    def check_store(self, rec: _Rec, folder: Path, expected: str) -> None:
        rec.node = replace(rec.node, source="store", location=str(folder),
                           bytes_check="not_checked")
        rec.note("resolved from the provenance store: its signature and signed root digest were "
                 "verified; its bytes were not re-hashed (the store keeps no weights)")
        rule = self.rule_of(rec)
        sig = folder / SIGNATURE_FILE
        if not sig.is_file():
            rec.fail("unsigned", f"the store entry has no {SIGNATURE_FILE}")
            return
        if rule is None:
            rec.fail("identity_not_allowed", self.no_rule(rec))
            return
        if self.check_signature(rec, sig, str(sig), rule, expected) is not None:
            self.check_claims(rec, folder, folder / CLAIMS_FILE, rule)

    def check_hub(self, rec: _Rec, ref: HubRef, expected: str | None) -> None:
        rec.node = replace(rec.node, source="hub", location=str(ref))
        rule = self.rule_of(rec)
        if self.hub is None:
            rec.fail("unresolved", f"{ref} is on the Hub, and Hub resolution is off (pass --hub "
                     "to fetch its model.sig and claims.jsonl at that commit)")
            return
        if rule is None:
            rec.fail("identity_not_allowed", self.no_rule(rec))
            return
        try:
            self.meter.check_time(f"resolving {ref}")  # the walk's budget, whatever the client
            files = self.hub.fetch(ref, meter=self.meter)
        except ModelsignError as e:
            rec.fail("unresolved", _remote_failure(e, f"cannot read {ref} from the Hub"))
            return
        if files.signature is None:
            rec.fail("unsigned", f"{ref} has no {SIGNATURE_FILE} at that commit")
            return
        manifest = self.check_signature(rec, files.signature, f"{ref}:{SIGNATURE_FILE}", rule,
                                        expected)
        if manifest is None:
            return
        self.check_hub_bytes(rec, files, manifest, rule)
        if rec.node.ok:
            self.check_claims(rec, files.signature.parent, files.claims, rule, hub=True)

    def check_hub_bytes(self, rec: _Rec, files: HubFiles, manifest: Manifest,
                        rule: SignerRule) -> None:
        assert self.hub is not None
        cmp = self.hub.compare(files, manifest)
        rec.node = replace(rec.node, bytes_check="hub_metadata")
        if not cmp.ok:
            rec.fail("digest_mismatch", "the Hub's files at that commit differ from the signed "
                     "manifest: " + "; ".join(cmp.problems[:5])
                     + (" ..." if len(cmp.problems) > 5 else ""))
            return
        if not self.fetch_files:
            rec.note(
                f"bytes not downloaded: {cmp.checked} file(s) matched the Hub's sha256 metadata"
                + (f", {len(cmp.unchecked)} without Hub sha256 not checked"
                   if cmp.unchecked else "") + " (--fetch-files downloads and re-hashes)")
            return
        assert files.signature is not None
        try:
            kwargs = _modes(read_bundle(files.signature), rule, self.hints, self.trust)[0]
            result = self.hub.download_and_verify(files, meter=self.meter, **kwargs)
        except IntegrityFailure as e:
            rec.fail("digest_mismatch", f"the downloaded files differ from the signature: "
                     f"{_text(e)}")
            return
        except ModelsignError as e:
            rec.fail("unresolved", _remote_failure(e, f"cannot download {files.ref}"))
            return
        if result.root_digest != rec.node.digest:
            rec.fail("digest_mismatch",
                     _mismatch(rec.node.digest, result.root_digest, signed=True))
            return
        rec.node = replace(rec.node, result=result, bytes_check="rehashed")

    def check_claims(self, rec: _Rec, artifact: Path, claims_file: Path | None,
                     rule: SignerRule, *, hub: bool = False) -> None:
        """Verify every line; a failed line makes the node ``claim_invalid`` (its verified lines
        still name parents: each is a verified fact)."""
        rec.walk = True
        target = claims_file if claims_file is not None else (
            None if hub else (artifact / CLAIMS_FILE if artifact.is_dir()
                              else artifact.with_name(f"{artifact.name}.{CLAIMS_FILE}")))
        if target is None or not target.exists():
            return
        reports = []
        for kwargs in _claim_modes(rule, self.trust):
            reports.append(verify_claims(artifact, rec.node.digest, claims_file=target,
                                         **kwargs))
        best: dict[int, ClaimResult] = {}
        for report in reports:
            for c in report.claims:
                if c.line not in best or (c.ok and not best[c.line].ok):
                    best[c.line] = c
        problems = list(reports[0].problems) if reports else []
        lines = [best[n] for n in sorted(best)]
        failures = [f"{CLAIMS_FILE}: {p}" for p in problems]
        failures += [f"{CLAIMS_FILE}:{c.line}: {c.reason}" for c in lines if not c.ok]
        rec.node = replace(rec.node, claims_total=len(lines),
                           claims_verified=sum(1 for c in lines if c.ok),
                           claim_failures=tuple(failures))
        rec.derivations = [(c.line, c.derivation) for c in lines
                           if c.ok and c.derivation is not None]
        if failures:
            rec.fail("claim_invalid", f"{len(failures)} of {len(lines)} claim(s) do not verify "
                     f"(the verified ones were still followed): {failures[0]}")

    # -- resolution -------------------------------------------------------------------------
    def resolve(self, rec: _Rec) -> None:
        n = rec.node
        expected = n.digest or None
        if expected is not None and expected in self.upstream:
            self.check_local(rec, self.upstream[expected], expected)
            return
        if expected is not None and self.store is not None:
            folder = store_entry(self.store, expected)
            if folder is not None:
                self.check_store(rec, folder, expected)
                return
        ref = parse_hub_uri(n.uri, n.git_commit)
        if ref is not None:
            self.check_hub(rec, ref, expected)
            return
        tried = []
        if expected is not None:
            tried.append("not given with --upstream" if self.upstream or self.store is None
                         else "no --upstream given")
            tried.append(f"not in the store {self.store}" if self.store is not None
                         else "no --store given")
        if n.uri and n.uri.startswith("hf://") and not n.git_commit:
            tried.append("its hf:// URI is not pinned to a commit")
        elif n.uri and not n.uri.startswith("hf://"):
            tried.append(f"its URI {n.uri} is not a Hub URI")
        elif not n.uri:
            tried.append("no Hub URI recorded")
        rec.fail("unresolved", "parent not found: " + "; ".join(tried)
                 + (f"; pass --upstream sha256:{expected}=DIR or add it to a --store"
                    if expected else ""))

    def walk(self, root: _Rec) -> tuple[list[_Rec], list[LineageEdge]]:
        records: dict[str, _Rec] = {root.node.key: root}
        order = [root]
        edges: list[LineageEdge] = []
        seen_edges: set[tuple[str, str, str]] = set()
        queue: deque[_Rec] = deque([root])
        while queue:
            rec = queue.popleft()
            if not rec.walk:
                continue
            for line, view in rec.derivations:
                deps: list[Dependency] = list(view.base_models)
                if self.include_datasets:
                    deps += list(view.datasets)
                for dep in deps:
                    key = _dep_key(dep)
                    role: Literal["base_model", "dataset"] = (
                        "base_model" if dep.role == "base_model" else "dataset")
                    child = rec.node.key
                    if (child, key, role) in seen_edges:
                        continue
                    seen_edges.add((child, key, role))
                    edge = LineageEdge(
                        child=child, parent=key, role=role, relation=view.relation,
                        claim_line=line, digest=dep.sha256, git_commit=dep.git_commit,
                        uri=dep.uri, name=dep.name)
                    edges.append(edge)
                    if key in records:
                        continue
                    depth = rec.node.min_depth + 1
                    new = _Rec(LineageNode(
                        key=key, digest=edge.digest or "", role=role, state="verified",
                        reason=None, depth=depth, min_depth=depth, uri=edge.uri,
                        name=edge.name, git_commit=edge.git_commit, relation=edge.relation,
                        child=child))
                    records[key] = new
                    order.append(new)
                    self.rule_of(new)  # records the pattern that covers it, resolved or not
                    if depth > self.max_depth:
                        new.fail("unresolved", f"beyond the depth limit: {depth} "
                                 f"generations above the subject, the limit is "
                                 f"{self.max_depth} (--max-depth); not resolved")
                        continue
                    self.resolve(new)
                    queue.append(new)
        return order, edges


def _claim_modes(rule: SignerRule, trust: Trust | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if rule.identities:
        out.append({"identities": rule.identities, "trust": trust})
    out += [{"key": k} for k in rule.keys]
    if rule.cert_chain:
        out.append({"cert_chain": rule.cert_chain})
    return out


def _dep_key(dep: Dependency) -> str:
    if dep.sha256:
        return f"sha256:{dep.sha256}"
    if dep.uri and dep.git_commit:
        return f"{dep.uri}@{dep.git_commit}"
    return f"gitCommit:{dep.git_commit}"


def _mismatch(expected: str, actual: str, *, signed: bool) -> str:
    what = "its signature is for" if signed else "its bytes hash to"
    return (f"the child recorded sha256:{expected}, but {what} sha256:{actual}: another "
            f"artifact, or this one was changed after the child was attested")


def _text(e: ModelsignError) -> str:
    return str(e)[:600]


def _remote_failure(e: ModelsignError, what: str) -> str:
    """Why a Hub step failed: a spent budget says so itself, anything else after ``what``."""
    return _text(e) if isinstance(e, RemoteBudgetExceeded) else f"{what}: {_text(e)}"


def _cycles_and_depths(records: list[_Rec], edges: list[LineageEdge]
                       ) -> tuple[list[LineageEdge], dict[str, int]]:
    """Mark the edges that close cycles (depth-first from the subject) and compute each node's
    greatest distance from the subject over the remaining edges (a DAG)."""
    out = list(edges)
    by_child: dict[str, list[int]] = {}
    for i, e in enumerate(out):
        by_child.setdefault(e.child, []).append(i)
    recs = {r.node.key: r for r in records}
    root = records[0].node.key
    color: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[tuple[str, int]] = [(root, 0)]
    path: list[str] = [root]
    color[root] = 1
    while stack:
        key, i = stack[-1]
        children = by_child.get(key, [])
        if i >= len(children):
            stack.pop()
            path.pop()
            color[key] = 2
            continue
        stack[-1] = (key, i + 1)
        idx = children[i]
        parent = out[idx].parent
        state = color.get(parent, 0)
        if state == 1:
            e = out[idx]
            out[idx] = replace(e, cycle=True)
            loop = path[path.index(parent):]
            names = " -> ".join(_short(recs[k]) for k in [*loop, parent])
            recs[key].fail("claim_invalid",
                           f"cycle: its claim ({CLAIMS_FILE} line {e.claim_line}) names "
                           f"{_short(recs[parent])} as its {e.role.replace('_', ' ')}, but "
                           f"that artifact is itself derived from this one ({names}); "
                           "content-addressed artifacts cannot form a cycle, so a claim lies")
        elif state == 0:
            color[parent] = 1
            stack.append((parent, 0))
            path.append(parent)
    # longest distance over the acyclic edges (Kahn's order)
    acyclic = [e for e in out if not e.cycle]
    indeg: dict[str, int] = {r.node.key: 0 for r in records}
    for e in acyclic:
        indeg[e.parent] += 1
    depth = {r.node.key: 0 for r in records}
    ready = deque(k for k, d in indeg.items() if d == 0)
    kids: dict[str, list[LineageEdge]] = {}
    for e in acyclic:
        kids.setdefault(e.child, []).append(e)
    while ready:
        k = ready.popleft()
        for e in kids.get(k, []):
            depth[e.parent] = max(depth[e.parent], depth[k] + 1)
            indeg[e.parent] -= 1
            if indeg[e.parent] == 0:
                ready.append(e.parent)
    return out, depth


def _short(rec: _Rec) -> str:
    n = rec.node
    who = n.uri or n.name
    dig = f"sha256:{n.digest[:12]}" if n.digest else n.key
    return f"{who} ({dig})" if who else dig


def _upstream_map(upstream: Mapping[str, PathLike] | Sequence[tuple[str, PathLike]] | None
                  ) -> dict[str, Path]:
    items = list(upstream.items()) if isinstance(upstream, Mapping) else list(upstream or ())
    out: dict[str, Path] = {}
    for digest, directory in items:
        hexd = digest[7:] if isinstance(digest, str) and digest.startswith("sha256:") else digest
        if not isinstance(hexd, str) or len(hexd) != 64 or not set(hexd) <= set(
                "0123456789abcdef"):
            raise InputError("an upstream digest must be sha256:<64 lowercase hex>",
                             actual=repr(digest)[:80],
                             hint="e.g. --upstream sha256:<root digest>=./base-model")
        p = Path(directory)
        if not p.exists():
            raise PathError("upstream directory not found", path=p,
                            hint="check the DIR of --upstream sha256:<hex>=DIR")
        if hexd in out and out[hexd] != p:
            raise InputError(f"sha256:{hexd} is given twice with --upstream",
                             expected="one directory per digest",
                             actual=f"{out[hexd]} and {p}")
        out[hexd] = p
    return out


def verify_lineage(
    subject: PathLike | VerificationResult,
    *,
    identities: Sequence[Identity] | Identity = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] | PathLike | None = None,
    trust: Trust | None = None,
    parents: Sequence[ParentRule] = (),
    upstream: Mapping[str, PathLike] | Sequence[tuple[str, PathLike]] | None = None,
    store: PathLike | None = None,
    hub: HubClient | None = None,
    fetch_files: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
    budget: Budget | None = None,
    include_datasets: bool = True,
    use_cache: bool = False,
    clock: Callable[[], float] | None = None,
) -> LineageGraph:
    """Verify the lineage of the artifact ``subject`` (a directory or file, or the
    :class:`~modelsign.verify.VerificationResult` of one already verified) and return the graph.

    ``identities`` / ``key`` / ``cert_chain`` say who may sign the subject (its ``model.sig``
    and its claims), as for ``verify_model``. ``parents`` say who may sign each ancestor
    (:class:`ParentRule`); an ancestor no rule covers is ``identity_not_allowed``. Ancestors are
    resolved by the root digest their child recorded: ``upstream`` (``{digest: directory}``),
    then the ``store`` (see :func:`store_add`), then ``hub`` for ``hf://`` URIs pinned to a commit
    (nothing is fetched without a ``hub``; ``fetch_files`` downloads and re-hashes everything).
    ``budget`` bounds the Hub's time and bytes for the whole walk (``clock``: a monotonic clock
    in seconds). ``include_datasets=False`` follows base models only.

    Never raises for a lineage failure (see ``graph.ok`` and each node's ``state``); raises
    :class:`~modelsign.errors.InputError` for bad arguments.
    """
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) \
            or not 0 <= max_depth <= _MAX_DEPTH_LIMIT:
        raise InputError(f"the depth limit must be an integer from 0 to {_MAX_DEPTH_LIMIT}",
                         actual=repr(max_depth))
    for p in parents:
        if not isinstance(p, ParentRule):
            raise InputError("parents must be modelsign.lineage.ParentRule values",
                             actual=type(p).__name__)
    if hub is not None and not isinstance(hub, HubClient):
        raise InputError("hub must implement modelsign.lineage.HubClient",
                         actual=type(hub).__name__)
    if fetch_files and hub is None:
        raise InputError("fetch_files needs a hub (--fetch-files needs --hub)")
    given = isinstance(subject, VerificationResult)
    if not given:
        from modelsign.verify._signature import normalize, select_mode

        ids, chain = normalize(identities, cert_chain)
        select_mode(ids, key, chain, False)  # who may sign the subject: usage errors first
    else:
        ids, chain = (), ()
    store_path = Path(store) if store is not None else None
    if store_path is not None and not store_path.is_dir():
        raise PathError("the provenance store is not a directory", path=store_path,
                        hint="create it with modelsign store add PATH --store DIR")
    walker = _Walk(
        subject_rule=(SignerRule.of(identities=ids, key=key, cert_chain=chain) if not given
                      else _rule_of_result(subject, identities, key, cert_chain)),  # type: ignore[arg-type]
        parents=tuple(parents), upstream=_upstream_map(upstream), store=store_path, hub=hub,
        fetch_files=fetch_files, max_depth=max_depth, include_datasets=include_datasets,
        trust=trust, use_cache=use_cache, meter=RemoteMeter(budget or Budget(), clock))

    if given:
        result: VerificationResult = subject  # type: ignore[assignment]
        if not result.verified:
            raise InputError("verify_lineage was given a result that did not verify",
                             hint="pass the model path; lineage records its failure")
        path = Path(result.path)
        root = _Rec(LineageNode(
            key=f"sha256:{result.root_digest}", digest=result.root_digest, role="subject",
            state="verified", reason=None, depth=0, min_depth=0, name=result.subject_name,
            source="local", location=str(path), signer=result.signer, result=result,
            bytes_check="rehashed"))
        walker.check_claims(root, path, None, walker.subject_rule)
    else:
        path = Path(subject)  # type: ignore[arg-type]
        if not path.exists():
            raise PathError("model path does not exist", path=path,
                            hint="pass the model (or dataset) directory whose lineage to check")
        root = _Rec(LineageNode(key="", digest="", role="subject", state="verified",
                                reason=None, depth=0, min_depth=0,
                                name=path.resolve().name or str(path)))
        walker.check_local(root, path, None)
        root.node = replace(root.node, key=f"sha256:{root.node.digest}" if root.node.digest
                            else f"path:{path}")

    records, edges = walker.walk(root)
    edges, depths = _cycles_and_depths(records, edges)
    warnings = [f"--parent rule pattern {p.pattern!r} matched no parent"
                for p in dict.fromkeys(walker.parents)
                if p.pattern not in walker.used_patterns]
    nodes = [replace(r.node, depth=depths.get(r.node.key, r.node.min_depth)) for r in records]
    return LineageGraph(str(path), nodes[0], tuple(nodes[1:]), tuple(edges), max_depth,
                        tuple(dict.fromkeys(warnings)), _token=_TOKEN)


def _rule_of_result(result: VerificationResult, identities: Sequence[Identity] | Identity,
                    key: PathLike | None,
                    cert_chain: Sequence[PathLike] | PathLike | None) -> SignerRule:
    """Claims of an already verified subject are checked under the rule it was verified with."""
    if not (identities or key or cert_chain):
        raise InputError("say who may sign the subject's claims (identities=, key= or "
                         "cert_chain=), as for verify_model")
    return SignerRule.of(identities=identities, key=key, cert_chain=cert_chain)
