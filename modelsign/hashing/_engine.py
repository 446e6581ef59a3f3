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

Every file is checked for change: the ``stat`` taken by the walk must match ``fstat`` after the
file is read (and, for long ranges, before and after every step): size, mtime, ctime, inode,
device; and every byte planned must be read. Otherwise the file is reported with
:class:`~modelsign.errors.FileChangedError`. Any change since the walk moves mtime or ctime, so
the check after the read also covers the time before it.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import os
import queue
import stat as st_mod
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, Protocol

from modelsign.errors import FileChangedError, PathError
from modelsign.hashing._fastsha import backend as _two_lane_backend
from modelsign.hashing._spec import HashAlgorithm
from modelsign.hashing._walk import FileEntry

__all__ = [
    "BUFFER_SIZE",
    "DIGEST_SIZE",
    "STEP",
    "FileTask",
    "Range",
    "Scheduler",
    "Task",
    "TaskResult",
    "new_hasher",
    "run_task",
    "shard_ranges",
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
    nbytes: int  #: bytes to hash: the sum of the ranges' lengths

    @property
    def cost(self) -> int:
        """Rough cost in bytes: the data, plus the syscalls and bookkeeping of each file."""
        return self.nbytes + 16384 * len(self.files)


class TaskResult(NamedTuple):
    digests: list[tuple[int, bytes]]  #: (item, digest)
    bytes_read: int


_local = threading.local()


def _buffer(slot: int = 0) -> tuple[bytearray, memoryview]:
    """This thread's reusable read buffer number ``slot`` (1 is the other stream of a pair)."""
    bufs: list[tuple[bytearray, memoryview]] | None = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = []
    while len(bufs) <= slot:
        buf = bytearray(BUFFER_SIZE)
        bufs.append((buf, memoryview(buf)))
    return bufs[slot]


def _stream_hasher(algorithm: str) -> Hasher:
    """The hash of a long stream: the two-lane SHA-256 when available (so it can be paired)."""
    if algorithm == "sha256":
        mod = _two_lane_backend()
        if mod is not None:
            h: Hasher = mod.Sha256()
            return h
    return new_hasher(algorithm)


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


def _prefetch(fd: int, start: int, end: int) -> None:
    """Ask the kernel to start reading [start, end) now (cold cache: deep, asynchronous I/O).

    On data already cached it costs about 5 ms per GiB against ~560 ms of SHA-256.
    """
    if end > start:
        try:
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_WILLNEED)
        except OSError:  # advice only (and not every file system takes it)
            pass


def _read(fd: int, entry: FileEntry, buf: bytearray, mv: memoryview, off: int,
          want: int) -> memoryview | bytearray:
    """Up to ``want`` (<= the buffer) bytes at ``off``: the buffer itself when it is filled."""
    try:
        n = os.preadv(fd, [buf] if want == len(buf) else [mv[:want]], off)
    except OSError as e:
        raise PathError(f"read error ({e.strerror})", path=entry.path) from None
    if n <= 0:
        raise _changed(entry, "shrank", f"end of file at byte {off}")
    return buf if n == len(buf) else mv[:n]


def _hash_range(fd: int, entry: FileEntry, start: int, end: int, h: Hasher,
                buf: bytearray, mv: memoryview) -> None:
    full = len(buf)
    update = h.update
    off = start
    while off < end:
        data = _read(fd, entry, buf, mv, off, min(full, end - off))
        update(data)
        off += len(data)


_HASHLIB: dict[str, Callable[[], Hasher]] = {"sha256": hashlib.sha256,
                                             "blake2b": hashlib.blake2b}


def run_task(task: Task) -> TaskResult:
    """Hash every range of every file of ``task``: the pure unit of work any executor runs."""
    buf, mv = _buffer()
    full = len(buf)
    preadv = os.preadv
    out: list[tuple[int, bytes]] = []
    nbytes = 0
    alg = task.algorithm
    factory = _HASHLIB.get(alg) or partial(new_hasher, alg)
    for ft in task.files:
        entry = ft.entry
        fd = _open(entry)
        try:
            # no fstat before reading: the one after must equal the walk's stat (size, mtime,
            # ctime, inode), which any change since the walk (or during the read) breaks
            for item, start, end in ft.ranges:
                h = factory()
                want = end - start
                if want <= full:  # small files and shards: one read, no loop
                    try:
                        n = preadv(fd, [mv[:want]], start) if want else 0
                    except OSError as e:
                        raise PathError(f"read error ({e.strerror})", path=entry.path) from None
                    h.update(mv[:n])
                    if n != want:  # a short read: carry on (and report a shrunk file) as below
                        _hash_range(fd, entry, start + n, end, h, buf, mv)
                else:
                    _hash_range(fd, entry, start, end, h, buf, mv)
                out.append((item, h.digest()))
                nbytes += want
            _check(fd, entry)
        finally:
            os.close(fd)
    return TaskResult(out, nbytes)


