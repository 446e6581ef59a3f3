"""The frozen description of *how* an artifact is hashed (what OMS calls the serialization)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modelsign.errors import InputError

HashAlgorithm = Literal["sha256", "blake2b", "blake3"]
Method = Literal["files", "shards"]

ALGORITHMS: tuple[HashAlgorithm, ...] = ("sha256", "blake2b", "blake3")
METHODS: tuple[Method, ...] = ("files", "shards")
DEFAULT_SHARD_SIZE = 1_000_000_000

#: Names OMS always leaves out at the top level of a model directory.
DEFAULT_IGNORES: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
#: Files modelsign itself writes beside the model; never part of the signed content.
SIGNATURE_FILE = "model.sig"
CLAIMS_FILE = "claims.jsonl"


@dataclass(frozen=True, slots=True)
class HashSpec:
    """How to turn a directory into a manifest. Immutable; build a new one to change anything.

    ``ignore_paths`` are POSIX paths relative to the artifact root, in addition to the OMS defaults
    (``.git``, ``.gitattributes``, ``.github``, ``.gitignore`` at the top level) and the files
    modelsign writes (``model.sig``, ``claims.jsonl``), which are always left out.
    """

    method: Method = "files"
    algorithm: HashAlgorithm = "sha256"
    shard_size: int = DEFAULT_SHARD_SIZE
    ignore_paths: tuple[str, ...] = ()
    allow_symlinks: bool = False
    use_cache: bool = True
    extra_ignores: tuple[str, ...] = field(default=(SIGNATURE_FILE, CLAIMS_FILE))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError("unknown hashing method", expected=" or ".join(METHODS),
                             actual=repr(self.method))
        if self.algorithm not in ALGORITHMS:
            raise InputError("unknown hash algorithm", expected=", ".join(ALGORITHMS),
                             actual=repr(self.algorithm))
        if isinstance(self.shard_size, bool) or not isinstance(self.shard_size, int) \
                or self.shard_size <= 0:
            raise InputError("shard size must be a positive integer", expected="> 0",
                             actual=repr(self.shard_size))
        for p in self.ignore_paths:
            if not isinstance(p, str) or not p or p.startswith("/") or "\\" in p or "\0" in p:
                raise InputError("ignore paths must be relative POSIX paths",
                                 expected="e.g. 'logs' or 'checkpoints/tmp'", actual=repr(p))

    def all_ignores(self) -> tuple[str, ...]:
        """Every ignored path, sorted and de-duplicated, as recorded in the OMS serialization."""
        return tuple(sorted(set(DEFAULT_IGNORES) | set(self.extra_ignores)
                            | {p.strip("/") for p in self.ignore_paths}))
