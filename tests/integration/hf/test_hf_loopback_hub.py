"""The loopback Hub against the real, unmodified ``huggingface_hub`` client.

Each test says which client behaviour modelsign relies on: one atomic commit, the 412 on a stale
parent, pull requests, the cache and local_dir layouts, and the sha256 metadata of LFS files.
"""

from __future__ import annotations

import hashlib
import json
import os
import os.path
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelsign.testing._hub import CONFLICT_MESSAGE, LoopbackHub, git_blob_sha1, lfs_pointer

hfh = pytest.importorskip("huggingface_hub")
from huggingface_hub import (  # noqa: E402
    CommitOperationAdd,
    RepoFile,
    RepoFolder,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError  # noqa: E402


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def repo(request: pytest.FixtureRequest, tmp_path: Path, hub: LoopbackHub, hf_api: Any) -> Any:
    """A fresh repo with a small folder uploaded by ``upload_folder`` (one commit)."""
    repo_id = f"loopback/{request.node.name.replace('_', '-')}-{os.getpid()}"
    files = {
        "config.json": json.dumps({"hidden_size": 64, "num_layers": 2}).encode(),
        "tokenizer.json": json.dumps({"vocab": {f"tok{i}": i for i in range(2000)}}).encode(),
        "model.safetensors": os.urandom(1024 * 1024),  # LFS by suffix
        "sub/notes.txt": b"nested file\n",
    }
    folder = tmp_path / "upload"
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    hf_api.create_repo(repo_id)
    initial = hf_api.model_info(repo_id).sha
    start = len(hub.requests)
    commit = hf_api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="upload")
    gitattributes = hub.history(repo_id)[-1].files[".gitattributes"]
    return SimpleNamespace(repo_id=repo_id, folder=folder, files=files, commit=commit,
                           initial=initial, upload_requests=hub.requests[start:],
                           all_files={**files, ".gitattributes": gitattributes})


def test_client_uses_the_injected_endpoint(hub: LoopbackHub, hf_api: Any) -> None:
    assert hf_api.endpoint == hub.url
    assert hf_hub_url("a/b", "f.txt", endpoint=hub.url).startswith(hub.url + "/a/b/resolve/")


def test_upload_folder_is_one_commit_with_all_files(repo: Any, hub: LoopbackHub,
                                                    hf_api: Any) -> None:
    history = hub.history(repo.repo_id)
    assert [c.oid for c in history] == [repo.commit.oid, repo.initial]
    assert [r.path for r in repo.upload_requests if r.method == "POST" and "/commit/" in r.path] \
        == [f"/api/models/{repo.repo_id}/commit/main"]
    assert sorted(hf_api.list_repo_files(repo.repo_id, revision=repo.commit.oid)) \
        == sorted(repo.all_files)
    assert hub.files(repo.repo_id, repo.commit.oid) == repo.all_files
    # Same folder again: preupload's `oid` lets the client drop every file => no new commit
    start = len(hub.requests)
    again = hf_api.upload_folder(repo_id=repo.repo_id, folder_path=repo.folder)
    assert again.oid == repo.commit.oid and hub.commit_posts(repo.repo_id, since=start) == []


def test_stale_parent_commit_is_refused_with_412(repo: Any, hub: LoopbackHub,
                                                 hf_api: Any) -> None:
    head = hf_api.model_info(repo.repo_id).sha
    ok = hf_api.create_commit(repo.repo_id, operations=[CommitOperationAdd("extra.txt", b"v1")],
                              commit_message="second", parent_commit=head)
    assert ok.oid != head and hub.head(repo.repo_id) == ok.oid
    with pytest.raises(HfHubHTTPError) as exc:  # `head` is now stale
        hf_api.create_commit(repo.repo_id, operations=[CommitOperationAdd("late.txt", b"late")],
                             commit_message="stale", parent_commit=head)
    assert exc.value.response.status_code == 412 and CONFLICT_MESSAGE in str(exc.value)
    assert hub.head(repo.repo_id) == ok.oid and "late.txt" not in hub.files(repo.repo_id)


def test_create_pr_commits_to_a_pr_ref_from_the_parent(repo: Any, hub: LoopbackHub,
                                                       hf_api: Any) -> None:
    info = hf_api.create_commit(repo.repo_id, operations=[CommitOperationAdd("pr.txt", b"pr")],
                                commit_message="a PR", create_pr=True,
                                parent_commit=repo.commit.oid)
    assert info.pr_revision == "refs/pr/1" and info.pr_num == 1
    assert hub.head(repo.repo_id) == repo.commit.oid  # main did not move
    assert hub.head(repo.repo_id, "refs/pr/1") == info.oid
    assert hub.history(repo.repo_id, "refs/pr/1")[1].oid == repo.commit.oid
    assert hf_api.model_info(repo.repo_id, revision="refs/pr/1").sha == info.oid
    assert "pr.txt" in hf_api.list_repo_files(repo.repo_id, revision="refs/pr/1")


