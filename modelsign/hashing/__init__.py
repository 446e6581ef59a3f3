"""Bytes to digests: the file walk, the hash engines, shards, and the incremental cache.

Knows nothing of signatures. The one entry point is :func:`hash_tree`; :class:`HashSpec` says how
to hash (the OMS serialization), :class:`HashResult` is what comes back. Engine choices and
measurements: docs/decisions/0003-hashing-engine.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsign.hashing._spec import (
    ALGORITHMS,
    DEFAULT_IGNORES,
    DEFAULT_SHARD_SIZE,
    METHODS,
    HashAlgorithm,
    HashSpec,
    Method,
)
from modelsign.hashing._tree import Digest, HashResult, hash_tree

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from modelsign.hashing._dask import DaskExecutor, dask_executor
    from modelsign.hashing._remote import SourceInfo, hash_remote

__all__ = [
    "ALGORITHMS",
    "DEFAULT_IGNORES",
    "DEFAULT_SHARD_SIZE",
    "METHODS",
    "DaskExecutor",
    "Digest",
    "HashAlgorithm",
    "HashResult",
    "HashSpec",
    "Method",
    "SourceInfo",
    "dask_executor",
    "default_cache_dir",
    "hash_remote",
    "hash_tree",
]

# Remote sources and Dask (docs/decisions/0011): imported on first use, so that nothing of
# fsspec or dask is loaded unless asked for.
_LAZY = {"DaskExecutor": "modelsign.hashing._dask", "dask_executor": "modelsign.hashing._dask",
         "SourceInfo": "modelsign.hashing._remote", "hash_remote": "modelsign.hashing._remote"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelsign.hashing' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)


def default_cache_dir() -> Path:
    """Where the incremental cache lives: ``MODELSIGN_CACHE_DIR``, else the user cache dir."""
    from modelsign.hashing._cache import default_cache_dir as _d

    return _d()
