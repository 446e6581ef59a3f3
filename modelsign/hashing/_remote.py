"""Remote sources: hash an artifact that lives in object storage, through fsspec.

``s3://bucket/prefix`` (s3fs), ``gs://bucket/prefix`` (gcsfs) and
``hf://[datasets/|spaces/]org/name@<40-hex commit>[/folder]`` (huggingface_hub's ``HfFileSystem``)
give the same manifest as the same files on a local disk: the object names below the prefix are
the resource names, and the OMS rules of the local walk apply (default ignores at the top level,
names that are valid manifest names, no two names equal after Unicode NFC normalization).

The work is planned like the local one (:class:`~modelsign.hashing._engine.Task` values: batches
of small objects, long byte ranges alone) and each task is a pure function of *(source, task)*:
:func:`run_remote_task` takes a picklable :class:`RemoteSource` (the URI and the storage options,
never an open connection) and the planned objects, so any ``concurrent.futures.Executor`` can run
it, threads here or a Dask cluster's workers. Each worker thread streams objects in blocks of
:data:`BLOCK_SIZE` into one reused buffer (bounded memory whatever the object size) and hashes up
to :data:`FILE_THREADS` objects of a batch at once (object stores answer in tens of milliseconds,
so one request at a time would leave the core idle).

Change detection: the listing records each object's size and version token (S3 ``ETag``, GCS
``generation``, Hub ``blob_id``); reading re-checks both when the object is opened, and S3 reads
are conditional on the listed ETag (``If-Match``), so an object replaced while it is read fails
the read instead of mixing old and new bytes. Other stores are checked again after the read. A
change is a :class:`~modelsign.errors.FileChangedError` naming the object. Hub sources must pin a
commit: at a commit, files are immutable.

``trust_hub_lfs_sha256``: for ``hf://`` sources, files mode and sha256 only, the digest of each
LFS file is taken from the Hub's metadata (the LFS object id *is* the file's SHA-256) instead of
downloading it. That is the Hub's word, not a measurement: the result says which files were taken
that way (:attr:`SourceInfo.hub_lfs_sha256`), and verification never does it.

Nothing of fsspec or its backends is imported until a remote source is hashed. Remote sources are
never served from the incremental cache (it is keyed by local inodes).
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from modelsign.errors import (
    FileChangedError,
    InputError,
    InternalError,
    ModelsignError,
    PathError,
)
from modelsign.hashing._engine import FileTask, Task, TaskResult, new_hasher, shard_ranges
from modelsign.hashing._progress import Progress, ProgressArg
from modelsign.hashing._spec import HashSpec
from modelsign.hashing._tree import (
    Digest,
    HashResult,
    _Plan,
    _sort_key,
    executor_batches,
    run_tasks,
)
from modelsign.hashing._walk import _ignore_set

if TYPE_CHECKING:  # pragma: no cover
    from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

__all__ = [
    "BLOCK_SIZE",
    "FILE_THREADS",
    "RemoteEntry",
    "RemoteSource",
    "SourceInfo",
    "backend_module",
    "hash_remote",
    "is_uri",
    "parse_storage_options",
    "run_remote_task",
]

#: Bytes per read request (and the size of each thread's buffer).
BLOCK_SIZE = 8 << 20
#: Objects of one batch read at the same time (each on a thread with its own buffer).
FILE_THREADS = 8
#: Tasks run at once by the default (thread) executor: network-bound, so more than the cores.
DEFAULT_THREADS = 16

#: URI scheme -> fsspec protocol
_SCHEMES: dict[str, str] = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "hf": "hf"}
#: fsspec protocol -> (module that implements it, the modelsign extra that installs it)
_BACKENDS: dict[str, tuple[str, str | None]] = {
    "s3": ("s3fs", "s3"), "gcs": ("gcsfs", "gcs"), "hf": ("huggingface_hub", None)}
_URI_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_HF_TYPES = ("datasets/", "spaces/", "models/")


def is_uri(source: object) -> bool:
    """True for ``scheme://...`` strings (remote sources); paths on disk are not URIs."""
    return isinstance(source, str) and _URI_RE.match(source) is not None


