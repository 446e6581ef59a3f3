"""``modelsign sign``: hash a model and write its OMS v1.0 signature (model.sig)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelsign.cli._options import (
    Algorithm,
    AlgorithmOption,
    AllowSymlinksOption,
    IgnorePathOption,
    Method,
    MethodOption,
    NoCacheOption,
    ShardSizeOption,
    hash_spec_from_options,
)
from modelsign.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.signing import Signer

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

_KEY = "Key signing"
_KEYLESS = "Keyless signing (Sigstore)"

# The signer options, shared by every command that signs (sign, attest, hf publish).
SignKeyOption = Annotated[Path | None, typer.Option(
    "--key", help="EC private key (PEM; P-256, P-384 or P-521) to sign with.",
    rich_help_panel=_KEY, show_default=False)]
PasswordFileOption = Annotated[Path | None, typer.Option(
    "--password-file", help="File holding the --key password (one trailing newline is "
    "ignored).", rich_help_panel=_KEY, show_default=False)]
CertOption = Annotated[Path | None, typer.Option(
    "--cert", help="Signing certificate for --key (PEM); the bundle carries the chain.",
    rich_help_panel=_KEY, show_default=False)]
ChainOption = Annotated[list[Path] | None, typer.Option(
    "--chain", help="Issuer certificates of --cert (PEM; repeatable).",
    rich_help_panel=_KEY, show_default=False)]
IdentityTokenOption = Annotated[str | None, typer.Option(
    "--identity-token", help="OIDC identity token to sign with \\[env: SIGSTORE_ID_TOKEN].",
    rich_help_panel=_KEYLESS, show_default=False)]
OAuthForceOobOption = Annotated[bool, typer.Option(
    "--oauth-force-oob", help="Browser sign-in: print a URL and read the code pasted back.",
    rich_help_panel=_KEYLESS)]
StagingOption = Annotated[bool, typer.Option(
    "--staging", help="Sign with Sigstore's staging instance (for tests).",
    rich_help_panel=_KEYLESS)]
TrustConfigOption = Annotated[Path | None, typer.Option(
    "--trust-config", help="ClientTrustConfig JSON of a private Sigstore deployment.",
    rich_help_panel=_KEYLESS, show_default=False)]


def _build_signer(*, key: Path | None, password_file: Path | None, cert: Path | None,
                  chain: list[Path], identity_token: str | None, oauth_force_oob: bool,
                  staging: bool, trust_config: Path | None) -> Signer:
    """Pick the backend from the flags; refuse combinations that mean nothing."""
    from modelsign import signing

    keyless_flags = [name for name, used in (("--identity-token", identity_token),
                                             ("--oauth-force-oob", oauth_force_oob),
                                             ("--staging", staging),
                                             ("--trust-config", trust_config)) if used]
    if key is None:
        for name, used in (("--cert", cert), ("--chain", chain),
                           ("--password-file", password_file)):
            if used:
                raise InputError(f"{name} needs --key", hint="pass the private key with --key")
        if staging and trust_config is not None:
            raise InputError("--staging and --trust-config are mutually exclusive",
                             hint="pass one of them")
        tc = signing.load_trust_config(staging=staging, path=trust_config)
        return signing.KeylessSigner(trust_config=tc, identity_token=identity_token,
                                     force_oob=oauth_force_oob)
    if keyless_flags:
        raise InputError(f"{', '.join(keyless_flags)} cannot be combined with --key",
                         hint="drop --key to sign keylessly, or drop the keyless options")
    if chain and cert is None:
        raise InputError("--chain needs --cert", hint="pass the signing certificate with --cert")
    password = signing.read_password_file(password_file) if password_file else None
    if cert is not None:
        return signing.CertificateSigner.from_pem_files(key, cert, chain, password=password)
    return signing.KeySigner.from_pem_file(key, password=password)


def sign(
    path: Annotated[Path, typer.Argument(help="Model (or dataset) directory or file to sign.",
                                         show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write the signature \\[default: PATH/model.sig].",
        show_default=False)] = None,
    key: SignKeyOption = None,
    password_file: PasswordFileOption = None,
    cert: CertOption = None,
    chain: ChainOption = None,
    identity_token: IdentityTokenOption = None,
    oauth_force_oob: OAuthForceOobOption = False,
    staging: StagingOption = False,
    trust_config: TrustConfigOption = None,
    method: MethodOption = Method.files,
    algorithm: AlgorithmOption = Algorithm.sha256,
    shard_size: ShardSizeOption = None,
    ignore_path: IgnorePathOption = None,
    allow_symlinks: AllowSymlinksOption = False,
    no_cache: NoCacheOption = False,
) -> None:
    from modelsign.signing import sign_model

    spec = hash_spec_from_options(method=method, algorithm=algorithm, shard_size=shard_size,
                                  ignore_paths=ignore_path, allow_symlinks=allow_symlinks,
                                  no_cache=no_cache)
    signer = _build_signer(key=key, password_file=password_file, cert=cert, chain=chain or [],
                           identity_token=identity_token, oauth_force_oob=oauth_force_oob,
                           staging=staging, trust_config=trust_config)
    result = sign_model(path, signer=signer, spec=spec, output=output)
    m = result.manifest
    sys.stdout.write(
        f"signed {m.name}: sha256:{result.root_digest}\n"
        f"  {len(m.resources)} resources ({m.serialization.method}, "
        f"{m.serialization.hash_type}), by {result.bundle.describe()}\n"
        f"  signature written to {result.path}\n")


def register(app: typer.Typer) -> None:
    app.command("sign", help=_HELP, no_args_is_help=True)(sign)