# ------------------------------------------------------------------ time-sliced scheduling
class _Cancelled(Exception):
    """Another worker failed; this one stops at its next step."""


class _ReadAhead:
    """An otherwise idle worker reading a stream's remaining bytes for the thread hashing it.

    Copying from the page cache costs about a tenth of SHA-256's time; on a core that would
    idle anyway, the hashing thread no longer pays it. The reader checks the file like any read
    (``fstat`` before, every :data:`STEP` bytes and after) and passes errors down the pipe.
    """

    _DONE = object()

    def __init__(self, entry: FileEntry, start: int, end: int, depth: int = 4) -> None:
        self.entry = entry
        self.start = start
        self.end = end
        self.stopped = False
        self.free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        self.full: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(depth):
            self.free.put(bytearray(BUFFER_SIZE))

    def fill(self) -> None:
        """Reader side: read [start, end) into free buffers, then signal done (or the error)."""
        entry = self.entry
        try:
            fd = _open(entry)
            try:
                _check(fd, entry)
                off = checked = self.start
                _prefetch(fd, off, min(self.end, off + 2 * STEP))
                while off < self.end:
                    buf = self.free.get()
                    if buf is None or self.stopped:
                        # aborted (another worker failed): tell the consumer, which may already
                        # wait on the pipe, rather than leave it waiting forever
                        raise _Cancelled()
                    want = min(len(buf), self.end - off)
                    try:
                        n = os.preadv(fd, [memoryview(buf)[:want]], off)
                    except OSError as e:
                        raise PathError(f"read error ({e.strerror})", path=entry.path) from None
                    if n <= 0:
                        raise _changed(entry, "shrank", f"end of file at byte {off}")
                    self.full.put((buf, n))
                    off += n
                    if off - checked >= STEP:
                        _check(fd, entry)
                        checked = off
                        _prefetch(fd, off + STEP, min(self.end, off + 2 * STEP))
                _check(fd, entry)
            finally:
                os.close(fd)
            self.full.put(self._DONE)
        except BaseException as e:  # noqa: BLE001 - re-raised by the hashing thread
            self.full.put(e)

    def consume(self, h: Hasher, progress: Callable[[int], None] | None,
                cancelled: Callable[[], bool]) -> None:
        """Hashing side: hash every buffer in order until the reader says done."""
        try:
            while True:
                item = self.full.get()
                if item is self._DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                buf, n = item
                h.update(buf if n == len(buf) else memoryview(buf)[:n])
                self.free.put(buf)
                if progress is not None:
                    progress(n)
                if cancelled():
                    raise _Cancelled()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self.stopped = True
        self.free.put(None)  # wake the reader if it waits for a buffer


class _Stream:
    """A long range hashed in steps, possibly by different threads one after the other."""

    __slots__ = ("ahead", "algorithm", "claimed", "end", "entry", "h", "item", "off", "start")

    def __init__(self, algorithm: str, entry: FileEntry, r: Range) -> None:
        self.algorithm = algorithm
        self.entry = entry
        self.item = r.item
        self.start = self.off = self.claimed = r.start
        self.end = r.end
        self.h: Hasher | None = None
        self.ahead: _ReadAhead | None = None

    @property
    def remaining(self) -> int:
        return self.end - self.off

    def claim(self) -> None:
        """Under the scheduler lock: fix the range of the next step."""
        self.claimed = self.end if self.ahead is not None else min(self.end, self.off + STEP)

    def read_ahead(self) -> _ReadAhead | None:
        """Under the scheduler lock: let an idle worker read what follows the current step."""
        if self.ahead is not None or self.end - self.claimed < 2 * STEP:
            return None
        self.ahead = _ReadAhead(self.entry, self.claimed, self.end)
        return self.ahead

    @property
    def pairable(self) -> bool:
        """Whether this stream can be hashed in lockstep with another (two-lane SHA-256)."""
        return (self.ahead is None and self.algorithm == "sha256"
                and _two_lane_backend() is not None)

    def _hasher(self) -> Hasher:
        if self.h is None:
            self.h = _stream_hasher(self.algorithm)
        return self.h

    def _open_step(self) -> int:
        """Open the file for a step, check it, and ask the kernel for this step and the next."""
        fd = _open(self.entry)
        try:
            _check(fd, self.entry)
            if self.off == self.start:
                _prefetch(fd, self.off, self.claimed)
            _prefetch(fd, self.claimed, min(self.end, self.claimed + STEP))  # while we hash
        except BaseException:
            os.close(fd)
            raise
        return fd

    def result(self) -> TaskResult | None:
        """The digest once the whole range is hashed, else ``None``."""
        if self.off < self.end or self.h is None:
            return None
        return TaskResult([(self.item, self.h.digest())], self.end - self.start)

    def step(self, progress: Callable[[int], None] | None,
             cancelled: Callable[[], bool]) -> TaskResult | None:
        """Hash the claimed range; returns the result once the whole range is hashed."""
        h = self._hasher()
        stop = self.claimed
        if self.ahead is not None and self.off == self.ahead.start:
            self.ahead.consume(h, progress, cancelled)
        else:
            buf, mv = _buffer()
            fd = self._open_step()
            try:
                _hash_range(fd, self.entry, self.off, stop, h, buf, mv)
                _check(fd, self.entry)
            finally:
                os.close(fd)
            if progress is not None:
                progress(stop - self.off)
        self.off = stop
        return self.result()


