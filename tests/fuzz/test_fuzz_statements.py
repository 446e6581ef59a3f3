"""Fuzz targets: in-toto statements (``statements.parse_statement``), OMS manifests
(``statements.manifest_from_statement``, ``manifest.Manifest.from_predicate``,
``manifest.Serialization.from_json``), the derivation predicate
(``statements._provenance.parse_provenance``), and the whole path of a *validly signed* but
malformed statement through ``verify.verify_model``.

The last one is the honest attack at scale: every mutated statement is signed with the real key,
so the signature verifies and only the content is hostile.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from modelsign.manifest import Manifest, Serialization
from modelsign.signing import KeySigner
from modelsign.statements import Statement, manifest_from_statement, parse_statement
from modelsign.statements._provenance import parse_provenance
from modelsign.verify import VerificationResult, verify_model

from ._strategies import (
    chained,
    dumps,
    json_values,
    mutated_json,
    parse_each,
    parses_or_refuses,
    random_documents,
)
from .conftest import World, budget

_statement_chain = chained(parse_statement, manifest_from_statement)


@budget(150, 2000)
@given(random_documents(1024))
def test_parse_statement_random(raw: bytes) -> None:
    parse_each(raw, parse_statement, _statement_chain)


@budget(150, 2000)
@given(st.data())
def test_oms_statement_mutated(world: World, data: st.DataObject) -> None:
    raw = dumps(data.draw(mutated_json(world.statement)))
    parses_or_refuses(_statement_chain, raw)


@budget(200, 2000)
@given(json_values, st.text(max_size=20))
@example({"serialization": {"method": "shards", "hash_type": "sha256", "shard_size": 1.5},
          "resources": [{"name": "a:0:1", "algorithm": "sha256", "digest": "00"}]}, "m")
@example({"serialization": {"method": "files", "hash_type": "sha256"},
          "resources": [{"name": "a", "algorithm": "sha256", "digest": "\u0660\u0660"}]}, "m")
@example({"serialization": {"method": "shards", "hash_type": "sha256", "shard_size": 10},
          "resources": [{"name": "a:\u0661:\u0662", "algorithm": "sha256", "digest": "00"}]},
         "m")
def test_manifest_from_predicate(predicate: Any, name: str) -> None:
    parses_or_refuses(Manifest.from_predicate, name, predicate)


@budget(150, 2000)
@given(st.data())
def test_manifest_from_predicate_mutated(world: World, data: st.DataObject) -> None:
    predicate = data.draw(mutated_json(world.statement["predicate"], max_mutations=4))
    m = parses_or_refuses(Manifest.from_predicate, "model", predicate)
    if isinstance(m, Manifest):
        for r in m.resources:
            assert not r.path.startswith("/") and ".." not in r.path.split("/")


@budget(150, 2000)
@given(json_values | st.dictionaries(
    st.sampled_from(["method", "hash_type", "allow_symlinks", "shard_size", "ignore_paths"]),
    json_values, max_size=5))
def test_serialization_from_json(obj: Any) -> None:
    parses_or_refuses(Serialization.from_json, obj)


def _provenance(raw: bytes) -> None:
    parse_provenance(parse_statement(raw))


@budget(150, 2000)
@given(st.data())
def test_parse_provenance_mutated(world: World, data: st.DataObject) -> None:
    raw = dumps(data.draw(mutated_json(world.provenance, max_mutations=4)))
    parses_or_refuses(_provenance, raw)


@budget(100, 3000)
@given(st.data())
def test_signed_hostile_statement_through_verify_model(world: World,
                                                       data: st.DataObject) -> None:
    signer = _signer(world)
    raw = dumps(data.draw(mutated_json(world.statement, max_mutations=3)))
    bundle = signer.sign(Statement(raw, (), "fuzz", None)).raw
    sig = world.model.parent / "fuzz.sig"
    sig.write_bytes(bundle)
    result = parses_or_refuses(verify_model, world.model, signature=sig, key=world.public_key)
    if isinstance(result, VerificationResult):
        # whatever verified, it describes the files on disk exactly
        assert result.verified
        assert {f.name for f in result.files} == {"config.json", "weights.bin", "sub/vocab.txt"}


_SIGNERS: dict[str, KeySigner] = {}


def _signer(world: World) -> KeySigner:
    key = str(world.public_key)
    if key not in _SIGNERS:
        _SIGNERS[key] = KeySigner.from_pem_file(world.public_key.with_name("fuzz.pem"))
    return _SIGNERS[key]
