"""Publish a real model to the loopback Hub and verify it from there, with the real client.

The model is all-MiniLM-L6-v2 (90 MB of safetensors) from the test extra; it is published once
per module and read by the tests that do not change it. Tests that attack a repo publish their
own small copy, so they never disturb each other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelsign.cli._app import run
from modelsign.errors import FileChangedError, InputError, IntegrityError, SymlinkError
from modelsign.testing._hub import LoopbackHub
from modelsign.testing._pki import make_key

pytest.importorskip("huggingface_hub")

BASE = "hf://nreimers/MiniLM-L6-H384-uncased@" + "3276f0fac9d818781d7a1327b3ff818fc4e643c0"
DATA = "hf://datasets/sentence-transformers/embedding-training-data@" + "a" * 40


def _cli(*args: str | os.PathLike[str]) -> int:
    return run([os.fspath(a) for a in args])


def _copy(src: Path, dst: Path, *, only: tuple[str, ...] | None = None) -> Path:
    if only is None:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".gitattributes"))
    else:
        dst.mkdir(parents=True)
        for rel in only:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dst / rel)
    return dst


@pytest.fixture(scope="module")
def published(loopback_hub: LoopbackHub, minilm_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """MiniLM signed with a key, attested, and published with ``modelsign hf publish``."""
    base = tmp_path_factory.mktemp("published")
    model = _copy(minilm_dir, base / "all-MiniLM-L6-v2")
    keys = make_key(base / "keys")
    repo = f"acme/minilm-{os.getpid()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", loopback_hub.url)
        mp.setenv("HF_TOKEN", "hf_loopback")
        start = len(loopback_hub.requests)
        code = _cli("hf", "publish", model, "--repo", repo, "--key", keys.private,
                    "--attest", "finetune", "--base-model", BASE, "--dataset", DATA,
                    "--card-metadata")
        posts = loopback_hub.commit_posts(repo, since=start)
    assert code == 0
    yield SimpleNamespace(repo=repo, model=model, keys=keys, posts=posts,
                          commit=loopback_hub.head(repo))


def test_publish_is_one_commit_with_weights_signature_and_claims(published: Any,
                                                                 hub: LoopbackHub) -> None:
    assert len(published.posts) == 1  # one create_commit, on top of the repo's initial commit
    history = hub.history(published.repo)
    assert [c.oid for c in history[:1]] == [published.commit] and len(history) == 2
    files = hub.files(published.repo, published.commit)
    local = {p.relative_to(published.model).as_posix(): p.read_bytes()
             for p in published.model.rglob("*") if p.is_file()}
    assert {"model.safetensors", "model.sig", "claims.jsonl", "tokenizer.json"} <= set(files)
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == local


def test_the_model_card_says_what_the_signed_claim_says(published: Any,
                                                        hub: LoopbackHub) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard(hub.files(published.repo)["README.md"].decode())
    assert card.data.base_model == "nreimers/MiniLM-L6-H384-uncased"
    assert card.data.base_model_relation == "finetune"
    assert card.data.datasets == ["sentence-transformers/embedding-training-data"]
    assert card.data.license == "apache-2.0"  # the rest of the card is kept
    assert "all-MiniLM-L6-v2" in card.text


def test_hf_verify_passes(published: Any, hub: LoopbackHub, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli("hf", "verify", published.repo, "--key", published.keys.public,
                "--cache-dir", tmp_path / "cache")
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"verified {published.repo}@{published.commit}" in out.out
    assert "pre-flight: 1 file(s) matched the Hub's sha256" in out.out  # model.safetensors
    assert "(hub-cache)" in out.out
    assert "claims: 1 of 1 verified" in out.out and "https://slsa.dev/provenance/v1" in out.out


def test_hf_verify_pins_everything_to_the_resolved_commit(published: Any, hub: LoopbackHub,
                                                         tmp_path: Path) -> None:
    from modelsign.hf import verify_hub

    start = len(hub.requests)
    result = verify_hub(published.repo, revision="main", key=published.keys.public,
                        cache_dir=tmp_path / "cache")
    assert result.commit == published.commit
    assert result.path.name == published.commit and result.path.parent.name == "snapshots"
    resolves = [r.path for r in hub.requests[start:] if "/resolve/" in r.path]
    assert resolves and all(f"/resolve/{published.commit}/" in p for p in resolves)
    # the signature files were fetched before any other file
    assert hub.downloads(published.repo, since=start)[:2] == ["model.sig", "claims.jsonl"]
    assert result.claims_path is not None and result.claims_path.name == "claims.jsonl"
    assert result.claims is not None and result.claims.ok and len(result.claims.claims) == 1
    derivation = result.claims.verified[0].derivation
    assert derivation is not None and derivation.to_json()["relation"] == "finetune"


def test_wrong_key_is_refused_before_any_weight_is_downloaded(published: Any, hub: LoopbackHub,
                                                              tmp_path: Path) -> None:
    other = make_key(tmp_path / "other")
    start = len(hub.requests)
    assert _cli("hf", "verify", published.repo, "--key", other.public,
                "--cache-dir", tmp_path / "c") == 1
    assert "model.safetensors" not in hub.downloads(published.repo, since=start)


def test_local_dir_download_verifies_leaving_out_hf_metadata(published: Any, hub: LoopbackHub,
                                                             tmp_path: Path) -> None:
    from modelsign.hf import verify_hub, verify_local

    local = tmp_path / "local"
    result = verify_hub(published.repo, key=published.keys.public, local_dir=local)
    assert result.local.layout == "local-dir" and result.path == local.resolve()
    assert (local / ".cache" / "huggingface").is_dir()
    again = verify_local(local, key=published.keys.public)  # and again, offline
    assert again.complete and again.result.root_digest == result.result.root_digest
    assert not list((local / ".cache" / "huggingface").glob(".modelsign-view-*"))


def test_subset_download_verifies_present_files_and_lists_absent_ones(
        published: Any, hub: LoopbackHub, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    start = len(hub.requests)
    code = _cli("hf", "verify", published.repo, "--key", published.keys.public,
                "--include", "*.json", "--include", "vocab.txt", "--cache-dir", tmp_path / "c")
    out = capsys.readouterr().out
    assert code == 0
    assert "SUBSET: 2 signed file(s) not downloaded: README.md, model.safetensors" in out
    assert "model.safetensors" not in hub.downloads(published.repo, since=start)


def test_a_symlink_out_of_the_repos_blobs_is_refused(published: Any, hub: LoopbackHub,
                                                     tmp_path: Path) -> None:
    from modelsign.hf import verify_hub, verify_local

    snap = verify_hub(published.repo, key=published.keys.public,
                      cache_dir=tmp_path / "cache").path
    outside = tmp_path / "config.json"
    outside.write_bytes((snap / "config.json").read_bytes())  # same bytes, wrong place
    (snap / "config.json").unlink()
    (snap / "config.json").symlink_to(outside)
    with pytest.raises(SymlinkError, match="outside this repo's blobs"):
        verify_local(snap, key=published.keys.public)


def test_transformers_loads_from_the_hub_after_verification(published: Any, hub: LoopbackHub,
                                                            tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from modelsign.transformers import from_pretrained

    tok = from_pretrained(transformers.AutoTokenizer, f"{published.repo}@{published.commit}",
                          key=published.keys.public, cache_dir=tmp_path / "c")
    assert tok("hello")["input_ids"][0] == 101  # [CLS]


# --------------------------------------------------------------------------- attacks
@pytest.fixture
def small(hub: LoopbackHub, minilm_dir: Path, tmp_path: Path,
          request: pytest.FixtureRequest) -> Any:
    """A small signed model of its own (config, tokenizer files, a 1 MB safetensors)."""
    model = _copy(minilm_dir, tmp_path / "model",
                  only=("config.json", "tokenizer_config.json", "special_tokens_map.json",
                        "vocab.txt"))
    (model / "model.safetensors").write_bytes(os.urandom(1 << 20))
    keys = make_key(tmp_path / "keys")
    repo = f"acme/{request.node.name.replace('_', '-')[:60]}-{os.getpid()}"
    return SimpleNamespace(model=model, keys=keys, repo=repo)


def _publish(small: Any, **kwargs: Any) -> Any:
    from modelsign.hf import publish
    from modelsign.signing import KeySigner

    return publish(small.model, small.repo, signer=KeySigner.from_pem_file(small.keys.private),
                   **kwargs)


def test_weights_replaced_on_the_hub_are_caught_before_download(
        small: Any, hub: LoopbackHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _publish(small)
    weights = (small.model / "model.safetensors").read_bytes()
    evil = bytes([weights[0] ^ 0xFF]) + weights[1:]
    hub.tamper(small.repo, "model.safetensors", evil)  # same commit id, honest metadata
    start = len(hub.requests)
    code = _cli("hf", "verify", small.repo, "--key", small.keys.public,
                "--cache-dir", tmp_path / "c")
    err = capsys.readouterr().err
    assert code == 1
    assert "pre-flight" in err and "changed model.safetensors" in err
    assert hashlib.sha256(evil).hexdigest() in err
    assert "model.safetensors" not in hub.downloads(small.repo, since=start)
    assert result.commit == hub.head(small.repo)


def test_weights_replaced_by_a_lying_hub_are_caught_locally(
        small: Any, hub: LoopbackHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _publish(small)
    weights = (small.model / "model.safetensors").read_bytes()
    evil = weights[:-1] + bytes([weights[-1] ^ 0x01])
    hub.tamper(small.repo, "model.safetensors", evil, lie=True)  # metadata: the original
    code = _cli("hf", "verify", small.repo, "--key", small.keys.public,
                "--cache-dir", tmp_path / "c")
    err = capsys.readouterr().err
    assert code == 1
    assert "pre-flight: 1 file(s) match" in err  # the metadata lied, the pre-flight passed...
    assert "changed model.safetensors" in err  # ...and the local bytes did not
    assert hashlib.sha256(evil).hexdigest() in err


def test_an_unsigned_file_added_on_the_hub_fails_the_preflight(small: Any, hub: LoopbackHub,
                                                               hf_api: Any,
                                                               tmp_path: Path) -> None:
    from huggingface_hub import CommitOperationAdd

    from modelsign.hf import verify_hub

    _publish(small)
    hf_api.create_commit(small.repo, operations=[CommitOperationAdd("modeling_x.py", b"x=1\n")],
                         commit_message="add code")
    with pytest.raises(IntegrityError, match=r"pre-flight.*extra modeling_x\.py"):
        verify_hub(small.repo, key=small.keys.public, cache_dir=tmp_path / "c")


def test_an_unsigned_repo_is_refused(small: Any, hub: LoopbackHub, hf_api: Any,
                                     tmp_path: Path) -> None:
    from modelsign.errors import SignatureError
    from modelsign.hf import verify_hub

    hf_api.create_repo(small.repo)
    hf_api.upload_folder(repo_id=small.repo, folder_path=small.model)
    with pytest.raises(SignatureError, match="no model.sig"):
        verify_hub(small.repo, key=small.keys.public, cache_dir=tmp_path / "c")


def test_a_push_between_read_and_commit_gets_412_and_uploads_nothing(
        small: Any, hub: LoopbackHub, hf_api: Any) -> None:
    from huggingface_hub import CommitOperationAdd

    hf_api.create_repo(small.repo)

    def racer(msg: str) -> None:
        if msg.startswith("signed "):  # after the head was read, before the commit
            hf_api.create_commit(small.repo, operations=[CommitOperationAdd("x.txt", b"x")],
                                 commit_message="someone else")

    with pytest.raises(InputError, match="412"):
        _publish(small, on_event=racer, create_repo=False)
    assert "model.sig" not in hub.files(small.repo)


def test_a_directory_changed_after_hashing_is_not_uploaded(small: Any, hub: LoopbackHub) -> None:
    def writer(msg: str) -> None:
        if msg.startswith("signed "):
            with open(small.model / "config.json", "ab") as f:
                f.write(b" ")

    with pytest.raises(FileChangedError, match="modified config.json"):
        _publish(small, on_event=writer)
    assert "model.sig" not in hub.files(small.repo)


def test_stale_files_in_the_repo_are_refused_unless_deleted(small: Any, hub: LoopbackHub,
                                                            hf_api: Any, tmp_path: Path) -> None:
    from huggingface_hub import CommitOperationAdd

    from modelsign.hf import verify_hub

    hf_api.create_repo(small.repo)
    hf_api.create_commit(small.repo, operations=[CommitOperationAdd("old.bin", b"old")],
                         commit_message="old weights")
    with pytest.raises(InputError, match="old.bin"):
        _publish(small)
    result = _publish(small, delete_extra=True)
    assert "old.bin" not in hub.files(small.repo, result.commit)
    assert verify_hub(small.repo, key=small.keys.public, cache_dir=tmp_path / "c").commit \
        == result.commit


def test_create_pr_publishes_to_a_pull_request_ref(small: Any, hub: LoopbackHub,
                                                   tmp_path: Path) -> None:
    from modelsign.hf import verify_hub

    result = _publish(small, create_pr=True)
    assert result.pr_revision == "refs/pr/1" and hub.head(small.repo, "refs/pr/1") \
        == result.commit
    assert "model.sig" not in hub.files(small.repo)  # main untouched
    got = verify_hub(small.repo, revision="refs/pr/1", key=small.keys.public,
                     cache_dir=tmp_path / "c")
    assert got.commit == result.commit


def test_an_unreachable_hub_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    keys = make_key(tmp_path)
    assert _cli("hf", "verify", "acme/none", "--key", keys.public,
                "--cache-dir", tmp_path / "c") == 2
    assert "cannot reach the Hub" in capsys.readouterr().err


def test_an_unknown_repo_is_a_usage_error(hub: LoopbackHub, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    keys = make_key(tmp_path)
    assert _cli("hf", "verify", "acme/does-not-exist", "--key", keys.public) == 2
    assert "repository not found" in capsys.readouterr().err


def test_json_report_has_the_hub_section(published: Any, hub: LoopbackHub, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code = _cli("hf", "verify", f"{published.repo}@{published.commit}", "--key",
                published.keys.public, "--include", "*.json", "--cache-dir", tmp_path / "c",
                "--format", "json")
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)
    assert doc["verdict"] == "verified" and doc["hub"]["commit"] == published.commit
    assert doc["hub"]["complete"] is False and "model.safetensors" in doc["hub"]["absent"]
    assert doc["hub"]["preflight"]["ok"] is True
    assert doc["hub"]["claims"]["verdict"] == "verified"
