"""Fuzz targets: resource names (``manifest.check_resource_name``, ``manifest.Resource.parse``)
and the names lineage reads from claims (``lineage.parse_hub_uri``, ``lineage.store_entry``).

Beyond "accepted or a ModelsignError": an accepted name, joined to a directory and normalized,
stays inside it; a parsed shard has ``start < end``; a store lookup never leaves the store.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from modelsign.lineage import parse_hub_uri, store_entry
from modelsign.manifest import Resource, check_resource_name

from ._strategies import INTERESTING, parses_or_refuses
from .conftest import World, budget

_PARTS = st.sampled_from(["a", "b.bin", "..", ".", "", "/", "\\", "\0", "~", "C:", "a:0:1",
                          ":", "0", "10", "\u00e9", "e\u0301", "\u202e", "\ud800", " "])
names = (st.text(max_size=64)
         | st.lists(_PARTS, min_size=1, max_size=8).map("".join)
         | st.lists(_PARTS | st.text(max_size=6), min_size=1, max_size=6).map("/".join)
         | st.sampled_from(INTERESTING))


def _inside(name: str) -> None:
    root = "/r/model"
    joined = posixpath.normpath(posixpath.join(root, name))
    assert joined.startswith(root + "/"), (name, joined)


@budget(300, 2000)
@given(names)
@example("a/../../x")
@example("/abs")
@example("a\\..\\b")
@example("a\0b")
@example("./a")
@example("a//b")
@example("x" * 5000)
def test_check_resource_name(name: str) -> None:
    ok = parses_or_refuses(check_resource_name, name)
    if ok is None:
        _inside(name)


@budget(300, 2000)
@given(names, st.sampled_from(["sha256", "blake2b", "blake3", "md5", "", "SHA256"]),
       st.text(max_size=70) | st.sampled_from(["00" * 32, "AB" * 32, "0", "zz", "\u0660" * 2]),
       st.sampled_from(["files", "shards"]))
@example("a:1:0", "sha256", "00", "shards")
@example("a:01:2", "sha256", "00", "shards")
@example("a:\u0661:\u0662", "sha256", "00", "shards")
@example("../a:0:1", "sha256", "00", "shards")
@example("a:0:99999999999999999999999999", "sha256", "00", "shards")
def test_resource_parse(name: str, algorithm: str, digest: str, method: str) -> None:
    r = parses_or_refuses(Resource.parse, name, algorithm, digest, method=method)  # type: ignore[arg-type]
    if isinstance(r, Resource):
        _inside(r.path)
        assert r.digest.hex() == digest
        if method == "shards":
            assert r.start is not None and r.end is not None and 0 <= r.start < r.end
            assert r.name == name


@budget(200, 2000)
@given(st.text(max_size=60) | st.sampled_from(["hf://acme/x", "hf://datasets/a/b",
                                                "hf://../x", "hf://a/..", "hf://a/b/c"]),
       st.text(max_size=45) | st.just("1" * 40) | st.just("A" * 40))
def test_parse_hub_uri(uri: str, commit: str) -> None:
    ref = parses_or_refuses(parse_hub_uri, uri, commit)
    if ref is not None and not isinstance(ref, Exception):
        assert ".." not in str(ref)


@budget(200, 2000)
@given(st.text(max_size=80) | st.sampled_from(["../../etc", "/etc", "ab" * 32, "AB" * 32,
                                                "ab" * 32 + "\n", "ab" * 32 + "/..",
                                                "\u0660" * 64]))
def test_store_entry(world: World, digest: str) -> None:
    store = world.model.parent / "fuzz-store"
    (store / "sha256").mkdir(parents=True, exist_ok=True)
    folder = parses_or_refuses(store_entry, store, digest)
    if isinstance(folder, Path):
        assert os.path.realpath(folder).startswith(os.path.realpath(store / "sha256") + "/")
