"""``modelsign attest`` (sign a derivation claim into claims.jsonl) and ``modelsign claims``."""

from __future__ import annotations

import difflib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelsign.cli import _options as opt
from modelsign.cli._ordered import ORDER_KEY, OrderedCommand
from modelsign.cli._text import out
from modelsign.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.claims import ClaimInfo, ClaimsFile, ParentVerifier
    from modelsign.statements._provenance import Dependency

_ATTEST_HELP = (
    "Sign a derivation claim about a model (or dataset) and append it to "
    "PATH/claims.jsonl.\n\n"
    "The claim is an in-toto statement with an SLSA Provenance v1 predicate (buildType "
    "https://modelsign.dev/buildtypes/derivation/v1) whose subject is PATH's root digest: how "
    "PATH was derived (--relation, --method, --param, --config), from which base models and "
    "datasets (by *their* root digests), with which code, and the frameworks of the running "
    "environment (python, torch, transformers, ... from installed package metadata; CUDA and "
    "accelerators when torch can tell). It is signed like model.sig (same signer options) and "
    "appended as one line: earlier lines are never rewritten, and concurrent appends do not "
    "interleave.\n\n"
    "A REF (--base-model, --dataset) is one of:\n\n"
    "  a local directory: its model.sig is verified with the --parent-* options and its root "
    "digest taken from it; with no signature the directory is hashed and recorded as "
    "unsigned;\n\n"
    "  sha256:<hex> (with --uri, or inline as sha256:<hex>=<uri>);\n\n"
    "  hf://org/name@<40-hex commit> or hf://datasets/org/name@<commit>: recorded with the "
    "revision (digest.gitCommit), never fetched.\n\n"
    "Examples:\n\n"
    "  modelsign attest ./ft --relation finetune --method lora --param lora_r=16 "
    "--base-model ./base --dataset ./chat --dataset-split train --key release.pem "
    "--parent-key release.pub\n\n"
    "  modelsign attest ./ft --relation finetune --base-model hf://acme/base-7b@<commit> "
    "--dataset hf://datasets/acme/chat@<commit> --code https://github.com/acme/train@<commit>"
    "\n\n"
    "  modelsign attest ./merged --relation merge --base-model ./a --base-model ./b "
    "--parent-identity ml@acme.example --parent-issuer https://accounts.google.com\n\n"
    "  modelsign attest ./q4 --relation quantized --method gptq --base-model sha256:<hex> "
    "--uri https://models.acme.example/base --framework auto-gptq==0.7.1\n\n"
    "Exit codes: 0 claim written, 1 a parent's signature does not verify, 2 bad input, "
    "3 internal error.\n"
)

_CLAIMS_HELP = (
    "Print the claims of a model (or dataset) as they are written, verifying nothing.\n\n"
    "Each line of PATH/claims.jsonl is shown with its line number: predicate type, subject, "
    "the signer the bundle names (unverified), and for derivation claims the relation, base "
    "models, datasets, code and frameworks. Lines that cannot be read are shown with the "
    "reason. To *verify* claims (signatures, signers, and that each subject is this "
    "artifact), use modelsign verify.\n\n"
    "Examples:\n\n"
    "  modelsign claims ./my-finetune\n\n"
    "  modelsign claims ./my-finetune --format json | jq '.claims[].derivation.frameworks'"
    "\n\n"
    "Exit codes: 0 printed (even when some lines are unreadable), 2 bad input, 3 internal "
    "error.\n"
)

_DERIVATION = "Derivation"
_PARENTS = "Parents and inputs"
_ENV = "Environment and run"
_PARENT_ID = "Verifying local parents"


