"""Hashing from Google Cloud Storage (gs://): the same manifest as the same files on disk.

The real ``gcsfs`` client talks to ``gcp-storage-emulator`` (a JSON-API GCS emulator) on
127.0.0.1 through ``STORAGE_EMULATOR_HOST``. gcsfs 2026 probes each bucket's layout over gRPC
first (60 s against an emulator); ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` keeps it on the
JSON API, which is all modelsign uses. Change detection is by ``generation`` (and etag/md5).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # before gcsfs is imported
gcsfs = pytest.importorskip("gcsfs")
emulator = pytest.importorskip("gcp_storage_emulator.server")

from test_hash_cli import _run  # noqa: E402
from test_remote_s3 import MutateFirst, ObjectStore, _local  # noqa: E402

from modelsign.errors import FileChangedError, ModelsignError  # noqa: E402
from modelsign.hashing import HashSpec  # noqa: E402
from modelsign.manifest import hash_model  # noqa: E402

OPTIONS: dict[str, Any] = {"token": "anon", "project": "modelsign-test"}


class GCS(ObjectStore):
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.fs = gcsfs.GCSFileSystem(**OPTIONS)


@pytest.fixture(scope="module")
def gcs() -> Iterator[GCS]:
    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        yield GCS(os.environ["STORAGE_EMULATOR_HOST"])
    finally:
        server.stop()
        if before is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = before


@pytest.mark.parametrize("method", ["files", "shards"])
def test_gcs_gives_the_local_manifest(gcs: GCS, tmp_path: Path, method: str) -> None:
    prefix = gcs.bucket()
    spec = HashSpec(method=method, shard_size=1_000_000, use_cache=False, ignore_paths=("logs",))
    local = hash_model(_local(tmp_path), spec)
    remote = hash_model(f"gs://{prefix}", spec, storage_options=OPTIONS)
    assert remote.to_predicate() == local.to_predicate()  # every resource digest, in order
    assert remote.root_hex == local.root_hex
    assert remote.files == local.files and "empty" in remote.files
    assert remote.source is not None and remote.source.uri == f"gs://{prefix}"


def test_cli_records_the_gs_source(gcs: GCS, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    prefix = gcs.bucket()
    code, local_out, _ = _run(capsys, str(_local(tmp_path)), "--format", "json", "--no-cache")
    assert code == 0
    code, out, err = _run(capsys, f"gs://{prefix}", "--format", "json",
                          "--storage-option", "token=anon",
                          "--storage-option", "project=modelsign-test")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["predicate"] == json.loads(local_out)
    assert doc["source"] == {"uri": f"gs://{prefix}"}


@pytest.mark.parametrize("new", [b"B" * 1000, b"grown" * 300], ids=["same-size", "new-size"])
def test_an_object_rewritten_after_the_listing(gcs: GCS, new: bytes) -> None:
    """A rewrite gets a new generation even with the same size: the read is refused."""
    prefix = gcs.bucket()
    ex = MutateFirst(lambda: gcs.fs.pipe_file(f"{prefix}/sub/b.txt", new))
    with ex, pytest.raises(FileChangedError) as e:
        hash_model(f"gs://{prefix}", HashSpec(), storage_options=OPTIONS, executor=ex)
    assert e.value.exit_code == 2
    assert f"gs://{prefix}/sub/b.txt" in str(e.value) and "changed" in str(e.value)


def test_an_empty_prefix_is_an_error_naming_it(gcs: GCS) -> None:
    bucket = gcs.bucket().split("/")[0]
    with pytest.raises(ModelsignError) as e:
        hash_model(f"gs://{bucket}/nothing-here", HashSpec(), storage_options=OPTIONS)
    assert e.value.exit_code == 2 and f"gs://{bucket}/nothing-here" in str(e.value)
