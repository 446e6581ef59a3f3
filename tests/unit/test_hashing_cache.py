"""The incremental cache: what it saves, and each kind of doubt that makes it read files again."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelsign.hashing import HashSpec, default_cache_dir, hash_tree
from modelsign.hashing._cache import CACHE_FILE, RACY_NS

SPEC = HashSpec()


def later() -> int:
    """A clock far enough ahead that every file counts as settled (not racily recent)."""
    return time.time_ns() + 10 * RACY_NS


def _model(root: Path, n: int = 20) -> Path:
    root.mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(3 << 20))
    for i in range(n):
        (root / f"small{i:02d}.txt").write_text(f"file {i}\n")
    return root


def _db(cache: Path) -> Path:
    return cache / CACHE_FILE


def test_rehash_after_editing_one_file_reads_only_that_file(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    cache = tmp_path / "cache"
    first = hash_tree(model, SPEC, cache_dir=cache, clock=later)
    assert first.files_hashed == 21 and first.bytes_read == first.total_bytes
    (model / "small07.txt").write_text("edited\n")
    second = hash_tree(model, SPEC, cache_dir=cache, clock=later)
    assert second.files_hashed == 1 and second.cache_hits == 20
    assert second.bytes_read == len("edited\n")
    assert second.digests == hash_tree(model, HashSpec(use_cache=False)).digests
    assert second.digests != first.digests
    third = hash_tree(model, SPEC, cache_dir=cache, clock=later)
    assert third.bytes_read == 0 and third.cache_hits == 21 and third.digests == second.digests


def test_shards_are_cached_too(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    spec = HashSpec(method="shards", shard_size=1 << 20)
    first = hash_tree(model, spec, cache_dir=tmp_path / "c", clock=later)
    again = hash_tree(model, spec, cache_dir=tmp_path / "c", clock=later)
    assert again.bytes_read == 0 and again.digests == first.digests
    assert sum(d[0] == "weights.bin" for d in again.digests) == 3


def test_recently_changed_files_are_not_cached(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    hash_tree(model, SPEC, cache_dir=tmp_path / "c")  # real clock: every file is brand new
    again = hash_tree(model, SPEC, cache_dir=tmp_path / "c")
    assert again.cache_hits == 0 and again.bytes_read == again.total_bytes


@pytest.mark.parametrize("first,second", [
    (HashSpec(), HashSpec(algorithm="blake2b")),
    (HashSpec(), HashSpec(method="shards")),
    (HashSpec(method="shards", shard_size=2 << 20), HashSpec(method="shards", shard_size=1 << 20)),
], ids=["algorithm", "method", "shard-size"])
def test_different_parameters_miss(tmp_path: Path, first: HashSpec, second: HashSpec) -> None:
    model = _model(tmp_path / "m")
    hash_tree(model, first, cache_dir=tmp_path / "c", clock=later)
    assert hash_tree(model, first, cache_dir=tmp_path / "c", clock=later).bytes_read == 0
    r = hash_tree(model, second, cache_dir=tmp_path / "c", clock=later)
    assert r.cache_hits == 0 and r.bytes_read == r.total_bytes


@pytest.mark.parametrize("change", ["mtime", "ctime-only", "same-size-rewrite", "replace"])
def test_changed_stat_falls_back_to_hashing(tmp_path: Path, change: str) -> None:
    model = _model(tmp_path / "m")
    target = model / "weights.bin"
    hash_tree(model, SPEC, cache_dir=tmp_path / "c", clock=later)
    st = target.stat()
    if change == "mtime":
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    elif change == "ctime-only":
        time.sleep(0.01)
        target.chmod(0o600)  # contents and mtime as they were; only ctime moves
    elif change == "same-size-rewrite":
        data = bytearray(target.read_bytes())
        data[0] ^= 1
        target.write_bytes(bytes(data))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with mtime put back
    else:
        tmp = model / "new"
        tmp.write_bytes(os.urandom(3 << 20))
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, target)  # another inode
    r = hash_tree(model, SPEC, cache_dir=tmp_path / "c", clock=later)
    assert r.files_hashed == 1 and r.bytes_read == 3 << 20
    assert r.digests == hash_tree(model, HashSpec(use_cache=False)).digests


def test_no_cache_neither_reads_nor_writes_it(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    r = hash_tree(model, HashSpec(use_cache=False), cache_dir=tmp_path / "c", clock=later)
    assert not (tmp_path / "c").exists() and r.bytes_read == r.total_bytes
    hash_tree(model, SPEC, cache_dir=tmp_path / "c", clock=later)
    r = hash_tree(model, HashSpec(use_cache=False), cache_dir=tmp_path / "c", clock=later)
    assert r.cache_hits == 0 and r.bytes_read == r.total_bytes


def test_env_var_chooses_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSIGN_CACHE_DIR", str(tmp_path / "from-env"))
    assert default_cache_dir() == tmp_path / "from-env"
    hash_tree(_model(tmp_path / "m"), SPEC, clock=later)
    assert _db(tmp_path / "from-env").is_file()
    monkeypatch.delenv("MODELSIGN_CACHE_DIR")
    assert default_cache_dir().name == "modelsign"


@pytest.mark.parametrize("garbage", [b"this is not a database" * 100, b"", b"SQLite format 3\0"
                                     + os.urandom(8000)], ids=["text", "empty", "bad-pages"])
def test_corrupt_cache_file_is_rebuilt(tmp_path: Path, garbage: bytes) -> None:
    model = _model(tmp_path / "m")
    cache = tmp_path / "c"
    cache.mkdir()
    _db(cache).write_bytes(garbage)
    r = hash_tree(model, SPEC, cache_dir=cache, clock=later)
    assert r.digests == hash_tree(model, HashSpec(use_cache=False)).digests
    with sqlite3.connect(_db(cache)) as conn:  # a valid database again, holding our rows
        assert conn.execute("SELECT count(*) FROM digests").fetchone()[0] == 21
    assert hash_tree(model, SPEC, cache_dir=cache, clock=later).cache_hits == 21


def test_rows_of_the_wrong_shape_are_not_trusted(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    cache = tmp_path / "c"
    hash_tree(model, HashSpec(method="shards", shard_size=1 << 20), cache_dir=cache, clock=later)
    with sqlite3.connect(_db(cache)) as conn:
        conn.execute("UPDATE digests SET value = substr(value, 1, 20)")  # truncated digests
    r = hash_tree(model, HashSpec(method="shards", shard_size=1 << 20), cache_dir=cache,
                  clock=later)
    assert r.cache_hits == 0 and r.bytes_read == r.total_bytes


def test_unusable_cache_directory_still_hashes(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = hash_tree(model, SPEC, cache_dir=blocker / "sub", clock=later)
    assert r.bytes_read == r.total_bytes


def test_locked_database_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", n=2)
    cache = tmp_path / "c"
    hash_tree(model, SPEC, cache_dir=cache)  # creates the database (nothing cached: racy)
    holder = sqlite3.connect(_db(cache), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
    try:
        r = hash_tree(model, SPEC, cache_dir=cache, clock=later)
        assert r.bytes_read == r.total_bytes
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_concurrent_processes_share_the_cache(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", n=200)
    cache = tmp_path / "c"
    code = ("import sys, time; from modelsign.hashing import hash_tree, HashSpec\n"
            "r = hash_tree(sys.argv[1], HashSpec(), cache_dir=sys.argv[2],"
            " clock=lambda: time.time_ns() + 10**11)\n"
            "print(r.digests[0][3].hex())\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(model), str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len({o for o, _ in outs}) == 1 and all(e == "" for _, e in outs)
    assert hash_tree(model, SPEC, cache_dir=cache, clock=later).cache_hits == 201


def test_single_file_model_is_cached(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(os.urandom(1000))
    hash_tree(f, SPEC, cache_dir=tmp_path / "c", clock=later)
    r = hash_tree(f, SPEC, cache_dir=tmp_path / "c", clock=later)
    assert r.cache_hits == 1 and r.bytes_read == 0


def test_rows_of_deleted_files_are_pruned(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    cache = tmp_path / "c"
    hash_tree(model, SPEC, cache_dir=cache, clock=later)
    for i in range(5):
        (model / f"small{i:02d}.txt").unlink()
    (model / "new.txt").write_text("new")
    hash_tree(model, SPEC, cache_dir=cache, clock=later)
    with sqlite3.connect(_db(cache)) as conn:
        paths = {r[0] for r in conn.execute("SELECT path FROM digests")}
    assert paths == {str(p) for p in model.iterdir()}
