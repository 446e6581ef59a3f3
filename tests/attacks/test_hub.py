"""Attacks by whoever controls the Hub or holds an upload token, against the real
``huggingface_hub`` client talking to :class:`modelsign.testing._hub.LoopbackHub`.

A compromised Hub (or mirror, or CDN) can serve any bytes under any commit id and describe them
with any metadata; a stolen upload token can push any commit. Neither can make the publisher's
key sign something else.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelsign.errors import IntegrityError, SignatureError, SymlinkError
from modelsign.verify import IntegrityFailure

from .conftest import Party, make_model, rejected, safetensors_bytes

pytest.importorskip("huggingface_hub")

TOKEN = "hf_loopback_attacks"


@pytest.fixture(scope="module")
def hub() -> Iterator[object]:
    from modelsign.testing._hub import LoopbackHub

    with LoopbackHub() as h:
        yield h


@pytest.fixture
def repo(hub: object, tmp_path: Path, publisher: Party,
         request: pytest.FixtureRequest) -> tuple[str, Path]:
    """A small model published by the publisher (key-signed) in one commit."""
    from modelsign.hf import publish

    model = make_model(tmp_path / "model", {
        "config.json": b'{"layers": 2}',
        "model.safetensors": safetensors_bytes(seed=5, n=4096),
        "tokenizer.json": b'{"vocab": {}}',
    })
    repo_id = f"acme/{request.node.name.replace('_', '-')[:50]}-{os.getpid()}"
    publish(model, repo_id, signer=publisher.signer, endpoint=hub.url,  # type: ignore[attr-defined]
            token=TOKEN)
    return repo_id, model


def _verify(hub: object, repo_id: str, party: Party, tmp: Path) -> object:
    from modelsign.hf import verify_hub

    return verify_hub(repo_id, key=party.public, endpoint=hub.url,  # type: ignore[attr-defined]
                      token=TOKEN, cache_dir=tmp / "cache")


def test_hub_replaces_weights_inside_a_commit(hub: object, repo: tuple[str, Path],
                                              publisher: Party, tmp_path: Path) -> None:
    """Same commit id, other bytes, honest metadata: refused by the pre-flight, before a single
    weight byte is downloaded."""
    repo_id, model = repo
    weights = (model / "model.safetensors").read_bytes()
    evil = bytes([weights[0] ^ 0xFF]) + weights[1:]
    hub.tamper(repo_id, "model.safetensors", evil)  # type: ignore[attr-defined]
    start = len(hub.requests)  # type: ignore[attr-defined]
    with rejected(IntegrityError, "pre-flight") as info:
        _verify(hub, repo_id, publisher, tmp_path)
    assert "changed model.safetensors" in str(info.value)
    assert hashlib.sha256(evil).hexdigest() in str(info.value)
    assert "model.safetensors" not in hub.downloads(repo_id, since=start)  # type: ignore[attr-defined]


def test_hub_lies_about_the_replaced_weights(hub: object, repo: tuple[str, Path],
                                             publisher: Party, tmp_path: Path) -> None:
    """The metadata keeps describing the genuine bytes: the pre-flight passes, the local
    re-hash of what was actually served does not."""
    repo_id, model = repo
    weights = (model / "model.safetensors").read_bytes()
    evil = weights[:-1] + bytes([weights[-1] ^ 0x01])
    hub.tamper(repo_id, "model.safetensors", evil, lie=True)  # type: ignore[attr-defined]
    with rejected(IntegrityFailure, "changed model.safetensors") as info:
        _verify(hub, repo_id, publisher, tmp_path)
    assert hashlib.sha256(evil).hexdigest() in str(info.value)


def test_stolen_upload_token_pushes_resigned_weights(hub: object, repo: tuple[str, Path],
                                                     publisher: Party, stranger: Party,
                                                     tmp_path: Path) -> None:
    """With the publisher's Hub token (not their signing key), the attacker publishes new
    weights signed with their own key, as a normal new commit on main."""
    from modelsign.hf import publish

    repo_id, model = repo
    (model / "model.safetensors").write_bytes(safetensors_bytes(seed=66, n=4096))
    publish(model, repo_id, signer=stranger.signer, endpoint=hub.url,  # type: ignore[attr-defined]
            token=TOKEN)
    start = len(hub.requests)  # type: ignore[attr-defined]
    with rejected(SignatureError, "signed with a different key"):
        _verify(hub, repo_id, publisher, tmp_path)
    assert hub.downloads(repo_id, since=start) in ([], ["model.sig"],  # type: ignore[attr-defined]
                                                   ["model.sig", "claims.jsonl"])


def test_stolen_upload_token_keeps_the_old_signature(hub: object, repo: tuple[str, Path],
                                                     publisher: Party, tmp_path: Path) -> None:
    """The attacker pushes new weights and keeps the publisher's genuine model.sig."""
    from huggingface_hub import CommitOperationAdd, HfApi

    repo_id, _ = repo
    api = HfApi(endpoint=hub.url, token=TOKEN)  # type: ignore[attr-defined]
    api.create_commit(repo_id, operations=[CommitOperationAdd(
        "model.safetensors", safetensors_bytes(seed=67, n=4096))], commit_message="update")
    with rejected(IntegrityError, "pre-flight"):
        _verify(hub, repo_id, publisher, tmp_path)


def test_poisoned_hub_cache_symlink_out_of_blobs(hub: object, repo: tuple[str, Path],
                                                 publisher: Party, tmp_path: Path) -> None:
    """After a verified download, something rewrites a snapshot link in the Hub cache to point
    at a file outside the repo's blobs (with the same bytes, so only the link betrays it)."""
    from modelsign.hf import verify_local

    repo_id, _ = repo
    snap = Path(_verify(hub, repo_id, publisher, tmp_path).path)  # type: ignore[attr-defined]
    outside = tmp_path / "config.json"
    outside.write_bytes((snap / "config.json").read_bytes())
    (snap / "config.json").unlink()
    (snap / "config.json").symlink_to(outside)
    with rejected(SymlinkError, "a snapshot link points outside this repo's blobs/ directory"):
        verify_local(snap, key=publisher.public)
