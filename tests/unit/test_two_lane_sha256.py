"""The two-lane SHA-256 (decision 0012): hashlib's digests exactly, single and paired, and the
scheduler pairing streams without changing a digest or missing a changed file."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modelsign.errors import FileChangedError
from modelsign.hashing import HashSpec, hash_tree
from modelsign.hashing._engine import BUFFER_SIZE, STEP, FileTask, Range, Scheduler, Task
from modelsign.hashing._fastsha import backend, self_test
from modelsign.hashing._walk import walk


def _cpu_has_sha_ni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return platform.machine() in ("x86_64", "AMD64") and " sha_ni" in flags


needs_backend = pytest.mark.skipif(backend() is None,
                                   reason="two-lane SHA-256 not available on this machine")


def test_the_extension_is_built_and_used_where_the_cpu_can_run_it() -> None:
    """On an x86-64 CPU with the SHA extensions the optional extension must have been compiled
    and must pass its self-test: a build that silently fell back to hashlib fails here."""
    if not _cpu_has_sha_ni():
        pytest.skip("this CPU has no SHA extensions: hashlib is the right choice here")
    from modelsign.hashing import _sha256mb

    assert _sha256mb.available is True
    assert self_test(_sha256mb)
    assert backend() is _sha256mb


def test_the_switch_turns_it_off() -> None:
    code = ("from modelsign.hashing._fastsha import backend; "
            "from modelsign.hashing._engine import _stream_hasher; "
            "print(backend(), type(_stream_hasher('sha256')).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MODELSIGN_SHA256": "hashlib"}).stdout.split()
    assert out[0] == "None" and out[1] != "modelsign.hashing._sha256mb"


@needs_backend
def test_every_length_around_the_block_boundaries() -> None:
    mod = backend()
    assert mod is not None
    data = os.urandom(300)
    for n in range(301):
        h = mod.Sha256()
        h.update(data[:n])
        assert h.digest() == hashlib.sha256(data[:n]).digest(), n
        assert h.hexdigest() == hashlib.sha256(data[:n]).hexdigest()


@needs_backend
def test_long_pairs_and_the_64_bit_length() -> None:
    mod = backend()
    assert mod is not None
    a, b = os.urandom(5 * BUFFER_SIZE + 17), os.urandom(3 * BUFFER_SIZE - 5)
    ha, hb = mod.Sha256(), mod.Sha256()
    mod.update2(ha, a, hb, b)
    assert (ha.digest(), hb.digest()) == (hashlib.sha256(a).digest(), hashlib.sha256(b).digest())


@needs_backend
def test_misuse_is_refused() -> None:
    mod = backend()
    assert mod is not None
    h = mod.Sha256()
    with pytest.raises(ValueError, match="two different objects"):
        mod.update2(h, b"x", h, b"y")
    with pytest.raises(TypeError):
        mod.update2(h, b"x", hashlib.sha256(), b"y")
    with pytest.raises(TypeError):
        mod.Sha256(b"data")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        h.update("text")  # type: ignore[arg-type]
    assert h.digest() == hashlib.sha256().digest()  # nothing was absorbed by the failed calls


def _write(path: Path, n: int, seed: bytes) -> None:
    pattern = hashlib.sha256(seed).digest() * ((BUFFER_SIZE + 13) // 32)
    with open(path, "wb") as f:
        for i in range(0, n, len(pattern)):
            f.write(pattern[: n - i])


@pytest.fixture(scope="module")
def long_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five streams of unequal lengths (> one step each): pairs form, break up and re-form."""
    root = tmp_path_factory.mktemp("two-lane") / "m"
    root.mkdir()
    sizes = [2 * STEP + 7, STEP + BUFFER_SIZE + 3, STEP + 1, 3 * STEP - 1, STEP + 64]
    for i, n in enumerate(sizes):
        _write(root / f"w{i}.bin", n, bytes([i]))
    return root


def _sha256_of(path: Path, start: int = 0, end: int | None = None) -> bytes:
    data = path.read_bytes()[start:end]
    return hashlib.sha256(data).digest()


@needs_backend
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_scheduler_pairs_streams_and_every_digest_is_hashlibs(long_files: Path,
                                                              workers: int) -> None:
    tree = walk(long_files, HashSpec(use_cache=False))
    tasks = [Task("sha256", (FileTask(e, (Range(i, 0, e.size),)),), e.size)
             for i, e in enumerate(tree.entries)]
    sched = Scheduler(tasks, split=STEP)
    with ThreadPoolExecutor(workers) as ex:
        results = sched.run(ex, workers)
    got = dict(d for r in results for d in r.digests)
    assert got == {i: _sha256_of(Path(e.path)) for i, e in enumerate(tree.entries)}
    assert sched.paired_steps > 0  # the lockstep path really ran


@needs_backend
def test_short_streams_are_not_paired_when_there_are_enough_workers(long_files: Path) -> None:
    """Two short streams on two workers: one each (a pair would leave a core waiting)."""
    tree = walk(long_files, HashSpec(use_cache=False))
    entries = tree.entries[:2]
    tasks = [Task("sha256", (FileTask(e, (Range(i, 0, e.size),)),), e.size)
             for i, e in enumerate(entries)]
    sched = Scheduler(tasks, split=STEP)
    with ThreadPoolExecutor(2) as ex:
        results = sched.run(ex, 2)
    assert dict(d for r in results for d in r.digests) == {
        i: _sha256_of(Path(e.path)) for i, e in enumerate(entries)}
    assert sched.paired_steps == 0


@needs_backend
def test_shards_of_one_file_hash_in_pairs(long_files: Path) -> None:
    f = long_files / "w3.bin"
    spec = HashSpec(method="shards", shard_size=STEP + 3, use_cache=False)
    r = hash_tree(f, spec, progress=False)
    size = f.stat().st_size
    want = [("w3.bin", s, min(s + spec.shard_size, size),
             _sha256_of(f, s, min(s + spec.shard_size, size)))
            for s in range(0, size, spec.shard_size)]
    assert r.digests == want


@needs_backend
def test_a_file_changed_during_a_paired_step_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    for i in range(4):  # sparse: four streams, so both workers hold pairs
        with open(root / f"p{i}.bin", "wb") as f:
            f.truncate(3 * STEP)
    victim = root / "p2.bin"
    done: list[int] = []

    def hook(n: int) -> None:
        if not done:
            done.append(n)
            with open(victim, "r+b") as f:
                f.seek(2 * STEP)
                f.write(b"y")  # same size; mtime/ctime move on

    with pytest.raises(FileChangedError) as e:
        hash_tree(root, HashSpec(use_cache=False), progress=hook)
    assert e.value.path == str(victim) and done
