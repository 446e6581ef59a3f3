"""The engine: digests at every read-size boundary, any executor, exactly-once assembly,
change detection, progress, bounded memory."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelsign.errors import FileChangedError, InternalError
from modelsign.hashing import HashSpec, hash_tree
from modelsign.hashing._engine import BUFFER_SIZE, STEP, TaskResult

NOCACHE = HashSpec(use_cache=False)
SIZES = [0, 1, BUFFER_SIZE - 1, BUFFER_SIZE, BUFFER_SIZE + 1, 3 * BUFFER_SIZE + 7,
         STEP + BUFFER_SIZE + 3]


@pytest.fixture(scope="module")
def sized_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sized") / "m"
    root.mkdir()
    pattern = os.urandom(BUFFER_SIZE + 13)
    for i, n in enumerate(SIZES):
        data = (pattern * (n // len(pattern) + 1))[:n]
        (root / f"f{i}").write_bytes(data)
    for i in range(300):  # enough small files for several batches
        (root / "small" / f"{i:03d}").parent.mkdir(exist_ok=True)
        (root / "small" / f"{i:03d}").write_bytes(b"%d" % i * (i % 7))
    return root


def _expected(root: Path, spec: HashSpec) -> list[tuple[str, int | None, int | None, bytes]]:
    """Digests computed the obvious way (whole files in memory)."""
    import blake3

    def h(data: bytes) -> bytes:
        if spec.algorithm == "blake3":
            return blake3.blake3(data).digest()
        return hashlib.new(spec.algorithm, data).digest()

    out = []
    for p in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).parts):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        data = p.read_bytes()
        if spec.method == "files":
            out.append((rel, None, None, h(data)))
        else:
            for s in range(0, len(data), spec.shard_size):
                e = min(s + spec.shard_size, len(data))
                out.append((rel, s, e, h(data[s:e])))
    return out


@pytest.mark.parametrize("spec", [
    HashSpec(use_cache=False),
    HashSpec(algorithm="blake2b", use_cache=False),
    HashSpec(algorithm="blake3", use_cache=False),
    HashSpec(method="shards", shard_size=BUFFER_SIZE, use_cache=False),
    HashSpec(method="shards", shard_size=STEP + 5, algorithm="blake3", use_cache=False),
    HashSpec(method="shards", shard_size=1000, use_cache=False),
], ids=lambda s: f"{s.method}-{s.algorithm}-{s.shard_size}")
def test_digests_at_every_boundary(sized_tree: Path, spec: HashSpec) -> None:
    result = hash_tree(sized_tree, spec)
    assert result.digests == _expected(sized_tree, spec)
    assert result.total_bytes == sum(SIZES) + sum(len(b"%d" % i * (i % 7)) for i in range(300))
    assert result.bytes_read == sum(d[2] - d[1] if d[1] is not None else
                                    (sized_tree / d[0]).stat().st_size for d in result.digests)


@pytest.mark.parametrize("make", [
    lambda: ThreadPoolExecutor(1),
    lambda: ThreadPoolExecutor(3),
    lambda: ProcessPoolExecutor(2),
], ids=["threads-1", "threads-3", "processes-2"])
def test_any_executor_gives_the_same_result(sized_tree: Path, make: Callable[[], Executor]
                                            ) -> None:
    spec = HashSpec(method="shards", shard_size=3 * BUFFER_SIZE, use_cache=False)
    with make() as ex:
        assert hash_tree(sized_tree, spec, executor=ex).digests == hash_tree(sized_tree,
                                                                               spec).digests


class _TamperingExecutor(Executor):
    """Runs each task inline, then lets the test tamper with its result."""

    def __init__(self, tamper: Callable[[TaskResult], TaskResult]) -> None:
        self.tamper = tamper

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        f.set_result(self.tamper(fn(*args, **kwargs)))
        return f


@pytest.mark.parametrize("tamper", [
    lambda r: TaskResult(r.digests[1:], r.bytes_read),  # an item lost
    lambda r: TaskResult(r.digests + r.digests[:1], r.bytes_read),  # an item twice
    lambda r: TaskResult([*r.digests, (10**6, b"x")], r.bytes_read),  # an item never planned
], ids=["lost", "twice", "unplanned"])
def test_every_planned_item_comes_back_exactly_once(sized_tree: Path,
                                                    tamper: Callable[[TaskResult], TaskResult]
                                                    ) -> None:
    with pytest.raises(InternalError):
        hash_tree(sized_tree, NOCACHE, executor=_TamperingExecutor(tamper))


class _AppendBeforeEachTask(Executor):
    """Appends to a file after the walk has stat'ed it, before the task reads it."""

    def __init__(self, victim: Path) -> None:
        self.victim = victim

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with open(self.victim, "ab") as f:
            f.write(b"!")
        f2: Future[Any] = Future()
        try:
            f2.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed back through the future
            f2.set_exception(e)
        return f2


def test_change_between_listing_and_reading(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "w.bin").write_bytes(b"abc")
    with pytest.raises(FileChangedError) as e:
        hash_tree(root, NOCACHE, executor=_AppendBeforeEachTask(root / "w.bin"))
    assert e.value.path == str(root / "w.bin")


