"""The software and hardware of the running environment, for derivation claims.

Frameworks are read from installed distribution metadata (``importlib.metadata``), never by
importing them, and written as package URLs (``pkg:pypi/torch@2.6.0``; the interpreter as
``pkg:generic/python@3.11.9``). Accelerators and the CUDA/ROCm runtime come from torch, and only
when torch is already imported or installed (it is imported then, unless ``import_torch=False``).
``NAME==VERSION`` overrides add or replace entries (``cuda==12.4`` replaces the runtime).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from packaging.utils import canonicalize_name

from modelsign.errors import InputError
from modelsign.statements._provenance import Accelerator, Framework

__all__ = [
    "DEFAULT_PACKAGES",
    "RUNTIME_NAMES",
    "Environment",
    "detect_accelerators",
    "detect_environment",
    "detect_frameworks",
    "parse_framework_override",
]

#: Distributions recorded when installed, in addition to the interpreter.
DEFAULT_PACKAGES: tuple[str, ...] = (
    "torch", "transformers", "peft", "accelerate", "safetensors", "datasets", "tokenizers",
    "trl", "bitsandbytes", "optimum", "vllm", "jax", "tensorflow",
)
#: Override names that describe the accelerator runtime rather than a Python package.
RUNTIME_NAMES: tuple[str, ...] = ("cuda", "rocm")

_OVERRIDE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s=]{1,200})$")


@dataclass(frozen=True, slots=True)
class Environment:
    """What a derivation ran on: frameworks, accelerators, and the accelerator runtime."""

    frameworks: tuple[Framework, ...]
    accelerators: tuple[Accelerator, ...] = ()
    runtimes: tuple[Framework, ...] = ()


def _python() -> Framework:
    return Framework("python", platform.python_version(), "generic")


def parse_framework_override(text: str) -> Framework:
    """``NAME==VERSION`` -> a framework (``python``, ``cuda`` and ``rocm`` are generic purls)."""
    m = _OVERRIDE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InputError("a framework must be given as NAME==VERSION",
                         expected="e.g. torch==2.6.0 or cuda==12.4", actual=repr(text)[:80])
    name = canonicalize_name(m["name"])
    kind = "generic" if name == "python" or name in RUNTIME_NAMES else "pypi"
    return Framework(name, m["version"], kind)


def detect_frameworks(packages: Iterable[str] = DEFAULT_PACKAGES) -> tuple[Framework, ...]:
    """The interpreter and each of ``packages`` that is installed, sorted by name."""
    found = [_python()]
    for pkg in packages:
        try:
            version = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(Framework(canonicalize_name(pkg), version, "pypi"))
    return tuple(sorted(found, key=lambda f: f.name))


def _torch_module(import_torch: bool) -> ModuleType | None:
    mod = sys.modules.get("torch")
    if mod is not None or not import_torch:
        return mod
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import torch
    except Exception:
        return None
    return torch


def detect_accelerators(
    *, torch_module: Any = None, import_torch: bool = True,
) -> tuple[tuple[Accelerator, ...], tuple[Framework, ...]]:
    """(accelerators, runtimes) as torch reports them; empty when torch is absent.

    ``torch_module`` injects the module (tests pass a small stand-in); otherwise torch is taken
    from ``sys.modules`` or imported when installed and ``import_torch`` is true. Probing never
    fails the caller: a device that cannot be queried is left out.
    """
    torch = torch_module if torch_module is not None else _torch_module(import_torch)
    if torch is None:
        return (), ()
    runtimes: list[Framework] = []
    version = getattr(torch, "version", None)
    cuda = getattr(version, "cuda", None)
    hip = getattr(version, "hip", None)
    if isinstance(cuda, str) and cuda:
        runtimes.append(Framework("cuda", cuda, "generic"))
    if isinstance(hip, str) and hip:
        runtimes.append(Framework("rocm", hip, "generic"))
    counts: dict[str, int] = {}
    try:
        if torch.cuda.is_available():
            for i in range(int(torch.cuda.device_count())):
                name = str(torch.cuda.get_device_name(i))
                counts[name] = counts.get(name, 0) + 1
    except Exception:
        pass
    try:
        xpu = getattr(torch, "xpu", None)
        if xpu is not None and xpu.is_available():
            for i in range(int(xpu.device_count())):
                name = str(xpu.get_device_name(i))
                counts[name] = counts.get(name, 0) + 1
    except Exception:
        pass
    try:
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        if mps is not None and mps.is_available():
            counts["Apple MPS"] = counts.get("Apple MPS", 0) + 1
    except Exception:
        pass
    accelerators = tuple(Accelerator(n, c) for n, c in sorted(counts.items()) if n)
    return accelerators, tuple(runtimes)


def _merge(base: Sequence[Framework], extra: Iterable[Framework]) -> tuple[Framework, ...]:
    by_name = {f.name: f for f in base}
    for f in extra:
        by_name[f.name] = f
    return tuple(sorted(by_name.values(), key=lambda f: f.name))


def detect_environment(
    *,
    overrides: Iterable[str | Framework] = (),
    packages: Iterable[str] = DEFAULT_PACKAGES,
    import_torch: bool = True,
    torch_module: Any = None,
) -> Environment:
    """Frameworks + accelerators + runtimes of this process, with ``overrides`` applied last."""
    over = [o if isinstance(o, Framework) else parse_framework_override(o) for o in overrides]
    frameworks = _merge(detect_frameworks(packages),
                        (f for f in over if f.name not in RUNTIME_NAMES))
    accelerators, runtimes = detect_accelerators(torch_module=torch_module,
                                                 import_torch=import_torch)
    runtimes = _merge(runtimes, (f for f in over if f.name in RUNTIME_NAMES))
    return Environment(frameworks, accelerators, runtimes)