def backend_module(uri: str) -> str | None:
    """The module a worker needs to read ``uri`` (``s3fs``, ``gcsfs``, ``huggingface_hub``)."""
    m = _URI_RE.match(uri)
    proto = _SCHEMES.get(m.group(1).lower()) if m else None
    return _BACKENDS[proto][0] if proto else None


def parse_storage_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["endpoint_url=http://...", "anon=true", "client_kwargs.region_name=eu-west-1"]``.

    Values stay strings, except ``true``/``false`` (booleans); dotted keys make nested
    dictionaries (``client_kwargs.region_name``). The same key twice is an error.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or any(not p for p in key.split(".")):
            raise InputError(f"--storage-option {pair.split('=')[0]!r}... is not KEY=VALUE",
                             expected="KEY=VALUE, e.g. endpoint_url=http://127.0.0.1:9000",
                             actual=repr(key or pair[:40]))
        val: Any = {"true": True, "false": False}.get(value.lower(), value)
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise InputError(f"--storage-option {key} conflicts with {p}=...")
            node = child
        if leaf in node:
            raise InputError(f"--storage-option {key} given twice",
                             hint="give each storage option once")
        node[leaf] = val
    return out


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where a manifest's bytes came from, beside (never inside) the OMS predicate."""

    uri: str  #: the source as given (storage options, which may hold credentials, are not kept)
    revision: str | None = None  #: the Hub commit, for hf:// sources
    #: True when --trust-hub-lfs-sha256 was asked for
    trust_hub_lfs_sha256: bool = False
    #: files whose digest is the Hub's LFS metadata (not read), with trust_hub_lfs_sha256
    hub_lfs_sha256: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": self.uri}
        if self.revision is not None:
            out["revision"] = self.revision
        if self.trust_hub_lfs_sha256:
            out["digests_from_hub_lfs_metadata"] = list(self.hub_lfs_sha256)
        return out


@dataclass(frozen=True, slots=True)
class RemoteSource:
    """A remote artifact: what a worker needs to open it. Picklable, holds no connection.

    ``options`` is the storage options as canonical JSON (hashable, and the same bytes on every
    worker). They can hold credentials, so they are kept out of ``repr`` (task reprs end up in
    logs); prefer the workers' own credentials (environment, instance roles) on a cluster.
    """

    uri: str  #: normalized: no trailing slash
    protocol: str  #: fsspec protocol: s3 | gcs | hf
    root: str  #: the path in the file system's terms ("bucket/prefix", "datasets/o/n@rev/dir")
    revision: str | None = None
    options: str = "{}"

    def __repr__(self) -> str:
        return f"RemoteSource({self.uri!r})"

    @classmethod
    def parse(cls, uri: str, storage_options: Mapping[str, Any] | None = None) -> RemoteSource:
        m = _URI_RE.match(uri)
        if m is None:
            raise InputError("not a URI", path=uri, expected="scheme://...")
        scheme = m.group(1).lower()
        proto = _SCHEMES.get(scheme)
        if proto is None:
            raise InputError(f"unsupported URI scheme {scheme}://", path=uri,
                             expected="s3://, gs:// or hf:// (or a local path)", actual=scheme)
        rest = uri[m.end():]
        if any(c in rest for c in "?#") or "\\" in rest or "\0" in rest:
            raise InputError("query strings, fragments and backslashes are not supported in a "
                             "source URI", path=uri, hint="give the bucket and prefix only")
        rest = rest.strip("/")
        parts = [p for p in rest.split("/") if p]
        if any(p in (".", "..") for p in parts) or "//" in rest:
            raise InputError("the URI has an empty, '.' or '..' component", path=uri)
        revision = None
        if proto == "hf":
            revision = _hf_revision(uri, rest)
        elif not parts:
            raise InputError("the URI names no bucket", path=uri,
                             expected=f"{scheme}://BUCKET[/PREFIX]")
        try:
            options = json.dumps(dict(storage_options or {}), sort_keys=True)
        except (TypeError, ValueError) as e:
            raise InputError(f"storage options must be JSON values ({e})") from None
        return cls(f"{scheme}://{rest}", proto, rest, revision, options)

    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0]

    def object_uri(self, key: str) -> str:
        """The URI of one object (for messages)."""
        return f"{self.scheme}://{key}"

    def filesystem(self) -> AbstractFileSystem:
        """The fsspec file system (instances are cached per process by fsspec itself)."""
        module, extra = _BACKENDS[self.protocol]
        try:
            import fsspec

            cls = fsspec.get_filesystem_class(self.protocol)
        except ImportError as e:
            how = (f"pip install 'modelsign[{extra}]'" if extra
                   else f"pip install {module}")
            raise InputError(f"{self.scheme}:// sources need the {module} package, which is "
                             "not installed", path=self.uri, actual=str(e).splitlines()[0],
                             hint=how) from None
        try:
            return cast("AbstractFileSystem", cls(**json.loads(self.options)))
        except ModelsignError:
            raise
        except Exception as e:
            raise InputError(f"cannot set up the {self.protocol} file system "
                             f"({_one_line(e)})", path=self.uri,
                             hint="check the --storage-option values") from None


