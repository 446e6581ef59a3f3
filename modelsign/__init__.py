"""modelsign: sign, attest and verify machine-learning model artifacts.

The public API is what ``__all__`` lists; everything else is private. Attributes are imported
lazily so that ``import modelsign`` (and ``modelsign --version``) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "HashSpec": "modelsign.hashing._spec",
    "Manifest": "modelsign.manifest",
    "Resource": "modelsign.manifest",
    "ManifestDiff": "modelsign.manifest",
    "hash_model": "modelsign.manifest",
    "sign_model": "modelsign.signing",
    "verify_model": "modelsign.verify",
    "VerificationResult": "modelsign.verify",
    "Identity": "modelsign.verify",
    "Trust": "modelsign.verify",
    "verify_bundle": "modelsign.verify",
    "attest": "modelsign.claims",
    "verify_lineage": "modelsign.lineage",
    "LineageGraph": "modelsign.lineage",
    "load_policy": "modelsign.policy",
    "verify_with_policy": "modelsign.policy",
    "ModelsignError": "modelsign.errors",
    "InputError": "modelsign.errors",
    "VerificationError": "modelsign.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.errors import InputError as InputError
    from modelsign.errors import ModelsignError as ModelsignError
    from modelsign.errors import VerificationError as VerificationError
    from modelsign.hashing._spec import HashSpec as HashSpec
    from modelsign.manifest import Manifest as Manifest
    from modelsign.manifest import ManifestDiff as ManifestDiff
    from modelsign.manifest import Resource as Resource
    from modelsign.manifest import hash_model as hash_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelsign' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
