"""``modelsign hf``: publish signed models to the Hugging Face Hub, and verify them from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelsign.cli import _options as opt
from modelsign.cli._ordered import ORDER_KEY, OrderedCommand
from modelsign.cli._text import err, out
from modelsign.cli._verify import _emit_json, _error_document, _print_files
from modelsign.errors import InputError, ModelsignError

_PUBLISH_HELP = (
    "Sign a model directory and upload it to the Hugging Face Hub in ONE commit.\n\n"
    "Signs PATH (writing PATH/model.sig, as modelsign sign does), optionally adds a "
    "derivation claim (--attest, appended to PATH/claims.jsonl), then uploads every file of "
    "PATH with model.sig and claims.jsonl in a single create_commit whose parent is the head "
    "that was read: if anyone pushes in between, the Hub answers 412 and nothing is "
    "uploaded. The files are opened and checked against the signed manifest before upload "
    "(size and mtime; the sha256 for files-mode sha256 signatures): a directory that changes "
    "between hashing and upload is refused. .git/ and .cache/huggingface/ are never "
    "uploaded. Files already in the repo that PATH does not have would make the repo fail "
    "verification: they are refused unless --delete-extra.\n\n"
    "The Hub is $HF_ENDPOINT (default https://huggingface.co); the token $HF_TOKEN or the "
    "one saved by `hf auth login`.\n\n"
    "Examples:\n\n"
    "  modelsign hf publish ./my-model --repo acme/my-model --key release.pem\n\n"
    "  modelsign hf publish ./my-model --repo acme/my-model --create-pr\n\n"
    "  modelsign hf publish ./ft --repo acme/ft --key release.pem --attest finetune "
    "--base-model hf://acme/base@<commit> --dataset hf://datasets/acme/data@<commit> "
    "--card-metadata\n\n"
    "Exit codes: 0 published, 2 bad input (path, key, repo, a Hub conflict, a directory that "
    "changed), 3 internal error.\n"
)

_VERIFY_HELP = (
    "Verify a model on the Hugging Face Hub, before and after downloading it.\n\n"
    "Resolves REPO[@REVISION] to a commit and pins everything to it; downloads model.sig "
    "(and claims.jsonl) first and verifies the signature and the signer (and each claim); "
    "compares the signed sha256 digests and file list with the Hub's per-file metadata "
    "BEFORE downloading any weights (pre-flight); then downloads the snapshot (into the Hub "
    "cache, or --local-dir) and verifies the local bytes. With --include only the matching "
    "files are downloaded and verified; the signed files left out are listed as absent.\n\n"
    "Identity options are those of modelsign verify: --identity/--identity-regex with "
    "--issuer for keyless signatures, --key, or --cert-chain.\n\n"
    "Examples:\n\n"
    "  modelsign hf verify acme/my-model --key release.pub\n\n"
    "  modelsign hf verify acme/my-model@v1.0 --identity-regex '^https://github\\.com/acme/' "
    "--issuer https://token.actions.githubusercontent.com\n\n"
    "  modelsign hf verify acme/my-model --key release.pub --include '*.json' "
    "--include 'tokenizer*'\n\n"
    "  modelsign hf verify acme/my-model@refs/pr/3 --key release.pub --format json\n\n"
    "Exit codes: 0 verified, 1 verification failed (pre-flight, files, signature, identity), "
    "2 bad input (unknown repo or revision, malformed signature, bad options), 3 internal "
    "error.\n"
)

_ATTEST = "Provenance (--attest)"
_HUB = "Hub"

hf_app = typer.Typer(name="hf", help="Publish signed models to the Hugging Face Hub and verify "
                     "them from it.", no_args_is_help=True)


def _err(line: str) -> None:
    err(line)  # one line; outside names (files, repos, identities) made safe for a terminal


@hf_app.command("publish", help=_PUBLISH_HELP, no_args_is_help=True)
def publish(
    path: Annotated[Path, typer.Argument(help="Model directory to sign and upload.",
                                         show_default=False)],
    repo: Annotated[str, typer.Option("--repo", help="Hub repo id, org/name.",
                                      show_default=False)],
    revision: Annotated[str, typer.Option(
        "--revision", help="Branch to commit to.", rich_help_panel=_HUB)] = "main",
    create_pr: Annotated[bool, typer.Option(
        "--create-pr", help="Open a pull request (refs/pr/N) instead of committing to the "
        "branch.", rich_help_panel=_HUB)] = False,
    delete_extra: Annotated[bool, typer.Option(
        "--delete-extra", help="Delete, in the same commit, repo files PATH does not have.",
        rich_help_panel=_HUB)] = False,
    private: Annotated[bool | None, typer.Option(
        "--private/--public", help="Visibility when the repo is created.",
        rich_help_panel=_HUB, show_default=False)] = None,
    repo_type: Annotated[str, typer.Option(
        "--repo-type", help="model or dataset.", rich_help_panel=_HUB)] = "model",
    commit_message: Annotated[str | None, typer.Option(
        "--commit-message", "-m", help="Commit title.", rich_help_panel=_HUB,
        show_default=False)] = None,
    key: opt.SignKeyOption = None,
    password_file: opt.PasswordFileOption = None,
    cert: opt.CertOption = None,
    chain: opt.ChainOption = None,
    identity_token: opt.IdentityTokenOption = None,
    oauth_force_oob: opt.OAuthForceOobOption = False,
    staging: opt.SigningStagingOption = False,
    trust_config: opt.SigningTrustConfigOption = None,
    method: opt.MethodOption = opt.Method.files,
    algorithm: opt.AlgorithmOption = opt.Algorithm.sha256,
    shard_size: opt.ShardSizeOption = None,
    ignore_path: opt.IgnorePathOption = None,
    no_cache: opt.NoCacheOption = False,
    attest: Annotated[str | None, typer.Option(
        "--attest", help="Also sign a derivation claim with this relation (finetune, adapter, "
        "quantized, ...), appended to PATH/claims.jsonl and uploaded.",
        rich_help_panel=_ATTEST, show_default=False)] = None,
    base_model: Annotated[list[str] | None, typer.Option(
        "--base-model", help="Base model REF for --attest (a local signed directory, "
        "sha256:<hex>[=uri], or hf://org/name@<commit>); repeatable.",
        rich_help_panel=_ATTEST, show_default=False)] = None,
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", help="Dataset REF for --attest; repeatable.", rich_help_panel=_ATTEST,
        show_default=False)] = None,
    card_metadata: Annotated[bool, typer.Option(
        "--card-metadata", help="Write base_model, base_model_relation and datasets into "
        "PATH/README.md's metadata (before signing) from the --attest parents on the Hub "
        "(hf://...), so the Hub's model tree agrees with the signed claim.",
        rich_help_panel=_ATTEST)] = False,
) -> None:
    from modelsign.integrations.huggingface import publish as do_publish

    if (base_model or dataset) and not attest:
        raise InputError("--base-model and --dataset need --attest RELATION")
    if repo_type not in ("model", "dataset"):
        raise InputError("--repo-type must be model or dataset", actual=repo_type)
    spec = opt.hash_spec_from_options(method=method, algorithm=algorithm, shard_size=shard_size,
                                      ignore_paths=ignore_path, no_cache=no_cache)
    signer = opt.signer_from_options(
        key=key, password_file=password_file, cert=cert, chain=chain,
        identity_token=identity_token, oauth_force_oob=oauth_force_oob, staging=staging,
        trust_config=trust_config)
    if card_metadata and not attest:
        raise InputError("--card-metadata needs --attest RELATION (the card follows the claim)")
    claims = None
    card: dict[str, Any] | None = None
    if attest:
        if card_metadata:
            card = _write_card(path, attest, base_model or [], dataset or [])
        claims = _attester(path, signer, attest, base_model or [], dataset or [], card)
    result = do_publish(path, repo, signer=signer, spec=spec, revision=revision,
                        repo_type=repo_type, create_pr=create_pr,  # type: ignore[arg-type]
                        private=private, commit_message=commit_message, claims=claims,
                        delete_extra=delete_extra, on_event=_err)
    where = result.pr_revision or result.revision
    out(
        f"published {result.repo_id}@{where}: commit {result.commit}\n"
        f"  signed sha256:{result.sign.root_digest} by {result.sign.bundle.describe()}\n"
        f"  {len(result.uploaded)} file(s) in one commit on top of {result.parent}\n"
        + (f"  pull request: {result.pr_url}\n" if result.pr_url else "")
        + f"  verify with: modelsign hf verify {result.repo_id}@{result.commit} ...\n")


def _write_card(path: Path, relation: str, bases: list[str],
                datasets: list[str]) -> dict[str, Any]:
    from modelsign.claims import resolve_parent
    from modelsign.integrations.huggingface import card_metadata, write_card_metadata

    if not path.is_dir():
        raise InputError("hf publish takes a model directory", path=path)
    parents_b = [resolve_parent(r, what="base model") for r in bases]
    parents_d = [resolve_parent(r, what="dataset") for r in datasets]
    card = card_metadata(relation, parents_b, parents_d)
    if not card:
        raise InputError("--card-metadata: no parent is a Hub revision, so there is nothing "
                         "to write", hint="give parents as hf://org/name@<commit> (datasets: "
                         "hf://datasets/org/name@<commit>), or drop --card-metadata")
    written = write_card_metadata(path, card)
    _err(f"model card: {written} now says " + ", ".join(f"{k}={v}" for k, v in card.items()))
    return card


def _attester(path: Path, signer: Any, relation: str, bases: list[str],
              datasets: list[str], card: dict[str, Any] | None) -> Any:
    """The ``claims=`` hook of publish: attest after signing, check the claim is about the same
    root digest (and says what the card says), and hand back the claims file to upload."""
    def hook(sign_result: Any) -> bytes:
        from modelsign.claims import attest as do_attest
        from modelsign.integrations.huggingface import card_metadata

        claim = do_attest(path, signer=signer, relation=relation,  # type: ignore[arg-type]
                          base_models=bases, datasets=datasets)
        subject = claim.statement.subject.digest.get("sha256")
        if subject != sign_result.root_digest:
            raise ModelsignError("the claim and the signature are about different contents",
                                 path=path, expected=sign_result.root_digest, actual=subject,
                                 hint="the directory changed while signing; publish again")
        if card is not None:
            said = card_metadata(claim.view.relation, claim.view.base_models,
                                 claim.view.datasets)
            if said != card:
                raise ModelsignError("the model card and the signed claim disagree", path=path,
                                     expected=str(said), actual=str(card))
        return Path(claim.path).read_bytes()
    return hook


@hf_app.command("verify", help=_VERIFY_HELP, no_args_is_help=True, cls=OrderedCommand)
def verify(
    ctx: typer.Context,
    repo: Annotated[str, typer.Argument(help="org/name or org/name@revision (branch, tag, "
                                        "refs/pr/N or commit).", show_default=False)],
    identity: opt.IdentityOption = None,
    identity_regex: opt.IdentityRegexOption = None,
    issuer: opt.IssuerOption = None,
    key: opt.PublicKeyOption = None,
    cert_chain: opt.CertChainOption = None,
    trusted_root: opt.TrustedRootOption = None,
    trust_config: opt.TrustConfigOption = None,
    staging: opt.TrustStagingOption = False,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Download and verify only files matching this glob (repeatable); "
        "the signed files left out are listed as absent.", show_default=False)] = None,
    revision: Annotated[str | None, typer.Option(
        "--revision", help="Revision, instead of @REV in REPO.", show_default=False)] = None,
    repo_type: Annotated[str, typer.Option("--repo-type", help="model or dataset.")] = "model",
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Hub cache to download into \\[default: HF_HUB_CACHE].",
        show_default=False)] = None,
    local_dir: Annotated[Path | None, typer.Option(
        "--local-dir", help="Download into this directory instead of the cache.",
        show_default=False)] = None,
    output_format: Annotated[opt.OutputFormat, typer.Option(
        "--format", help="text, or json: one report document on stdout.")
    ] = opt.OutputFormat.text,
) -> None:
    from modelsign.integrations.huggingface import parse_repo_ref, verify_hub

    json_mode = output_format is opt.OutputFormat.json
    try:
        ref = parse_repo_ref(repo)
        if ref.revision and revision:
            raise InputError("give the revision once: REPO@REV or --revision")
        if repo_type not in ("model", "dataset"):
            raise InputError("--repo-type must be model or dataset", actual=repo_type)
        rules = opt.identity_rules(ctx.meta.get(ORDER_KEY, []), identity, identity_regex, issuer)
        trust = opt.keyless_trust_from_options(key=key, cert_chain=cert_chain,
                                               trusted_root=trusted_root,
                                               trust_config=trust_config, staging=staging)
        result = verify_hub(ref.repo_id, revision=ref.revision or revision,
                            repo_type=repo_type,  # type: ignore[arg-type]
                            include=include or None, identities=rules, key=key,
                            cert_chain=cert_chain or [], trust=trust, cache_dir=cache_dir,
                            local_dir=local_dir, on_event=_err)
    except ModelsignError as e:
        from modelsign.verify import IntegrityFailure

        partial = e.result if isinstance(e, IntegrityFailure) else None
        if partial is not None:
            _print_files(partial, only_failures=True)
        if json_mode:
            _emit_json(_error_document(e, Path(repo), partial))
        raise
    for w in result.result.warnings:
        _err(f"warning: {w}")
    r = result.result
    lines = [f"verified {result.repo_id}@{result.commit}: sha256:{r.root_digest}",
             f"  signed by {r.signer.kind} {r.signer.identity}"
             + (f" (issuer {r.signer.issuer})" if r.signer.issuer else ""),
             f"  pre-flight: {len(result.preflight.checked)} file(s) matched the Hub's sha256 "
             "before download",
             f"  local: {sum(1 for f in r.files if f.status == 'ok')} file(s) verified in "
             f"{result.path} ({result.local.layout})"]
    if result.claims is not None:
        lines.append(f"  claims: {len(result.claims.verified)} of {len(result.claims.claims)} "
                     "verified" + "".join(f"\n    {c.line}: {c.predicate_type}"
                                          for c in result.claims.verified))
    if result.absent:
        lines.append(f"  SUBSET: {len(result.absent)} signed file(s) not downloaded: "
                     + ", ".join(result.absent[:10]) + (" ..." if len(result.absent) > 10
                                                       else ""))
    text = "\n".join(lines)
    if json_mode:
        err(text, newlines=True)
        _emit_json(result.to_json())
    else:
        out(text + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(hf_app, name="hf")
