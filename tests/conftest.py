"""Shared test fixtures: where ../shared lives, and isolation from the user's environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["modelsign.testing.pytest_plugin"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
OMS_SCHEMAS = SHARED / "oms-spec" / "schemas"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: tests that read ../shared (peer fixtures, OMS schemas) "
                    "need the shared folder beside the checkout")
    return path


@pytest.fixture
def shared_fixtures() -> Path:
    return _need(FIXTURES)


@pytest.fixture
def oms_schemas() -> Path:
    return _need(OMS_SCHEMAS)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own cache dirs, so nothing leaks between tests or from the user."""
    base = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("MODELSIGN_CACHE_DIR", str(base / "modelsign-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    os.environ.pop("MODELSIGN_DEBUG", None)