def _hf_revision(uri: str, rest: str) -> str:
    body = rest
    for t in _HF_TYPES:
        if body.startswith(t):
            body = body[len(t):]
            break
    if "@" not in body:
        raise InputError("a Hub source must pin a commit", path=uri,
                         expected="hf://[datasets/]ORG/NAME@<40-hex commit>",
                         hint="a branch can move while it is hashed; find the commit with "
                              "`hf repo info` or on the repository's 'Files' page")
    repo, _, after = body.partition("@")
    revision = after.split("/", 1)[0]
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise InputError("a Hub repository id is ORG/NAME", path=uri, actual=repr(repo))
    if not _COMMIT_RE.match(revision):
        raise InputError("a Hub source must pin a full commit id, not a branch or tag",
                         path=uri, expected="40 lowercase hex digits", actual=repr(revision),
                         hint="branches and tags move; resolve the revision to its commit")
    return revision


class RemoteEntry(NamedTuple):
    """One object of a remote artifact, as the listing found it."""

    rel: str  #: the resource name (POSIX path below the prefix)
    key: str  #: the object's path in the file system's terms
    size: int
    token: str  #: what changes when the object is rewritten (ETag, generation, blob id)
    lfs_sha256: str | None = None  #: the Hub's LFS sha256 of the file, for hf:// sources


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def _token(protocol: str, info: Mapping[str, Any]) -> str:
    if protocol == "s3":
        keys: tuple[str, ...] = ("ETag", "etag")
    elif protocol == "gcs":
        keys = ("generation", "etag", "md5Hash")
    elif protocol == "hf":
        keys = ("blob_id",)
    else:  # pragma: no cover - only the protocols above are accepted
        keys = ("ETag", "etag", "generation", "mtime")
    return "/".join(str(info[k]) for k in keys if info.get(k) is not None)


def _lfs_sha256(info: Mapping[str, Any]) -> str | None:
    lfs = info.get("lfs")
    if not lfs:
        return None
    sha = lfs.get("sha256") if isinstance(lfs, Mapping) else getattr(lfs, "sha256", None)
    return sha if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha) else None