def _params(items: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError("--param must be KEY=VALUE", expected="e.g. --param lora_r=16",
                             actual=repr(item)[:80])
        if key in parsed:
            raise InputError(f"--param {key} is given twice", expected="each key once")
        parsed[key] = value
    return parsed


def _time(flag: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise InputError(f"{flag} is not an ISO 8601 time", expected="e.g. 2025-03-01T12:00:00Z",
                         actual=repr(text)[:80]) from e
    if value.tzinfo is None:
        raise InputError(f"{flag} needs a time zone", expected="e.g. 2025-03-01T12:00:00Z",
                         actual=text[:80])
    return value


def _parent_verifier(order: list[str], identity: list[str], identity_regex: list[str],
                     issuer: list[str], key: Path | None, cert_chain: list[Path],
                     trusted_root: Path | None, trust_config: Path | None) -> ParentVerifier | None:
    from modelsign.claims import ParentVerifier

    if not (identity or identity_regex or issuer or key or cert_chain):
        if trusted_root or trust_config:
            raise InputError("--parent-trusted-root/--parent-trust-config need --parent-identity "
                             "(or --parent-identity-regex) and --parent-issuer")
        return None
    names = [n.removeprefix("parent_") for n in order if n.startswith("parent_")]
    rules = opt.identity_rules(names, identity, identity_regex, issuer)
    if (key is not None or cert_chain) and (trusted_root or trust_config):
        raise InputError("parent trust-root options apply to keyless parent signatures only")
    options: dict[str, Any] = {"identities": rules, "key": key, "cert_chain": cert_chain,
                               "key_flag": "--parent-key"}
    if key is None and not cert_chain:
        options["trust"] = opt.trust_from_options(trusted_root, trust_config)
    return ParentVerifier(**options)


def attest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Model (or dataset) directory or file the claim "
                                         "is about.", show_default=False)],
    relation: Annotated[str, typer.Option(
        "--relation", help="pretrain, finetune, adapter, merge, quantized, distillation, "
        "continued_pretraining, pruning, format_conversion or other.",
        rich_help_panel=_DERIVATION, show_default=False)],
    method: Annotated[str | None, typer.Option(
        "--method", help="The technique (free text): lora, sft, dpo, gptq, ...",
        rich_help_panel=_DERIVATION, show_default=False)] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="KEY=VALUE hyper-parameter, recorded as a string; repeatable.",
        rich_help_panel=_DERIVATION, show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Training config or recipe file, recorded by name and SHA-256.",
        rich_help_panel=_DERIVATION, show_default=False)] = None,
    base_model: Annotated[list[str] | None, typer.Option(
        "--base-model", help="Parent model REF; repeatable (a merge has several).",
        rich_help_panel=_PARENTS, show_default=False)] = None,
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", help="Dataset REF; repeatable.", rich_help_panel=_PARENTS,
        show_default=False)] = None,
    dataset_split: Annotated[str | None, typer.Option(
        "--dataset-split", help="The split of the datasets used (train, ...).",
        rich_help_panel=_PARENTS, show_default=False)] = None,
    uri: Annotated[str | None, typer.Option(
        "--uri", help="URI of the one sha256:<hex> REF (several: write sha256:<hex>=<uri>).",
        rich_help_panel=_PARENTS, show_default=False)] = None,
    code: Annotated[str | None, typer.Option(
        "--code", help="Training code as URI@COMMIT (40-hex git commit).",
        rich_help_panel=_PARENTS, show_default=False)] = None,
    framework: Annotated[list[str] | None, typer.Option(
        "--framework", help="NAME==VERSION: add or override a framework (cuda==12.4 sets the "
        "runtime); repeatable.", rich_help_panel=_ENV, show_default=False)] = None,
    no_hardware: Annotated[bool, typer.Option(
        "--no-hardware", help="Do not import torch to read CUDA and accelerators (faster).",
        rich_help_panel=_ENV)] = False,
    builder_id: Annotated[str | None, typer.Option(
        "--builder-id", help="URI of who ran the derivation \\[default: "
        "https://modelsign.dev/builders/local/v1].", rich_help_panel=_ENV,
        show_default=False)] = None,
    started_on: Annotated[str | None, typer.Option(
        "--started-on", help="When the run started (ISO 8601 with time zone).",
        rich_help_panel=_ENV, show_default=False)] = None,
    finished_on: Annotated[str | None, typer.Option(
        "--finished-on", help="When the run finished (ISO 8601 with time zone).",
        rich_help_panel=_ENV, show_default=False)] = None,
    invocation_id: Annotated[str | None, typer.Option(
        "--invocation-id", help="The run's id (CI job URL, experiment id, ...).",
        rich_help_panel=_ENV, show_default=False)] = None,
    key: opt.SignKeyOption = None,
    password_file: opt.PasswordFileOption = None,
    cert: opt.CertOption = None,
    chain: opt.ChainOption = None,
    identity_token: opt.IdentityTokenOption = None,
    oauth_force_oob: opt.OAuthForceOobOption = False,
    staging: opt.SigningStagingOption = False,
    trust_config: opt.SigningTrustConfigOption = None,
    parent_identity: Annotated[list[str] | None, typer.Option(
        "--parent-identity", help="Who may have signed local parents (exact SAN); each with a "
        "--parent-issuer.", rich_help_panel=_PARENT_ID, show_default=False)] = None,
    parent_identity_regex: Annotated[list[str] | None, typer.Option(
        "--parent-identity-regex", help="Regex searched in the parent signer's SAN (anchor "
        "it); each with a --parent-issuer.", rich_help_panel=_PARENT_ID,
        show_default=False)] = None,
    parent_issuer: Annotated[list[str] | None, typer.Option(
        "--parent-issuer", help="OIDC issuer of the parent identity option it pairs with.",
        rich_help_panel=_PARENT_ID, show_default=False)] = None,
    parent_key: Annotated[Path | None, typer.Option(
        "--parent-key", help="Public key (PEM) local parents must be signed with.",
        rich_help_panel=_PARENT_ID, show_default=False)] = None,
    parent_cert_chain: Annotated[list[Path] | None, typer.Option(
        "--parent-cert-chain", help="CA certificate(s) (PEM) parents' signing certificates "
        "must chain to.", rich_help_panel=_PARENT_ID, show_default=False)] = None,
    parent_trusted_root: Annotated[Path | None, typer.Option(
        "--parent-trusted-root", help="Sigstore trusted_root.json for keyless parents "
        "\\[default: the production root].", rich_help_panel=_PARENT_ID,
        show_default=False)] = None,
    parent_trust_config: Annotated[Path | None, typer.Option(
        "--parent-trust-config", help="Sigstore ClientTrustConfig JSON for keyless parents.",
        rich_help_panel=_PARENT_ID, show_default=False)] = None,
    hash_method: Annotated[opt.Method, typer.Option(
        "--hash-method", help="How PATH is hashed when it has no model.sig yet (files or "
        "shards): use what you will sign with. A signed PATH is hashed as its signature "
        "records.", rich_help_panel=opt.HASHING_PANEL)] = opt.Method.files,
    algorithm: opt.AlgorithmOption = opt.Algorithm.sha256,
    shard_size: opt.ShardSizeOption = None,
    ignore_path: opt.IgnorePathOption = None,
    allow_symlinks: opt.AllowSymlinksOption = False,
    no_cache: opt.NoCacheOption = False,
) -> None:
    from modelsign.claims import attest as do_attest
    from modelsign.statements._models import RELATIONS
    from modelsign.statements._provenance import DEFAULT_BUILDER_ID

    if relation not in RELATIONS:
        close = difflib.get_close_matches(relation, RELATIONS, n=1)
        raise InputError("unknown --relation", expected=" | ".join(RELATIONS),
                         actual=repr(relation)[:80],
                         hint=f"did you mean {close[0]!r}?" if close
                         else "pass one of the expected relations, e.g. --relation finetune")
    verifier = _parent_verifier(ctx.meta.get(ORDER_KEY, []), parent_identity or [],
                                parent_identity_regex or [], parent_issuer or [], parent_key,
                                parent_cert_chain or [], parent_trusted_root, parent_trust_config)
    params = _params(param or [])
    start, finish = _time("--started-on", started_on), _time("--finished-on", finished_on)
    signer = opt.signer_from_options(
        key=key, password_file=password_file, cert=cert, chain=chain,
        identity_token=identity_token, oauth_force_oob=oauth_force_oob, staging=staging,
        trust_config=trust_config)
    explicit = (hash_method is not opt.Method.files or algorithm is not opt.Algorithm.sha256
                or shard_size is not None or bool(ignore_path) or allow_symlinks)
    spec = opt.hash_spec_from_options(
        method=hash_method, algorithm=algorithm, shard_size=shard_size,
        ignore_paths=ignore_path, allow_symlinks=allow_symlinks,
        no_cache=no_cache) if explicit else None
    claim = do_attest(
        path, signer=signer, relation=relation,
        method=method, params=params, config=config, base_models=base_model or [],
        datasets=dataset or [], dataset_split=dataset_split, uri=uri, code=code,
        frameworks=framework or [], builder_id=builder_id or DEFAULT_BUILDER_ID,
        started_on=start, finished_on=finish, invocation_id=invocation_id,
        parent_verifier=verifier, import_torch=not no_hardware, spec=spec,
        use_cache=not no_cache)
    v = claim.view
    lines = [f"attested {v.subject_name}: sha256:{v.subject_digest}",
           f"  relation {v.relation}" + (f", method {v.method}" if v.method else "")]
    lines += [f"  base model {_dep(d)}" for d in v.base_models]
    lines += [f"  dataset {_dep(d)}" for d in v.datasets]
    lines.append("  frameworks " + ", ".join(str(f) for f in v.frameworks))
    lines.append(f"  signed by {claim.bundle.describe()}")
    lines.append(f"  claim written to {claim.path} (line {claim.line})")
    out("\n".join(lines) + "\n")


