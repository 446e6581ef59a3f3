"""Bytes to digests: the hash engines, the reads, and the tasks they are organised into.

Work is planned as :class:`Task` values (plain tuples, picklable): a batch of small files, or one
long byte range. :func:`run_task` is a pure function of a task (and of the files it names), so any
``concurrent.futures.Executor`` can run it, threads, processes or a cluster.

With the default executor the long ranges are additionally *time-sliced* (:class:`Scheduler`): a
hash state is sequential, but it can move between threads, so each worker repeatedly takes the
stream with the most bytes left, hashes :data:`STEP` bytes of it and puts it back. All cores then
finish together even when a few big files (or the shards of one file) do not divide evenly between
them: five shards of a 4 GiB file on two cores take 2.15 GB of hashing per core instead of 2.29 GB.

Reads go into one reused buffer per thread with ``os.preadv`` (never a whole-file read; memory is
bounded by ``threads x BUFFER_SIZE``), and hashlib / blake3 release the GIL while they digest it.

Every file is checked for change: the ``stat`` taken by the walk must match ``fstat`` before and
after each read (size, mtime, ctime, inode, device), and every byte planned must be read, or the
file is reported with :class:`~modelsign.errors.FileChangedError`.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import os
import stat as st_mod
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from modelsign.errors import FileChangedError, PathError
from modelsign.hashing._spec import HashAlgorithm
from modelsign.hashing._walk import FileEntry

__all__ = [
    "BUFFER_SIZE",
    "STEP",
    "DIGEST_SIZE",
    "Range",
    "FileTask",
    "Task",
    "TaskResult",
    "new_hasher",
    "shard_ranges",
    "run_task",
    "Scheduler",
]

#: Size of each read (and of the per-thread buffer).
BUFFER_SIZE = 1 << 20
#: Bytes a time-sliced stream hashes before its worker looks for a longer one.
STEP = 32 << 20
#: Digest sizes of the algorithms, as model_signing writes them (hashlib / blake3 defaults).
DIGEST_SIZE: dict[str, int] = {"sha256": 32, "blake2b": 64, "blake3": 32}


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The byte ranges OMS (and model_signing) cut a file into; none for an empty file."""
    out = []
    start = 0
    while start < size:
        end = min(start + shard_size, size)
        out.append((start, end))
        start = end
    return out


class Hasher(Protocol):
    def update(self, data: Any, /) -> Any: ...

    def digest(self) -> bytes: ...


