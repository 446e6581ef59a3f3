"""The plan of tasks and its assembly: every planned item comes back exactly once, or it is a bug.

An executor (a thread pool, a Dask cluster, anything) could lose a task result, deliver one twice
or deliver a stranger's: each is an :class:`InternalError` (exit 3), never a different manifest.
A task that raises something not ours names the files of the task.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

from modelsign.errors import InputError, InternalError
from modelsign.hashing import HashSpec, hash_tree
from modelsign.hashing._engine import TaskResult
from modelsign.hashing._tree import (
    EXECUTOR_BATCH_BYTES,
    EXECUTOR_BATCH_FILES,
    _Plan,
    executor_batches,
)
from modelsign.hashing._walk import FileEntry


class Inline(Executor):
    """Runs each task at once in the caller's thread; ``tamper`` may rewrite the results."""

    def __init__(self, tamper: Callable[[list[TaskResult]], list[TaskResult]] | None = None,
                 ) -> None:
        self.tamper = tamper
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        f: Future[Any] = Future()
        try:
            res = fn(*args, **kwargs)
            if self.tamper is not None:
                res = self.tamper([res])[0]
            f.set_result(res)
        except BaseException as e:  # handed over as the future's exception
            f.set_exception(e)
        return f


def _tree(root: Path, n: int = 40) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"f{i:03d}").write_bytes(os.urandom(i * 37))
    (root / "big").write_bytes(os.urandom(3_000_000))
    return root


SPEC = HashSpec(method="shards", shard_size=1_000_000, use_cache=False)


def test_batch_limits_for_another_executor() -> None:
    assert executor_batches(20_000, 20_000 * 4096) == (EXECUTOR_BATCH_FILES, 8 << 20)
    assert executor_batches(1_000_000, 10 << 40) == (EXECUTOR_BATCH_FILES, EXECUTOR_BATCH_BYTES)
    files, nbytes = executor_batches(50, 1 << 30)
    assert files == 4 and nbytes == 64 << 20  # 50 files: 16 tasks of <= 4, not one of 50
    assert executor_batches(0, 0)[0] == 1


def _entry(rel: str, size: int) -> FileEntry:
    return FileEntry(rel, "/nonexistent/" + rel, size, 0, 0, 0, 0, False)


def test_a_plan_covers_every_item_once_within_the_limits() -> None:
    plan = _Plan(batch_files=10, batch_bytes=1000)
    for i in range(95):
        plan.add_whole_file("sha256", _entry(f"s{i}", 30))
    plan.add_file("sha256", _entry("big", 5000), [(0, 2500), (2500, 4000), (4000, 5000)], True)
    plan.add_whole_file("sha256", _entry("alone", 1001))  # over the byte limit: its own task
    plan.flush("sha256")
    items = [r.item for t in plan.tasks for f in t.files for r in f.ranges]
    assert sorted(items) == list(range(len(plan.labels)))  # each planned item in one task
    for t in plan.tasks:  # a batch closes once it reaches a limit: it may pass it by one range
        assert len(t.files) <= 10
        longest = max(r.end - r.start for f in t.files for r in f.ranges)
        assert t.nbytes < 1000 + longest or (len(t.files) == 1 and len(t.files[0].ranges) == 1)
    alone = [t for t in plan.tasks if t.files[0].entry.rel in ("alone",)]
    assert len(alone) == 1 and len(alone[0].files) == 1


def test_any_executor_gives_the_thread_pool_manifest(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m")
    ex = Inline()
    assert hash_tree(root, SPEC, executor=ex).digests == hash_tree(root, SPEC).digests
    assert ex.submitted >= 10  # sized for a cluster: 41 files in 3-file batches, not one task


@pytest.mark.parametrize("fault", ["lost", "twice", "stranger"])
def test_a_result_lost_repeated_or_foreign_is_an_internal_error(tmp_path: Path,
                                                                fault: str) -> None:
    root = _tree(tmp_path / "m")
    state = {"done": False}

    def tamper(results: list[TaskResult]) -> list[TaskResult]:
        res = results[0]
        if state["done"] or not res.digests:
            return results
        state["done"] = True
        if fault == "lost":
            return [TaskResult(res.digests[1:], res.bytes_read)]
        if fault == "twice":
            return [TaskResult(res.digests + res.digests[:1], res.bytes_read)]
        return [TaskResult([*res.digests, (10_000_000, b"\0" * 32)], res.bytes_read)]

    with pytest.raises(InternalError) as e:
        hash_tree(root, SPEC, executor=Inline(tamper))
    assert e.value.exit_code == 3
    assert ("lost" in str(e.value)) if fault == "lost" else ("twice or out of plan" in str(e.value))


class Broken(Executor):
    """Every task fails the way a dead worker does: with an exception that is not ours."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        f.set_exception(RuntimeError("worker tcp://10.0.0.7:4242 died\nmore lines"))
        return f


def test_a_task_that_the_executor_cannot_run_names_its_files(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", n=3)
    with pytest.raises(InputError) as e:
        hash_tree(root, HashSpec(use_cache=False), executor=Broken())
    msg = str(e.value)
    assert "the executor could not hash this task (RuntimeError: worker tcp://10.0.0.7:4242 " \
           "died)" in msg
    assert "more lines" not in msg and ("big" in msg or "f00" in msg)
    assert e.value.exit_code == 2
