"""Attacks on the bytes: whoever holds the files (a hub, a mirror, a stolen upload token) changes
them and keeps the publisher's valid ``model.sig``. Every one must fail verification, naming the
file with its signed and actual digests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modelsign.hashing import HashSpec
from modelsign.verify import IntegrityFailure, verify_model

from .conftest import Party, make_model, rejected, safetensors_bytes, sha256_hex, sign


def _verify(model: Path, party: Party, **kw: object) -> object:
    return verify_model(model, key=party.public, **kw)  # type: ignore[arg-type]


def test_file_swap(model: Path, publisher: Party) -> None:
    """The weights are replaced by other weights of the same size and format."""
    weights = model / "model.safetensors"
    signed = sha256_hex(weights.read_bytes())
    evil = safetensors_bytes(seed=66)
    assert len(evil) == weights.stat().st_size
    weights.write_bytes(evil)
    with rejected(IntegrityFailure, f"changed model.safetensors (signed {signed}, on disk "
                                    f"{sha256_hex(evil)})") as info:
        _verify(model, publisher)
    assert [f.name for f in info.value.result.failures] == ["model.safetensors"]


def test_truncation(model: Path, publisher: Party) -> None:
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with rejected(IntegrityFailure, f"changed model.safetensors (signed {sha256_hex(data)}"):
        _verify(model, publisher)


def test_appended_bytes(model: Path, publisher: Party) -> None:
    weights = model / "model.safetensors"
    with weights.open("ab") as f:
        f.write(b"\x00" * 16)
    with rejected(IntegrityFailure, f"on disk {sha256_hex(weights.read_bytes())})"):
        _verify(model, publisher)


def test_appended_bytes_shards_not_tolerated_by_ignore_unsigned(tmp_path: Path,
                                                                publisher: Party) -> None:
    """In shards mode bytes appended to a signed file form a new byte range the signature does
    not list; ``--ignore-unsigned-files`` must not tolerate it (the file grew)."""
    m = make_model(tmp_path / "m")
    sign(m, publisher, HashSpec(method="shards", shard_size=100, use_cache=False))
    weights = m / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("ab") as f:
        f.write(b"A" * (100 - size % 100 or 100) + b"B" * 100)
    with rejected(IntegrityFailure, "extra model.safetensors:") as info:
        _verify(m, publisher, ignore_unsigned_files=True)
    assert {f.status for f in info.value.result.failures} >= {"extra"}


def test_added_file(model: Path, publisher: Party) -> None:
    (model / "extra_weights.safetensors").write_bytes(safetensors_bytes(seed=9))
    with rejected(IntegrityFailure, "extra extra_weights.safetensors (on disk "):
        _verify(model, publisher)


def test_deleted_file(model: Path, publisher: Party) -> None:
    vocab = model / "tokenizer" / "vocab.txt"
    digest = sha256_hex(vocab.read_bytes())
    vocab.unlink()
    with rejected(IntegrityFailure, f"missing tokenizer/vocab.txt (signed {digest})"):
        _verify(model, publisher)


def test_added_empty_file_in_shard_mode(tmp_path: Path, publisher: Party) -> None:
    """Shards-mode signatures cannot list empty files (OMS), so an added empty file has no
    resource at all: the file-set comparison must still catch it."""
    m = make_model(tmp_path / "m")
    sign(m, publisher, HashSpec(method="shards", shard_size=64, use_cache=False))
    (m / "__init__.py").write_bytes(b"")
    with rejected(IntegrityFailure, "extra empty file __init__.py (not signed)"):
        _verify(m, publisher)


def test_renamed_file_with_same_digest(model: Path, publisher: Party) -> None:
    """Same bytes under another name: the digest matches, the name does not."""
    src = model / "tokenizer" / "vocab.txt"
    src.rename(model / "tokenizer" / "merges.txt")
    with rejected(IntegrityFailure, "missing tokenizer/vocab.txt") as info:
        _verify(model, publisher)
    assert "extra tokenizer/merges.txt" in str(info.value)
    failures = {f.name: f for f in info.value.result.failures}
    assert failures["tokenizer/merges.txt"].actual == failures["tokenizer/vocab.txt"].expected


def test_shard_reordering_on_disk(tmp_path: Path, publisher: Party) -> None:
    """The two halves of a sharded file are swapped: each shard's bytes exist in the signature,
    but at another offset."""
    m = make_model(tmp_path / "m", {"w.bin": b"A" * 100 + b"B" * 100, "config.json": b"{}"})
    sign(m, publisher, HashSpec(method="shards", shard_size=100, use_cache=False))
    (m / "w.bin").write_bytes(b"B" * 100 + b"A" * 100)
    with rejected(IntegrityFailure, "2 difference(s)") as info:
        _verify(m, publisher)
    assert "changed w.bin:0:100" in str(info.value)
    assert "changed w.bin:100:200" in str(info.value)


def test_signature_from_another_model_replayed(tmp_path: Path, publisher: Party) -> None:
    """A valid model.sig of model A (same publisher, same file names) is placed beside model B."""
    a = make_model(tmp_path / "a", seed=1)
    b = make_model(tmp_path / "b", seed=2)
    sign(a, publisher)
    shutil.copy(a / "model.sig", b / "model.sig")
    with rejected(IntegrityFailure, "changed model.safetensors"):
        _verify(b, publisher)


def test_hard_link_to_outside_is_hashed_as_its_content(tmp_path: Path, publisher: Party) -> None:
    """Decision (SECURITY.md): a hard link is a regular file whose bytes ARE in the directory;
    the verifier hashes them, which is exactly what a loader reads. A link whose bytes are the
    signed ones verifies; once the outside name is used to change the shared inode, the model
    no longer verifies."""
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(safetensors_bytes(seed=3))
    m = make_model(tmp_path / "m")
    os.link(outside, m / "linked.safetensors")
    sign(m, publisher)
    _verify(m, publisher)  # the signed bytes: verifies
    outside.write_bytes(safetensors_bytes(seed=4))  # write through the outside name
    with rejected(IntegrityFailure, "changed linked.safetensors"):
        _verify(m, publisher)


def test_verify_time_ignore_path_cannot_hide_a_signed_file(model: Path, publisher: Party) -> None:
    """A wrapper (or a suggestion in a README) passes ``ignore_paths`` covering the directory of
    a signed file the attacker changed: signed resources always win."""
    vocab = model / "tokenizer" / "vocab.txt"
    signed = sha256_hex(vocab.read_bytes())
    vocab.write_bytes(b"evil\n")
    with rejected(IntegrityFailure, f"changed tokenizer/vocab.txt (signed {signed}"):
        _verify(model, publisher, ignore_paths=["tokenizer"])
