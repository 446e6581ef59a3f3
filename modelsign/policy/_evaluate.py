"""``evaluate(policy, facts)``: apply every rule of a policy to the verified facts of a model.

Pure: no I/O, no network, time only through ``clock``. Each configured rule gives one
:class:`~modelsign.policy.RuleResult` with a reason that says what was found and what the policy
asks, so an operator can act on it. Rules that need facts which were not established (no verified
provenance, lineage not resolved, no trusted signing time) *fail* and say what is missing: a
policy is never satisfied by the absence of evidence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelsign.errors import InternalError
from modelsign.lineage import ParentRule as LineageParentRule
from modelsign.lineage import SignerRule as LineageSignerRule
from modelsign.lineage import rule_for
from modelsign.policy._cel import (
    DEFAULT_MAX_STEPS,
    DEFAULT_TIMEOUT,
    CelError,
    compile_condition,
    evaluate_condition,
    to_cel,
)
from modelsign.policy._facts import ClaimFacts, Facts, LineageNodeFacts, SignerFacts
from modelsign.policy._load import Loc, Policy
from modelsign.policy._model import (
    CLAIM_CONTEXT_NAMES,
    CONTEXT_NAMES,
    ClaimConditionSpec,
    ConditionSpec,
    SignerRule,
    condition_text,
)
from modelsign.policy._report import PolicyRef, PolicyReport, ReportSubject, RuleResult, RuleStatus

__all__ = ["DEFAULT_TOTAL_CEL_TIMEOUT", "evaluate"]

#: Seconds all conditions of one evaluation may take together.
DEFAULT_TOTAL_CEL_TIMEOUT = 10.0
_LIST = 5  # items named in one reason before "and N more"

_FORMAT_WORDS = {"pickle": "a pickle", "pytorch-zip": "a PyTorch zip archive with a pickle",
                 "numpy-object": "a NumPy array of pickled objects"}


_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$|@)")


#: The lineage's rule matcher needs a signer per rule; the policy only borrows its selection.
_SELECT_ONLY = LineageSignerRule(keys=(Path("<policy lineage.parents>"),))


@dataclass(frozen=True, slots=True)
class _DatasetUse:
    """One dataset as one verified claim names it: the model's own (``who`` = the claim's
    line) or an ancestor's (``who`` = "used by <ancestor>"). ``digests`` are the root digests
    it is known by (recorded, and resolved for a Hub revision); ``node`` is its lineage node."""

    label: str
    who: str
    digests: tuple[str, ...]
    uri: str | None
    node: LineageNodeFacts | None

    def describe(self) -> str:
        return f"{self.label} ({self.who})"


def _glob(uri: str, pattern: str) -> bool:
    """A URI glob (``*`` and ``?``, ``*`` crossing ``/``). A URI with ``.``/``..`` segments or
    whitespace matches nothing: ``hf://acme/../evil/x`` is not under ``hf://acme/*``."""
    if _DOT_SEGMENT.search(uri) or any(c.isspace() for c in uri):
        return False
    return fnmatchcase(uri, pattern)


