"""``verify_with_policy``: verify a model and its claims with the trust material a policy names,
then evaluate the policy. The one call ``modelsign verify PATH --policy FILE`` needs.

The verifier takes one kind of trust material per call (keyless identities, *a* key, or
certificate chains); a policy may name several. So:

* ``model.sig`` is verified with the material of its own kind from the policy's ``signers``
  (for a key-signed bundle, the policy key whose hint the bundle names);
* ``claims.jsonl`` is verified once per kind of material the policy names anywhere (every
  keyless identity together, each key, every certificate chain together), and each line keeps
  the result of the run that verified it, else the failure from the run of its own kind.

Everything else (what is verified, how, and what "verified" means) is the verifier's. Nothing
is fetched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modelsign.errors import IdentityError, ModelsignError
from modelsign.lineage import HubClient, LineageGraph, ParentRule, verify_lineage
from modelsign.lineage import SignerRule as LineageSigner
from modelsign.policy._evaluate import evaluate
from modelsign.policy._facts import Facts, build_facts
from modelsign.policy._load import Policy
from modelsign.policy._model import SignerRule
from modelsign.policy._report import PolicyReport
from modelsign.verify import Identity, Trust, VerificationResult, verify_model
from modelsign.verify._claims import ClaimResult, ClaimsReport, verify_claims

__all__ = ["PolicyVerification", "lineage_options", "verify_options", "verify_with_policy"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class PolicyVerification:
    """What ``verify --policy`` found: the verified model, its claims, its lineage (when
    walked), the facts, the report."""

    result: VerificationResult
    claims: ClaimsReport
    lineage: LineageGraph | None
    facts: Facts
    report: PolicyReport


def _identities(rules: tuple[SignerRule, ...]) -> list[Identity]:
    out: list[Identity] = []
    for r in rules:
        if r.kind == "keyless" and r.issuer is not None:
            ident = Identity(issuer=r.issuer, identity=r.identity,
                             identity_regex=r.identity_regex)
            if ident not in out:
                out.append(ident)
    return out


def _bundle_facts(raw: bytes) -> tuple[str | None, str | None]:
    """(material kind, key hint) of a bundle, read without verifying; (None, None) if unreadable
    (the verifier will say why)."""
    from modelsign.statements._bundle import load_bundle, material_kind

    try:
        bundle = load_bundle(raw)
        kind = material_kind(bundle)
    except ModelsignError:
        return None, None
    hint = None
    if kind == "publicKey":
        value = bundle["verificationMaterial"]["publicKey"].get("hint")
        hint = value.lower() if isinstance(value, str) else None
    return kind, hint


def verify_options(policy: Policy, rules: tuple[SignerRule, ...], raw_bundle: bytes,
                   *, what: str = "model.sig",
                   path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Keyword arguments for ``verify_model``/``verify_bundle`` that ``rules`` give for this
    bundle, most likely first. Raises :class:`IdentityError` (naming ``path``, the model) when
    the policy names no material of the bundle's kind."""
    kind, hint = _bundle_facts(raw_bundle)
    keys = [r.public_key for r in rules if r.public_key is not None]
    chains = [policy.resolve(r.certificate_chain) for r in rules
              if r.certificate_chain is not None]
    identities = _identities(rules)
    if kind == "publicKey":
        if not keys:
            raise IdentityError(f"{what} is signed with a key, but the policy's signers name no "
                                "publicKey", path=path,
                                hint="add the publisher's key to the policy (publicKey: FILE) "
                                     "if it is trusted")
        matching = [k for k in keys if policy.key_ids.get(k) == f"sha256:{hint}"]
        if hint is not None and not matching:
            raise IdentityError(
                f"{what} is signed with a key the policy does not name", path=path,
                expected=" or ".join(f"{k} ({policy.key_ids.get(k)})" for k in keys),
                actual=f"key sha256:{hint}",
                hint="check who signed this model; add their key only if it is trusted")
        return [{"key": policy.resolve(k)} for k in (matching or keys)]
    if kind == "x509CertificateChain":
        if not chains:
            raise IdentityError(f"{what} is signed with a certificate, but the policy's signers "
                                "name no certificateChain", path=path,
                                hint="add {certificateChain: FILE} to the policy's signers: if "
                                     "you trust that CA")
        return [{"cert_chain": chains}]
    if kind == "certificate" or kind is None:
        if not identities:
            if kind is None:  # unreadable: let the verifier report it with any option
                return [{"key": policy.resolve(keys[0])}] if keys else [{"cert_chain": chains}]
            raise IdentityError(f"{what} is a Sigstore keyless signature, but the policy's "
                                "signers name no Sigstore identity", path=path,
                                hint="add {issuer, identity} to the policy's signers: if you "
                                     "trust that signer")
        return [{"identities": identities}]
    raise IdentityError(f"{what} carries verification material of an unknown kind {kind!r}",
                        path=path)


def _claim_runs(policy: Policy) -> list[dict[str, Any]]:
    rules = policy.all_signers()
    runs: list[dict[str, Any]] = []
    identities = _identities(rules)
    if identities:
        runs.append({"identities": identities})
    for key in dict.fromkeys(r.public_key for r in rules if r.public_key is not None):
        runs.append({"key": policy.resolve(key)})
    chains = list(dict.fromkeys(policy.resolve(r.certificate_chain) for r in rules
                                if r.certificate_chain is not None))
    if chains:
        runs.append({"cert_chain": chains})
    return runs


def _run_kind(run: dict[str, Any]) -> str:
    return "certificate" if "identities" in run else \
        "publicKey" if "key" in run else "x509CertificateChain"


