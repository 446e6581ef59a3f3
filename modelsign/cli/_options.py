"""Option aliases shared by the commands that hash (``hash``, ``sign``, ``attest``).

Use them as parameter annotations, and turn the values into a spec with
:func:`hash_spec_from_options`::

    def sign(path: ..., method: MethodOption = Method.files,
             algorithm: AlgorithmOption = Algorithm.sha256, shard_size: ShardSizeOption = None,
             ignore_path: IgnorePathOption = None, allow_symlinks: AllowSymlinksOption = False,
             no_cache: NoCacheOption = False) -> None:
        spec = hash_spec_from_options(method=method, algorithm=algorithm, shard_size=shard_size,
                                      ignore_paths=ignore_path, allow_symlinks=allow_symlinks,
                                      no_cache=no_cache)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated

import typer

from modelsign.errors import InputError
from modelsign.hashing._spec import DEFAULT_SHARD_SIZE, HashSpec

__all__ = [
    "HASHING_PANEL",
    "SOURCES_PANEL",
    "Algorithm",
    "AlgorithmOption",
    "AllowSymlinksOption",
    "ExecutorName",
    "ExecutorOption",
    "IgnorePathOption",
    "Method",
    "MethodOption",
    "NoCacheOption",
    "SchedulerOption",
    "ShardSizeOption",
    "StorageOptionOption",
    "TrustHubLfsOption",
    "executor_from_options",
    "hash_spec_from_options",
    "normalize_ignore_path",
]

HASHING_PANEL = "Hashing"


class Method(StrEnum):
    files = "files"
    shards = "shards"


class Algorithm(StrEnum):
    sha256 = "sha256"
    blake2b = "blake2b"
    blake3 = "blake3"


MethodOption = Annotated[Method, typer.Option(
    "--method", help="files: one digest per file; shards: one per byte range of --shard-size "
    "bytes (zero-byte files have none).", rich_help_panel=HASHING_PANEL)]
AlgorithmOption = Annotated[Algorithm, typer.Option(
    "--algorithm", help="Hash of each file or shard (the root digest is always sha256).",
    rich_help_panel=HASHING_PANEL)]
ShardSizeOption = Annotated[int | None, typer.Option(
    "--shard-size", min=1, help=f"Bytes per shard, with --method shards "
    f"\\[default: {DEFAULT_SHARD_SIZE}].", rich_help_panel=HASHING_PANEL, show_default=False)]
IgnorePathOption = Annotated[list[str] | None, typer.Option(
    "--ignore-path", help="Path relative to PATH to leave out (a directory: all of it); "
    "repeatable. .git, .gitattributes, .github, .gitignore, model.sig and claims.jsonl are "
    "always left out.", rich_help_panel=HASHING_PANEL, show_default=False)]
AllowSymlinksOption = Annotated[bool, typer.Option(
    "--allow-symlinks", help="Follow symbolic links that stay inside PATH (hashing the target's "
    "bytes under the link's name) instead of refusing them.", rich_help_panel=HASHING_PANEL)]
NoCacheOption = Annotated[bool, typer.Option(
    "--no-cache", help="Read every byte; do not use or update the incremental cache.",
    rich_help_panel=HASHING_PANEL)]


def normalize_ignore_path(p: str) -> str:
    """``./logs/`` -> ``logs``; refuse absolute paths and ``..`` (ignores stay inside PATH)."""
    if p.startswith("/") or "\\" in p or "\0" in p:
        raise InputError(f"--ignore-path {p!r} must be a relative POSIX path",
                         expected="e.g. 'logs' or 'checkpoints/tmp'", actual=repr(p),
                         hint="give it relative to the model, e.g. --ignore-path logs")
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("--ignore-path must be valid UTF-8 (it is recorded in the signature)",
                         actual=ascii(p)) from None
    parts = [c for c in p.split("/") if c not in ("", ".")]
    if not parts or ".." in parts:
        raise InputError(f"--ignore-path {p!r} must name something inside the model",
                         expected="a relative path without '..'", actual=repr(p),
                         hint="give it relative to the model, e.g. --ignore-path logs")
    return "/".join(parts)


def hash_spec_from_options(
    *,
    method: Method | str = Method.files,
    algorithm: Algorithm | str = Algorithm.sha256,
    shard_size: int | None = None,
    ignore_paths: Sequence[str] | None = None,
    allow_symlinks: bool = False,
    no_cache: bool = False,
) -> HashSpec:
    """The :class:`~modelsign.hashing.HashSpec` the hashing options describe."""
    m = method.value if isinstance(method, Method) else method
    a = algorithm.value if isinstance(algorithm, Algorithm) else algorithm
    if shard_size is not None and m != "shards":
        raise InputError("--shard-size only applies to --method shards",
                         hint="add --method shards, or drop --shard-size")
    ignores = tuple(dict.fromkeys(normalize_ignore_path(p) for p in ignore_paths or ()))
    return HashSpec(method=m, algorithm=a,  # type: ignore[arg-type]
                    shard_size=shard_size if shard_size is not None else DEFAULT_SHARD_SIZE,
                    ignore_paths=ignores, allow_symlinks=allow_symlinks, use_cache=not no_cache)


# ------------------------------------------------------------------ sources and executors
# (``modelsign hash``: remote sources through fsspec, tasks on a Dask cluster; see
# docs/decisions/0011-distributed-hashing.md)
SOURCES_PANEL = "Remote sources and executors"


class ExecutorName(StrEnum):
    threads = "threads"
    dask = "dask"


ExecutorOption = Annotated[ExecutorName, typer.Option(
    "--executor", help="threads: this machine's cores; dask: the workers of a Dask cluster "
    "(--scheduler), or a local cluster without --scheduler (needs modelsign\\[dask], and "
    "modelsign on every worker).", rich_help_panel=SOURCES_PANEL)]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", metavar="tcp://HOST:PORT", help="Address of a running Dask scheduler, with "
    "--executor dask.", rich_help_panel=SOURCES_PANEL, show_default=False)]
StorageOptionOption = Annotated[list[str] | None, typer.Option(
    "--storage-option", metavar="KEY=VALUE", help="Option of the s3://, gs:// or hf:// file "
    "system (fsspec), e.g. endpoint_url=http://127.0.0.1:9000 or anon=true; repeatable; "
    "dotted keys nest (client_kwargs.region_name=eu-west-1).", rich_help_panel=SOURCES_PANEL,
    show_default=False)]
TrustHubLfsOption = Annotated[bool, typer.Option(
    "--trust-hub-lfs-sha256", help="hf:// sources, files mode, sha256: take LFS files' digests "
    "from the Hub's metadata instead of downloading them (the Hub's word, reported as such; "
    "never what verification does).", rich_help_panel=SOURCES_PANEL)]


@contextmanager
def executor_from_options(executor: ExecutorName | str, scheduler: str | None, *,
                          source: str) -> Iterator[Executor | None]:
    """The executor ``--executor``/``--scheduler`` describe for hashing ``source`` (None: the
    default thread pool). A Dask cluster is checked before use and closed after."""
    name = executor.value if isinstance(executor, ExecutorName) else executor
    if name == "threads":
        if scheduler is not None:
            raise InputError("--scheduler needs --executor dask",
                             hint="add --executor dask, or drop --scheduler")
        yield None
        return
    import os

    from modelsign.hashing._dask import dask_executor
    from modelsign.hashing._remote import backend_module, is_uri

    modules = ["modelsign"]
    paths: list[str] = []
    if is_uri(source):
        backend = backend_module(source)
        if backend:
            modules.append(backend)
    elif not os.path.lexists(source):
        yield None  # the walk refuses the path at once: no cluster to start for that
        return
    else:
        paths.append(os.path.abspath(source))
    with dask_executor(scheduler, modules=modules, paths=paths) as ex:
        yield ex