def test_snapshot_download_into_cache_uses_symlinked_layout(repo: Any, hub: LoopbackHub,
                                                            tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = Path(snapshot_download(repo.repo_id, revision="main", cache_dir=cache,
                                  endpoint=hub.url))
    storage = cache / f"models--{repo.repo_id.replace('/', '--')}"
    assert path == storage / "snapshots" / repo.commit.oid
    assert (storage / "refs" / "main").read_text() == repo.commit.oid
    for rel, data in repo.all_files.items():
        link = path / rel
        etag = sha256(data) if rel.endswith(".safetensors") else git_blob_sha1(data)
        assert link.is_symlink(), rel
        assert os.readlink(link) == "../" * (rel.count("/") + 2) + f"blobs/{etag}"
        assert Path(os.path.realpath(link)) == storage / "blobs" / etag
        assert link.read_bytes() == data


def test_snapshot_download_into_local_dir(repo: Any, hub: LoopbackHub, tmp_path: Path) -> None:
    local = tmp_path / "local"
    assert Path(snapshot_download(repo.repo_id, local_dir=local, endpoint=hub.url)) \
        == local.resolve()
    for rel, data in repo.all_files.items():
        assert not (local / rel).is_symlink() and (local / rel).read_bytes() == data
    meta = local / ".cache" / "huggingface" / "download" / "model.safetensors.metadata"
    assert meta.read_text().splitlines()[:2] == [repo.commit.oid,
                                                 sha256(repo.files["model.safetensors"])]


def test_pinned_revision_survives_a_branch_move(repo: Any, hub: LoopbackHub, hf_api: Any,
                                                tmp_path: Path) -> None:
    a = repo.commit.oid
    b = hf_api.create_commit(repo.repo_id, operations=[
        CommitOperationAdd("model.safetensors", os.urandom(4096))],
        commit_message="move main", parent_commit=a).oid
    cache = tmp_path / "cache"
    pinned = Path(snapshot_download(repo.repo_id, revision=a, cache_dir=cache, endpoint=hub.url))
    assert pinned.name == a
    assert (pinned / "model.safetensors").read_bytes() == repo.files["model.safetensors"]
    latest = Path(snapshot_download(repo.repo_id, cache_dir=cache, endpoint=hub.url))
    assert latest.name == b


def test_partial_download_and_missing_file(repo: Any, hub: LoopbackHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = Path(snapshot_download(repo.repo_id, revision=repo.commit.oid, cache_dir=cache,
                                  allow_patterns=["*.json"], endpoint=hub.url))
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "tokenizer.json"]
    assert hub.downloads(repo.repo_id).count("model.safetensors") == 0
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo.repo_id, "nope.bin", revision="main", cache_dir=cache,
                        endpoint=hub.url)


def test_file_metadata_gives_lfs_sha256(repo: Any, hf_api: Any, hub: LoopbackHub) -> None:
    weights = repo.files["model.safetensors"]
    info = hf_api.model_info(repo.repo_id, revision=repo.commit.oid, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    lfs = siblings["model.safetensors"].lfs
    assert (lfs.sha256, lfs.size, lfs.pointer_size) \
        == (sha256(weights), len(weights), len(lfs_pointer(weights)))
    assert siblings["model.safetensors"].blob_id == git_blob_sha1(lfs_pointer(weights))
    assert siblings["config.json"].lfs is None
    assert siblings["config.json"].blob_id == git_blob_sha1(repo.files["config.json"])

    infos = {i.path: i for i in hf_api.get_paths_info(
        repo.repo_id, ["model.safetensors", "sub", "missing"], revision=repo.commit.oid)}
    assert sorted(infos) == ["model.safetensors", "sub"]
    assert isinstance(infos["sub"], RepoFolder)
    assert infos["model.safetensors"].lfs.sha256 == sha256(weights)
    tree = list(hf_api.list_repo_tree(repo.repo_id, recursive=True, revision=repo.commit.oid))
    assert sorted(e.path for e in tree if isinstance(e, RepoFile)) == sorted(repo.all_files)

    meta = get_hf_file_metadata(hf_hub_url(repo.repo_id, "model.safetensors",
                                           revision=repo.commit.oid, endpoint=hub.url))
    assert (meta.commit_hash, meta.etag, meta.size) \
        == (repo.commit.oid, sha256(weights), len(weights))


def test_tamper_rewrites_bytes_under_the_same_commit(repo: Any, hub: LoopbackHub, hf_api: Any,
                                                     tmp_path: Path) -> None:
    evil = os.urandom(len(repo.files["model.safetensors"]))
    oid = hub.tamper(repo.repo_id, "model.safetensors", evil)
    assert oid == repo.commit.oid == hub.head(repo.repo_id)
    assert hub.history(repo.repo_id)[0].tampered == {
        "model.safetensors": repo.files["model.safetensors"]}
    info = hf_api.model_info(repo.repo_id, revision=oid, files_metadata=True)
    lfs = {s.rfilename: s.lfs for s in info.siblings}["model.safetensors"]
    assert lfs.sha256 == sha256(evil)  # the metadata describes the served bytes
    got = hf_hub_download(repo.repo_id, "model.safetensors", revision=oid,
                          cache_dir=tmp_path / "c", endpoint=hub.url)
    assert Path(got).read_bytes() == evil
    assert hub.downloads(repo.repo_id)[-1] == "model.safetensors"


def test_a_lying_hub_keeps_describing_the_original_bytes(repo: Any, hub: LoopbackHub,
                                                         hf_api: Any, tmp_path: Path) -> None:
    weights = repo.files["model.safetensors"]
    evil = bytes([weights[0] ^ 1]) + weights[1:]
    hub.tamper(repo.repo_id, "model.safetensors", evil, lie=True)
    (info,) = hf_api.get_paths_info(repo.repo_id, ["model.safetensors"], revision="main")
    assert info.lfs.sha256 == sha256(weights)  # metadata: the original
    got = hf_hub_download(repo.repo_id, "model.safetensors", revision="main",
                          cache_dir=tmp_path / "c", endpoint=hub.url)
    assert Path(got).read_bytes() == evil  # content: the swap (the client checks sizes only)
