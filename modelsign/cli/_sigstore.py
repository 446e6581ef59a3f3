"""``modelsign sigstore``: run the loopback Sigstore of :mod:`modelsign.testing` for local tests."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelsign.cli._text import err, out
from modelsign.errors import InputError, PathError

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.testing import LoopbackSigstore

_SERVE_HELP = (
    "Run a loopback Sigstore (Fulcio + Rekor + OIDC issuer) on 127.0.0.1 until Ctrl-C.\n\n"
    "For tests only: it issues identity tokens for any identity to anyone who can reach the "
    "port. It writes trust_config.json (and trusted_root.json) to --dir, prints their paths "
    "and how to get a token, then serves. Signatures it made keep verifying against that "
    "trust_config.json after it stops.\n\n"
    "Examples:\n\n"
    "  modelsign sigstore serve\n\n"
    "  modelsign sigstore serve --port 8080 --dir ./loopback\n\n"
    "Exit codes: 0 stopped by Ctrl-C or SIGTERM, 2 bad input (port in use, --dir unusable).\n"
)

_MINT_HELP = (
    "Get an identity token for IDENTITY from a running `modelsign sigstore serve`.\n\n"
    "Prints the token alone on stdout, for --identity-token \"$(...)\".\n\n"
    "Examples:\n\n"
    "  modelsign sigstore token --url http://127.0.0.1:8080 release@acme.example\n\n"
    "  modelsign sigstore token --url http://127.0.0.1:8080 "
    "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main\n\n"
    "Exit codes: 0 printed, 2 server unreachable or request refused.\n"
)

_EXAMPLE_IDENTITY = "you@example.com"
_TOKEN_TIMEOUT_SECONDS = 10
_MAX_TOKEN_BYTES = 64 * 1024

sigstore_app = typer.Typer(
    name="sigstore",
    help="A loopback Sigstore for testing keyless signing offline.",
    no_args_is_help=True,
)


def _token_url(url: str, identity: str, ttl: int | None = None) -> str:
    query = {"sub": identity, **({"ttl": str(ttl)} if ttl is not None else {})}
    return f"{url}/token?{urllib.parse.urlencode(query, safe='@:/')}"


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while serving, so ``finally`` blocks clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prepare_dir(directory: Path | None) -> tuple[Path, bool]:
    """The directory for the trust files, and whether we made it (and remove it at the end)."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="modelsign-sigstore-")), True
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PathError(f"cannot create the directory: {e.strerror}", path=directory,
                        hint="pass a writable --dir") from e
    return directory, False


@sigstore_app.command("serve", help=_SERVE_HELP)
def serve(
    port: Annotated[int, typer.Option(
        "--port", "-p", min=0, max=65535,
        help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    directory: Annotated[Path | None, typer.Option(
        "--dir", "-d", file_okay=False,
        help="Where to write trust_config.json and trusted_root.json (kept after exit) "
             "\\[default: a temporary directory, removed on exit].",
        show_default=False)] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log every request to stderr.")] = False,
) -> None:
    from modelsign.testing import LoopbackSigstore

    def log(line: str) -> None:
        err(line)  # request lines carry what clients sent

    sigstore = LoopbackSigstore(port=port, log=log if verbose else None)
    target, temporary = _prepare_dir(directory)
    try:
        # Ctrl-C or SIGTERM at any point from here on is an orderly stop, not an error.
        with _sigterm_stops():
            try:
                _start(sigstore, port)
                _announce(sigstore, target)
                threading.Event().wait()
            except KeyboardInterrupt:
                sys.stderr.write(f"stopped; {sigstore.log_size} log entries\n")
    finally:
        sigstore.stop()
        if temporary:
            shutil.rmtree(target, ignore_errors=True)


def _start(sigstore: LoopbackSigstore, port: int) -> None:
    try:
        sigstore.start()
    except OSError as e:
        raise InputError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}",
                         hint="pick another --port, or 0 for a free one") from e


def _announce(sigstore: LoopbackSigstore, target: Path) -> None:
    """Write the trust files into ``target``; print where they are and how to use them."""
    try:
        trust_config = sigstore.write_trust_config(target / "trust_config.json")
        trusted_root = sigstore.write_trusted_root(target / "trusted_root.json")
    except OSError as e:
        raise PathError(f"cannot write the trust files: {e.strerror or e}", path=target,
                        hint="pass a writable --dir") from e
    token_command = f"curl -fsS '{_token_url(sigstore.url, _EXAMPLE_IDENTITY)}'"
    sys.stdout.write(
        f"Loopback Sigstore (Fulcio v2, Rekor v1, OIDC issuer) at {sigstore.url}\n"
        "For tests only: it issues identity tokens for any identity to anyone who can "
        "reach this port.\n"
        "\n"
        f"trust config: {trust_config}\n"
        f"trusted root: {trusted_root}\n"
        f"issuer:       {sigstore.url}\n"
        f"token:        {token_command}\n"
        f"          or: modelsign sigstore token --url {sigstore.url} {_EXAMPLE_IDENTITY}\n"
        "\n"
        f"sign:   modelsign sign MODEL --trust-config {trust_config} "
        f"--identity-token \"$({token_command})\"\n"
        f"verify: modelsign verify MODEL --trust-config {trust_config} "
        f"--identity {_EXAMPLE_IDENTITY} --issuer {sigstore.url}\n"
        "\n"
        "Serving until Ctrl-C.\n")
    sys.stdout.flush()


@sigstore_app.command("token", help=_MINT_HELP, no_args_is_help=True)
def token(
    identity: Annotated[str, typer.Argument(
        help="Email address or URI to put in the token.", show_default=False)],
    url: Annotated[str, typer.Option(
        "--url", help="Base URL printed by `modelsign sigstore serve`.",
        show_default=False)],
    ttl: Annotated[int, typer.Option(
        "--ttl", min=1, max=86400, help="Seconds until the token expires.")] = 600,
) -> None:
    base = url.rstrip("/")
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        raise InputError("--url must be an http(s) URL", expected="http://127.0.0.1:PORT",
                         actual=url, hint="copy the URL `modelsign sigstore serve` printed")
    # No proxies: the server is meant to be on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(_token_url(base, identity, ttl), timeout=_TOKEN_TIMEOUT_SECONDS) as r:
            raw = r.read(_MAX_TOKEN_BYTES + 1)
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read(_MAX_TOKEN_BYTES)).get("message", e.reason)
        except ValueError:
            message = e.reason
        raise InputError(f"{base} refused the token request: {message}",
                         hint="check IDENTITY (an email address or a URI)") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise InputError(f"cannot reach a loopback Sigstore at {base}: {reason}",
                         hint="start one with `modelsign sigstore serve`") from e
    if len(raw) > _MAX_TOKEN_BYTES or raw.count(b".") != 2:
        raise InputError(f"{base} did not answer with a token",
                         hint="is --url a `modelsign sigstore serve` instance?")
    out(raw.decode("ascii", errors="replace").strip() + "\n")  # whatever --url answered


def register(app: typer.Typer) -> None:
    app.add_typer(sigstore_app, name="sigstore")
