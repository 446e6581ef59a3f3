"""Shared bundle helpers (statements/_bundle.py) and the atomic writer."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from modelsign.errors import PathError, SignatureFormatError
from modelsign.signing import write_atomic
from modelsign.statements._bundle import (
    BUNDLE_MEDIA_TYPE,
    DsseEnvelope,
    DsseSignature,
    b64decode,
    bundle_bytes,
    default_signature_path,
    load_bundle,
    material_kind,
    pae,
    parse_envelope,
    read_bundle,
)


def test_pae_matches_the_dsse_spec_vector() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md#test-vectors
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("t", b"") == b"DSSEv1 1 t 0 "


def _bundle(**env: object) -> dict:
    e = {"payload": base64.b64encode(b"{}").decode(), "payloadType": "application/vnd.in-toto+json",
         "signatures": [{"sig": base64.b64encode(b"s").decode(), "keyid": ""}]}
    e.update(env)
    return {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": {"publicKey": {"hint": "ab"}},
            "dsseEnvelope": e}


def test_envelope_round_trip() -> None:
    env = DsseEnvelope("application/vnd.in-toto+json", b'{"a":1}', (DsseSignature(b"sig"),))
    b = {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": {"publicKey": {"hint": "x"}},
         "dsseEnvelope": env.to_json()}
    raw = bundle_bytes(b)
    assert raw.endswith(b"}\n") and raw.startswith(b'{"dsseEnvelope":')
    assert parse_envelope(load_bundle(raw)) == env
    assert material_kind(load_bundle(raw)) == "publicKey"


@pytest.mark.parametrize("mutate,needle", [
    (lambda b: b.update(mediaType="application/json"), "mediaType"),
    (lambda b: b.pop("dsseEnvelope"), "dsseEnvelope"),
    (lambda b: b.pop("verificationMaterial"), "verificationMaterial"),
    (lambda b: b["dsseEnvelope"].update(payload="not base64!"), "not valid base64"),
    (lambda b: b["dsseEnvelope"].update(payload="e30"), "not valid base64"),  # no padding
    (lambda b: b["dsseEnvelope"].update(signatures=[]), "non-empty list"),
    (lambda b: b["dsseEnvelope"].update(signatures=[{"sig": ""}]), "empty"),
    (lambda b: b["dsseEnvelope"].update(signatures=[{"sig": "AA==", "keyid": 3}]), "keyid"),
    (lambda b: b["dsseEnvelope"].update(payloadType=None), "payloadType"),
])
def test_malformed_bundles_are_refused(mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    b = _bundle()
    mutate(b)
    with pytest.raises(SignatureFormatError) as e:
        parse_envelope(load_bundle(json.dumps(b)))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_material_kind_needs_exactly_one() -> None:
    b = _bundle()
    b["verificationMaterial"]["certificate"] = {"rawBytes": "AA=="}
    with pytest.raises(SignatureFormatError):
        material_kind(b)
    b["verificationMaterial"] = {"tlogEntries": []}
    with pytest.raises(SignatureFormatError):
        material_kind(b)


def test_non_json_and_wrong_shape() -> None:
    with pytest.raises(SignatureFormatError):
        load_bundle(b"\x00not json")
    with pytest.raises(SignatureFormatError):
        load_bundle(b"[1, 2]")
    with pytest.raises(SignatureFormatError) as e:
        load_bundle(json.dumps({"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": {},
                                "messageSignature": {}}))
    assert "blob" in str(e.value)


def test_b64decode_strict() -> None:
    assert b64decode("aGk=", what="x") == b"hi"
    for bad in ("aGk", "aG k=", "aGk=\n", 5, "é"):
        with pytest.raises(SignatureFormatError):
            b64decode(bad, what="x")


def test_read_bundle_caps_size_and_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "model.sig"
    p.write_bytes(b"x" * 101)
    with pytest.raises(SignatureFormatError) as e:
        read_bundle(p, max_bytes=100)
    assert "too large" in str(e.value) and str(p) in str(e.value)
    assert read_bundle(p, max_bytes=101) == b"x" * 101
    with pytest.raises(PathError) as e2:
        read_bundle(tmp_path / "missing.sig")
    assert "not found" in str(e2.value)
    with pytest.raises(PathError):
        read_bundle(tmp_path)


def test_default_signature_path(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "w.safetensors").write_bytes(b"")
    assert default_signature_path(tmp_path / "m") == tmp_path / "m" / "model.sig"
    assert default_signature_path(tmp_path / "w.safetensors") == tmp_path / "w.safetensors.sig"


# ------------------------------------------------------------------------------ atomic writes
def test_write_atomic_replaces_and_keeps_mode(tmp_path: Path) -> None:
    p = tmp_path / "model.sig"
    write_atomic(p, b"one")
    assert p.read_bytes() == b"one" and stat.S_IMODE(p.stat().st_mode) == 0o644
    os.chmod(p, 0o600)
    write_atomic(p, b"two")
    assert p.read_bytes() == b"two" and stat.S_IMODE(p.stat().st_mode) == 0o600
    assert [x.name for x in tmp_path.iterdir()] == ["model.sig"]  # no temp file left


def test_write_atomic_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"keep me")
    link = tmp_path / "model.sig"
    link.symlink_to(target)
    write_atomic(link, b"sig")
    assert target.read_bytes() == b"keep me"
    assert not link.is_symlink() and link.read_bytes() == b"sig"


def test_write_atomic_refusals(tmp_path: Path) -> None:
    with pytest.raises(PathError) as e:
        write_atomic(tmp_path, b"x")
    assert "is a directory" in str(e.value)
    with pytest.raises(PathError) as e:
        write_atomic(tmp_path / "no" / "such" / "model.sig", b"x")
    assert "does not exist" in str(e.value)
    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(PathError) as e:
        write_atomic(f / "model.sig", b"x")
    assert "not a directory" in str(e.value)


def test_write_atomic_failure_leaves_the_old_file(tmp_path: Path) -> None:
    p = tmp_path / "model.sig"
    p.write_bytes(b"old signature")

    # a payload that is not bytes makes f.write raise after the temp file exists (as a full
    # disk would): the writer must remove the temp file and leave the old signature alone
    with pytest.raises(TypeError):
        write_atomic(p, object())  # type: ignore[arg-type]
    assert p.read_bytes() == b"old signature"
    assert [x.name for x in tmp_path.iterdir()] == ["model.sig"]