def _printable(text: str) -> str:
    """Reasons quote identities and URIs from verified objects; never let them carry terminal
    control characters."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _render(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _some(items: Sequence[str], more: str = "more") -> str:
    shown = "; ".join(items[:_LIST])
    return shown + (f"; and {len(items) - _LIST} {more}" if len(items) > _LIST else "")


def _age(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return "1 second" if round(seconds) == 1 else f"{seconds:.0f} seconds"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Run:
    """One evaluation: the policy, the facts, the clock, the CEL budget, the results."""

    def __init__(self, policy: Policy, facts: Facts, now: datetime, max_steps: int,
                 timeout: float, total_timeout: float) -> None:
        self.policy = policy
        self.doc = policy.document
        self.facts = facts
        self.now = now
        self.max_steps = max_steps
        self.timeout = timeout
        self.deadline = time.monotonic() + total_timeout
        self.results: list[RuleResult] = []

    # -- plumbing --------------------------------------------------------------------------
    def add(self, loc: Loc, status: RuleStatus, reason: str) -> None:
        self.results.append(RuleResult(rule=_render(loc), status=status,
                                       reason=_printable(reason), line=self.policy.line_of(loc)))

    def cel(self, source: str, names: frozenset[str],
            extra: dict[str, Any] | None = None) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CelError("the policy's total time for conditions ran out before this one "
                           "(earlier conditions are too slow)", kind="budget")
        program = compile_condition(source, names)
        context = self.facts.cel_context()
        if extra:
            context.update(extra)
        return evaluate_condition(program, context, max_steps=self.max_steps,
                                  timeout=min(self.timeout, left))

    # -- signers ---------------------------------------------------------------------------
    def describe_rule(self, rule: SignerRule) -> str:
        if rule.public_key is not None:
            return f"the key {rule.public_key} ({self.policy.key_ids.get(rule.public_key, '?')})"
        if rule.certificate_chain is not None:
            subjects = [s for s, _ in self.policy.anchors.get(rule.certificate_chain, ())]
            return f"a certificate chaining to {rule.certificate_chain} ({', '.join(subjects)})"
        who = (f"{rule.identity}" if rule.identity is not None
               else f"an identity matching {rule.identity_regex}")
        pins = ", ".join(f"{name}={value}" for name, value in rule.pins().values())
        return f"{who} (issuer {rule.issuer}{'; ' + pins if pins else ''})"

    def why_not(self, rule: SignerRule, signer: SignerFacts) -> str | None:
        """None when ``rule`` accepts ``signer``, else what differs."""
        import re

        if rule.public_key is not None:
            if signer.kind != "key":
                return f"signed by {signer.kind} material, not a key"
            want = self.policy.key_ids.get(rule.public_key)
            return None if signer.identity == want else f"a different key ({signer.identity})"
        if rule.certificate_chain is not None:
            if signer.kind != "certificate":
                return f"signed by {signer.kind} material, not a certificate chain"
            anchors = self.policy.anchors.get(rule.certificate_chain, ())
            if signer.anchor_sha256 is not None:  # the verifier says which anchor: exact
                return None if signer.anchor_sha256 in {fp for _, fp in anchors} \
                    else f"the chain ends at another anchor ({signer.issuer!r})"
            return None if signer.issuer in {s for s, _ in anchors} \
                else f"the chain ends at {signer.issuer!r}"
        if signer.kind != "keyless":
            return f"signed by {signer.kind} material, not a Sigstore identity"
        if signer.issuer != rule.issuer:
            return f"issuer {signer.issuer}"
        ident = signer.identity or ""
        if rule.identity is not None and ident != rule.identity:
            return f"identity {ident}"
        if rule.identity_regex is not None and not re.search(rule.identity_regex, ident):
            return f"identity {ident} does not match {rule.identity_regex}"
        for oid, (name, value) in rule.pins().items():
            got = signer.extensions.get(oid)
            if got != value:
                shown = "no such extension" if got is None else repr(got)
                return f"certificate {name} is {shown}, the policy pins {value!r}"
        return None

    def match(self, rules: Sequence[SignerRule], signer: SignerFacts) -> tuple[int | None, str]:
        """(index of the first accepting rule or None, the words for a refusal)."""
        misses = []
        for i, rule in enumerate(rules):
            why = self.why_not(rule, signer)
            if why is None:
                return i, ""
            misses.append(why)
        allowed = "; ".join(self.describe_rule(r) for r in rules)
        close = [m for m in misses if m.startswith("certificate ")]
        detail = f" ({close[0]})" if close else ""
        return None, f"but the policy allows only: {allowed}{detail}"

    def rule_signers(self) -> None:
        sig = self.facts.signature
        i, refusal = self.match(self.doc.signers, sig)
        if i is not None:
            self.add(("signers",), "pass", f"model.sig signed by {sig.describe()}, allowed by "
                     f"signers[{i}]")
        else:
            self.add(("signers",), "fail", f"model.sig signed by {sig.describe()}, {refusal}")

    # -- claims ----------------------------------------------------------------------------
    def rule_claims(self) -> None:
        for i, req in enumerate(self.doc.require_claims):
            loc: Loc = ("requireClaims", i)
            signers = req.signers or self.doc.signers
            candidates = [c for c in self.facts.claims if c.predicate_type == req.predicate_type]
            good: list[ClaimFacts] = []
            refusals: list[str] = []
            for claim in candidates:
                j, refusal = self.match(signers, claim.signer)
                if j is None:
                    refusals.append(f"{claim.where()} signed by {claim.signer.describe()}, "
                                    f"{refusal}")
                    continue
                failed = self.claim_conditions(req.conditions, claim)
                if failed:
                    refusals.append(f"{claim.where()}: {failed}")
                    continue
                good.append(claim)
            rejected = self.facts.rejected_claims
            unverified = ""
            if rejected:
                unverified = (f"; {len(rejected)} claim(s) did not verify and were not "
                              "considered: " + _some([f"line {r.line}: {r.reason}"
                                                      for r in rejected]))
            if len(good) >= req.min_count:
                where = ", ".join(c.where() for c in good)
                self.add(loc, "pass", f"{len(good)} verified claim(s) of {req.predicate_type} "
                         f"satisfy it ({where})")
                continue
            need = f"at least {req.min_count}" if req.min_count > 1 else "one"
            if not candidates:
                self.add(loc, "fail", f"needs {need} verified claim of {req.predicate_type}, "
                         f"found none{unverified}"
                         + ("" if rejected else "; attest the model (modelsign attest)"))
            else:
                self.add(loc, "fail", f"needs {need} verified claim of {req.predicate_type} "
                         f"that satisfies it, found {len(good)}: " + _some(refusals) + unverified)

    def claim_conditions(self, conditions: Sequence[str | ClaimConditionSpec],
                         claim: ClaimFacts) -> str | None:
        if not conditions:
            return None
        ctx = self.facts.cel_context()
        claim_cel = next(c for c, f in zip(ctx["claims"], self.facts.claims, strict=True)
                         if f is claim)
        extra = {"claim": claim_cel, "predicate": claim_cel[to_cel("predicate")]}
        for cond in conditions:
            expr, message = condition_text(cond)
            try:
                ok = self.cel(expr, CLAIM_CONTEXT_NAMES, extra)
            except CelError as e:
                return f"condition `{expr}` could not be evaluated: {e.message}"
            if not ok:
                return message or f"condition `{expr}` is false"
        return None

    def rule_conditions(self, base: Loc,
                        conditions: Sequence[str | ConditionSpec]) -> None:
        for k, cond in enumerate(conditions):
            expr, message = condition_text(cond)
            loc = (*base, k)
            try:
                ok = self.cel(expr, CONTEXT_NAMES)
            except CelError as e:
                self.add(loc, "fail", f"condition `{expr}` could not be evaluated: {e.message}")
                continue
            if ok:
                self.add(loc, "pass", f"condition `{expr}` is true")
            else:
                self.add(loc, "fail", message or f"condition `{expr}` is false")

    # -- datasets --------------------------------------------------------------------------
    def dataset_uses(self) -> list[_DatasetUse]:
        """Every dataset the verified facts name: the model's own claims, then (when the
        lineage was walked) every dataset an ancestor's verified claim names."""
        lin = self.facts.lineage
        by_digest = {n.digest: n for n in lin.nodes if n.role == "dataset" and n.digest}
        uses = [_DatasetUse(d.label() or "a dataset without name or digest", c.where(),
                            tuple(x for x in (d.sha256,) if x), d.uri,
                            by_digest.get(d.sha256 or ""))
                for c, view in self.facts.derivations for d in view.datasets]
        for e in dict.fromkeys(e for e in lin.edges if e.role == "dataset" and not e.from_subject):
            digests = tuple(dict.fromkeys(x for x in (e.digest, e.parent_digest) if x))
            who = e.uri or e.name or ""
            label = f"{who} sha256:{digests[0]}".strip() if digests else (who or e.parent)
            uses.append(_DatasetUse(label, f"used by {e.child}", digests, e.uri,
                                    by_digest.get(e.parent_digest)))
        return uses

    def rule_datasets(self) -> None:
        rules = self.doc.datasets
        if rules is None:
            return
        derivations = self.facts.derivations
        configured: list[Loc] = []
        if rules.allow is not None:
            configured.append(("datasets", "allow"))
        if rules.deny:
            configured.append(("datasets", "deny"))
        if rules.require_signed:
            configured.append(("datasets", "requireSigned"))
        if not derivations:
            for loc in configured:
                self.add(loc, "fail", "no verified provenance claim lists the datasets, so "
                         "they cannot be checked; attest the model with its --dataset(s)")
            return
        lin = self.facts.lineage
        uses = self.dataset_uses()
        # Without the walk only the model's own claims are known: what its ancestors were
        # trained on (and what its datasets were derived from) is not. Absence of evidence
        # fails (docs/decisions/0009-policy.md): a registry gates on the exit code.
        unjudged = None
        if not lin.walked and any(v.base_models or v.datasets for _, v in derivations):
            unjudged = ("only this model's own claims were judged: the lineage was not walked, "
                        "so the datasets of its ancestors (and those its datasets were derived "
                        "from) are unknown; verify with --lineage")
        unfollowed = [n for n in lin.nodes if n.state not in ("verified", "claim_invalid")]
        partial = "" if not unfollowed else (
            f"; {len(unfollowed)} ancestor(s) did not verify and were not followed, so their "
            f"own datasets are unknown (see the lineage): "
            + _some([n.label() for n in unfollowed]))

        def hits(refs: Sequence[str], u: _DatasetUse) -> bool:
            for ref in refs:
                if ref.startswith("sha256:"):
                    if ref[7:] in u.digests:
                        return True
                elif u.uri is not None and _glob(u.uri, ref):
                    return True
            return False

        def judged(loc: Loc, bad: list[str], fail: str, ok: str) -> None:
            if bad:
                self.add(loc, "fail", fail + ("; " + unjudged if unjudged else ""))
            elif unjudged:
                self.add(loc, "fail", f"{ok}, but {unjudged}")
            else:
                self.add(loc, "pass", ok + partial)

        if rules.allow is not None:
            bad = [u.describe() for u in uses if not hits(rules.allow, u)]
            judged(("datasets", "allow"), bad,
                   f"the provenance names dataset(s) the policy does not allow: {_some(bad)}; "
                   f"allowed: {', '.join(rules.allow)[:500]}",
                   f"all {len(uses)} dataset(s) are allowed")
        if rules.deny:
            bad = [u.describe() for u in uses if hits(rules.deny, u)]
            judged(("datasets", "deny"), bad,
                   f"the provenance names denied dataset(s): {_some(bad)}",
                   f"none of the {len(uses)} dataset(s) is denied")
        if rules.require_signed:
            bad = []
            for u in uses:
                if u.node is None:
                    bad.append(f"{u.describe()}: its own signature was not checked" + (
                        "" if lin.walked else " (lineage not resolved: verify with --lineage)"))
                elif u.node.state != "verified":
                    bad.append(f"{u.describe()}: {u.node.state.replace('_', ' ')}"
                               + (f" ({u.node.reason})" if u.node.reason else ""))
            if bad:
                self.add(("datasets", "requireSigned"), "fail",
                         f"every dataset must be signed and verified: {_some(bad)}")
            else:
                self.add(("datasets", "requireSigned"), "pass",
                         f"all {len(uses)} dataset(s) verified on their own signatures"
                         + partial)

    # -- lineage ---------------------------------------------------------------------------
    def rule_lineage(self) -> None:
        rules = self.doc.lineage
        if rules is None:
            return
        lin = self.facts.lineage
        unresolved = None if lin.resolved else (
            f"the lineage is unknown: {lin.why_unresolved}")
        if rules.max_depth is not None:
            loc: Loc = ("lineage", "maxDepth")
            if unresolved:
                self.add(loc, "fail", unresolved)
            elif lin.depth > rules.max_depth:
                deepest = max(lin.models, key=lambda n: n.depth)
                self.add(loc, "fail", f"the lineage is {lin.depth} generation(s) deep (down to "
                         f"{deepest.label()}), the policy allows at most {rules.max_depth}")
            else:
                self.add(loc, "pass", f"the lineage is {lin.depth} generation(s) deep "
                         f"(at most {rules.max_depth})")
        if rules.require_signed_parents:
            loc = ("lineage", "requireSignedParents")
            bad = [f"{n.label()}: {n.state.replace('_', ' ')}"
                   + (f" ({n.reason})" if n.reason else "")
                   for n in lin.models if n.state != "verified"]
            if unresolved:
                self.add(loc, "fail", unresolved)
            elif bad:
                self.add(loc, "fail", f"every ancestor must verify on its own signature: "
                         f"{_some(bad)}")
            else:
                self.add(loc, "pass", f"all {len(lin.models)} ancestor model(s) verified")
        if rules.allowed_relations is not None:
            loc = ("lineage", "allowedRelations")
            allowed = set(rules.allowed_relations)
            # The model's own steps come from its verified claims; the ancestors' from every
            # base-model edge of the lineage (a node with two children has two).
            edges: list[tuple[str, str, str]] = [
                (f"this model ({c.where()})", v.relation, "its base model(s)")
                for c, v in self.facts.derivations if v.base_models]
            edges += list(dict.fromkeys(
                (e.child, e.relation, e.parent) for e in lin.edges
                if e.role == "base_model" and not e.from_subject))
            bad = [f"{child} is a {rel} of {parent}" for child, rel, parent in edges
                   if rel not in allowed]
            if bad:
                self.add(loc, "fail", f"{_some(bad)}; the policy allows only "
                         f"{', '.join(rules.allowed_relations)}")
            elif unresolved:
                self.add(loc, "fail", unresolved)
            else:
                self.add(loc, "pass", f"{len(edges)} derivation step(s), all of "
                         f"{', '.join(rules.allowed_relations)}")
        # Ancestors are selected as `modelsign lineage --parent-*` selects them (the lineage's
        # own rule_for: digest patterns first, then the first matching glob over the recorded
        # URI, else the recorded name), so each ancestor is judged by one pattern's rules.
        # The lineage SignerRule is a placeholder: the policy's signers (with their pins) are
        # judged here, by self.match.
        selectors = [LineageParentRule(p.match, _SELECT_ONLY) for p in rules.parents]
        chosen: dict[str, list[LineageNodeFacts]] = {}
        if not unresolved:
            for n in lin.models:
                _, pattern = rule_for(selectors, digest=n.digest or None, uri=n.uri,
                                      name=n.name)
                if pattern is not None:
                    chosen.setdefault(pattern, []).append(n)
        for j, parent in enumerate(rules.parents):
            loc = ("lineage", "parents", j)
            if unresolved:
                self.add(loc, "fail", unresolved)
                continue
            matched = chosen.get(parent.match, [])
            signers = tuple(s for p in rules.parents if p.match == parent.match
                            for s in p.signers)
            bad = []
            for n in matched:
                if n.state != "verified" or n.signer is None:
                    bad.append(f"{n.label()}: {n.state.replace('_', ' ')}")
                    continue
                i, refusal = self.match(signers, n.signer)
                if i is None:
                    bad.append(f"{n.label()} signed by {n.signer.describe()}, {refusal}")
            if bad:
                self.add(loc, "fail", f"ancestors matching {parent.match}: {_some(bad)}")
            elif matched:
                self.add(loc, "pass", f"{len(matched)} ancestor(s) matching {parent.match} "
                         "signed by an allowed signer")
            else:
                self.add(loc, "warn", self.selects_nothing(parent.match, selectors[j]))
        self.rule_conditions(("lineage", "conditions"), rules.conditions)

    def selects_nothing(self, pattern: str, selector: LineageParentRule) -> str:
        """Why a parents rule judged no ancestor (a warning: a typo must not read as a pass)."""
        models = self.facts.lineage.models
        if not models:
            return (f"no ancestor matches {pattern}: the model has no ancestor models, so the "
                    "rule judged nothing")
        taken = [n.label() for n in models
                 if selector.matches(digest=n.digest or None, uri=n.uri, name=n.name)]
        if taken:
            return (f"no ancestor matches {pattern} first: {_some(taken)} also match it, but "
                    "a digest pattern or an earlier glob selected them, so this rule judged "
                    "nothing")
        return (f"no ancestor matches {pattern}, so the rule judged nothing; the ancestors are "
                f"{_some([n.label() for n in models])} (a glob matches the recorded URI, else "
                "the recorded name; select one ancestor by sha256:<root digest>)")

    # -- frameworks ------------------------------------------------------------------------
    def rule_frameworks(self) -> None:
        if not self.doc.frameworks:
            return
        recorded = self.facts.frameworks()
        have_provenance = bool(self.facts.derivations)
        for name, spec_text in self.doc.frameworks.items():
            loc: Loc = ("frameworks", name)
            spec = SpecifierSet(spec_text)
            if not have_provenance:
                self.add(loc, "fail", f"no verified provenance claim records the frameworks; "
                         f"{name} {spec_text} cannot be checked")
                continue
            entries = recorded.get(str(canonicalize_name(name)), [])
            if not entries:
                self.add(loc, "warn", f"the provenance does not record {name}, so {spec_text} "
                         "was not checked")
                continue
            bad = []
            for version, claim in entries:
                try:
                    ok = spec.contains(Version(version), prereleases=True)
                except InvalidVersion:
                    bad.append(f"{name} {version!r} ({claim.where()}) is not a PEP 440 version")
                    continue
                if not ok:
                    bad.append(f"{name} {version} ({claim.where()})")
            if bad:
                self.add(loc, "fail", f"trained with {_some(bad)}, but the policy requires "
                         f"{name}{spec_text}")
            else:
                versions = ", ".join(sorted({v for v, _ in entries}))
                self.add(loc, "pass", f"{name} {versions} satisfies {spec_text}")

    # -- maxAge ----------------------------------------------------------------------------
    def rule_max_age(self) -> None:
        limit = self.doc.max_age_delta
        if limit is None:
            return
        sig = self.facts.signature
        if sig.time is None:
            self.add(("maxAge",), "fail", f"model.sig has no trusted signing time (signed with "
                     f"{sig.kind} material: no transparency-log entry or certificate), so its "
                     f"age cannot be checked against {self.doc.max_age}; sign keylessly or "
                     "with a certificate")
            return
        age = (self.now - sig.time).total_seconds()
        source = "transparency-log time" if sig.time_source == "tlog" else "certificate time"
        if age > limit.total_seconds():
            self.add(("maxAge",), "fail", f"model.sig was signed {_age(age)} ago ({source} "
                     f"{_iso(sig.time)}), the policy allows at most {self.doc.max_age}; "
                     "ask the publisher to re-sign")
        else:
            self.add(("maxAge",), "pass", f"model.sig was signed {_age(max(age, 0))} ago "
                     f"({source} {_iso(sig.time)}), within {self.doc.max_age}")

    # -- serialization ---------------------------------------------------------------------
    def rule_serialization(self) -> None:
        rules = self.doc.serialization
        if rules is None:
            return
        loc: Loc = ("serialization", "pickle")
        pickles = [f"{f.path} ({_FORMAT_WORDS.get(f.format, f.format)})"
                   for f in self.facts.files if f.pickle]
        unknown = [f.path for f in self.facts.files if f.format == "unknown"]
        if unknown and rules.pickle != "allow":
            self.add(loc, "fail", f"the formats of {len(unknown)} file(s) were not inspected "
                     "(facts built with sniff_files=False), so pickle cannot be ruled out")
            return
        if rules.pickle == "allow":
            self.add(loc, "pass", f"pickle allowed; {len(pickles)} pickle-based file(s)")
        elif not pickles:
            self.add(loc, "pass", f"no pickle-based files among {len(self.facts.files)}")
        elif rules.pickle == "warn":
            self.add(loc, "warn", f"{len(pickles)} pickle-based file(s), which can run code "
                     f"when loaded: {_some(pickles)}")
        else:
            self.add(loc, "fail", f"{len(pickles)} pickle-based file(s), which can run code "
                     f"when loaded: {_some(pickles)}; the policy denies pickle: publish "
                     "safetensors instead")


