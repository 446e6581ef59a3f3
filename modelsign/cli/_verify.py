"""``modelsign verify``: check a model against its signature and say who signed it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelsign.cli import _options as opt
from modelsign.cli._lineage import (
    FetchFilesOption,
    HubOption,
    MaxDepthOption,
    NoDatasetsOption,
    ParentCertChainOption,
    ParentIdentityOption,
    ParentIdentityRegexOption,
    ParentKeyOption,
    RemoteMaxBytesOption,
    RemoteTimeoutOption,
    StoreOption,
    UpstreamOption,
    lineage_kwargs,
    tree_text,
)
from modelsign.cli._ordered import ORDER_KEY, OrderedCommand
from modelsign.cli._text import err, out
from modelsign.errors import (
    ClaimError,
    InputError,
    InternalError,
    LineageError,
    ModelsignError,
    PolicyViolation,
)

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.verify import Trust, VerificationResult

_HELP = """Verify a model (or dataset) against its signature (OMS v1.0, or v0.1 of older producers).

Checks the signature and who made it, then re-hashes every file with the parameters recorded in the signature (never with defaults) and compares: a missing, extra or changed file fails, and each one is listed with its signed and its actual digest. The signature file and claims.jsonl are always left out of the comparison.

Keyless (Sigstore) signatures need an identity rule: --identity (exact) or --identity-regex (searched; anchor it with ^...$), each with its own --issuer; repeat the pairs to accept any of several signers (the n-th identity option goes with the n-th --issuer). The identity is read from the certificate that chained to the trusted root, never from the signed payload. The trusted root is Sigstore's production root bundled with sigstore-python: fully offline, nothing fetched or cached, unless --refresh-trust asks for a TUF update. Signatures made with a key need --key, those made with a certificate --cert-chain.

Examples:

  modelsign verify ./my-model --identity release@acme.example --issuer https://accounts.google.com

  modelsign verify ./my-model --identity-regex '^https://github\\.com/acme/.+@refs/tags/v' --issuer https://token.actions.githubusercontent.com

  modelsign verify ./my-model --key release.pub

  modelsign verify ./my-model --cert-chain ca.pem --format json > report.json

  modelsign verify ./my-model --trust-config private-sigstore.json --identity ci@corp.example --issuer https://sso.corp.example