def _foreign(e: Exception, what: str, where: str) -> ModelsignError:
    """A backend's exception as a modelsign error (exit 2), one line, naming the object."""
    if isinstance(e, ModelsignError):
        return e
    if isinstance(e, PermissionError):
        return PathError(f"{what}: access denied ({_one_line(e)})", path=where,
                         hint="check the credentials (environment, --storage-option key=/secret= "
                              "or token=) and that they may read this bucket or repository")
    if isinstance(e, FileNotFoundError):
        return PathError(f"{what}: not found ({_one_line(e)})", path=where,
                         hint="check the bucket, prefix or repository (and the commit)")
    name = type(e).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "GatedRepoError",
                "RepositoryNotFoundError"):
        return PathError(f"{what}: no usable credentials ({_one_line(e)})", path=where,
                         hint="configure credentials for this store, or pass anon=true for "
                              "public data")
    return PathError(f"{what}: {_one_line(e)}", path=where,
                     hint="check the URI, the --storage-option values and the network")


# ------------------------------------------------------------------------------------ listing
def _check_names(source: RemoteSource, rels: list[str]) -> None:
    seen: dict[str, str] = {}
    dirs: set[str] = set()
    for rel in rels:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
            raise PathError("object name cannot be a manifest resource name (empty, '.' or "
                            "'..' component, backslash or NUL)", path=source.object_uri(
                                f"{source.root}/{rel}"),
                            hint="rename the object, or pass --ignore-path")
        key = unicodedata.normalize("NFC", rel)
        if key in seen:
            raise PathError(f"object name collides with {seen[key]!r} after Unicode NFC "
                            "normalization", path=source.object_uri(f"{source.root}/{rel}"),
                            hint="rename one of the two objects")
        seen[key] = rel
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    clash = sorted(dirs & set(rels))
    if clash:
        raise PathError("an object has the same name as a folder of other objects; on a file "
                        "system it could not exist", path=source.object_uri(
                            f"{source.root}/{clash[0]}"),
                        hint="rename the object, or pass --ignore-path")


def _ignored(rel: str, ignores: frozenset[str]) -> bool:
    parts = rel.split("/")
    return any("/".join(parts[:i]) in ignores for i in range(1, len(parts) + 1))


def list_entries(source: RemoteSource, spec: HashSpec,
                 fs: AbstractFileSystem | None = None) -> tuple[str, list[RemoteEntry], bool]:
    """(artifact name, the objects to hash, single object?) of ``source``."""
    fs = fs or source.filesystem()
    where = source.uri
    try:
        info = fs.info(source.root)
    except Exception as e:
        raise _foreign(e, "cannot list the source", where) from None
    name = source.root.rstrip("/").rsplit("/", 1)[-1]
    if source.protocol == "hf" and "@" in name:  # the repository itself: its name
        name = name.split("@", 1)[0]
    if info.get("type") == "file":
        entry = RemoteEntry(name, source.root, int(info.get("size") or 0),
                            _token(source.protocol, info), _lfs_sha256(info))
        _check_names(source, [name])
        return name, [entry], True
    try:
        found = fs.find(source.root, detail=True)
    except Exception as e:
        raise _foreign(e, "cannot list the source", where) from None
    prefix = source.root.rstrip("/") + "/"
    ignores = _ignore_set(spec)
    entries: list[RemoteEntry] = []
    for key, meta in cast("dict[str, dict[str, Any]]", found).items():
        if meta.get("type") != "file":
            continue
        size = int(meta.get("size") or 0)
        if key.endswith("/") and size == 0:  # an S3 "folder" marker, not a file
            continue
        if not key.startswith(prefix):
            raise InternalError(f"the listing of {where} returned {key!r}, outside the prefix",
                                hint="please report this bug")
        rel = key[len(prefix):]
        if _ignored(rel, ignores):
            continue
        entries.append(RemoteEntry(rel, key, size, _token(source.protocol, meta),
                                   _lfs_sha256(meta)))
    _check_names(source, [e.rel for e in entries])
    entries.sort(key=lambda e: e.rel)
    return name, entries, False


# ------------------------------------------------------------------------------------ reading
_local = threading.local()


