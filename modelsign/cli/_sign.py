"""``modelsign sign``: hash a model and write its OMS v1.0 signature (model.sig)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelsign.cli import _options as opt
from modelsign.cli._text import out

_HELP = (
    "Sign a model (or dataset) directory or file: write its OMS v1.0 signature.\n\n"
    "Hashes every file, signs the manifest and writes PATH/model.sig (PATH.sig beside "
    "a single file), atomically: an existing signature is only ever replaced by a "
    "complete new one.\n\n"
    "Keyless (the default) signs with Sigstore: the identity token comes from "
    "--identity-token, $SIGSTORE_ID_TOKEN, ambient CI credentials (GitHub Actions, "
    "GitLab, GCP, Buildkite, CircleCI), else a browser sign-in. --key signs with an "
    "EC P-256/384/521 private key instead; add --cert (and --chain) to include an "
    "X.509 certificate chain.\n\n"
    "Examples:\n\n"
    "  modelsign sign ./my-model\n\n"
    "  modelsign sign ./my-model --key release.pem --password-file pw.txt\n\n"
    "  modelsign sign ./my-model --key leaf-key.pem --cert leaf.pem --chain ca.pem\n\n"
    '  modelsign sign ./my-model --trust-config sigstore.json --identity-token "$TOKEN"\n\n'
    "  modelsign sign ./my-model --method shards --ignore-path logs -o my-model.sig\n\n"
    "Exit codes: 0 signed, 2 bad input (path, key, certificate, token, output), 3 "
    "internal error.\n"
)


def sign(
    path: Annotated[Path, typer.Argument(help="Model (or dataset) directory or file to sign.",
                                         show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write the signature \\[default: PATH/model.sig].",
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
    allow_symlinks: opt.AllowSymlinksOption = False,
    no_cache: opt.NoCacheOption = False,
) -> None:
    from modelsign.signing import sign_model

    spec = opt.hash_spec_from_options(method=method, algorithm=algorithm, shard_size=shard_size,
                                      ignore_paths=ignore_path, allow_symlinks=allow_symlinks,
                                      no_cache=no_cache)
    signer = opt.signer_from_options(key=key, password_file=password_file, cert=cert, chain=chain,
                                 identity_token=identity_token, oauth_force_oob=oauth_force_oob,
                                 staging=staging, trust_config=trust_config)
    result = sign_model(path, signer=signer, spec=spec, output=output)
    m = result.manifest
    out(
        f"signed {m.name}: sha256:{result.root_digest}\n"
        f"  {len(m.resources)} resources ({m.serialization.method}, "
        f"{m.serialization.hash_type}), by {result.bundle.describe()}\n"
        f"  signature written to {result.path}\n")


def register(app: typer.Typer) -> None:
    app.command("sign", help=_HELP, no_args_is_help=True)(sign)
