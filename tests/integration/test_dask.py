"""Hashing on a Dask LocalCluster (2 worker processes): the manifest of one machine, exactly.

Local directories and S3 (moto's server on 127.0.0.1), files and shards mode: the root digest
and every resource digest equal the default thread pool's. A task that fails on a worker fails
the whole hash and names the file; an unreachable scheduler and workers without modelsign are
one-line errors, exit 2, with nothing on stdout.

One cluster per test module (starting one costs ~2 s); tasks really cross a process boundary
(pickled by cloudpickle, run in the worker processes).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from modelsign.cli import main  # noqa: E402
from modelsign.errors import FileChangedError, InputError  # noqa: E402
from modelsign.hashing import HashSpec  # noqa: E402
from modelsign.hashing._dask import check_workers, dask_executor  # noqa: E402
from modelsign.hashing._tree import EXECUTOR_BATCH_FILES  # noqa: E402
from modelsign.manifest import hash_model  # noqa: E402

# More files than one executor batch holds locally; fewer on S3 (moto answers a few hundred
# requests a second). Either way the plan has several tasks for the two workers.
N_LOCAL = EXECUTOR_BATCH_FILES + 150
N_S3 = 30


def _files(n: int) -> dict[str, bytes]:
    files = {f"shard-{i // 100:02d}/part {i:05d}:x.txt": os.urandom(i % 700) for i in range(n)}
    files.update({"weights/big.bin": os.urandom(3_000_000), "ünï code/empty": b"",
                  "config.json": b'{"a": 1}', ".gitattributes": b"ignored\n"})
    return files


FILES = _files(N_LOCAL)
FILES_S3 = {k: v for k, v in FILES.items() if not k.startswith("shard-") or
            int(k.split()[1][:5]) < N_S3}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def executor(cluster: Any) -> Iterator[Executor]:
    with dask_executor(cluster.scheduler_address) as ex:
        yield ex


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for k, v in files.items():
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_bytes(v)
    return root


@pytest.fixture(scope="module")
def local_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("dask") / "dataset", FILES)


@pytest.fixture(scope="module")
def local_s3_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("dask-s3") / "dataset", FILES_S3)


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_prefix(s3: dict[str, str]) -> str:
    import s3fs

    fs = s3fs.S3FileSystem(**s3)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.pipe({f"{bucket}/dataset/{k}": v for k, v in FILES_S3.items()})
    return f"{bucket}/dataset"


def _specs() -> list[HashSpec]:
    return [HashSpec(method="files", use_cache=False),
            HashSpec(method="shards", shard_size=700_000, use_cache=False)]


# ---------------------------------------------------------------------------- same manifest
@pytest.mark.parametrize("spec", _specs(), ids=["files", "shards"])
def test_local_directory_on_the_cluster(executor: Executor, local_tree: Path,
                                        spec: HashSpec) -> None:
    threads = hash_model(local_tree, spec)
    dask = hash_model(local_tree, spec, executor=executor)
    assert dask.to_predicate() == threads.to_predicate()  # every digest, in order
    assert dask.root_hex == threads.root_hex and dask.files == threads.files
    assert len(dask.resources) >= N_LOCAL


@pytest.mark.parametrize("spec", _specs(), ids=["files", "shards"])
def test_s3_on_the_cluster(executor: Executor, local_s3_copy: Path, s3: dict[str, str],
                           s3_prefix: str, spec: HashSpec) -> None:
    threads = hash_model(local_s3_copy, spec)  # the same files on disk, on the thread pool
    dask = hash_model(f"s3://{s3_prefix}", spec, storage_options=s3, executor=executor)
    assert dask.to_predicate() == threads.to_predicate()
    assert dask.root_hex == threads.root_hex


def test_the_cli_on_a_scheduler(cluster: Any, local_tree: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", str(local_tree), "--no-cache"]) == 0
    threads, _ = capsys.readouterr()
    assert main(["hash", str(local_tree), "--executor", "dask", "--scheduler",
                 cluster.scheduler_address]) == 0
    out, _ = capsys.readouterr()
    assert out == threads


def test_the_cli_on_a_scheduler_from_s3(cluster: Any, s3: dict[str, str], s3_prefix: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    opts = [a for k, v in s3.items() for a in ("--storage-option", f"{k}={v}")]
    assert main(["hash", f"s3://{s3_prefix}", "--format", "json", *opts]) == 0
    threads, _ = capsys.readouterr()
    assert main(["hash", f"s3://{s3_prefix}", "--format", "json", "--executor", "dask",
                 "--scheduler", cluster.scheduler_address, *opts]) == 0
    out, _ = capsys.readouterr()
    assert out == threads and '"source":{"uri":"s3://' in out


# ------------------------------------------------------------------------------- failures
class BeforeFirstSubmit(Executor):
    """Delegates to ``inner``; does ``before()`` once, right before the first task goes out."""

    def __init__(self, inner: Executor, before: Callable[[], None]) -> None:
        self.inner = inner
        self._before: Callable[[], None] | None = before

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._before is not None:
            self._before, before = None, self._before
            before()
        return self.inner.submit(fn, *args, **kwargs)


def test_a_task_failing_on_a_worker_fails_the_hash_naming_the_file(
        executor: Executor, tmp_path: Path) -> None:
    root = tmp_path / "m"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "doomed.bin").write_bytes(b"x" * 1000)
    (root / "kept.bin").write_bytes(b"y" * 1000)
    ex = BeforeFirstSubmit(executor, (root / "sub" / "doomed.bin").unlink)
    with pytest.raises(FileChangedError) as e:
        hash_model(root, HashSpec(use_cache=False), executor=ex)
    assert "sub/doomed.bin" in str(e.value) and "disappeared" in str(e.value)


def test_an_object_changed_under_a_worker(executor: Executor, s3: dict[str, str]) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.pipe({f"{bucket}/d/a.bin": b"a" * 100, f"{bucket}/d/b.bin": b"b" * 100})
    ex = BeforeFirstSubmit(executor, lambda: fs.pipe_file(f"{bucket}/d/b.bin", b"B" * 100))
    with pytest.raises(FileChangedError) as e:
        hash_model(f"s3://{bucket}/d", HashSpec(), storage_options=s3, executor=ex)
    assert f"s3://{bucket}/d/b.bin" in str(e.value)


def _bad(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["hash", *args])
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("modelsign: error: "), err
    return err


def test_an_unreachable_scheduler(local_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import dask

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        err = _bad(capsys, str(local_tree), "--executor", "dask", "--scheduler",
                   f"tcp://127.0.0.1:{port}")
    assert f"tcp://127.0.0.1:{port}" in err and "cannot reach the Dask scheduler" in err
    err = _bad(capsys, str(local_tree), "--executor", "dask", "--scheduler", "localhost")
    assert "tcp://HOST:PORT" in err


def test_workers_without_modelsign(local_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A worker whose Python cannot import modelsign (the preload blocks it) is named."""
    with distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR,
            preload=["import sys; sys.modules['modelsign'] = None  # no modelsign here"]) as c:
        err = _bad(capsys, str(local_tree), "--executor", "dask", "--scheduler",
                   c.scheduler_address)
        worker = next(iter(c.scheduler_info["workers"]))
    assert worker in err and "cannot import what hashing needs: modelsign" in err
    assert "install modelsign==" in err


def test_workers_that_cannot_see_the_path(cluster: Any) -> None:
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        assert check_workers(client) == 2
        with pytest.raises(InputError, match="cannot see the local path"):
            check_workers(client, paths=["/nonexistent/modelsign/model"])
