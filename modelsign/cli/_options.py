"""Option aliases shared by the commands, and the helpers that turn their values into objects.

Each option is declared here once (name, help text, panel); a command uses it as a parameter
annotation and gives the default. Three families:

- hashing (``hash``, ``sign``, ``attest``, ``hf publish``): :func:`hash_spec_from_options`;
- signing (``sign``, ``attest``, ``hf publish``): :func:`signer_from_options`;
- who signed (``verify``, ``hf verify``, ``lineage``, ``store add``): :func:`identity_rules`,
  :func:`trust_from_options` and :func:`keyless_trust_from_options`.

For example::

    def sign(path: ..., method: MethodOption = Method.files,
             algorithm: AlgorithmOption = Algorithm.sha256, shard_size: ShardSizeOption = None,
             ignore_path: IgnorePathOption = None, allow_symlinks: AllowSymlinksOption = False,
             no_cache: NoCacheOption = False) -> None:
        spec = hash_spec_from_options(method=method, algorithm=algorithm, shard_size=shard_size,
                                      ignore_paths=ignore_path, allow_symlinks=allow_symlinks,
                                      no_cache=no_cache)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelsign.errors import InputError
from modelsign.hashing._spec import DEFAULT_SHARD_SIZE, HashSpec

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.signing import Signer
    from modelsign.verify import Identity, Trust

__all__ = [
    "CERT_PANEL",
    "HASHING_PANEL",
    "KEYLESS_PANEL",
    "KEY_SIGNING_PANEL",
    "KEYLESS_SIGNING_PANEL",
    "SOURCES_PANEL",
    "TRUST_PANEL",
    "Algorithm",
    "AlgorithmOption",
    "AllowSymlinksOption",
    "CertChainOption",
    "CertOption",
    "ChainOption",
    "ExecutorName",
    "ExecutorOption",
    "IdentityOption",
    "IdentityRegexOption",
    "IdentityTokenOption",
    "IgnorePathOption",
    "IssuerOption",
    "Method",
    "MethodOption",
    "NoCacheOption",
    "OAuthForceOobOption",
    "OutputFormat",
    "PasswordFileOption",
    "PublicKeyOption",
    "RefreshTrustOption",
    "SchedulerOption",
    "ShardSizeOption",
    "SignKeyOption",
    "SigningStagingOption",
    "SigningTrustConfigOption",
    "StorageOptionOption",
    "TrustConfigOption",
    "TrustHubLfsOption",
    "TrustStagingOption",
    "TrustedRootOption",
    "UnsafeSkipIdentityCheckOption",
    "executor_from_options",
    "hash_spec_from_options",
    "identity_rules",
    "keyless_trust_from_options",
    "normalize_ignore_path",
    "signer_from_options",
    "trust_from_options",
]


class OutputFormat(StrEnum):
    """``--format`` of the commands that print text for a person or one JSON document."""

    text = "text"
    json = "json"


HASHING_PANEL = "Hashing"


class Method(StrEnum):
    files = "files"
    shards = "shards"


class Algorithm(StrEnum):
    sha256 = "sha256"
    blake2b = "blake2b"
    blake3 = "blake3"


MethodOption = Annotated[Method, typer.Option(
    "--method", help="files: one digest per file; shards: one per byte range of --shard-size "
    "bytes (zero-byte files have none).", rich_help_panel=HASHING_PANEL)]
AlgorithmOption = Annotated[Algorithm, typer.Option(
    "--algorithm", help="Hash of each file or shard (the root digest is always sha256).",
    rich_help_panel=HASHING_PANEL)]
ShardSizeOption = Annotated[int | None, typer.Option(
    "--shard-size", min=1, help=f"Bytes per shard, with --method shards "
    f"\\[default: {DEFAULT_SHARD_SIZE}].", rich_help_panel=HASHING_PANEL, show_default=False)]
IgnorePathOption = Annotated[list[str] | None, typer.Option(
    "--ignore-path", help="Path relative to PATH to leave out (a directory: all of it); "
    "repeatable. .git, .gitattributes, .github, .gitignore, model.sig and claims.jsonl are "
    "always left out.", rich_help_panel=HASHING_PANEL, show_default=False)]
AllowSymlinksOption = Annotated[bool, typer.Option(
    "--allow-symlinks", help="Follow symbolic links that stay inside PATH (hashing the target's "
    "bytes under the link's name) instead of refusing them.", rich_help_panel=HASHING_PANEL)]
NoCacheOption = Annotated[bool, typer.Option(
    "--no-cache", help="Read every byte; do not use or update the incremental cache.",
    rich_help_panel=HASHING_PANEL)]


def normalize_ignore_path(p: str) -> str:
    """``./logs/`` -> ``logs``; refuse absolute paths and ``..`` (ignores stay inside PATH)."""
    if p.startswith("/") or "\\" in p or "\0" in p:
        raise InputError(f"--ignore-path {p!r} must be a relative POSIX path",
                         expected="e.g. 'logs' or 'checkpoints/tmp'", actual=repr(p),
                         hint="give it relative to the model, e.g. --ignore-path logs")
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("--ignore-path must be valid UTF-8 (it is recorded in the signature)",
                         actual=ascii(p)) from None
    parts = [c for c in p.split("/") if c not in ("", ".")]
    if not parts or ".." in parts:
        raise InputError(f"--ignore-path {p!r} must name something inside the model",
                         expected="a relative path without '..'", actual=repr(p),
                         hint="give it relative to the model, e.g. --ignore-path logs")
    return "/".join(parts)


def hash_spec_from_options(
    *,
    method: Method | str = Method.files,
    algorithm: Algorithm | str = Algorithm.sha256,
    shard_size: int | None = None,
    ignore_paths: Sequence[str] | None = None,
    allow_symlinks: bool = False,
    no_cache: bool = False,
) -> HashSpec:
    """The :class:`~modelsign.hashing.HashSpec` the hashing options describe."""
    m = method.value if isinstance(method, Method) else method
    a = algorithm.value if isinstance(algorithm, Algorithm) else algorithm
    if shard_size is not None and m != "shards":
        raise InputError("--shard-size only applies to --method shards",
                         hint="add --method shards, or drop --shard-size")
    ignores = tuple(dict.fromkeys(normalize_ignore_path(p) for p in ignore_paths or ()))
    return HashSpec(method=m, algorithm=a,  # type: ignore[arg-type]
                    shard_size=shard_size if shard_size is not None else DEFAULT_SHARD_SIZE,
                    ignore_paths=ignores, allow_symlinks=allow_symlinks, use_cache=not no_cache)


# ------------------------------------------------------------------ sources and executors
# (``modelsign hash``: remote sources through fsspec, tasks on a Dask cluster; see
# docs/decisions/0011-distributed-hashing.md)
SOURCES_PANEL = "Remote sources and executors"


class ExecutorName(StrEnum):
    threads = "threads"
    dask = "dask"


ExecutorOption = Annotated[ExecutorName, typer.Option(
    "--executor", help="threads: this machine's cores; dask: the workers of a Dask cluster "
    "(--scheduler), or a local cluster without --scheduler (needs modelsign\\[dask], and "
    "modelsign on every worker).", rich_help_panel=SOURCES_PANEL)]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", metavar="tcp://HOST:PORT", help="Address of a running Dask scheduler, with "
    "--executor dask.", rich_help_panel=SOURCES_PANEL, show_default=False)]
StorageOptionOption = Annotated[list[str] | None, typer.Option(
    "--storage-option", metavar="KEY=VALUE", help="Option of the s3://, gs:// or hf:// file "
    "system (fsspec), e.g. endpoint_url=http://127.0.0.1:9000 or anon=true; repeatable; "
    "dotted keys nest (client_kwargs.region_name=eu-west-1).", rich_help_panel=SOURCES_PANEL,
    show_default=False)]
TrustHubLfsOption = Annotated[bool, typer.Option(
    "--trust-hub-lfs-sha256", help="hf:// sources, files mode, sha256: take LFS files' digests "
    "from the Hub's metadata instead of downloading them (the Hub's word, reported as such; "
    "never what verification does).", rich_help_panel=SOURCES_PANEL)]


@contextmanager
def executor_from_options(executor: ExecutorName | str, scheduler: str | None, *,
                          source: str) -> Iterator[Executor | None]:
    """The executor ``--executor``/``--scheduler`` describe for hashing ``source`` (None: the
    default thread pool). A Dask cluster is checked before use and closed after."""
    name = executor.value if isinstance(executor, ExecutorName) else executor
    if name == "threads":
        if scheduler is not None:
            raise InputError("--scheduler needs --executor dask",
                             hint="add --executor dask, or drop --scheduler")
        yield None
        return
    import os

    from modelsign.hashing._dask import dask_executor
    from modelsign.hashing._remote import backend_module, is_uri

    modules = ["modelsign"]
    paths: list[str] = []
    if is_uri(source):
        backend = backend_module(source)
        if backend:
            modules.append(backend)
    elif not os.path.lexists(source):
        yield None  # the walk refuses the path at once: no cluster to start for that
        return
    else:
        paths.append(os.path.abspath(source))
    with dask_executor(scheduler, modules=modules, paths=paths) as ex:
        yield ex


# ------------------------------------------------------------------ signing
# (``sign``, ``attest``, ``hf publish``)
KEY_SIGNING_PANEL = "Key signing"
KEYLESS_SIGNING_PANEL = "Keyless signing (Sigstore)"

SignKeyOption = Annotated[Path | None, typer.Option(
    "--key", help="EC private key (PEM; P-256, P-384 or P-521) to sign with.",
    rich_help_panel=KEY_SIGNING_PANEL, show_default=False)]
PasswordFileOption = Annotated[Path | None, typer.Option(
    "--password-file", help="File holding the --key password (one trailing newline is "
    "ignored).", rich_help_panel=KEY_SIGNING_PANEL, show_default=False)]
CertOption = Annotated[Path | None, typer.Option(
    "--cert", help="Signing certificate for --key (PEM); the bundle carries the chain.",
    rich_help_panel=KEY_SIGNING_PANEL, show_default=False)]
ChainOption = Annotated[list[Path] | None, typer.Option(
    "--chain", help="Issuer certificates of --cert (PEM; repeatable).",
    rich_help_panel=KEY_SIGNING_PANEL, show_default=False)]
IdentityTokenOption = Annotated[str | None, typer.Option(
    "--identity-token", help="OIDC identity token to sign with \\[env: SIGSTORE_ID_TOKEN].",
    rich_help_panel=KEYLESS_SIGNING_PANEL, show_default=False)]
OAuthForceOobOption = Annotated[bool, typer.Option(
    "--oauth-force-oob", help="Browser sign-in: print a URL and read the code pasted back.",
    rich_help_panel=KEYLESS_SIGNING_PANEL)]
SigningStagingOption = Annotated[bool, typer.Option(
    "--staging", help="Sign with Sigstore's staging instance (for tests).",
    rich_help_panel=KEYLESS_SIGNING_PANEL)]
SigningTrustConfigOption = Annotated[Path | None, typer.Option(
    "--trust-config", help="ClientTrustConfig JSON of a private Sigstore deployment.",
    rich_help_panel=KEYLESS_SIGNING_PANEL, show_default=False)]


def signer_from_options(*, key: Path | None, password_file: Path | None, cert: Path | None,
                        chain: Sequence[Path] | None, identity_token: str | None,
                        oauth_force_oob: bool, staging: bool, trust_config: Path | None) -> Signer:
    """The signer the signing options describe (keyless without ``--key``); refuses
    combinations that mean nothing."""
    from modelsign import signing

    chain = list(chain or [])
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


# ------------------------------------------------------------------ who signed
# (``verify``, ``hf verify``, ``lineage``, ``store add``: the subject's own signer; lineage's
# ``--parent-*`` options, for the ancestors, are in ``_lineage``)
KEYLESS_PANEL = "Keyless (Sigstore) signatures"
CERT_PANEL = "Key and certificate signatures"
TRUST_PANEL = "Trust root (keyless)"

IdentityOption = Annotated[list[str] | None, typer.Option(
    "--identity", help="Signer identity that must match the certificate's SAN exactly "
    "(e-mail or URI); repeatable, each with an --issuer.", rich_help_panel=KEYLESS_PANEL,
    show_default=False)]
IdentityRegexOption = Annotated[list[str] | None, typer.Option(
    "--identity-regex", help="Regular expression searched in the certificate's SAN; anchor "
    "it (^...$). Repeatable, each with an --issuer.", rich_help_panel=KEYLESS_PANEL,
    show_default=False)]
IssuerOption = Annotated[list[str] | None, typer.Option(
    "--issuer", help="OIDC issuer URL of the identity option it pairs with (exact match).",
    rich_help_panel=KEYLESS_PANEL, show_default=False)]
UnsafeSkipIdentityCheckOption = Annotated[bool, typer.Option(
    "--unsafe-skip-identity-check", help="UNSAFE: accept a keyless signature by anyone the "
    "trust root's CA ever certified. For debugging only.", rich_help_panel=KEYLESS_PANEL)]
PublicKeyOption = Annotated[Path | None, typer.Option(
    "--key", help="EC public key (PEM) the signature must verify with.",
    rich_help_panel=CERT_PANEL, show_default=False)]
CertChainOption = Annotated[list[Path] | None, typer.Option(
    "--cert-chain", help="Trusted CA certificate(s) (PEM) the signing certificate must "
    "chain to; repeatable.", rich_help_panel=CERT_PANEL, show_default=False)]
TrustedRootOption = Annotated[Path | None, typer.Option(
    "--trusted-root", help="Sigstore trusted_root.json to verify against.",
    rich_help_panel=TRUST_PANEL, show_default=False)]
TrustConfigOption = Annotated[Path | None, typer.Option(
    "--trust-config", help="Sigstore ClientTrustConfig JSON (private deployments).",
    rich_help_panel=TRUST_PANEL, show_default=False)]
TrustStagingOption = Annotated[bool, typer.Option(
    "--staging", help="Sigstore's staging instance (bundled root).",
    rich_help_panel=TRUST_PANEL)]
RefreshTrustOption = Annotated[bool, typer.Option(
    "--refresh-trust", help="Update the production/staging trusted root over TUF first "
    "(network; writes sigstore-python's cache).", rich_help_panel=TRUST_PANEL)]


def identity_rules(order: Sequence[str], identity: Sequence[str] | None,
                   identity_regex: Sequence[str] | None,
                   issuer: Sequence[str] | None) -> list[Identity]:
    """Pair the n-th --identity/--identity-regex (in command-line order: ``order``, the option
    names :class:`~modelsign.cli._ordered.OrderedCommand` recorded) with the n-th --issuer."""
    from modelsign.verify import Identity

    identity, identity_regex, issuer = identity or [], identity_regex or [], issuer or []
    kinds = [n for n in order if n in ("identity", "identity_regex")]
    if len(kinds) != len(identity) + len(identity_regex):  # order unknown: keep kinds grouped
        kinds = ["identity"] * len(identity) + ["identity_regex"] * len(identity_regex)
    if len(kinds) != len(issuer):
        raise InputError(
            "each --identity / --identity-regex needs its own --issuer",
            expected="as many --issuer as identity options",
            actual=f"{len(kinds)} identity option(s), {len(issuer)} --issuer",
            hint="e.g. --identity me@example.com --issuer https://accounts.google.com")
    exact, regex = iter(identity), iter(identity_regex)
    rules = []
    for kind, iss in zip(kinds, issuer, strict=True):
        if kind == "identity":
            rules.append(Identity(identity=next(exact), issuer=iss))
        else:
            rules.append(Identity(identity_regex=next(regex), issuer=iss))
    return rules


def trust_from_options(trusted_root: Path | None, trust_config: Path | None,
                       staging: bool = False, refresh: bool = False) -> Trust:
    """The trust root the trust options describe (Sigstore's production root by default)."""
    from modelsign.verify import Trust

    given = [n for n, v in (("--trusted-root", trusted_root), ("--trust-config", trust_config),
                            ("--staging", staging)) if v]
    if len(given) > 1:
        raise InputError(f"{' and '.join(given)} are mutually exclusive", hint="pass one of them")
    if trusted_root is not None:
        if refresh:
            raise InputError("--refresh-trust cannot be combined with --trusted-root")
        return Trust.from_trusted_root(trusted_root)
    if trust_config is not None:
        if refresh:
            raise InputError("--refresh-trust cannot be combined with --trust-config")
        return Trust.from_trust_config(trust_config)
    return Trust.staging(refresh=refresh) if staging else Trust.production(refresh=refresh)


def keyless_trust_from_options(*, key: Path | None, cert_chain: Sequence[Path] | None,
                               trusted_root: Path | None, trust_config: Path | None,
                               staging: bool = False, refresh: bool = False) -> Trust:
    """:func:`trust_from_options` for a command that checks one signature: the trust options
    are refused with ``--key``/``--cert-chain`` (they would not be used)."""
    if (key is not None or cert_chain) and (trusted_root or trust_config or staging or refresh):
        raise InputError("trust-root options apply to keyless signatures only; they cannot "
                         "be combined with --key or --cert-chain")
    return trust_from_options(trusted_root, trust_config, staging, refresh)
