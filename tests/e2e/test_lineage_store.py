"""The provenance store: lineage of a quantized model verified with only the store, no parent
weights on disk; and what the store refuses or catches.

Built through the CLI (``modelsign sign``, ``attest``, ``store add``, ``lineage``) with key
signing; every signature is real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from modelsign import hash_model
from modelsign.testing._pki import KeyPair, make_key

from .conftest import SCHEMA, model_dir, ok, run_cli


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", "release")


@pytest.fixture
def chain(tmp_path: Path, key: KeyPair) -> dict[str, Path]:
    """base -> ft -> adapter -> q4, each signed and attested with the CLI."""
    dirs = {n: model_dir(tmp_path / "work" / n, i, 8192)
            for i, n in enumerate(["base", "ft", "adapter", "q4"], start=1)}
    ok("sign", dirs["base"], "--key", key.private)
    for child, relation, parent in (("ft", "finetune", "base"), ("adapter", "adapter", "ft"),
                                    ("q4", "quantized", "adapter")):
        ok("attest", dirs[child], "--relation", relation, "--base-model", dirs[parent],
           "--key", key.private, "--parent-key", key.public, "--no-hardware")
        ok("sign", dirs[child], "--key", key.private)
    return dirs


def test_lineage_verifies_with_only_the_store(tmp_path: Path, key: KeyPair,
                                              chain: dict[str, Path]) -> None:
    store = tmp_path / "provenance"
    roots = {n: hash_model(p).root_hex for n, p in chain.items()}
    for n in ("base", "ft", "adapter"):
        out = ok("store", "add", chain[n], "--store", store)
        assert f"added sha256:{roots[n]}" in out
    # the store holds signatures, claims and manifests, and no weights
    held = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    assert held == sorted([f"sha256/{roots['base']}/manifest.json",
                           f"sha256/{roots['base']}/model.sig",
                           f"sha256/{roots['ft']}/claims.jsonl",
                           f"sha256/{roots['ft']}/manifest.json",
                           f"sha256/{roots['ft']}/model.sig",
                           f"sha256/{roots['adapter']}/claims.jsonl",
                           f"sha256/{roots['adapter']}/manifest.json",
                           f"sha256/{roots['adapter']}/model.sig"])
    for n in ("base", "ft", "adapter"):
        shutil.rmtree(chain[n])  # no parent weights anywhere
    assert not any(p.suffix == ".safetensors" for p in tmp_path.rglob("*")
                   if "q4" not in p.parts)

    args = ["lineage", chain["q4"], "--key", key.public, "--parent-key", f"*={key.public}",
            "--store", store]
    tree = ok(*args)
    assert "quantized ← adapter" in tree and "adapter ← ft" in tree and "finetune ← base" in tree
    assert tree.count("✔ verified") == 4 and "bytes not re-hashed" in tree
    rc, out, err = run_cli(*args, "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    got = {n["name"]: (n["state"], n["source"], n["bytes"]) for n in doc["nodes"]}
    assert got == {"q4": ("verified", "local", "rehashed"),
                   "adapter": ("verified", "store", "not_checked"),
                   "ft": ("verified", "store", "not_checked"),
                   "base": ("verified", "store", "not_checked")}
    for n in doc["nodes"][1:]:
        assert any("not re-hashed" in note for note in n["notes"])


def test_a_store_entry_under_the_wrong_digest_is_caught(tmp_path: Path, key: KeyPair,
                                                        chain: dict[str, Path]) -> None:
    """The folder name is only an index: ft's signature filed as base's is not base."""
    store = tmp_path / "provenance"
    for n in ("base", "ft", "adapter"):
        ok("store", "add", chain[n], "--store", store)
    base_root, ft_root = hash_model(chain["base"]).root_hex, hash_model(chain["ft"]).root_hex
    shutil.copy(store / "sha256" / ft_root / "model.sig", store / "sha256" / base_root /
                "model.sig")
    rc, out, err = run_cli("lineage", chain["q4"], "--key", key.public, "--parent-key",
                           f"*={key.public}", "--store", store, "--format", "json")
    assert rc == 1, err
    states = {n["name"]: n["state"] for n in json.loads(out)["nodes"]}
    assert states == {"q4": "verified", "adapter": "verified", "ft": "verified",
                      "base": "digest_mismatch"}


def test_upstream_directories_are_tried_before_the_store(tmp_path: Path, key: KeyPair,
                                                         chain: dict[str, Path]) -> None:
    store = tmp_path / "provenance"
    for n in ("base", "ft", "adapter"):
        ok("store", "add", chain[n], "--store", store)
    base_root = hash_model(chain["base"]).root_hex
    rc, out, err = run_cli("lineage", chain["q4"], "--key", key.public, "--parent-key",
                           f"*={key.public}", "--store", store, "--upstream",
                           f"sha256:{base_root}={chain['base']}", "--format", "json")
    assert rc == 0, err
    sources = {n["name"]: n["source"] for n in json.loads(out)["nodes"]}
    assert sources == {"q4": "local", "adapter": "store", "ft": "store", "base": "local"}


def test_store_add_refuses_what_it_cannot_vouch_for(tmp_path: Path, key: KeyPair,
                                                    chain: dict[str, Path]) -> None:
    store = tmp_path / "provenance"
    other = make_key(tmp_path / "keys", "other")
    # a signer check that fails: exit 1, nothing written
    rc, _, err = run_cli("store", "add", chain["base"], "--store", store, "--key", other.public)
    assert rc == 1 and not (store / "sha256").exists(), err
    # files changed after signing: exit 1
    (chain["ft"] / "config.json").write_text("{}")
    rc, _, err = run_cli("store", "add", chain["ft"], "--store", store)
    assert rc == 1 and "differ" in err
    # not signed: exit 2
    bare = model_dir(tmp_path / "bare", 9, 8192)
    rc, _, err = run_cli("store", "add", bare, "--store", store)
    assert rc == 2 and "not signed" in err
    # with the right key: the signer is checked and said
    out = ok("store", "add", chain["base"], "--store", store, "--key", key.public)
    assert "signer verified: key sha256:" in out


def test_store_add_keeps_claims_it_already_had(tmp_path: Path, key: KeyPair,
                                               chain: dict[str, Path]) -> None:
    store = tmp_path / "provenance"
    ok("store", "add", chain["ft"], "--store", store)
    before = (chain["ft"] / "claims.jsonl").read_bytes()
    ok("attest", chain["ft"], "--relation", "finetune", "--base-model", chain["base"],
       "--key", key.private, "--parent-key", key.public, "--no-hardware", "--method", "sft")
    old_copy = tmp_path / "old-ft"
    shutil.copytree(chain["ft"], old_copy)
    (old_copy / "claims.jsonl").write_bytes(before)  # an older copy with one claim
    ok("store", "add", chain["ft"], "--store", store)
    ok("store", "add", old_copy, "--store", store)
    stored = (store / "sha256" / hash_model(chain["ft"]).root_hex / "claims.jsonl").read_bytes()
    assert stored == (chain["ft"] / "claims.jsonl").read_bytes()
    assert stored.count(b"\n") == 2