def _step_pair(a: _Stream, b: _Stream, progress: Callable[[int], None] | None) -> None:
    """One step of two streams in lockstep: each buffer pair goes through the two-lane SHA-256.

    Both claimed ranges are read a buffer at a time and hashed together; when the shorter one
    ends, the rest of the longer one is hashed alone. Each file is checked as in a single step.
    """
    mod = _two_lane_backend()
    assert mod is not None  # pairable() said so
    ha, hb = a._hasher(), b._hasher()
    bufa, mva = _buffer()
    bufb, mvb = _buffer(1)
    full = len(bufa)
    update2 = mod.update2
    fda = a._open_step()
    try:
        fdb = b._open_step()
        try:
            offa, stopa, offb, stopb = a.off, a.claimed, b.off, b.claimed
            while offa < stopa and offb < stopb:
                da = _read(fda, a.entry, bufa, mva, offa, min(full, stopa - offa))
                db = _read(fdb, b.entry, bufb, mvb, offb, min(full, stopb - offb))
                update2(ha, da, hb, db)
                offa += len(da)
                offb += len(db)
            if offa < stopa:
                _hash_range(fda, a.entry, offa, stopa, ha, bufa, mva)
            if offb < stopb:
                _hash_range(fdb, b.entry, offb, stopb, hb, bufb, mvb)
            _check(fda, a.entry)
            _check(fdb, b.entry)
        finally:
            os.close(fdb)
    finally:
        os.close(fda)
    if progress is not None:
        progress(a.claimed - a.off + b.claimed - b.off)
    a.off = a.claimed
    b.off = b.claimed


class _Batch:
    __slots__ = ("remaining", "task")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.remaining = task.cost

    def claim(self) -> None:
        pass

    def step(self, progress: Callable[[int], None] | None,
             cancelled: Callable[[], bool]) -> TaskResult | None:
        res = run_task(self.task)
        self.remaining = 0
        if progress is not None:
            progress(res.bytes_read)
        return res


