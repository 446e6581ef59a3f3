"""hash_tree: walk, look up the cache, plan tasks, run them, check and assemble the result."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from modelsign.errors import InputError, InternalError, ModelsignError, PathError
from modelsign.hashing._engine import (
    STEP,
    FileTask,
    Range,
    Scheduler,
    Task,
    TaskResult,
    run_task,
    shard_ranges,
)
from modelsign.hashing._progress import Progress, ProgressArg
from modelsign.hashing._spec import HashSpec
from modelsign.hashing._walk import FileEntry, display, walk

__all__ = ["EXECUTOR_BATCH_BYTES", "EXECUTOR_BATCH_FILES", "EXECUTOR_MIN_TASKS", "Digest",
           "HashResult", "executor_batches", "hash_tree", "run_tasks"]

#: (path, start, end, digest); start and end are None in files mode
Digest = tuple[str, int | None, int | None, bytes]

#: Ranges longer than this get a task of their own; shorter ones are batched.
_BATCH_BYTES = 8 << 20
#: At most this many files per batch (keeps the load balanced on many small files).
_BATCH_FILES = 128
#: Batch limits when the tasks go to another executor (processes, a Dask cluster): each task then
#: costs a round trip and its arguments are pickled, so fewer, larger tasks pay off.
EXECUTOR_BATCH_BYTES = 256 << 20
EXECUTOR_BATCH_FILES = 1000
#: ... but at least this many batches when there is enough to split (load balance on a cluster).
EXECUTOR_MIN_TASKS = 16


def executor_batches(n_files: int, n_bytes: int) -> tuple[int, int]:
    """(files, bytes) limits of a batch for another executor: up to :data:`EXECUTOR_BATCH_FILES`
    files / :data:`EXECUTOR_BATCH_BYTES` bytes, smaller when that would leave fewer than
    :data:`EXECUTOR_MIN_TASKS` tasks to spread over the workers."""
    files = max(1, min(EXECUTOR_BATCH_FILES, -(-n_files // EXECUTOR_MIN_TASKS)))
    nbytes = max(_BATCH_BYTES, min(EXECUTOR_BATCH_BYTES, -(-n_bytes // EXECUTOR_MIN_TASKS)))
    return files, nbytes


@dataclass(frozen=True, slots=True)
class HashResult:
    """What :func:`hash_tree` found: the digests, and how much work it took to get them."""

    name: str  #: the artifact name: the directory's final component, or the file name
    digests: list[Digest]  #: in manifest order (path components, then byte offsets)
    files: frozenset[str]  #: every regular file hashed or skipped as empty, relative POSIX paths
    total_bytes: int = 0  #: size of all those files
    bytes_read: int = 0  #: bytes read and hashed (the rest came from the cache)
    files_hashed: int = 0  #: files opened and read
    cache_hits: int = 0  #: files whose digests came from the cache


def _sort_key(d: Digest) -> tuple[tuple[str, ...], int, int]:
    return (tuple(d[0].split("/")), d[1] or 0, d[2] or 0)


class _Plan:
    """Manifest items (numbered), the digests known already, and the tasks for the rest."""

    def __init__(self, *, batch_files: int = _BATCH_FILES,
                 batch_bytes: int = _BATCH_BYTES) -> None:
        self.batch_files = batch_files
        self.batch_bytes = batch_bytes
        self.labels: list[tuple[str, int | None, int | None]] = []
        self.digests: list[bytes | None] = []
        self.tasks: list[Task] = []
        self.hashed: list[tuple[FileEntry, list[int]]] = []  # files to read, their items
        self._batch: list[FileTask] = []
        self._batch_bytes = 0

    def known(self, rel: str, start: int | None, end: int | None, digest: bytes) -> None:
        self.labels.append((rel, start, end))
        self.digests.append(digest)

    def add_whole_file(self, algorithm: str, entry: FileEntry) -> None:
        """Files mode: one item per file (the common case, kept cheap for many small files)."""
        if entry.size > self.batch_bytes:
            self.add_file(algorithm, entry, [(0, entry.size)], False)
            return
        item = len(self.labels)
        self.labels.append((entry.rel, None, None))
        self.digests.append(None)
        self.hashed.append((entry, [item]))
        self._batch.append(FileTask(entry, (Range(item, 0, entry.size),)))
        self._batch_bytes += entry.size
        if self._batch_bytes >= self.batch_bytes or len(self._batch) >= self.batch_files:
            self.flush(algorithm)

    def add_file(self, algorithm: str, entry: FileEntry, ranges: list[tuple[int, int]],
                 sharded: bool) -> None:
        small: list[Range] = []
        items = []
        for s, e in ranges:
            item = len(self.labels)
            items.append(item)
            self.labels.append((entry.rel, s, e) if sharded else (entry.rel, None, None))
            self.digests.append(None)
            if e - s > self.batch_bytes:
                self.tasks.append(Task(algorithm, (FileTask(entry, (Range(item, s, e),)),), e - s))
            else:
                small.append(Range(item, s, e))
        self.hashed.append((entry, items))
        if small:
            self._batch.append(FileTask(entry, tuple(small)))
            self._batch_bytes += sum(r.end - r.start for r in small)
            if self._batch_bytes >= self.batch_bytes or len(self._batch) >= self.batch_files:
                self.flush(algorithm)

    def flush(self, algorithm: str) -> None:
        if self._batch:
            self.tasks.append(Task(algorithm, tuple(self._batch), self._batch_bytes))
            self._batch = []
            self._batch_bytes = 0

    def fill(self, results: list[TaskResult]) -> int:
        """Put each result in its place; every planned item must come back exactly once."""
        nbytes = 0
        for res in results:
            nbytes += res.bytes_read
            for item, digest in res.digests:
                if not (0 <= item < len(self.digests)) or self.digests[item] is not None:
                    raise InternalError(f"hashing returned item {item} twice or out of plan",
                                        hint="please report this bug")
                self.digests[item] = digest
        missing = [self.labels[i] for i, d in enumerate(self.digests) if d is None]
        if missing:
            raise InternalError(f"hashing lost {len(missing)} planned item(s), e.g. {missing[0]}",
                                hint="please report this bug")
        return nbytes


def _run(tasks: list[Task], executor: Executor | None, progress: Progress) -> list[TaskResult]:
    if not tasks:
        return []
    tick = progress.advance if progress.active else None
    if executor is None:
        if len(tasks) == 1 and tasks[0].nbytes <= STEP:
            res = run_task(tasks[0])
            if tick:
                tick(res.bytes_read)
            return [res]
        cpus = os.cpu_count() or 1
        # a long stream can use every core (one hashes, another reads ahead for it)
        workers = cpus if any(t.nbytes > STEP for t in tasks) else min(cpus, len(tasks))
        sched = Scheduler(tasks, split=STEP, progress=tick)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelsign-hash") as ex:
            return sched.run(ex, workers)
    return run_tasks(run_task, (), tasks, executor, tick)


def _task_files(task: Task) -> str:
    names = [f.entry.rel for f in task.files]
    return names[0] + (f" (and {len(names) - 1} more file(s) of the same task)"
                       if len(names) > 1 else "")


def run_tasks(fn: Callable[..., TaskResult], args: tuple[Any, ...], tasks: list[Task],
              executor: Executor, tick: Callable[[int], None] | None) -> list[TaskResult]:
    """Run ``fn(*args, task)`` for every task on ``executor``, longest first.

    The first failure cancels the rest and is raised: a modelsign error as it is (it names the
    file), anything else (a worker that died, a task the executor could not run) as an
    :class:`~modelsign.errors.InputError` naming the task's files.
    """
    ordered = sorted(tasks, key=lambda t: t.cost, reverse=True)
    futures = [executor.submit(fn, *args, t) for t in ordered]
    out = []
    try:
        for t, f in zip(ordered, futures, strict=True):
            try:
                res = f.result()
            except ModelsignError:
                raise
            except Exception as e:
                raise InputError(
                    f"the executor could not hash this task ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else 'no message'})",
                    path=_task_files(t),
                    hint="check the workers (installed packages, memory, access to the data) "
                         "and run again") from e
            if tick:
                tick(res.bytes_read)
            out.append(res)
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return out


def hash_tree(
    root: str | os.PathLike[str],
    spec: HashSpec,
    *,
    executor: Executor | None = None,
    progress: ProgressArg = None,
    cache_dir: str | os.PathLike[str] | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> HashResult:
    """Hash the artifact at ``root`` (a directory, or a single file) as ``spec`` says.

    ``executor`` runs the tasks (any ``concurrent.futures.Executor``; by default a thread pool
    with one thread per CPU and time-sliced long ranges). ``progress``: None shows a bar when
    stderr is a terminal, True/False force it, a callable receives byte counts. ``cache_dir``
    overrides where the incremental cache lives (``spec.use_cache=False`` bypasses it).
    ``clock`` (ns since the epoch) decides which files are too recently changed to be cached.

    Raises :class:`~modelsign.errors.PathError` / ``SymlinkError`` for unusable input,
    :class:`~modelsign.errors.FileChangedError` when a file changes while it is hashed.
    """
    started = clock()
    tree = walk(root, spec)
    sharded = spec.method == "shards"
    cache = None
    cached: dict[str, list[tuple[int | None, int | None, bytes]]] = {}
    if spec.use_cache and tree.entries:
        from modelsign.hashing._cache import Cache

        cache = Cache.open(cache_dir)
        if cache is not None:
            cached = cache.lookup(tree.root, tree.entries, single_file=tree.single_file,
                                  algorithm=spec.algorithm, method=spec.method,
                                  shard_size=spec.shard_size)
    try:
        if executor is None:
            plan = _Plan()
        else:
            todo = [e for e in tree.entries if e.rel not in cached]
            files, nbytes = executor_batches(len(todo), sum(e.size for e in todo))
            plan = _Plan(batch_files=files, batch_bytes=nbytes)
        for entry in tree.entries:
            hit = cached.get(entry.rel)
            if hit is not None:
                for s, e, d in hit:
                    plan.known(entry.rel, s, e, d)
                continue
            if not sharded:
                plan.add_whole_file(spec.algorithm, entry)
                continue
            ranges = shard_ranges(entry.size, spec.shard_size)
            if ranges:  # OMS: zero-byte files have no shard (they are still in ``files``)
                plan.add_file(spec.algorithm, entry, ranges, sharded)
        plan.flush(spec.algorithm)
        if not plan.labels:
            what = "no non-empty file (shards mode lists none)" if tree.entries else "no file"
            raise PathError(f"contains {what} to hash", path=display(os.fspath(root)),
                            expected=">= 1 file", actual=f"{len(tree.entries)} file(s)",
                            hint="check the path and the --ignore-path options")
        total = sum(t.nbytes for t in plan.tasks)
        with Progress(progress, total) as bar:
            results = _run(plan.tasks, executor, bar)
        bytes_read = plan.fill(results)
        known = cast(list[bytes], plan.digests)  # fill() checked that none is missing
        if cache is not None and plan.hashed:
            cache.store(
                ((e, [(plan.labels[i][1], plan.labels[i][2], known[i]) for i in items])
                 for e, items in plan.hashed),
                algorithm=spec.algorithm, method=spec.method, shard_size=spec.shard_size,
                now_ns=started)
    finally:
        if cache is not None:
            cache.close()
    digests: list[Digest] = [(rel, s, e, d) for (rel, s, e), d
                             in zip(plan.labels, known, strict=True)]
    digests.sort(key=_sort_key)
    return HashResult(
        name=tree.name,
        digests=digests,
        files=frozenset(e.rel for e in tree.entries),
        total_bytes=sum(e.size for e in tree.entries),
        bytes_read=bytes_read,
        files_hashed=len(plan.hashed),
        cache_hits=len(cached),
    )