def _verify_claims(path: PathLike, policy: Policy, root: str, trust: Trust,
                   clock: Callable[[], datetime] | None,
                   claims_file: PathLike | None) -> ClaimsReport:
    from modelsign.claims import claims_path as default_claims_path
    from modelsign.claims import read_claims

    runs = _claim_runs(policy)
    reports = [(run, verify_claims(path, root, trust=trust, clock=clock,
                                   claims_file=claims_file, **run))
               for run in runs]
    if len(reports) == 1:
        return reports[0][1]
    target = Path(claims_file) if claims_file is not None else default_claims_path(Path(path))
    kinds = {line.number: _bundle_facts(line.raw) for line in read_claims(target).lines}
    first = reports[0][1]
    merged: list[ClaimResult] = []
    for i, line in enumerate(first.claims):
        candidates = [(run, rep.claims[i]) for run, rep in reports]
        ok = [c for _, c in candidates if c.ok]
        if ok:
            merged.append(ok[0])
            continue
        kind, hint = kinds.get(line.line, (None, None))
        same_kind = [(run, c) for run, c in candidates if _run_kind(run) == kind]
        same_key = [c for run, c in same_kind
                    if policy.key_ids.get(_key_name(policy, run)) == f"sha256:{hint}"]
        merged.append(same_key[0] if same_key else same_kind[0][1] if same_kind
                      else candidates[0][1])
    problems = tuple(dict.fromkeys(p for _, rep in reports for p in rep.problems))
    return ClaimsReport(first.path, first.root_digest, first.exists, tuple(merged), problems)


def _key_name(policy: Policy, run: dict[str, Any]) -> str:
    for name in policy.key_ids:
        if policy.resolve(name) == run.get("key"):
            return name
    return ""


def _reads_files(policy: Policy) -> bool:
    """Whether the policy looks at file formats (then every signed file's head is read)."""
    from modelsign.policy._model import condition_text

    doc = policy.document
    if doc.serialization is not None and doc.serialization.pickle != "allow":
        return True
    conditions = [*doc.conditions, *(doc.lineage.conditions if doc.lineage else ()),
                  *(c for r in doc.require_claims for c in r.conditions)]
    return any("files" in condition_text(c)[0] for c in conditions)


def lineage_options(policy: Policy) -> dict[str, Any]:
    """Keyword arguments for :func:`modelsign.lineage.verify_lineage` from a policy.

    The walker is told to accept every signer the policy names anywhere, for the subject's
    claims and for every ancestor (one ``*`` parent rule): it establishes who signed each node;
    the policy's ``lineage`` rules then judge whether that signer is the right one for that
    node (``parents[]``), so the two questions get separate answers in the report. The
    subject's claims can be checked under one key only (the walker's API): the first the
    policy names.
    """
    rules = policy.all_signers()
    identities = tuple(_identities(rules))
    keys = tuple(dict.fromkeys(policy.resolve(r.public_key) for r in rules
                               if r.public_key is not None))
    chains = tuple(dict.fromkeys(policy.resolve(r.certificate_chain) for r in rules
                                 if r.certificate_chain is not None))
    everyone = LineageSigner(identities=identities, keys=keys, cert_chain=chains)
    return {"identities": identities, "key": keys[0] if keys else None,
            "cert_chain": chains, "parents": [ParentRule("*", everyone)]}


def verify_with_policy(
    path: PathLike,
    policy: Policy,
    *,
    signature: PathLike | None = None,
    claims_file: PathLike | None = None,
    lineage: LineageGraph | bool = False,
    upstream: dict[str, PathLike] | None = None,
    store: PathLike | None = None,
    hub: HubClient | None = None,
    trust: Trust | None = None,
    ignore_unsigned_files: bool = False,
    use_cache: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> PolicyVerification:
    """Verify ``path`` (signature, signer, files; then every claim) with the trust material of
    ``policy``, and evaluate the policy over what verified.

    ``lineage``: ``True`` walks it (:func:`modelsign.lineage.verify_lineage` with
    :func:`lineage_options`, resolving parents from ``upstream`` {digest: directory}, the
    ``store`` and the ``hub``); a :class:`~modelsign.lineage.LineageGraph` of this model is used
    as is; ``False`` leaves it unresolved (the lineage rules then fail and say so).

    Raises what ``verify_model`` raises when the model itself does not verify (exit 1/2), and
    :class:`IdentityError` when the policy names no material of the signature's kind. Returns
    the report otherwise; the caller exits 1 when ``outcome.report.passed`` is false.
    ``trust`` overrides the policy's ``trustRoot``.
    """
    from modelsign.statements._bundle import default_signature_path, read_bundle

    trust = trust or policy.trust()
    sig_path = Path(signature) if signature is not None else default_signature_path(Path(path))
    options = verify_options(policy, policy.document.signers, read_bundle(sig_path),
                             what=sig_path.name, path=path)
    result: VerificationResult | None = None
    for i, opts in enumerate(options):
        try:
            result = verify_model(path, signature=signature, trust=trust,
                                  ignore_unsigned_files=ignore_unsigned_files,
                                  use_cache=use_cache, clock=clock, **opts)
            break
        except ModelsignError:
            if i == len(options) - 1:
                raise
    assert result is not None
    claims = _verify_claims(path, policy, result.root_digest, trust, clock, claims_file)
    graph: LineageGraph | None = None
    if isinstance(lineage, LineageGraph):
        graph = lineage
    elif lineage:
        graph = verify_lineage(result, trust=trust, upstream=upstream, store=store, hub=hub,
                               use_cache=use_cache, **lineage_options(policy))
    facts = build_facts(result, claims=claims, lineage=graph,
                        sniff_files=_reads_files(policy))
    report = evaluate(policy, facts, clock=clock) if clock is not None \
        else evaluate(policy, facts)
    return PolicyVerification(result, claims, graph, facts, report)
