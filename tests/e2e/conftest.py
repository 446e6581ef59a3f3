"""What the lineage end-to-end tests share: the ``lineage`` command registered on the app, the
CLI run in-process, the lineage JSON schema, and a small model directory to sign.

Each test module builds its own lineage (keyless through the CLI, key-signed through the CLI or
the API, a hostile graph): only the plumbing below is common.
"""

from __future__ import annotations

import contextlib
import io
import json
from importlib import import_module
from pathlib import Path
from typing import Any

from modelsign.cli import _app
from modelsign.cli._app import run

#: schemas/lineage.schema.json, which every ``lineage --format json`` document must validate.
SCHEMA: dict[str, Any] = json.loads((Path(__file__).resolve().parents[2] / "schemas" /
                                     "lineage.schema.json").read_text())


def _register() -> None:
    """Until ``modelsign.cli._lineage`` is listed in ``_app._COMMAND_MODULES``, add its commands
    to the app for these tests (once listed, this does nothing)."""
    names = {c.name for c in _app.app.registered_commands}
    if "modelsign.cli._lineage" not in _app._COMMAND_MODULES and "lineage" not in names:
        import_module("modelsign.cli._lineage").register(_app.app)


_register()


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    """``modelsign *args`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = run([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def ok(*args: str | Path) -> str:
    """``modelsign *args``, which must exit 0: its stdout."""
    rc, out, err = run_cli(*args)
    assert rc == 0, (rc, out, err)
    return out


def model_dir(path: Path, seed: int, size: int) -> Path:
    """A model directory: ``config.json`` naming ``seed`` and ``size`` bytes of weights."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"seed": seed}))
    (path / "model.safetensors").write_bytes(bytes([seed % 256]) * size)
    return path
