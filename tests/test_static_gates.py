"""The static gates of CI, run as tests so that the README's one test command runs them too:
ruff over the package, mypy --strict over the package, and a dependency vulnerability audit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; it is in the test extras: pip install -e '.[test]'")
    return path


def test_ruff_is_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "modelsign", "scripts"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    proc = subprocess.run([_tool("mypy"), "--strict", "--cache-dir", str(tmp_path / "cache"),
                           "modelsign"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_no_known_vulnerable_dependencies() -> None:
    """pip-audit over the installed environment fails on any known vulnerability.

    It asks PyPI's JSON API; where only a package mirror is reachable (as in this project's CI)
    every package is reported as "not found" and skipped, which pip-audit itself says."""
    proc = subprocess.run([_tool("pip-audit"), "--progress-spinner", "off"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "No known vulnerabilities found" in out, out[-5000:]
