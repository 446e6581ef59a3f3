"""Fuzz targets: bounded JSON (``statements._json.load_json``), bundle shape
(``statements._bundle.load_bundle`` / ``parse_envelope``, ``verify._envelope.parse_bundle``) and
full bundle verification (``verify.verify_bundle`` with a real key).

Beyond "parses or raises a ModelsignError": a bundle that still *verifies* after a mutation must
carry exactly the statement bytes the publisher signed (no mutation makes a different statement
verify).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from modelsign.errors import SignatureFormatError
from modelsign.statements._bundle import load_bundle, parse_envelope
from modelsign.statements._json import load_json
from modelsign.verify import VerifiedStatement, verify_bundle
from modelsign.verify._envelope import BundleView, parse_bundle

from ._strategies import (
    chained,
    dumps,
    mutated_bytes,
    mutated_json,
    parse_each,
    parses_or_refuses,
    random_documents,
)
from .conftest import World, budget


@budget(200, 2000)
@given(random_documents(2048))
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"a": NaN}')
@example(b'"\\ud800"')
@example(b"\xff\xfe{}")
@example(b"1" * 5000)
def test_load_json(data: bytes) -> None:
    value = parses_or_refuses(load_json, data, what="input")
    if isinstance(value, Exception):
        assert isinstance(value, SignatureFormatError)


_shape = chained(load_bundle, parse_envelope)


@budget(200, 2000)
@given(random_documents(1024))
def test_bundle_shape_random(data: bytes) -> None:
    parse_each(data, _shape, parse_bundle)


@budget(120, 2000)
@given(st.data())
def test_bundle_shape_mutated(world: World, data: st.DataObject) -> None:
    obj = json.loads(world.bundle)
    raw = dumps(data.draw(mutated_json(obj)))
    _, view = parse_each(raw, _shape, parse_bundle)
    if isinstance(view, BundleView):
        assert view.payload_type == "application/vnd.in-toto+json"


def _check_verified(world: World, raw: bytes) -> None:
    result: Any = parses_or_refuses(verify_bundle, raw, key=world.public_key)
    if isinstance(result, VerifiedStatement):
        assert json.loads(result.statement.raw) == world.statement
        assert result.statement.raw == dumps_payload(world)


def dumps_payload(world: World) -> bytes:
    import base64

    return base64.b64decode(json.loads(world.bundle)["dsseEnvelope"]["payload"])


@budget(120, 2000)
@given(st.data())
def test_verify_bundle_mutated_json(world: World, data: st.DataObject) -> None:
    _check_verified(world, dumps(data.draw(mutated_json(json.loads(world.bundle)))))


@budget(200, 2000)
@given(st.data())
def test_verify_bundle_mutated_bytes(world: World, data: st.DataObject) -> None:
    _check_verified(world, data.draw(mutated_bytes(world.bundle)))


# ------------------------------------------------------------------ keyless (Sigstore) bundles
@pytest.fixture(scope="module")
def keyless_bundle(loopback_sigstore: Any, sigstore_trust_config: Any) -> bytes:
    """A real keyless bundle (certificate + Rekor entry) from the session's loopback Sigstore."""
    from modelsign.signing import KeylessSigner, load_trust_config
    from modelsign.statements import make_statement

    signer = KeylessSigner(trust_config=load_trust_config(path=sigstore_trust_config),
                           identity_token=loopback_sigstore.mint_token("fuzz@modelsign.test"),
                           ambient=False, interactive=False)
    st_ = make_statement("m", {"sha256": "ab" * 32}, "https://example.test/fuzz/v1", {"x": 1})
    return signer.sign(st_).raw


def _check_keyless(raw: bytes, sigstore: Any, trust_config: Any, original: bytes) -> None:
    from modelsign.verify import Identity, Trust

    result: Any = parses_or_refuses(
        verify_bundle, raw, identities=[Identity(issuer=sigstore.url,
                                                 identity="fuzz@modelsign.test")],
        trust=Trust.from_trust_config(trust_config))
    if isinstance(result, VerifiedStatement):
        import base64

        signed = base64.b64decode(json.loads(original)["dsseEnvelope"]["payload"])
        assert result.statement.raw == signed


@budget(100, 3000)
@given(st.data())
def test_verify_keyless_bundle_mutated_json(keyless_bundle: bytes, loopback_sigstore: Any,
                                            sigstore_trust_config: Any,
                                            data: st.DataObject) -> None:
    raw = dumps(data.draw(mutated_json(json.loads(keyless_bundle))))
    _check_keyless(raw, loopback_sigstore, sigstore_trust_config, keyless_bundle)


@budget(100, 3000)
@given(st.data())
def test_verify_keyless_bundle_mutated_bytes(keyless_bundle: bytes, loopback_sigstore: Any,
                                             sigstore_trust_config: Any,
                                             data: st.DataObject) -> None:
    _check_keyless(data.draw(mutated_bytes(keyless_bundle)), loopback_sigstore,
                   sigstore_trust_config, keyless_bundle)


@budget(120, 3000)
@given(st.data())
def test_verify_keyless_verification_material_mutated(keyless_bundle: bytes,
                                                      loopback_sigstore: Any,
                                                      sigstore_trust_config: Any,
                                                      data: st.DataObject) -> None:
    """Mutations aimed at what sigstore-python parses: the certificate and the log entry."""
    obj = json.loads(keyless_bundle)
    obj["verificationMaterial"] = data.draw(mutated_json(obj["verificationMaterial"],
                                                         max_mutations=2))
    _check_keyless(dumps(obj), loopback_sigstore, sigstore_trust_config, keyless_bundle)