def evaluate(policy: Policy, facts: Facts, *, clock: Callable[[], datetime] = _utcnow,
             cel_max_steps: int = DEFAULT_MAX_STEPS, cel_timeout: float = DEFAULT_TIMEOUT,
             cel_total_timeout: float = DEFAULT_TOTAL_CEL_TIMEOUT) -> PolicyReport:
    """Apply ``policy`` to ``facts`` (from :func:`~modelsign.policy.build_facts`).

    Returns the report of every configured rule; ``report.verdict`` is ``"fail"`` when any rule
    failed. The CLI maps a failed verdict to exit code 1 (:class:`PolicyViolation`).
    ``clock`` gives "now" for ``maxAge`` and the report's time (tz-aware). Each CEL condition
    runs within ``cel_max_steps`` steps and ``cel_timeout`` seconds, all of them together within
    ``cel_total_timeout`` seconds.
    """
    if not isinstance(policy, Policy):
        raise InternalError(f"evaluate needs a Policy (load_policy), got {type(policy).__name__}")
    if not isinstance(facts, Facts):
        raise InternalError(f"evaluate needs Facts (build_facts), got {type(facts).__name__}")
    now = clock()
    if now.tzinfo is None:
        raise InternalError("the clock must return a time-zone-aware datetime")
    run = _Run(policy, facts, now, cel_max_steps, cel_timeout, cel_total_timeout)
    run.rule_signers()
    run.rule_claims()
    run.rule_datasets()
    run.rule_lineage()
    run.rule_frameworks()
    run.rule_max_age()
    run.rule_serialization()
    run.rule_conditions(("conditions",), policy.document.conditions)
    summary: dict[RuleStatus, int] = {"pass": 0, "fail": 0, "warn": 0}
    for r in run.results:
        summary[r.status] += 1
    doc = policy.document
    return PolicyReport(
        verdict="fail" if summary["fail"] else "pass",
        policy=PolicyRef(source=policy.source, sha256=policy.sha256,
                         name=doc.metadata.name if doc.metadata else None),
        subject=ReportSubject(name=facts.subject_name, digest={"sha256": facts.root_digest}),
        evaluated_at=now,
        summary=summary,
        rules=tuple(run.results),
    )
