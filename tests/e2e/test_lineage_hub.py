"""Hub parents: ``hf://org/name@<commit>`` resolved through :class:`HuggingFaceHub` against the
loopback Hub (the real ``huggingface_hub`` client over HTTP, endpoint passed explicitly).

Only ``model.sig`` and ``claims.jsonl`` are downloaded unless ``fetch_files``; the signed manifest
is compared with the Hub's per-file sha256 metadata; a Hub that swapped a file is caught from the
metadata, a Hub that lies in its metadata only by downloading (``fetch_files``); the byte budget
stops the walk before it downloads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelsign._frameworks import Environment
from modelsign.claims import attest
from modelsign.lineage import Budget, HuggingFaceHub, ParentRule, SignerRule, verify_lineage
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._hub import LoopbackHub
from modelsign.testing._pki import KeyPair, make_key

pytest.importorskip("huggingface_hub")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
TOKEN = "hf_loopback_dummy_token"


@pytest.fixture(scope="module")
def hub() -> Iterator[LoopbackHub]:
    with LoopbackHub() as h:
        yield h


@pytest.fixture
def published(hub: LoopbackHub, tmp_path: Path, request: pytest.FixtureRequest
              ) -> tuple[str, str, KeyPair, Path]:
    """A signed base model published to the loopback Hub: (repo id, commit, key, ft dir), and a
    local fine-tune whose claim names the base by its pinned Hub revision."""
    from modelsign.integrations.huggingface import publish

    key = make_key(tmp_path / "keys", "k")
    signer = KeySigner.from_pem_file(key.private)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"layers": 2}))
    (base / "model.safetensors").write_bytes(os.urandom(4096))
    repo_id = f"acme/{request.node.name.replace('_', '-')[:60]}"
    res = publish(base, repo_id, signer=signer, endpoint=hub.url, token=TOKEN)
    ft = tmp_path / "ft"
    ft.mkdir()
    (ft / "model.safetensors").write_bytes(b"ft" * 1000)
    sign_model(ft, signer=signer)
    attest(ft, signer=signer, relation="finetune", base_models=[f"hf://{repo_id}@{res.commit}"],
           environment=Environment((), (), ()))
    return repo_id, res.commit, key, ft


def _walk(ft: Path, key: KeyPair, hub: LoopbackHub, tmp_path: Path, **kw: object):  # type: ignore[no-untyped-def]
    client = HuggingFaceHub(endpoint=hub.url, token=TOKEN, cache_dir=tmp_path / "hf-cache")
    return verify_lineage(ft, key=key.public, hub=client,
                          parents=[ParentRule("hf://acme/*", SignerRule(keys=(key.public,)))],
                          **kw)  # type: ignore[arg-type]


def test_a_hub_parent_verifies_from_its_signature_and_metadata(
        published: tuple[str, str, KeyPair, Path], hub: LoopbackHub, tmp_path: Path) -> None:
    repo_id, commit, key, ft = published
    start = len(hub.requests)
    graph = _walk(ft, key, hub, tmp_path)
    assert graph.ok, graph.describe_failures()
    (base,) = graph.nodes
    assert (base.key, base.source, base.bytes_check) == (
        f"hf://{repo_id}@{commit}", "hub", "hub_metadata")
    assert base.git_commit == commit and len(base.digest) == 64
    assert any("bytes not downloaded" in n for n in base.notes)
    assert hub.downloads(repo_id, since=start) == ["model.sig"]  # no weights fetched


def test_a_file_swapped_on_the_hub_is_a_digest_mismatch(
        published: tuple[str, str, KeyPair, Path], hub: LoopbackHub, tmp_path: Path) -> None:
    repo_id, commit, key, ft = published
    hub.tamper(repo_id, "model.safetensors", os.urandom(4096), revision=commit)
    graph = _walk(ft, key, hub, tmp_path)
    (base,) = graph.nodes
    assert (graph.root.state, base.state) == ("verified", "digest_mismatch")
    assert "model.safetensors" in (base.reason or "")


def test_a_hub_that_lies_in_its_metadata_is_caught_by_fetch_files(
        published: tuple[str, str, KeyPair, Path], hub: LoopbackHub, tmp_path: Path) -> None:
    repo_id, commit, key, ft = published
    assert _walk(ft, key, hub, tmp_path / "a", fetch_files=True).ok
    hub.tamper(repo_id, "model.safetensors", os.urandom(4096), revision=commit, lie=True)
    assert _walk(ft, key, hub, tmp_path / "b").ok  # the metadata alone cannot tell
    graph = _walk(ft, key, hub, tmp_path / "c", fetch_files=True)
    (base,) = graph.nodes
    assert base.state == "digest_mismatch" and "model.safetensors" in (base.reason or "")


def test_the_byte_budget_stops_before_downloading(
        published: tuple[str, str, KeyPair, Path], hub: LoopbackHub, tmp_path: Path) -> None:
    repo_id, _, key, ft = published
    start = len(hub.requests)
    graph = _walk(ft, key, hub, tmp_path, budget=Budget(max_bytes=10))
    (base,) = graph.nodes
    assert base.state == "unresolved" and "byte budget" in (base.reason or "")
    assert hub.downloads(repo_id, since=start) == []


def test_an_unknown_repo_is_unresolved(published: tuple[str, str, KeyPair, Path],
                                       hub: LoopbackHub, tmp_path: Path) -> None:
    _, _, key, ft = published
    attest(ft, signer=KeySigner.from_pem_file(key.private), relation="finetune",
           base_models=["hf://acme/nope@" + "b" * 40], environment=Environment((), (), ()))
    graph = _walk(ft, key, hub, tmp_path)
    states = {n.key: n.state for n in graph.nodes}
    assert states["hf://acme/nope@" + "b" * 40] == "unresolved"
