"""Hashing from S3 (moto's server on 127.0.0.1): the same manifest as the same files on disk.

Also every bad input of issue 10 that S3 can show: a bucket that does not exist, credentials the
server refuses, an object that changes between the listing and the read (same size, new ETag; and
a new size): a one-line error naming the object, exit 2, nothing on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

# ``modelsign hash`` in-process, and its exit-2 check (one line on stderr, nothing on stdout)
from test_hash_cli import _bad, _run  # noqa: E402

from modelsign.errors import FileChangedError, InputError, PathError  # noqa: E402
from modelsign.hashing import HashSpec  # noqa: E402
from modelsign.manifest import hash_model  # noqa: E402

FILES: dict[str, bytes] = {
    "config.json": b'{"hidden_size": 8}',
    "sub/deeper/weights.bin": os.urandom(2_500_000),
    "sub/b.txt": b"b" * 1000,
    "empty": b"",
    "name: with colon and spaces.txt": b"colon",
    "ünï code.txt": b"x",
    ".gitattributes": b"*.bin filter=lfs\n",  # left out (OMS default ignore)
    "logs/run.txt": b"ignored with --ignore-path logs",
}


class ObjectStore:
    """A bucket maker over any fsspec filesystem ``fs`` (the S3 and GCS tests share it)."""

    fs: Any

    def bucket(self, files: dict[str, bytes] = FILES, prefix: str = "data") -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.fs.mkdir(name)
        self.fs.pipe({f"{name}/{prefix}/{k}": v for k, v in files.items()})
        return f"{name}/{prefix}"


class S3(ObjectStore):
    def __init__(self, endpoint: str) -> None:
        import s3fs

        self.endpoint = endpoint
        self.options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        self.fs = s3fs.S3FileSystem(**self.options)

    def cli_options(self) -> list[str]:
        return [a for k, v in self.options.items() for a in ("--storage-option", f"{k}={v}")]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3(f"http://{host}:{port}")
    finally:
        server.stop()


def _local(tmp_path: Path, files: dict[str, bytes] = FILES) -> Path:
    root = tmp_path / "data"
    for k, v in files.items():
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_bytes(v)
    return root


# ---------------------------------------------------------------------------- same manifest
@pytest.mark.parametrize("method", ["files", "shards"])
def test_s3_gives_the_local_manifest(s3: S3, tmp_path: Path, method: str) -> None:
    prefix = s3.bucket()
    spec = HashSpec(method=method, shard_size=1_000_000, use_cache=False, ignore_paths=("logs",))
    local = hash_model(_local(tmp_path), spec)
    remote = hash_model(f"s3://{prefix}", spec, storage_options=s3.options)
    assert remote.to_predicate() == local.to_predicate()  # every resource digest, in order
    assert remote.root_hex == local.root_hex
    assert remote.files == local.files and "empty" in remote.files
    assert remote.name == "data"
    assert remote.source is not None and remote.source.uri == f"s3://{prefix}"


def test_cli_json_keeps_the_predicate_exact_and_records_the_source(
        s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = s3.bucket()
    code, local_out, _ = _run(capsys, str(_local(tmp_path)), "--format", "json", "--no-cache")
    assert code == 0
    code, out, err = _run(capsys, f"s3://{prefix}/", "--format", "json", *s3.cli_options())
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"subject", "predicate", "source"}
    assert doc["predicate"] == json.loads(local_out)  # no field added inside the predicate
    assert doc["source"] == {"uri": f"s3://{prefix}"}
    assert "testing" not in out  # storage options (credentials) are never echoed
    code, text, _ = _run(capsys, f"s3://{prefix}", *s3.cli_options())
    assert text == f"sha256:{doc['subject']['digest']['sha256']}\n"
    assert doc["subject"]["name"] == "data"


def test_a_single_object_is_an_artifact(s3: S3, tmp_path: Path) -> None:
    prefix = s3.bucket()
    m = hash_model(f"s3://{prefix}/sub/deeper/weights.bin", HashSpec(method="shards",
                   shard_size=1_000_000), storage_options=s3.options)
    (tmp_path / "weights.bin").write_bytes(FILES["sub/deeper/weights.bin"])
    local = hash_model(tmp_path / "weights.bin", HashSpec(method="shards", shard_size=1_000_000,
                                                          use_cache=False))
    assert m.to_predicate() == local.to_predicate() and m.name == "weights.bin"


def test_the_default_executor_and_any_executor_agree(s3: S3) -> None:
    prefix = s3.bucket()
    spec = HashSpec(method="shards", shard_size=300_000)
    with ThreadPoolExecutor(max_workers=2) as ex:
        a = hash_model(f"s3://{prefix}", spec, storage_options=s3.options, executor=ex)
    b = hash_model(f"s3://{prefix}", spec, storage_options=s3.options)
    assert a.to_predicate() == b.to_predicate()


# -------------------------------------------------------------------------------- bad input
def test_a_bucket_that_does_not_exist(s3: S3, capsys: pytest.CaptureFixture[str]) -> None:
    err = _bad(capsys, f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/data", *s3.cli_options())
    assert "no-such-bucket" in err and "bucket does not exist" in err


def test_an_empty_prefix(s3: S3, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = s3.bucket().split("/")[0]
    err = _bad(capsys, f"s3://{bucket}/nothing-here", *s3.cli_options())
    assert f"s3://{bucket}/nothing-here" in err


def test_refused_credentials(s3: S3, capsys: pytest.CaptureFixture[str]) -> None:
    """moto checks signatures once INITIAL_NO_AUTH_ACTION_COUNT requests have passed: 0 here."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    prefix = s3.bucket()
    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        err = _bad(capsys, f"s3://{prefix}", "--storage-option", f"endpoint_url={s3.endpoint}",
                   "--storage-option", "key=AKIAREFUSED", "--storage-option", "secret=nope")
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before
    assert "access denied" in err and f"s3://{prefix}" in err
    assert "nope" not in err


