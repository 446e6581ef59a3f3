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

__all__ = [
    "ALGORITHMS",
    "DEFAULT_IGNORES",
    "DEFAULT_SHARD_SIZE",
    "METHODS",
    "Digest",
    "HashAlgorithm",
    "HashResult",
    "HashSpec",
    "Method",
    "default_cache_dir",
    "hash_tree",
]


def default_cache_dir() -> Path:
    """Where the incremental cache lives: ``MODELSIGN_CACHE_DIR``, else the user cache dir."""
    from modelsign.hashing._cache import default_cache_dir as _d

    return _d()
