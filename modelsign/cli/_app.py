"""The typer application: command registration and the one place errors become exit codes."""

from __future__ import annotations

import logging
import os
import sys
from importlib import import_module

import typer

from modelsign.cli._text import safe
from modelsign.errors import ModelsignError

# Each module defines ``register(app)``; one module per command group keeps them independent.
_COMMAND_MODULES = (
    "modelsign.cli._hash",
    "modelsign.cli._sign",
    "modelsign.cli._verify",
    "modelsign.cli._sigstore",
    "modelsign.cli._attest",
    "modelsign.cli._hf",
    "modelsign.cli._policy",
    "modelsign.cli._lineage",
    "modelsign.cli._demo",
)
#: The module that registers each top-level command (a test checks it against the modules).
#: ``modelsign hash ...`` then imports and builds only ``_hash``: start-up is paid per command,
#: not for all of them (typer inspects every registered function on each run).
COMMANDS = {
    "hash": "modelsign.cli._hash",
    "sign": "modelsign.cli._sign",
    "verify": "modelsign.cli._verify",
    "sigstore": "modelsign.cli._sigstore",
    "attest": "modelsign.cli._attest",
    "claims": "modelsign.cli._attest",
    "hf": "modelsign.cli._hf",
    "policy": "modelsign.cli._policy",
    "lineage": "modelsign.cli._lineage",
    "store": "modelsign.cli._lineage",
    "demo": "modelsign.cli._demo",
}


def _version(value: bool) -> None:
    if value:
        from modelsign import __version__

        typer.echo(f"modelsign {__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Sign, attest and verify machine-learning models.

    Exit codes: 0 verified/done, 1 verification or policy failed, 2 bad input or usage,
    3 internal error.
    """


def make_app(modules: tuple[str, ...] = _COMMAND_MODULES) -> typer.Typer:
    """The ``modelsign`` application with the commands of ``modules`` registered."""
    new = typer.Typer(
        name="modelsign",
        help="Sign, attest and verify machine-learning models (OpenSSF Model Signing v1.0).",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    new.callback()(_root)
    for mod in modules:
        import_module(mod).register(new)
    return new


_apps: dict[str | None, typer.Typer] = {}


def app_for(args: list[str]) -> typer.Typer:
    """The application to run ``args``: only the named command's module when the first argument
    is a command (and no shell completion is asked for), else every command (``--help``, typos
    with suggestions, completion)."""
    first = args[0] if args else None
    key = first if first in COMMANDS and "_MODELSIGN_COMPLETE" not in os.environ else None
    if key not in _apps:
        _apps[key] = make_app((COMMANDS[key],) if key is not None else _COMMAND_MODULES)
    return _apps[key]


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the application with every command (tests, documentation)
        return app_for([])
    raise AttributeError(name)


def error(message: str) -> None:
    """Print a one-line error to stderr. Messages carry outside names (files, identities,
    URIs): control characters and newlines in them are escaped, never sent to the terminal."""
    sys.stderr.write(f"modelsign: error: {safe(message, newlines=False)}\n")


def run(args: list[str]) -> int:
    """Run the CLI on ``args`` and return the exit code; never lets a traceback reach the user."""
    # sigstore logs progress at WARNING ("TUF repository is loaded in offline mode; updates will
    # not be performed."), which Python's last-resort handler prints to stderr. The CLI reports
    # for itself; only sigstore's errors get through. The library leaves logging alone.
    sigstore_log = logging.getLogger("sigstore")
    level = sigstore_log.level
    sigstore_log.setLevel(max(level, logging.ERROR))
    try:
        return _run(args)
    finally:
        sigstore_log.setLevel(level)


def _run(args: list[str]) -> int:
    try:
        app_for(args)(args=args, prog_name="modelsign", standalone_mode=True)
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 2
    except ModelsignError as e:
        error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: exit 3, never a traceback
        error(f"internal error: {type(e).__name__}: {e}; please report this at "
              "https://github.com/modelsign/modelsign/issues (run with MODELSIGN_DEBUG=1 for "
              "a traceback)")
        if os.environ.get("MODELSIGN_DEBUG"):
            raise
        return 3
    return 0