def test_storage_options_only_for_remote_sources(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    err = _bad(capsys, str(_local(tmp_path)), "--storage-option", "anon=true")
    assert "remote sources" in err
    err = _bad(capsys, "s3://bucket/x", "--storage-option", "no-equals-sign")
    assert "KEY=VALUE" in err
    err = _bad(capsys, "ftp://host/x")
    assert "unsupported URI scheme" in err
    err = _bad(capsys, str(_local(tmp_path)), "--scheduler", "tcp://127.0.0.1:1")
    assert "--executor dask" in err


class MutateFirst(Executor):
    """Runs tasks on threads, but does ``before()`` once, before the first task is submitted:
    the object changes after the listing and before any read, as an upload would."""

    def __init__(self, before: Callable[[], None]) -> None:
        self._before: Callable[[], None] | None = before
        self._pool = ThreadPoolExecutor(max_workers=2)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._before is not None:
            self._before, before = None, self._before
            before()
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@pytest.mark.parametrize("new", [b"B" * 1000, b"grown" * 300], ids=["same-size", "new-size"])
def test_an_object_that_changes_after_the_listing(s3: S3, new: bytes) -> None:
    prefix = s3.bucket()
    ex = MutateFirst(lambda: s3.fs.pipe_file(f"{prefix}/sub/b.txt", new))
    with ex, pytest.raises(FileChangedError) as e:
        hash_model(f"s3://{prefix}", HashSpec(), storage_options=s3.options, executor=ex)
    assert e.value.exit_code == 2
    assert f"s3://{prefix}/sub/b.txt" in str(e.value) and "changed" in str(e.value)


def test_an_object_that_disappears_after_the_listing(s3: S3) -> None:
    prefix = s3.bucket()
    ex = MutateFirst(lambda: s3.fs.rm_file(f"{prefix}/config.json"))
    with ex, pytest.raises(FileChangedError, match=r"config\.json"):
        hash_model(f"s3://{prefix}", HashSpec(), storage_options=s3.options, executor=ex)


def test_a_change_is_exit_2_with_nothing_written(s3: S3, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI: the object is rewritten right after the listing (the listing is wrapped:
    the CLI takes no executor or hook to inject)."""
    from modelsign.hashing import _remote

    prefix = s3.bucket()
    real = _remote.list_entries

    def listing_then_upload(*a: Any, **k: Any) -> Any:
        out = real(*a, **k)
        s3.fs.pipe_file(f"{prefix}/config.json", b'{"hidden_size": 9}')
        return out

    monkeypatch.setattr(_remote, "list_entries", listing_then_upload)
    err = _bad(capsys, f"s3://{prefix}", "--format", "json", *s3.cli_options())
    assert f"s3://{prefix}/config.json" in err and "while it was being hashed" in err


def test_a_read_refused_by_if_match_is_a_change(s3: S3) -> None:
    """An object replaced *during* a read: s3fs reads with If-Match on the ETag it opened, S3
    answers 412, and that is reported as a change, not as a read error."""
    from modelsign.hashing._engine import FileTask, Range
    from modelsign.hashing._remote import RemoteSource, _hash_object, list_entries

    prefix = s3.bucket()
    source = RemoteSource.parse(f"s3://{prefix}", s3.options)
    _, entries, _ = list_entries(source, HashSpec())
    entry = next(e for e in entries if e.rel == "sub/deeper/weights.bin")
    fs = source.filesystem()

    class ReplacedWhileOpen:
        """The real file system, except that the object is replaced right after open()."""

        def __getattr__(self, name: str) -> Any:
            return getattr(fs, name)

        def open(self, *a: Any, **k: Any) -> Any:
            f = fs.open(*a, **k)
            _ = f.details  # the ETag the reads will be conditional on
            fs.pipe_file(entry.key, os.urandom(entry.size))
            return f

    with pytest.raises(FileChangedError, match="was replaced"):
        _hash_object(source, ReplacedWhileOpen(), "sha256",  # type: ignore[arg-type]
                     FileTask(entry, (Range(0, 0, entry.size),)))  # type: ignore[arg-type]


def test_names_that_cannot_be_resources(s3: S3) -> None:
    prefix = s3.bucket({"a": b"1", "a/b": b"2"})  # an object and a "folder" of the same name
    with pytest.raises(PathError, match="same name as a folder"):
        hash_model(f"s3://{prefix}", HashSpec(), storage_options=s3.options)
    prefix = s3.bucket({"e\u0301.txt": b"1", "\u00e9.txt": b"2"})
    with pytest.raises(PathError, match="NFC"):
        hash_model(f"s3://{prefix}", HashSpec(), storage_options=s3.options)
    with pytest.raises(InputError, match="names no bucket"):
        hash_model("s3://", HashSpec())
