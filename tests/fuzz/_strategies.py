"""Strategies shared by the fuzz targets: JSON values, mutations of real documents, and the
one-line property every target asserts (:func:`parses_or_refuses`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import event
from hypothesis import strategies as st

from modelsign.errors import ModelsignError

T = TypeVar("T")

#: Strings that mean something to our parsers: they make random documents reach deeper code.
INTERESTING = [
    "https://in-toto.io/Statement/v1", "https://model_signing/signature/v1.0",
    "https://model_signing/Digests/v0.1", "https://slsa.dev/provenance/v1",
    "https://modelsign.dev/buildtypes/derivation/v1", "application/vnd.in-toto+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json", "files", "shards", "sha256", "blake2b",
    "blake3", "sha256-sharded-100", "model.sig", "claims.jsonl", "..", ".", "/", "\\", "\0",
    "a:0:10", "a:1:0", "a:01:2", "x/../y", "finetune", "base_model", "dataset", "framework",
    "modelsign.role", "pkg:pypi/torch@2.6.0", "hf://acme/base", "0" * 64, "ab" * 32, "",
    "caf\u00e9", "cafe\u0301", "\u202e", "\ud800", "x\udfff", "AAAA", "=", "-",
]
KEYS = ["_type", "subject", "name", "digest", "sha256", "gitCommit", "predicateType",
        "predicate", "serialization", "method", "hash_type", "allow_symlinks", "shard_size",
        "ignore_paths", "resources", "algorithm", "mediaType", "verificationMaterial",
        "publicKey", "hint", "tlogEntries", "dsseEnvelope", "payload", "payloadType",
        "signatures", "sig", "keyid", "certificate", "rawBytes", "x509CertificateChain",
        "certificates", "messageSignature", "buildDefinition", "buildType",
        "externalParameters", "resolvedDependencies", "runDetails", "builder", "id",
        "annotations", "uri", "relation", "metadata", "startedOn", "version"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(INTERESTING) | st.text(max_size=40))
json_keys = st.sampled_from(KEYS) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(json_keys, children, max_size=6),
    max_leaves=40)


def parses_or_refuses(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | ModelsignError:
    """Call ``fn``: its result, or the :class:`ModelsignError` it raised. Any other exception
    propagates and fails the property."""
    try:
        result = fn(*args, **kwargs)
    except ModelsignError as e:
        assert str(e), "a modelsign error must say what is wrong"
        event(f"{getattr(fn, '__name__', 'fn')}: {type(e).__name__}")
        return e
    event(f"{getattr(fn, '__name__', 'fn')}: ok")
    return result


def chained(*steps: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One parser made of ``steps``, each fed what the one before returned (a parser of bytes
    followed by the parsers of its result, the way the library chains them)."""

    def run(data: Any) -> Any:
        for step in steps:
            data = step(data)
        return data

    run.__name__ = " -> ".join(getattr(s, "__name__", "fn") for s in steps)
    return run


def parse_each(data: Any, *parsers: Callable[[Any], Any]) -> list[Any]:
    """:func:`parses_or_refuses` of each of ``parsers`` on the same ``data``, in order."""
    return [parses_or_refuses(fn, data) for fn in parsers]


def random_documents(max_size: int) -> st.SearchStrategy[bytes]:
    """Random input for a parser of bytes: up to ``max_size`` random bytes, or the JSON of a
    random value."""
    return st.binary(max_size=max_size) | json_values.map(dumps)


# ------------------------------------------------------------------------------- mutations
def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        out[head] = _set(obj[head], rest, value)
        return out
    out_l = list(obj)
    out_l[head] = _set(obj[head], rest, value)
    return out_l


def _delete(obj: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(obj, dict):
            return {k: v for k, v in obj.items() if k != path[0]}
        return [v for i, v in enumerate(obj) if i != path[0]]
    return _set(obj, path[:-1], _delete(_get(obj, path[:-1]), path[-1:]))


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


@st.composite
def mutated_json(draw: st.DrawFn, original: Any, max_mutations: int = 3) -> Any:
    """``original`` with a few random edits: replace a subtree, delete a key or item, change
    a type, duplicate a list item."""
    obj = original
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "delete", "scalar", "dup", "wrap"]))
        if kind == "delete" and path:
            obj = _delete(obj, path)
        elif kind == "dup" and isinstance(_get(obj, path), list) and _get(obj, path):
            items = _get(obj, path)
            obj = _set(obj, path, [*items, draw(st.sampled_from(items))])
        elif kind == "wrap":
            obj = _set(obj, path, [_get(obj, path)])
        elif kind == "scalar":
            obj = _set(obj, path, draw(scalars))
        else:
            obj = _set(obj, path, draw(json_values))
    return obj


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with byte-level damage: flips, cuts, insertions, splices."""
    data = bytearray(original)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not data:
            data += draw(st.binary(max_size=8))
            continue
        i = draw(st.integers(min_value=0, max_value=len(data) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "byte"]))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "cut":
            del data[i: i + draw(st.integers(min_value=1, max_value=16))]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8)
                             | st.sampled_from([b"\n", b"\\u0000", b'"', b"{", b"]", b"\xff"]))
        elif kind == "truncate":
            del data[i:]
        else:
            data[i] = draw(st.integers(min_value=0, max_value=255))
    return bytes(data)


def dumps(obj: Any) -> bytes:
    """Compact JSON; non-ASCII (lone surrogates included) as ``\\u`` escapes, so the bytes are
    ASCII and the parser, not the encoder, meets the odd characters."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")
