"""Hashing a Hub repository at a commit (``hf://``, huggingface_hub's HfFileSystem) against the
loopback Hub: the manifest of the same files on disk; ``--trust-hub-lfs-sha256`` takes LFS
digests from the Hub's metadata without downloading them, and says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelsign.cli import main
from modelsign.errors import InputError
from modelsign.hashing import HashSpec
from modelsign.manifest import hash_model
from modelsign.testing import LoopbackHub

FILES: dict[str, bytes] = {
    "README.md": b"# a dataset\n",
    "data/train-00000.parquet": os.urandom(200_000),
    "data/part: two.jsonl": b'{"x": 1}\n' * 100,
    "weights/model.safetensors": os.urandom(300_000),  # reported as LFS by the loopback Hub
    "weights/extra.bin": os.urandom(50_000),  # LFS too
    "ünï/empty.txt": b"",
}
LFS = {"weights/model.safetensors", "weights/extra.bin"}


@pytest.fixture(scope="module")
def hub() -> Iterator[LoopbackHub]:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    with LoopbackHub() as h:
        yield h


def _publish(hub: LoopbackHub, repo_id: str, repo_type: str = "dataset",
             files: dict[str, bytes] = FILES) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.url, token="hf_loopback")
    api.create_repo(repo_id, repo_type=repo_type)
    info = api.create_commit(repo_id, repo_type=repo_type, commit_message="data", operations=[
        CommitOperationAdd(k, v) for k, v in files.items()])
    return str(info.oid)


def _local(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for k, v in files.items():
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_bytes(v)
    return root


def _opts(hub: LoopbackHub) -> dict[str, str]:
    return {"endpoint": hub.url, "token": "hf_loopback"}


@pytest.mark.parametrize("method", ["files", "shards"])
def test_a_dataset_at_a_commit_gives_the_local_manifest(hub: LoopbackHub, tmp_path: Path,
                                                        method: str) -> None:
    commit = _publish(hub, f"org/ds-{method}")
    spec = HashSpec(method=method, shard_size=64_000, use_cache=False)
    local = hash_model(_local(tmp_path / f"ds-{method}"), spec)
    remote = hash_model(f"hf://datasets/org/ds-{method}@{commit}", spec,
                        storage_options=_opts(hub))
    assert remote.to_predicate() == local.to_predicate()
    assert remote.name == f"ds-{method}" and remote.files == local.files
    assert remote.source is not None and remote.source.revision == commit


def test_a_model_repository_and_a_folder(hub: LoopbackHub, tmp_path: Path) -> None:
    model = {k: v for k, v in FILES.items() if not k.startswith("data/")}
    commit = _publish(hub, "org/model", repo_type="model", files=model)
    spec = HashSpec(use_cache=False)
    weights = {k[len("weights/"):]: v for k, v in FILES.items() if k.startswith("weights/")}
    local = hash_model(_local(tmp_path / "weights", weights), spec)
    remote = hash_model(f"hf://org/model@{commit}/weights", spec, storage_options=_opts(hub))
    assert remote.to_predicate() == local.to_predicate() and remote.name == "weights"


def test_trusting_the_hubs_lfs_sha256_downloads_no_lfs_file(
        hub: LoopbackHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit = _publish(hub, "org/trusted")
    code = main(["hash", str(_local(tmp_path / "trusted")), "--format", "json", "--no-cache"])
    local_out, _ = capsys.readouterr()
    assert code == 0
    since = len(hub.requests)
    opts = ["--storage-option", f"endpoint={hub.url}", "--storage-option", "token=hf_loopback"]
    code = main(["hash", f"hf://datasets/org/trusted@{commit}", "--format", "json",
                 "--trust-hub-lfs-sha256", *opts])
    out, err = capsys.readouterr()
    assert code == 0, err
    downloaded = set(hub.downloads("org/trusted", since=since))
    assert downloaded and not downloaded & LFS  # the small files were read, the LFS ones not
    doc = json.loads(out)
    assert doc["predicate"] == json.loads(local_out)  # the Hub told the truth here
    assert doc["source"] == {"uri": f"hf://datasets/org/trusted@{commit}", "revision": commit,
                             "digests_from_hub_lfs_metadata": sorted(LFS)}
    assert "2 LFS file(s) were not read" in err and "--trust-hub-lfs-sha256" in err


def test_the_trusted_digest_is_the_hubs_word_not_a_measurement(hub: LoopbackHub) -> None:
    """A Hub whose metadata lies (same size, other bytes): trusting it gives the metadata's
    digest; reading gives the bytes' digest. Verification always reads."""
    commit = _publish(hub, "org/lying")
    hub.tamper("org/lying", "weights/extra.bin", os.urandom(50_000), lie=True,
               repo_type="dataset")
    uri = f"hf://datasets/org/lying@{commit}"
    trusted = hash_model(uri, HashSpec(), storage_options=_opts(hub), trust_hub_lfs_sha256=True)
    read = hash_model(uri, HashSpec(), storage_options=_opts(hub))
    diff = {c.name for c in trusted.diff(read).changed}
    assert diff == {"weights/extra.bin"}


def test_bad_hub_sources(hub: LoopbackHub, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    commit = _publish(hub, "org/bad")
    opts = _opts(hub)
    with pytest.raises(InputError, match="not a branch or tag"):
        hash_model("hf://datasets/org/bad@main", HashSpec(), storage_options=opts)
    with pytest.raises(InputError, match="must pin a commit"):
        hash_model("hf://datasets/org/bad", HashSpec(), storage_options=opts)
    with pytest.raises(InputError, match="files-mode sha256"):
        hash_model(f"hf://datasets/org/bad@{commit}", HashSpec(method="shards"),
                   storage_options=opts, trust_hub_lfs_sha256=True)
    with pytest.raises(InputError, match="hf:// sources only"):
        hash_model("s3://bucket/x", HashSpec(), trust_hub_lfs_sha256=True)
    with pytest.raises(InputError, match="hf:// sources only"):
        hash_model(tmp_path, HashSpec(), trust_hub_lfs_sha256=True)
    for uri in (f"hf://datasets/org/bad@{'0' * 40}", f"hf://datasets/org/nope@{commit}"):
        code = main(["hash", uri, "--storage-option", f"endpoint={hub.url}"])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert uri in err and "not found" in err