def new_hasher(algorithm: HashAlgorithm | str) -> Hasher:
    """A fresh streaming hash. ``blake2b`` is hashlib's default (64-byte digest), as in the peer."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    if algorithm == "blake3":
        import blake3  # imported only when asked for

        h: Hasher = blake3.blake3()
        return h
    raise ValueError(f"unknown algorithm {algorithm!r}")  # HashSpec validated it already


class Range(NamedTuple):
    """Bytes ``[start, end)`` of a file, whose digest is manifest item number ``item``."""

    item: int
    start: int
    end: int


class FileTask(NamedTuple):
    entry: FileEntry
    ranges: tuple[Range, ...]


class Task(NamedTuple):
    """A unit of work: hash these ranges of these files. Picklable; run with :func:`run_task`."""

    algorithm: str
    files: tuple[FileTask, ...]

    @property
    def nbytes(self) -> int:
        return sum(r.end - r.start for f in self.files for r in f.ranges)

    @property
    def cost(self) -> int:
        """Rough cost in bytes: the data, plus the syscalls and bookkeeping of each file."""
        return self.nbytes + 16384 * len(self.files)


class TaskResult(NamedTuple):
    digests: list[tuple[int, bytes]]  #: (item, digest)
    bytes_read: int


_local = threading.local()


def _buffer() -> tuple[bytearray, memoryview]:
    try:
        return _local.buf  # type: ignore[no-any-return]
    except AttributeError:
        buf = bytearray(BUFFER_SIZE)
        _local.buf = (buf, memoryview(buf))
        return _local.buf  # type: ignore[no-any-return]


# ------------------------------------------------------------------------ reads and checks
def _describe_stat(size: int, mtime_ns: int, ino: int) -> str:
    return f"size {size}, mtime_ns {mtime_ns}, inode {ino}"


def _changed(entry: FileEntry, what: str, actual: str | None = None) -> FileChangedError:
    return FileChangedError(
        f"file {what} while it was being hashed", path=entry.path,
        expected=_describe_stat(entry.size, entry.mtime_ns, entry.ino), actual=actual,
        hint="wait until nothing writes to the model (downloads, training), then run again")


def _open(entry: FileEntry) -> int:
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK  # never block on a FIFO
    if not entry.follow:
        flags |= os.O_NOFOLLOW
    try:
        return os.open(entry.path, flags)
    except PermissionError:
        raise PathError("cannot be read (permission denied)", path=entry.path,
                        hint="check the file's permissions, or pass --ignore-path") from None
    except FileNotFoundError:
        raise _changed(entry, "disappeared", "no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _changed(entry, "was replaced by a symbolic link") from None
        raise PathError(f"cannot be read ({e.strerror})", path=entry.path) from None


def _check(fd: int, entry: FileEntry) -> None:
    s = os.fstat(fd)
    if (s.st_size != entry.size or s.st_mtime_ns != entry.mtime_ns
            or s.st_ctime_ns != entry.ctime_ns or s.st_ino != entry.ino
            or s.st_dev != entry.dev or not st_mod.S_ISREG(s.st_mode)):
        raise _changed(entry, "changed", _describe_stat(s.st_size, s.st_mtime_ns, s.st_ino))


def _hash_range(fd: int, entry: FileEntry, start: int, end: int, h: Hasher,
                buf: bytearray, mv: memoryview) -> None:
    full = len(buf)
    preadv = os.preadv
    update = h.update
    off = start
    try:
        while off < end:
            want = end - off
            if want >= full:
                n = preadv(fd, [buf], off)
                if n == full:
                    update(buf)
                    off += n
                    continue
            else:
                n = preadv(fd, [mv[:want]], off)
            if n <= 0:
                raise _changed(entry, "shrank", f"end of file at byte {off}")
            update(mv[:n])
            off += n
    except OSError as e:
        raise PathError(f"read error ({e.strerror})", path=entry.path) from None


def run_task(task: Task) -> TaskResult:
    """Hash every range of every file of ``task``: the pure unit of work any executor runs."""
    buf, mv = _buffer()
    out: list[tuple[int, bytes]] = []
    nbytes = 0
    alg = task.algorithm
    for ft in task.files:
        entry = ft.entry
        fd = _open(entry)
        try:
            _check(fd, entry)
            for r in ft.ranges:
                h = new_hasher(alg)
                _hash_range(fd, entry, r.start, r.end, h, buf, mv)
                out.append((r.item, h.digest()))
                nbytes += r.end - r.start
            _check(fd, entry)
        finally:
            os.close(fd)
    return TaskResult(out, nbytes)


# ------------------------------------------------------------------ time-sliced scheduling
class _Stream:
    """A long range hashed in steps, possibly by different threads one after the other."""

    __slots__ = ("entry", "item", "start", "off", "end", "h", "algorithm")

    def __init__(self, algorithm: str, entry: FileEntry, r: Range) -> None:
        self.algorithm = algorithm
        self.entry = entry
        self.item = r.item
        self.start = self.off = r.start
        self.end = r.end
        self.h: Hasher | None = None

    @property
    def remaining(self) -> int:
        return self.end - self.off

    def step(self) -> tuple[int, TaskResult | None]:
        """Hash the next :data:`STEP` bytes; returns (bytes hashed, result when finished)."""
        buf, mv = _buffer()
        if self.h is None:
            self.h = new_hasher(self.algorithm)
        stop = min(self.end, self.off + STEP)
        fd = _open(self.entry)
        try:
            _check(fd, self.entry)
            _hash_range(fd, self.entry, self.off, stop, self.h, buf, mv)
            _check(fd, self.entry)
        finally:
            os.close(fd)
        n = stop - self.off
        self.off = stop
        if self.off < self.end:
            return n, None
        return n, TaskResult([(self.item, self.h.digest())], self.end - self.start)


class _Batch:
    __slots__ = ("task", "remaining")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.remaining = task.cost

    def step(self) -> tuple[int, TaskResult | None]:
        res = run_task(self.task)
        self.remaining = 0
        return res.bytes_read, res


class Scheduler:
    """Runs tasks on worker threads, slicing long ranges so all workers finish together.

    Each worker takes the job with the most bytes left (longest remaining first), does one step
    of it (a whole batch, or :data:`STEP` bytes of a stream) and puts it back unless it is still
    the longest. The first error stops every worker at its next step and is re-raised by
    :meth:`run`.
    """

    def __init__(self, tasks: list[Task], *, split: int,
                 progress: Callable[[int], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._heap: list[tuple[int, int, _Stream | _Batch]] = []
        self._results: list[TaskResult] = []
        self._error: BaseException | None = None
        self._progress = progress
        seq = 0
        for t in tasks:
            # a task of one range longer than ``split`` becomes a stream; the rest are batches
            job: _Stream | _Batch
            if len(t.files) == 1 and len(t.files[0].ranges) == 1 and t.nbytes > split:
                job = _Stream(t.algorithm, t.files[0].entry, t.files[0].ranges[0])
            else:
                job = _Batch(t)
            self._heap.append((-job.remaining, seq, job))
            seq += 1
        heapq.heapify(self._heap)
        self._seq = seq

    def _worker(self) -> None:
        job: _Stream | _Batch | None = None
        try:
            while True:
                with self._lock:
                    if self._error is not None:
                        return
                    if job is not None:
                        if self._heap and -self._heap[0][0] > job.remaining:
                            self._seq += 1
                            job = heapq.heappushpop(self._heap, (-job.remaining, self._seq, job))[2]
                    elif self._heap:
                        job = heapq.heappop(self._heap)[2]
                    else:
                        return
                n, res = job.step()
                if self._progress is not None and n:
                    self._progress(n)
                if res is not None:
                    with self._lock:
                        self._results.append(res)
                    job = None
        except BaseException as e:  # noqa: BLE001 - handed to the caller by run()
            with self._lock:
                if self._error is None:
                    self._error = e

    def stop(self) -> None:
        with self._lock:
            if self._error is None:
                self._error = KeyboardInterrupt()

    def run(self, executor: Any, workers: int) -> list[TaskResult]:
        """Run on ``workers`` threads of ``executor``; return every task's result."""
        futures = [executor.submit(self._worker) for _ in range(max(1, workers))]
        try:
            for f in futures:
                f.result()
        except BaseException:
            self.stop()
            raise
        if self._error is not None:
            raise self._error
        return self._results