def _buffer(n: int) -> memoryview:
    """This thread's reused buffer, grown (up to BLOCK_SIZE) to fit ``n`` bytes."""
    n = max(1, min(n, BLOCK_SIZE))
    mv: memoryview | None = getattr(_local, "mv", None)
    if mv is None or len(mv) < n:
        mv = memoryview(bytearray(n))
        _local.mv = mv
    return mv


def _changed(source: RemoteSource, entry: RemoteEntry, what: str,
             actual: str | None = None) -> FileChangedError:
    return FileChangedError(
        f"object {what} while it was being hashed", path=source.object_uri(entry.key),
        expected=f"size {entry.size}, version {entry.token or '-'} (as listed)", actual=actual,
        hint="wait until nothing writes to the data (uploads, syncs), then run again")


def _check_info(source: RemoteSource, entry: RemoteEntry, info: Mapping[str, Any]) -> None:
    size = int(info.get("size") or 0)
    token = _token(source.protocol, info)
    if size != entry.size or (entry.token and token != entry.token):
        raise _changed(source, entry, "changed", f"size {size}, version {token or '-'}")


def _is_expired(e: BaseException) -> bool:
    """s3fs's FileExpired: an If-Match read found another version of the object."""
    return type(e).__name__ == "FileExpired" or "PreconditionFailed" in str(e)


def _hash_object(source: RemoteSource, fs: AbstractFileSystem, algorithm: str,
                 ft: FileTask) -> tuple[list[tuple[int, bytes]], int]:
    entry = cast(RemoteEntry, ft.entry)
    where = source.object_uri(entry.key)
    mv = _buffer(max(r.end - r.start for r in ft.ranges))
    full = len(mv)
    out: list[tuple[int, bytes]] = []
    nbytes = 0
    try:
        if source.protocol == "s3":
            fs.invalidate_cache(entry.key)  # details from a HEAD now, not from an old listing
        f = fs.open(entry.key, "rb", block_size=BLOCK_SIZE, cache_type="none")
        with f:
            _check_info(source, entry, cast("Mapping[str, Any]", f.details))
            for r in ft.ranges:
                h = new_hasher(algorithm)
                f.seek(r.start)
                off = r.start
                while off < r.end:
                    want = min(full, r.end - off)
                    n = f.readinto(mv[:want])
                    if not n:
                        raise _changed(source, entry, "shrank", f"end of data at byte {off}")
                    h.update(mv[:n])
                    off += n
                out.append((r.item, h.digest()))
                nbytes += r.end - r.start
        if source.protocol not in ("s3", "hf"):  # no conditional reads: look again after
            fs.invalidate_cache(entry.key)
            _check_info(source, entry, fs.info(entry.key))
    except ModelsignError:
        raise
    except FileNotFoundError:
        raise _changed(source, entry, "disappeared", "not found") from None
    except Exception as e:
        if _is_expired(e):
            raise _changed(source, entry, "was replaced",
                           "another version (the If-Match read was refused)") from None
        raise _foreign(e, "cannot read the object", where) from None
    return out, nbytes


def run_remote_task(source: RemoteSource, task: Task) -> TaskResult:
    """Hash every range of every object of ``task``: a pure function of (source, task).

    Up to :data:`FILE_THREADS` objects are read at once; the first failure cancels the objects
    not yet started and is raised.
    """
    fs = source.filesystem()
    one = partial(_hash_object, source, fs, task.algorithm)
    parts: list[tuple[list[tuple[int, bytes]], int]] = []
    if len(task.files) == 1:
        parts.append(one(task.files[0]))
    else:
        with ThreadPoolExecutor(max_workers=min(FILE_THREADS, len(task.files)),
                                thread_name_prefix="modelsign-object") as pool:
            futures: list[Future[tuple[list[tuple[int, bytes]], int]]] = [
                pool.submit(one, ft) for ft in task.files]
            try:
                parts.extend(f.result() for f in futures)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    digests = [d for ds, _ in parts for d in ds]
    return TaskResult(digests, sum(n for _, n in parts))


