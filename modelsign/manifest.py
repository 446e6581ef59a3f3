"""Manifests: the list of resources (files or byte ranges) of an artifact with their digests.

A :class:`Manifest` is a value: frozen, ordered, with no duplicates. Its root digest is SHA-256
over the raw resource digests in manifest order, exactly as OMS v1.0 / ``model_signing`` define it.

Order: resources are kept in the order ``model_signing`` (the OMS reference implementation) uses,
by path components and then by numeric byte offsets, so that the root digest of a tree is the same
whichever of the two tools computed it (see docs/decisions/0002-resource-order.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelsign.errors import InputError, IntegrityError, SignatureFormatError
from modelsign.hashing._spec import ALGORITHMS, METHODS, HashAlgorithm, HashSpec, Method

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.hashing._remote import SourceInfo

__all__ = [
    "Resource",
    "Serialization",
    "Manifest",
    "ManifestDiff",
    "ResourceChange",
    "check_resource_name",
    "hash_model",
    "MAX_RESOURCES",
]

#: Upper bound on the resources a manifest read from outside may hold.
MAX_RESOURCES = 1_000_000
_MAX_NAME = 4096


def check_resource_name(name: str, *, where: str = "resource name") -> None:
    """Refuse names that could point outside the artifact or mean other files on other OSes."""
    bad = None
    if not isinstance(name, str) or not name:
        bad = "is empty"
    elif len(name) > _MAX_NAME:
        bad = f"is longer than {_MAX_NAME} characters"
    elif "\0" in name:
        bad = "contains a NUL character"
    elif "\\" in name:
        bad = "contains a backslash"
    elif name.startswith("/"):
        bad = "is an absolute path"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        bad = "contains an empty, '.' or '..' path component"
    if bad:
        raise SignatureFormatError(
            f"{where} {name!r} {bad}",
            expected="a relative POSIX path inside the artifact",
            actual=repr(name)[:200],
            hint="the signature was not produced by a conforming tool; do not trust it",
        )


@dataclass(frozen=True, slots=True)
class Resource:
    """One manifest entry: a whole file (files mode) or the byte range ``[start, end)`` of one."""

    path: str
    algorithm: HashAlgorithm
    digest: bytes
    start: int | None = None
    end: int | None = None

    @property
    def name(self) -> str:
        """The OMS resource name: ``path`` or ``path:start:end``."""
        if self.start is None:
            return self.path
        return f"{self.path}:{self.start}:{self.end}"

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def sort_key(self) -> tuple[tuple[str, ...], int, int]:
        return (tuple(self.path.split("/")), self.start or 0, self.end or 0)

    @classmethod
    def parse(cls, name: str, algorithm: str, digest_hex: str, *, method: Method) -> Resource:
        """Parse one resource of a predicate; shard names split on the *last* two colons."""
        if algorithm not in ALGORITHMS:
            raise SignatureFormatError(
                f"resource {name!r} has an unknown algorithm",
                expected=" | ".join(ALGORITHMS), actual=repr(algorithm)[:80])
        try:
            digest = bytes.fromhex(digest_hex)
        except (ValueError, TypeError) as e:
            raise SignatureFormatError(f"resource {name!r} has a digest that is not hex",
                                       actual=repr(digest_hex)[:80]) from e
        if not digest or digest_hex != digest.hex():
            raise SignatureFormatError(f"resource {name!r} digest must be lowercase hex",
                                       actual=repr(digest_hex)[:80])
        if method == "files":
            check_resource_name(name)
            return cls(name, algorithm, digest)
        parts = name.rsplit(":", 2)
        if len(parts) != 3:
            parts = ["", "", ""]
        path_s, start_s, end_s = parts
        if not start_s or not end_s or not (start_s.isdigit() and end_s.isdigit()) \
                or not start_s.isascii() or not end_s.isascii():
            raise SignatureFormatError(f"shard name {name!r} is not 'path:start:end'",
                                       expected="path:start:end with integer offsets",
                                       actual=repr(name)[:200])
        start, end = int(start_s), int(end_s)
        if str(start) != start_s or str(end) != end_s or end <= start:
            raise SignatureFormatError(f"shard name {name!r} has a bad byte range",
                                       expected="start < end, no leading zeros",
                                       actual=f"{start_s}..{end_s}")
        check_resource_name(path_s, where="shard path")
        return cls(path_s, algorithm, digest, start, end)


@dataclass(frozen=True, slots=True)
class Serialization:
    """The OMS ``serialization`` object: how the resources were produced."""

    method: Method
    hash_type: HashAlgorithm
    allow_symlinks: bool = False
    shard_size: int | None = None
    ignore_paths: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: HashSpec) -> Serialization:
        return cls(
            method=spec.method,
            hash_type=spec.algorithm,
            allow_symlinks=spec.allow_symlinks,
            shard_size=spec.shard_size if spec.method == "shards" else None,
            ignore_paths=spec.all_ignores(),
        )

    def to_spec(self, *, use_cache: bool = False) -> HashSpec:
        """The spec that re-creates these resources (used by verification)."""
        from modelsign.hashing._spec import DEFAULT_SHARD_SIZE
        return HashSpec(
            method=self.method,
            algorithm=self.hash_type,
            shard_size=self.shard_size if self.shard_size is not None else DEFAULT_SHARD_SIZE,
            ignore_paths=tuple(self.ignore_paths),
            allow_symlinks=self.allow_symlinks,
            use_cache=use_cache,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.hash_type,
            "allow_symlinks": self.allow_symlinks,
        }
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Serialization:
        if not isinstance(obj, Mapping):
            raise SignatureFormatError("predicate.serialization must be an object",
                                       actual=type(obj).__name__)
        method = obj.get("method")
        hash_type = obj.get("hash_type")
        if method not in METHODS:
            raise SignatureFormatError("unknown serialization method",
                                       expected=" | ".join(METHODS), actual=repr(method)[:80])
        if hash_type not in ALGORITHMS:
            raise SignatureFormatError("unknown serialization hash_type",
                                       expected=" | ".join(ALGORITHMS),
                                       actual=repr(hash_type)[:80])
        allow = obj.get("allow_symlinks", False)
        # model_signing 1.0 wrote the string "false"; accept the two spellings it used.
        if allow in ("false", "False"):
            allow = False
        elif allow in ("true", "True"):
            allow = True
        if not isinstance(allow, bool):
            raise SignatureFormatError("allow_symlinks must be a boolean", actual=repr(allow)[:40])
        shard_size: int | None = None
        if method == "shards":
            raw = obj.get("shard_size")
            # model_signing 1.1.1 writes integers as floats (262144.0); accept integral floats.
            if isinstance(raw, float) and raw.is_integer():
                raw = int(raw)
            if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
                raise SignatureFormatError("shards serialization needs a positive shard_size",
                                           actual=repr(raw)[:40])
            shard_size = raw
        ignores = obj.get("ignore_paths", [])
        if not isinstance(ignores, list) or not all(isinstance(p, str) and p for p in ignores):
            raise SignatureFormatError("ignore_paths must be a list of non-empty strings",
                                       actual=repr(ignores)[:80])
        for p in ignores:
            check_resource_name(p.strip("/") or p, where="ignore path")
        return cls(method, hash_type, allow, shard_size, tuple(sorted(set(ignores))))


@dataclass(frozen=True, slots=True)
class ResourceChange:
    name: str
    expected: str | None  # hex, None when the resource is extra
    actual: str | None  # hex, None when the resource is missing


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    """What differs between a signed manifest (expected) and the files on disk (actual)."""

    missing: tuple[ResourceChange, ...] = ()
    extra: tuple[ResourceChange, ...] = ()
    changed: tuple[ResourceChange, ...] = ()
    extra_files: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed or self.extra_files)

    def describe(self) -> list[str]:
        out = [f"missing {c.name} (signed {c.expected})" for c in self.missing]
        out += [f"changed {c.name} (signed {c.expected}, on disk {c.actual})"
                for c in self.changed]
        out += [f"extra {c.name} (on disk {c.actual}, not signed)" for c in self.extra]
        out += [f"extra file {p} (not signed)" for p in self.extra_files]
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """An artifact's resources, in OMS order, with the serialization that produced them.

    ``files`` is the set of every regular file seen while hashing (zero-byte ones included),
    relative POSIX paths. In shards mode a zero-byte file has no resource, so verification compares
    ``files`` as well to catch an added empty file. It is empty for manifests read from a signature.
    """

    name: str
    serialization: Serialization
    resources: tuple[Resource, ...]
    files: frozenset[str] = frozenset()
    #: where the bytes came from, for remote sources (s3://, gs://, hf://); never part of the
    #: predicate, so it takes no part in comparisons either
    source: SourceInfo | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.resources:
            raise InputError("an artifact must contain at least one file to sign",
                             path=self.name, expected=">= 1 file", actual="0 files",
                             hint="check the path and the --ignore-path options")

    @classmethod
    def build(cls, name: str, serialization: Serialization, resources: Iterable[Resource],
              files: Iterable[str] = (), *, source: SourceInfo | None = None) -> Manifest:
        """Sort resources into OMS order and refuse duplicates."""
        ordered = tuple(sorted(resources, key=Resource.sort_key))
        seen: set[str] = set()
        for r in ordered:
            if r.name in seen:
                raise SignatureFormatError(f"duplicate resource {r.name!r}",
                                           expected="each resource once", actual="twice")
            seen.add(r.name)
        return cls(name, serialization, ordered, frozenset(files), source)

    @property
    def root_digest(self) -> bytes:
        h = hashlib.sha256()
        for r in self.resources:
            h.update(r.digest)
        return h.digest()

    @property
    def root_hex(self) -> str:
        return self.root_digest.hex()

    def by_name(self) -> dict[str, Resource]:
        return {r.name: r for r in self.resources}

    def paths(self) -> frozenset[str]:
        return frozenset(r.path for r in self.resources)

    def to_predicate(self) -> dict[str, Any]:
        """The OMS v1.0 predicate (``serialization`` + ``resources``), ready for RFC 8785."""
        return {
            "serialization": self.serialization.to_json(),
            "resources": [
                {"name": r.name, "algorithm": r.algorithm, "digest": r.hex}
                for r in self.resources
            ],
        }

    @classmethod
    def from_predicate(cls, name: str, predicate: Any) -> Manifest:
        """Parse an OMS v1.0 predicate read from a signature (outside input: bounded, strict).

        The listed order is kept as is: the root digest binds it, and ``model_signing`` computes
        its root digest over the order it wrote.
        """
        if not isinstance(predicate, Mapping):
            raise SignatureFormatError("predicate must be an object",
                                       actual=type(predicate).__name__)
        ser = Serialization.from_json(predicate.get("serialization"))
        raw = predicate.get("resources")
        if not isinstance(raw, list):
            raise SignatureFormatError("predicate.resources must be a list",
                                       actual=type(raw).__name__)
        if not raw:
            raise SignatureFormatError("predicate.resources is empty", expected=">= 1 resource",
                                       actual="0")
        if len(raw) > MAX_RESOURCES:
            raise SignatureFormatError("too many resources", expected=f"<= {MAX_RESOURCES}",
                                       actual=str(len(raw)))
        out: list[Resource] = []
        seen: set[str] = set()
        for item in raw:
            if not isinstance(item, Mapping):
                raise SignatureFormatError("each resource must be an object",
                                           actual=type(item).__name__)
            rname, alg, dig = item.get("name"), item.get("algorithm"), item.get("digest")
            if not isinstance(rname, str) or not isinstance(dig, str) or not isinstance(alg, str):
                raise SignatureFormatError("resource needs string name, algorithm and digest",
                                           actual=repr(item)[:120])
            # model_signing 1.1.1 writes shard algorithms as "sha256-sharded-<N>".
            if ser.method == "shards" and alg.startswith(f"{ser.hash_type}-sharded-"):
                alg = ser.hash_type
            if alg != ser.hash_type:
                raise SignatureFormatError(f"resource {rname!r} algorithm differs from hash_type",
                                           expected=ser.hash_type, actual=alg[:40])
            res = Resource.parse(rname, alg, dig, method=ser.method)
            if res.name in seen:
                raise SignatureFormatError(f"duplicate resource {rname!r}",
                                           expected="each resource once", actual="twice",
                                           hint="the signature is malformed; do not trust it")
            seen.add(res.name)
            out.append(res)
        return cls(name, ser, tuple(out))

    def diff(self, actual: Manifest) -> ManifestDiff:
        """Compare this (signed, expected) manifest with one computed from disk (actual)."""
        exp, act = self.by_name(), actual.by_name()
        missing = tuple(ResourceChange(n, exp[n].hex, None) for n in exp if n not in act)
        extra = tuple(ResourceChange(n, None, act[n].hex) for n in act if n not in exp)
        changed = tuple(ResourceChange(n, exp[n].hex, act[n].hex)
                        for n in exp if n in act and exp[n].digest != act[n].digest)
        extra_files: tuple[str, ...] = ()
        if self.serialization.method == "shards" and actual.files:
            signed_paths = self.paths()
            extra_files = tuple(sorted(p for p in actual.files
                                       if p not in signed_paths and p not in actual.paths()))
        return ManifestDiff(missing, extra, changed, extra_files)


def hash_model(path: str | PathLike[str], spec: HashSpec | None = None, *,
               storage_options: Mapping[str, Any] | None = None,
               trust_hub_lfs_sha256: bool = False, **kwargs: Any) -> Manifest:
    """Hash a model (or dataset) directory or a single file into its :class:`Manifest`.

    ``path`` may also be a remote source: ``s3://bucket/prefix``, ``gs://bucket/prefix`` or
    ``hf://[datasets/]org/name@<40-hex commit>``, read through fsspec with ``storage_options``
    (e.g. ``{"endpoint_url": ...}``); the manifest's ``source`` then records the URI. For hf://
    sources, ``trust_hub_lfs_sha256=True`` takes LFS files' digests from the Hub's metadata
    instead of reading them (listed in ``source``; never what verification does).

    ``kwargs`` are passed to the hashing engine (``executor=``, ``progress=``, ``cache_dir=``);
    ``executor`` may be any ``concurrent.futures.Executor``, e.g. a Dask cluster's
    ``client.get_executor(pure=False)``.
    """
    spec = spec or HashSpec()
    from modelsign.hashing._remote import is_uri

    source = None
    if is_uri(path):
        from modelsign.hashing._remote import hash_remote

        assert isinstance(path, str)
        kwargs.pop("cache_dir", None)  # remote sources are never cached
        kwargs.pop("clock", None)
        result, source = hash_remote(path, spec, storage_options=storage_options,
                                     trust_hub_lfs_sha256=trust_hub_lfs_sha256, **kwargs)
    else:
        from modelsign.hashing import hash_tree

        if storage_options:
            raise InputError("storage options apply to remote sources (s3://, gs://, hf://) "
                             "only", path=str(path), hint="drop --storage-option")
        if trust_hub_lfs_sha256:
            raise InputError("--trust-hub-lfs-sha256 applies to hf:// sources only",
                             path=str(path), hint="drop --trust-hub-lfs-sha256")
        result = hash_tree(Path(path), spec, **kwargs)
    ser = Serialization.from_spec(spec)
    resources = [Resource(p, spec.algorithm, d, s, e) for (p, s, e, d) in result.digests]
    return Manifest.build(result.name, ser, resources, result.files, source=source)


def require_same(expected: Manifest, actual: Manifest) -> None:
    """Raise :class:`IntegrityError` listing every difference, or return quietly."""
    d = expected.diff(actual)
    if not d.ok:
        lines = d.describe()
        raise IntegrityError(
            f"{len(lines)} difference(s) between the signature and the files: "
            + "; ".join(lines[:5])
            + (" ..." if len(lines) > 5 else ""),
            hint="the artifact was modified after signing; obtain it again from its publisher")

