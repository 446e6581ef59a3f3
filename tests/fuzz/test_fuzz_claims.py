"""Fuzz targets: ``claims.jsonl`` as read (``claims.read_claims``), shown
(``claims.inspect_claims``) and verified (``verify._claims.verify_claims`` with a real key).

``verify_claims`` must never raise for a bad line (each line gets a status and a reason); a line
that verifies must be the publisher's genuine claim, byte for byte.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from modelsign.claims import inspect_claims, read_claims
from modelsign.verify._claims import ClaimsReport, verify_claims

from ._strategies import dumps, json_values, mutated_bytes, mutated_json, parses_or_refuses
from .conftest import World, budget


def _write(data: bytes) -> Path:
    d = Path(tempfile.mkdtemp(prefix="fuzz-claims-"))
    p = d / "claims.jsonl"
    p.write_bytes(data)
    return p


def _check(world: World, data: bytes) -> None:
    path = _write(data)
    try:
        parses_or_refuses(read_claims, path)
        parses_or_refuses(inspect_claims, path)
        report = verify_claims(world.model, world.root, key=world.public_key, claims_file=path)
    finally:
        path.unlink()
        path.parent.rmdir()
    assert isinstance(report, ClaimsReport)
    for c in report.claims:
        if c.ok:  # only the publisher's genuine statement, byte for byte, can verify
            assert c.verified is not None and c.verified.statement.raw == world.claim_payload
        else:
            assert c.reason


lines = st.lists(st.binary(max_size=200) | json_values.map(dumps), max_size=5).map(
    lambda ls: b"\n".join(ls))


@budget(120, 3000)
@given(lines | st.binary(max_size=2048))
@example(b"\n\n\n")
@example(b"{}\n" * 3)
@example(b"\r\n".join([b"{}"] * 3))
@example(b"\x00" * 64)
def test_claims_file_random(world: World, data: bytes) -> None:
    _check(world, data)


@budget(80, 3000)
@given(st.data())
def test_claims_file_mutated(world: World, data: st.DataObject) -> None:
    import json

    good = world.claim
    bad_json = dumps(data.draw(mutated_json(json.loads(good), max_mutations=2)))
    bad_bytes = data.draw(mutated_bytes(good))
    order = data.draw(st.permutations([good, bad_json, bad_bytes]))
    sep = data.draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"]))
    tail = data.draw(st.sampled_from([b"\n", b"", b"\n" + good[: len(good) // 2]]))
    _check(world, sep.join(order) + tail)