# ------------------------------------------------------------------------------------ hashing
def hash_remote(
    uri: str | RemoteSource,
    spec: HashSpec,
    *,
    executor: Executor | None = None,
    progress: ProgressArg = None,
    storage_options: Mapping[str, Any] | None = None,
    trust_hub_lfs_sha256: bool = False,
    filesystem: AbstractFileSystem | None = None,
) -> tuple[HashResult, SourceInfo]:
    """Hash the remote artifact at ``uri`` as ``spec`` says; also say where it came from.

    ``executor`` runs the tasks (by default :data:`DEFAULT_THREADS` threads; a Dask cluster's
    ``client.get_executor(pure=False)`` spreads them over its workers). ``filesystem`` overrides
    the fsspec file system used for the listing (tests); workers always build their own from
    the source.
    """
    source = uri if isinstance(uri, RemoteSource) else RemoteSource.parse(uri, storage_options)
    if trust_hub_lfs_sha256:
        if source.protocol != "hf":
            raise InputError("--trust-hub-lfs-sha256 applies to hf:// sources only",
                             path=source.uri, hint="drop --trust-hub-lfs-sha256")
        if spec.method != "files" or spec.algorithm != "sha256":
            raise InputError("--trust-hub-lfs-sha256 gives files-mode sha256 digests only",
                             expected="--method files --algorithm sha256",
                             actual=f"--method {spec.method} --algorithm {spec.algorithm}",
                             hint="drop --trust-hub-lfs-sha256 to read every byte")
    name, entries, _single = list_entries(source, spec, filesystem)
    sharded = spec.method == "shards"
    files, nbytes = executor_batches(len(entries), sum(e.size for e in entries))
    plan = _Plan(batch_files=files, batch_bytes=nbytes)
    trusted: list[str] = []
    for e in entries:
        if trust_hub_lfs_sha256 and e.lfs_sha256 is not None:
            plan.known(e.rel, None, None, bytes.fromhex(e.lfs_sha256))
            trusted.append(e.rel)
        elif not sharded:
            plan.add_whole_file(spec.algorithm, e)  # type: ignore[arg-type]
        else:
            ranges = shard_ranges(e.size, spec.shard_size)
            if ranges:  # OMS: zero-byte files have no shard
                plan.add_file(spec.algorithm, e, ranges, True)  # type: ignore[arg-type]
    plan.flush(spec.algorithm)
    if not plan.labels:
        what = "no non-empty object (shards mode lists none)" if entries else "no object"
        raise PathError(f"contains {what} to hash", path=source.uri, expected=">= 1 object",
                        actual=f"{len(entries)} object(s)",
                        hint="check the bucket, the prefix and the --ignore-path options")
    total = sum(t.nbytes for t in plan.tasks)
    with Progress(progress, total) as bar:
        tick: Callable[[int], None] | None = bar.advance if bar.active else None
        if executor is None:
            with ThreadPoolExecutor(max_workers=max(1, min(DEFAULT_THREADS, len(plan.tasks))),
                                    thread_name_prefix="modelsign-remote") as ex:
                results = run_tasks(run_remote_task, (source,), plan.tasks, ex, tick)
        else:
            results = run_tasks(run_remote_task, (source,), plan.tasks, executor, tick)
    bytes_read = plan.fill(results)
    known = cast(list[bytes], plan.digests)
    digests: list[Digest] = [(rel, s, e, d) for (rel, s, e), d
                             in zip(plan.labels, known, strict=True)]
    digests.sort(key=_sort_key)
    result = HashResult(
        name=name,
        digests=digests,
        files=frozenset(e.rel for e in entries),
        total_bytes=sum(e.size for e in entries),
        bytes_read=bytes_read,
        files_hashed=len(plan.hashed),
        cache_hits=0,
    )
    return result, SourceInfo(source.uri, source.revision, trust_hub_lfs_sha256,
                              tuple(sorted(trusted)))