@pytest.mark.parametrize("method", ["files", "shards"])
@pytest.mark.parametrize("change", ["append", "truncate", "rewrite-same-size"])
def test_change_in_the_middle_of_a_file(tmp_path: Path, method: str, change: str) -> None:
    """The progress hook runs after the first 32 MiB step: the file changes half-way through."""
    root = tmp_path / "m"
    root.mkdir()
    big = root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(3 * STEP)  # sparse
    done = []

    def hook(n: int) -> None:
        if not done:
            done.append(n)
            if change == "append":
                with open(big, "ab") as f:
                    f.write(b"x")
            elif change == "truncate":
                os.truncate(big, STEP)
            else:
                with open(big, "r+b") as f:
                    f.seek(2 * STEP)
                    f.write(b"y")  # same size; mtime/ctime move on
    spec = HashSpec(method=method, shard_size=10 * STEP, use_cache=False)  # type: ignore[arg-type]
    with pytest.raises(FileChangedError) as e:
        hash_tree(root, spec, progress=hook)
    assert e.value.path == str(big) and done


def test_file_replaced_by_symlink_after_listing(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "w").write_bytes(b"abc")
    (tmp_path / "other").write_bytes(b"abc")

    class Swap(_AppendBeforeEachTask):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Future[Any]:
            os.unlink(root / "w")
            os.symlink(tmp_path / "other", root / "w")
            self.victim = tmp_path / "unrelated"
            return super().submit(fn, *args, **kw)

    with pytest.raises(FileChangedError):
        hash_tree(root, NOCACHE, executor=Swap(tmp_path / "unrelated"))


def test_progress_callback_counts_every_byte(sized_tree: Path) -> None:
    seen: list[int] = []
    r = hash_tree(sized_tree, NOCACHE, progress=seen.append)
    assert sum(seen) == r.bytes_read == r.total_bytes


def test_progress_false_and_piped_are_silent(sized_tree: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    hash_tree(sized_tree, NOCACHE, progress=False)
    hash_tree(sized_tree, NOCACHE)  # stderr is not a terminal here
    assert capfd.readouterr().err == ""


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """Under a pseudo-terminal the bar appears on stderr (rich, bytes and rate)."""
    pty = pytest.importorskip("pty")
    big = tmp_path / "m" / "big.bin"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(200 << 20)
    leader, follower = pty.openpty()
    code = ("import sys, time; from modelsign.hashing import hash_tree, HashSpec\n"
            "seen = []\n"
            "hash_tree(sys.argv[1], HashSpec(use_cache=False),"
            " progress=None)\n"
            "print('rich' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code, str(big.parent)], stderr=follower,
                       stdout=subprocess.PIPE, text=True, timeout=60)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert p.returncode == 0 and p.stdout.strip() == "True"
    assert b"hashing" in b"".join(chunks)


def test_memory_stays_bounded(tmp_path: Path) -> None:
    """Peak RSS while hashing 512 MiB (sparse, so no disk) stays far below the size."""
    root = tmp_path / "m"
    root.mkdir()
    for i in range(2):
        with open(root / f"part{i}", "wb") as f:
            f.truncate(256 << 20)
    code = ("import resource, sys; from modelsign.hashing import hash_tree, HashSpec\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "r = hash_tree(sys.argv[1], HashSpec(method='shards', shard_size=100_000_000,"
            " use_cache=False), progress=False)\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(r.bytes_read, before, after)\n")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                         text=True, check=True).stdout.split()
    nbytes, before_kb, after_kb = map(int, out)
    assert nbytes == 512 << 20
    assert after_kb - before_kb < 64 * 1024, (before_kb, after_kb)


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_single_long_stream_with_read_ahead(tmp_path: Path, algorithm: str) -> None:
    """One file of > 3 steps: one thread hashes while an idle one reads ahead, in order."""
    import blake3

    f = tmp_path / "one.bin"
    pattern = os.urandom(BUFFER_SIZE + 13)  # not aligned to the reads: a misordered buffer shows
    n = 3 * STEP + 4 * BUFFER_SIZE + 5
    with open(f, "wb") as out:
        for i in range(0, n, len(pattern)):
            out.write(pattern[: n - i])
    data = f.read_bytes()
    want = blake3.blake3(data).digest() if algorithm == "blake3" else hashlib.sha256(data).digest()
    seen: list[int] = []
    r = hash_tree(f, HashSpec(algorithm=algorithm, use_cache=False),  # type: ignore[arg-type]
                  progress=seen.append)
    assert r.digests == [("one.bin", None, None, want)]
    assert sum(seen) == n


def test_an_aborted_read_ahead_releases_its_consumer(tmp_path: Path) -> None:
    """Another worker failed while a reader was starting (abort before its first buffer): the
    thread hashing that stream must be told, not left waiting on the pipe forever (a hang of
    the whole run, Ctrl-C included)."""
    import threading

    from modelsign.hashing._engine import _Cancelled, _ReadAhead
    from modelsign.hashing._walk import walk

    f = tmp_path / "x.bin"
    f.write_bytes(os.urandom(3 * BUFFER_SIZE))
    entry = walk(f, NOCACHE).entries[0]
    ahead = _ReadAhead(entry, 0, entry.size)
    ahead.abort()
    reader = threading.Thread(target=ahead.fill)
    reader.start()
    reader.join(10)
    assert not reader.is_alive()
    errors: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        try:
            ahead.consume(hashlib.sha256(), None, lambda: True)
        except BaseException as e:  # noqa: BLE001 - inspected below
            errors.append(e)
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    assert done.wait(10), "the consumer waits forever for a reader that gave up"
    assert len(errors) == 1 and isinstance(errors[0], _Cancelled)
