"""The ``modelsign`` command line. Thin commands over the public API; owns exit codes.

Exit codes: 0 verified/done, 1 verification or policy failed, 2 bad input or usage,
3 internal error.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Returns (and exits with) the documented exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):  # fast path: no typer, no heavy imports
        from modelsign import __version__

        print(f"modelsign {__version__}")
        return 0
    from modelsign.cli._app import run

    return run(args)