def _dep(d: Dependency, *, recorded: bool = False) -> str:
    yes = "signed, as the claim records" if recorded else "signed, verified"
    signed = {True: yes, False: "unsigned", None: ""}[d.signed]
    extra = ", ".join(x for x in (signed, f"split {d.split}" if d.split else "") if x)
    return d.label() + (f" ({extra})" if extra else "")


def claims(
    path: Annotated[Path, typer.Argument(help="Model (or dataset) directory or file, or a "
                                         "claims.jsonl file.", show_default=False)],
    output_format: Annotated[opt.OutputFormat, typer.Option(
        "--format", help="text, or json: one document on stdout.")] = opt.OutputFormat.text,
) -> None:
    from modelsign.claims import inspect_claims

    if not path.exists():
        raise InputError("path not found", path=path,
                         hint="pass the model (or dataset) directory, or its claims.jsonl")
    read, infos = inspect_claims(path)
    if output_format is opt.OutputFormat.json:
        doc = {"path": str(read.path), "exists": read.exists, "verified": False,
               "problems": list(read.problems), "claims": [i.to_json() for i in infos]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out(_text(read, infos))


def _text(read: ClaimsFile, infos: tuple[ClaimInfo, ...]) -> str:
    if not read.exists:
        return f"{read.path}: no claims file\n"
    lines = [f"{read.path}: {len(infos)} claim(s), NOT verified (modelsign verify checks "
             "signatures, signers and subjects)"]
    for p in read.problems:
        lines.append(f"  problem: {p}")
    for info in infos:
        st = info.statement
        if st is None:
            lines.append(f"line {info.line}: unreadable: {info.problem}")
            continue
        subj = st.subjects[0] if st.subjects else None
        lines.append(f"line {info.line}: {st.predicate_type}")
        if subj is not None:
            lines.append(f"  subject      {subj.name} sha256:{subj.digest.get('sha256', '-')}")
        lines.append(f"  signer       {info.claimed_signer or '-'} (as the bundle says)")
        v = info.derivation
        if v is None:
            continue
        lines.append(f"  relation     {v.relation}" + (f" ({v.method})" if v.method else ""))
        for d in v.base_models:
            lines.append(f"  base model   {_dep(d, recorded=True)}")
        for d in v.datasets:
            lines.append(f"  dataset      {_dep(d, recorded=True)}")
        for d in v.code:
            lines.append(f"  code         {d.label()}")
        if v.params:
            lines.append("  params       " + ", ".join(f"{k}={val}" for k, val in v.params.items()))
        if v.frameworks:
            lines.append("  frameworks   " + ", ".join(str(f) for f in v.frameworks))
        hw = [f"{a.count}x {a.name}" for a in v.accelerators] + [str(r) for r in v.runtimes]
        if hw:
            lines.append("  hardware     " + ", ".join(hw))
        run = [f"builder {v.builder_id}"]
        if v.started_on:
            run.append(f"started {v.started_on.isoformat()}")
        if v.finished_on:
            run.append(f"finished {v.finished_on.isoformat()}")
        if v.invocation_id:
            run.append(f"invocation {v.invocation_id}")
        lines.append("  run          " + ", ".join(run))
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    app.command("attest", help=_ATTEST_HELP, no_args_is_help=True, cls=OrderedCommand)(attest)
    app.command("claims", help=_CLAIMS_HELP, no_args_is_help=True)(claims)