class Scheduler:
    """Runs tasks on worker threads, slicing long ranges so all workers finish together.

    Each worker takes the job with the most bytes left (longest remaining first), does one step
    of it (a whole batch, or :data:`STEP` bytes of a stream) and puts it back. Where the two-lane
    SHA-256 is available (decision 0012) and there are more streams than workers, a worker takes
    the *two* longest streams and steps them in lockstep, as long as that leaves a stream for
    every worker waiting for one; a worker that finds nothing while another holds a pair waits
    for the pair's step to end. A worker that finds nothing at all reads ahead for the longest
    stream another worker is hashing. The first error stops every worker at its next step and is
    re-raised by :meth:`run`.
    """

    def __init__(self, tasks: list[Task], *, split: int,
                 progress: Callable[[int], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[int, int, _Stream | _Batch]] = []
        self._running: set[_Stream] = set()
        self._aheads: list[_ReadAhead] = []
        self._results: list[TaskResult] = []
        self._error: BaseException | None = None
        self._progress = progress
        self._pairs = 0  #: workers holding two streams
        self._waiting = 0  #: workers waiting for one of them
        self._workers = 1  #: set by run()
        self._streams_left = 0  #: streams not finished yet
        self.paired_steps = 0  #: steps done in lockstep (the tests check that pairs ran)
        seq = 0
        for t in tasks:
            # a task of one range longer than ``split`` becomes a stream; the rest are batches
            job: _Stream | _Batch
            if len(t.files) == 1 and len(t.files[0].ranges) == 1 and t.nbytes > split:
                job = _Stream(t.algorithm, t.files[0].entry, t.files[0].ranges[0])
                self._streams_left += 1
            else:
                job = _Batch(t)
            self._heap.append((-job.remaining, seq, job))
            seq += 1
        heapq.heapify(self._heap)
        self._seq = seq

    def _cancelled(self) -> bool:
        return self._error is not None

    def _push(self, job: _Stream | _Batch) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (-job.remaining, self._seq, job))

    def _next(self, held: list[_Stream | _Batch]
              ) -> list[_Stream | _Batch] | _ReadAhead | None:
        """Under the lock: the jobs to step next (one, or two streams), or a stream to read ahead
        for, or ``None`` when there is nothing left for this worker. ``held`` are the unfinished
        jobs of this worker's last step."""
        if len(held) == 2:
            self._pairs -= 1
        for job in held:
            if isinstance(job, _Stream) and job.ahead is not None:
                # an idle worker is reading this stream ahead: hash the rest of it, alone
                for other in held:
                    if other is not job:
                        self._push(other)
                self._wake.notify_all()
                job.claim()
                return [job]
        for job in held:
            self._push(job)
        if held:
            self._wake.notify_all()
        while not self._heap and self._pairs and self._error is None:
            # another worker holds two streams: one of them is ours after its step
            self._waiting += 1
            self._wake.wait()
            self._waiting -= 1
        if self._error is not None:
            return None
        if self._heap:
            first = heapq.heappop(self._heap)[2]
            jobs = [first]
            # Pair only when there are more streams than workers: two streams on two cores run
            # faster one per core than as a pair on one core while the other waits.
            if (isinstance(first, _Stream) and first.pairable
                    and self._streams_left > self._workers and len(self._heap) > self._waiting
                    and isinstance(self._heap[0][2], _Stream) and self._heap[0][2].pairable):
                jobs.append(heapq.heappop(self._heap)[2])
                self._pairs += 1
            for job in jobs:
                if isinstance(job, _Stream):
                    self._running.add(job)
                job.claim()
            return jobs
        for stream in sorted(self._running, key=lambda j: j.claimed - j.end):
            ahead = stream.read_ahead()
            if ahead is not None:
                self._aheads.append(ahead)
                return ahead
        return None

    def _worker(self) -> None:
        held: list[_Stream | _Batch] = []
        try:
            while True:
                with self._lock:
                    if self._error is not None:
                        return
                    for job in held:
                        if isinstance(job, _Stream):
                            self._running.discard(job)
                    nxt = self._next(held)
                    held = []
                if nxt is None:
                    return
                if isinstance(nxt, _ReadAhead):
                    nxt.fill()
                    continue
                done: list[TaskResult] = []
                if len(nxt) == 2:
                    a, b = nxt
                    assert isinstance(a, _Stream) and isinstance(b, _Stream)
                    held = [a, b]  # released by _next even if the step fails
                    _step_pair(a, b, self._progress)
                    for s in (a, b):
                        res = s.result()
                        if res is not None:
                            done.append(res)
                    if self._cancelled():
                        raise _Cancelled()
                else:
                    held = list(nxt)
                    res = nxt[0].step(self._progress, self._cancelled)
                    if res is not None:
                        done.append(res)
                with self._lock:
                    self._results.extend(done)
                    self.paired_steps += len(held) == 2
                    unfinished = [j for j in held if j.remaining > 0]
                    for j in held:
                        if j.remaining == 0 and isinstance(j, _Stream):
                            self._running.discard(j)
                            self._streams_left -= 1
                    if len(held) == 2 and len(unfinished) < 2:
                        self._pairs -= 1  # no longer a pair: a waiting worker may read ahead
                        self._wake.notify_all()
                    held = unfinished
        except _Cancelled:
            return
        except BaseException as e:  # noqa: BLE001 - handed to the caller by run()
            self._fail(e)

    def _fail(self, e: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = e
            aheads = list(self._aheads)
            self._wake.notify_all()
        for a in aheads:  # a reader may wait for buffers nobody will hand back
            a.abort()

    def stop(self) -> None:
        self._fail(KeyboardInterrupt())

    def run(self, executor: Any, workers: int) -> list[TaskResult]:
        """Run on ``workers`` threads of ``executor``; return every task's result."""
        self._workers = max(1, workers)
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
