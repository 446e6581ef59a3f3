"""Frameworks come from installed metadata; hardware from torch when it is there."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from types import SimpleNamespace

import pytest

from modelsign._frameworks import (
    DEFAULT_PACKAGES,
    detect_accelerators,
    detect_environment,
    detect_frameworks,
    parse_framework_override,
)
from modelsign.errors import InputError
from modelsign.statements._provenance import Accelerator, Framework


def _installed() -> dict[str, str]:
    out = {}
    for pkg in DEFAULT_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def test_frameworks_match_importlib_metadata() -> None:
    found = {f.name: f for f in detect_frameworks()}
    assert found.pop("python") == Framework("python", platform.python_version(), "generic")
    assert {n: f.version for n, f in found.items()} == _installed()
    assert all(f.uri == f"pkg:pypi/{f.name}@{f.version}".replace("+", "%2B")
               for f in found.values())


def test_a_package_that_is_not_installed_is_left_out() -> None:
    names = [f.name for f in detect_frameworks(["surely-not-installed-modelsign-xyz", "pydantic"])]
    assert names == ["pydantic", "python"]


@pytest.mark.parametrize("text, want", [
    ("torch==2.6.0", Framework("torch", "2.6.0")),
    ("Flash_Attn==2.7.4.post1", Framework("flash-attn", "2.7.4.post1")),
    ("python==3.12.1", Framework("python", "3.12.1", "generic")),
    ("cuda==12.4", Framework("cuda", "12.4", "generic")),
])
def test_override_parsing(text: str, want: Framework) -> None:
    assert parse_framework_override(text) == want


@pytest.mark.parametrize("text", ["torch", "torch>=2", "torch==", "==1", "a b==1", "x==1==2"])
def test_bad_overrides_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="NAME==VERSION"):
        parse_framework_override(text)


def test_overrides_add_and_replace() -> None:
    env = detect_environment(overrides=["python==3.0.0", "my-trainer==1.2", "cuda==11.8"],
                             import_torch=False)
    by = {f.name: f.version for f in env.frameworks}
    assert by["python"] == "3.0.0" and by["my-trainer"] == "1.2"
    assert "cuda" not in by and env.runtimes == (Framework("cuda", "11.8", "generic"),)


def test_no_torch_import_when_told_not_to() -> None:
    import sys
    if "torch" in sys.modules:
        pytest.skip("torch was already imported by another test")
    assert detect_accelerators(import_torch=False) == ((), ())
    assert "torch" not in sys.modules


class _FakeCuda:
    """A stand-in for torch.cuda on a machine with two kinds of GPU (third-party API, not ours)."""

    names = ("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA L4")

    def is_available(self) -> bool:
        return True

    def device_count(self) -> int:
        return len(self.names)

    def get_device_name(self, i: int) -> str:
        return self.names[i]


def test_accelerators_and_runtime_from_a_torch_like_module() -> None:
    torch = SimpleNamespace(version=SimpleNamespace(cuda="12.4", hip=None), cuda=_FakeCuda())
    acc, rt = detect_accelerators(torch_module=torch)
    assert acc == (Accelerator("NVIDIA H100 80GB HBM3", 2), Accelerator("NVIDIA L4", 1))
    assert rt == (Framework("cuda", "12.4", "generic"),)


def test_a_failing_driver_does_not_fail_detection() -> None:
    class Broken:
        def is_available(self) -> bool:
            raise RuntimeError("CUDA driver initialization failed")
    torch = SimpleNamespace(version=SimpleNamespace(cuda="12.1"), cuda=Broken())
    assert detect_accelerators(torch_module=torch) == ((), (Framework("cuda", "12.1", "generic"),))


def test_real_torch_when_installed() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    acc, rt = detect_accelerators(torch_module=torch)
    if torch.version.cuda:
        assert Framework("cuda", torch.version.cuda, "generic") in rt
    else:
        assert all(r.name != "cuda" for r in rt)
    if not torch.cuda.is_available():
        assert all("NVIDIA" not in a.name for a in acc)