Exit codes: 0 verified, 1 verification failed (files, signature, identity), 2 bad input (missing or malformed signature, bad options), 3 internal error.
"""

_POLICY = "Policy"
_LINEAGE = "Lineage (with --lineage)"


def verify(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Model (or dataset) directory or file to verify.",
                                         show_default=False)],
    signature: Annotated[Path | None, typer.Option(
        "--signature", "-s", help="The signature file \\[default: PATH/model.sig, or PATH.sig "
        "beside a single file].", show_default=False)] = None,
    identity: opt.IdentityOption = None,
    identity_regex: opt.IdentityRegexOption = None,
    issuer: opt.IssuerOption = None,
    unsafe_skip_identity_check: opt.UnsafeSkipIdentityCheckOption = False,
    key: opt.PublicKeyOption = None,
    cert_chain: opt.CertChainOption = None,
    trusted_root: opt.TrustedRootOption = None,
    trust_config: opt.TrustConfigOption = None,
    staging: opt.TrustStagingOption = False,
    refresh_trust: opt.RefreshTrustOption = False,
    ignore_unsigned_files: Annotated[bool, typer.Option(
        "--ignore-unsigned-files", help="Tolerate files the signature does not cover (listed "
        "as warnings). Bytes added to a signed file still fail.")] = False,
    use_cache: Annotated[bool, typer.Option(
        "--use-cache", help="Reuse cached digests of files whose size and mtime did not change "
        "(faster; trusts the local cache).")] = False,
    ignore_path: Annotated[list[str] | None, typer.Option(
        "--ignore-path", help="Also leave out this relative path when re-hashing (for "
        "signatures that did not record their ignore paths); a signed file is never left "
        "out. Repeatable.", show_default=False)] = None,
    no_claims: Annotated[bool, typer.Option(
        "--no-claims", help="Do not verify claims.jsonl (by default every line is verified with "
        "the same signer options as the signature).")] = False,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="Judge the verified model, claims (and lineage with --lineage) by this "
        "policy file; it says who may sign, so identity/key options are not used with it.",
        rich_help_panel=_POLICY, show_default=False)] = None,
    lineage: Annotated[bool, typer.Option(
        "--lineage", help="Also verify the lineage: every ancestor the verified claims name, "
        "each on its own signature (the options of modelsign lineage).",
        rich_help_panel=_LINEAGE)] = False,
    upstream: UpstreamOption = None,
    store: StoreOption = None,
    hub: HubOption = False,
    fetch_files: FetchFilesOption = False,
    remote_timeout: RemoteTimeoutOption = 120.0,
    remote_max_bytes: RemoteMaxBytesOption = 256 * 1024 * 1024,
    max_depth: MaxDepthOption = 16,
    no_datasets: NoDatasetsOption = False,
    parent_identity: ParentIdentityOption = None,
    parent_identity_regex: ParentIdentityRegexOption = None,
    parent_key: ParentKeyOption = None,
    parent_cert_chain: ParentCertChainOption = None,
    output_format: Annotated[opt.OutputFormat, typer.Option(
        "--format", help="text, or json: one report document on stdout (human text on "
        "stderr).")] = opt.OutputFormat.text,
) -> None:
    json_mode = output_format is opt.OutputFormat.json
    try:
        rules = opt.identity_rules(ctx.meta.get(ORDER_KEY, []), identity, identity_regex, issuer)
        trust = opt.keyless_trust_from_options(key=key, cert_chain=cert_chain,
                                               trusted_root=trusted_root,
                                               trust_config=trust_config, staging=staging,
                                               refresh=refresh_trust)
        if unsafe_skip_identity_check:
            _err("WARNING: --unsafe-skip-identity-check: the signer's identity is NOT checked; "
                 "anyone could have signed this model. Do not use this to decide what to load.")
        explicit_trust = bool(trusted_root or trust_config or staging or refresh_trust)
        lineage_opts = lineage_kwargs(
            upstream=upstream, store=store, hub=hub, fetch_files=fetch_files,
            remote_timeout=remote_timeout, remote_max_bytes=remote_max_bytes,
            max_depth=max_depth, no_datasets=no_datasets, parent_identity=parent_identity,
            parent_identity_regex=parent_identity_regex, parent_key=parent_key,
            parent_cert_chain=parent_cert_chain) if lineage else None
        if policy_file is not None:
            outcome = _verify_with_policy(
                path, policy_file, signature=signature, rules=bool(rules), key=key,
                cert_chain=cert_chain, unsafe=unsafe_skip_identity_check,
                trust=trust if explicit_trust else None, lineage_opts=lineage_opts,
                ignore_paths=ignore_path or [], no_claims=no_claims,
                ignore_unsigned_files=ignore_unsigned_files, use_cache=use_cache)
            result, claims, graph, report = outcome
        else:
            from modelsign.verify import verify_model

            result = verify_model(path, signature=signature, identities=rules, key=key,
                                  cert_chain=cert_chain or [], trust=trust,
                                  ignore_unsigned_files=ignore_unsigned_files,
                                  use_cache=use_cache, ignore_paths=ignore_path or [],
                                  unsafe_skip_identity=unsafe_skip_identity_check)
            claims = None
            if not no_claims:
                from modelsign.verify._claims import verify_claims

                claims = verify_claims(path, result.root_digest, identities=rules, key=key,
                                       cert_chain=cert_chain or [], trust=trust,
                                       unsafe_skip_identity=unsafe_skip_identity_check)
            graph = None
            if lineage_opts is not None:
                from modelsign.lineage import verify_lineage

                graph = verify_lineage(result, identities=rules, key=key,
                                       cert_chain=cert_chain or None, trust=trust,
                                       use_cache=use_cache, **lineage_opts)
            report = None
    except ModelsignError as e:
        from modelsign.verify import IntegrityFailure

        partial = e.result if isinstance(e, IntegrityFailure) else None
        if partial is not None:
            _print_files(partial, only_failures=True)
        if json_mode:
            _emit_json(_error_document(e, path, partial))
        raise
    except Exception as e:  # exit 3 is the app's; the report still says what happened
        if json_mode:
            _emit_json(_error_document(InternalError(f"internal error: {type(e).__name__}: {e}"),
                                       path, None))
        raise
    for w in result.warnings:
        _err(f"warning: {w}")
    failure = _first_failure(claims, graph, report, policy_file)
    lines = [_summary(result)]
    if claims is not None and claims.claims:
        lines += claims.summary_lines()
    if graph is not None:
        lines.append(tree_text(graph).rstrip("\n"))
    if report is not None:
        lines.append(report.to_text().rstrip("\n"))
    if json_mode:
        err("\n".join(lines), newlines=True)
        doc = result.to_json()
        doc["claims"] = claims.to_json() if claims is not None else None
        doc["lineage"] = graph.to_json() if graph is not None else None
        doc["policy"] = report.to_json() if report is not None else None
        if failure is not None:
            doc["verdict"] = "failed"
            doc["error"] = _error_json(failure)
        _emit_json(doc)
    else:
        out("\n".join(lines) + "\n")
    if failure is not None:
        raise failure


def _verify_with_policy(path: Path, policy_file: Path, *, signature: Path | None, rules: bool,
                        key: Path | None, cert_chain: list[Path] | None, unsafe: bool,
                        trust: Trust | None, lineage_opts: dict[str, Any] | None,
                        ignore_paths: list[str], no_claims: bool, ignore_unsigned_files: bool,
                        use_cache: bool) -> tuple[Any, Any, Any, Any]:
    """``verify --policy``: the policy names the signers, the policy judges what verified."""
    if rules or key is not None or cert_chain or unsafe:
        raise InputError("--policy says who may sign; it cannot be combined with --identity, "
                         "--identity-regex, --issuer, --key, --cert-chain or "
                         "--unsafe-skip-identity-check", hint="put the signers in the policy's "
                         "signers: list and drop those options")
    if ignore_paths or no_claims:
        raise InputError("--ignore-path and --no-claims cannot be used with --policy",
                         hint="a policy judges the model as signed, claims included")
    if lineage_opts is not None and (lineage_opts["parents"] or lineage_opts["max_depth"] != 16
                                     or not lineage_opts["include_datasets"]):
        raise InputError("with --policy, parent signers and lineage depth come from the policy's "
                         "lineage: section", hint="drop --parent-*, --max-depth, --no-datasets")
    from modelsign.policy import load_policy, verify_with_policy

    policy = load_policy(policy_file)
    outcome = verify_with_policy(
        path, policy, signature=signature, trust=trust, lineage=lineage_opts is not None,
        upstream={d: p for d, p in lineage_opts["upstream"]} if lineage_opts else None,
        store=lineage_opts["store"] if lineage_opts else None,
        hub=lineage_opts["hub"] if lineage_opts else None,
        ignore_unsigned_files=ignore_unsigned_files, use_cache=use_cache)
    return outcome.result, outcome.claims, outcome.lineage, outcome.report


def _first_failure(claims: Any, graph: Any, report: Any,
                   policy_file: Path | None) -> ModelsignError | None:
    """What makes a verified signature a failed verification, most decisive first.

    Under a policy the policy decides: a bad claims line fails only the rules that needed it
    (otherwise anyone able to append to claims.jsonl could fail every model)."""
    if report is not None:
        if report.passed:
            return None
        failed = report.failures
        return PolicyViolation(
            f"{len(failed)} policy rule(s) failed: "
            + "; ".join(f"{r.rule}: {r.reason}" for r in failed[:3])
            + (" ..." if len(failed) > 3 else ""),
            path=str(policy_file), hint="each FAIL line says what was found and what the policy "
            "asks; fix the model's signatures or claims, or the policy")
    if claims is not None and not claims.ok:
        failures = claims.describe_failures()
        return ClaimError(
            f"{len(failures)} claim(s) in claims.jsonl did not verify: " + "; ".join(failures[:3])
            + (" ..." if len(failures) > 3 else ""),
            hint="see the report for each line; pass the claim signers' identity options, or "
                 "--no-claims to check the signature alone")
    if graph is not None and not graph.ok:
        bad = graph.describe_failures()
        return LineageError(
            f"the lineage does not verify: {len(bad)} node(s) failed: " + "; ".join(bad[:3])
            + (" ..." if len(bad) > 3 else ""),
            hint="see the lineage tree; pass --upstream/--store for unresolved parents and "
                 "--parent-identity/--parent-key for who may sign them")
    return None


def _summary(r: VerificationResult) -> str:
    s = r.signer
    if s.kind == "keyless":
        who = (f"keyless signer {s.identity} (issuer {s.issuer}); transparency log index "
               f"{s.log_index}, {s.integrated_time:%Y-%m-%d %H:%M:%S} UTC"
               if s.integrated_time else f"keyless signer {s.identity} (issuer {s.issuer})")
    elif s.kind == "key":
        who = f"key {s.identity}"
    else:
        who = f"certificate {s.identity} (chained to {s.issuer})"
    ser = r.manifest.serialization
    ok = sum(1 for f in r.files if f.status == "ok")
    return (f"verified {r.path}: sha256:{r.root_digest}\n"
            f"  signed by {who}\n"
            f"  {ok} of {len(r.manifest.resources)} resources match ({ser.method}, "
            f"{ser.hash_type})")


def _print_files(r: VerificationResult, *, only_failures: bool) -> None:
    for f in r.files:
        if only_failures and f.ok:
            continue
        _err(f"  {f.status:8} {f.name}: signed {f.expected or '-'}, on disk {f.actual or '-'}")


def _error_document(e: ModelsignError, path: Path, partial: VerificationResult | None
                    ) -> dict[str, Any]:
    from modelsign.verify._result import REPORT_SCHEMA_ID

    doc: dict[str, Any] = partial.to_json() if partial is not None else {
        "schema": REPORT_SCHEMA_ID, "verdict": "failed", "path": str(path), "signature": None,
        "root_digest": None, "subject_name": None, "predicate_type": None,
        "serialization": None, "signer": None, "summary": None, "files": [], "warnings": [],
    }
    doc["verdict"] = "failed" if e.exit_code == 1 else "error"
    doc["error"] = _error_json(e)
    for part in ("claims", "lineage", "policy"):
        doc.setdefault(part, None)
    return doc


def _error_json(e: ModelsignError) -> dict[str, Any]:
    return {"type": type(e).__name__, "exit_code": e.exit_code, "message": str(e),
            "path": e.path, "expected": e.expected, "actual": e.actual, "hint": e.hint}


def _emit_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    err(line)  # one line; outside names (files, identities) made safe for a terminal


def register(app: typer.Typer) -> None:
    app.command("verify", help=_HELP, no_args_is_help=True, cls=OrderedCommand)(verify)
