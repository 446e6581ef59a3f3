"""Malformed signatures and bad options: exit code 2, one line naming the file, no traceback.

Every malformed statement here is *validly signed* (with a fresh key), so the rejection comes
from the shape checks, not from a signature failure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelsign.cli._app import run
from modelsign.errors import KeyMaterialError, SignatureFormatError
from modelsign.signing import KeySigner
from modelsign.statements import Statement, canonical_bytes
from modelsign.statements._bundle import MAX_BUNDLE_BYTES
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify import verify_model

OMS = "https://model_signing/signature/v1.0"
CONTENT = b"weights\n"
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", curve="secp256r1")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(CONTENT)
    return m


def _root(*digests: str) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


def _statement(resources: list[dict[str, str]] | None = None, *,
               subjects: list[dict[str, Any]] | None = None,
               predicate_type: str = OMS) -> dict[str, Any]:
    resources = resources if resources is not None else [
        {"name": "w.bin", "algorithm": "sha256", "digest": DIGEST}]
    root = _root(*(r["digest"] for r in resources))
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects if subjects is not None else [{"name": "model",
                                                           "digest": {"sha256": root}}],
        "predicateType": predicate_type,
        "predicate": {"serialization": {"method": "files", "hash_type": "sha256",
                                        "allow_symlinks": False},
                      "resources": resources},
    }


def _signed(key: KeyPair, statement: dict[str, Any]) -> bytes:
    raw = canonical_bytes(statement)
    st = Statement(raw, (), str(statement.get("predicateType")), statement.get("predicate"))
    return KeySigner.from_pem_file(key.private).sign(st).raw


def _edit(bundle: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = json.loads(bundle)
    change(obj)
    return json.dumps(obj).encode()


def _run_exit_2(model: Path, sig: Path, key: Path, capsys: pytest.CaptureFixture[str],
                *extra: str) -> str:
    code = run(["verify", str(model), "--signature", str(sig), "--key", str(key), *extra])
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert code == 2, out.err
    assert len(lines) == 1, out.err
    assert lines[0].startswith("modelsign: error: "), lines
    assert "Traceback" not in out.err and "Traceback" not in out.out
    return lines[0]


def test_valid_baseline(model: Path, key: KeyPair) -> None:
    (model / "model.sig").write_bytes(_signed(key, _statement()))
    assert verify_model(model, key=key.public).verified


def test_missing_signature(model: Path, key: KeyPair,
                           capsys: pytest.CaptureFixture[str]) -> None:
    line = _run_exit_2(model, model / "model.sig", key.public, capsys)
    assert f"{model / 'model.sig'}: signature file not found" in line


def test_default_signature_location_missing(model: Path, key: KeyPair,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["verify", str(model), "--key", str(key.public)])
    err = capsys.readouterr().err
    assert code == 2 and f"{model / 'model.sig'}: signature file not found" in err


def test_unreadable_signature(model: Path, key: KeyPair,
                              capsys: pytest.CaptureFixture[str]) -> None:
    (model / "model.sig").mkdir()  # a directory cannot be read as a file, even by root
    line = _run_exit_2(model, model / "model.sig", key.public, capsys)
    assert str(model / "model.sig") in line and "directory" in line


def test_model_path_missing(tmp_path: Path, key: KeyPair,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["verify", str(tmp_path / "nope"), "--key", str(key.public)])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'nope'}: model path does not exist" in err


@pytest.mark.parametrize("content, text", [
    (b"\x00\x01 not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "not a Sigstore bundle"),
    (b'{"mediaType": "application/json"}', "unsupported bundle mediaType"),
    (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", '
     b'"verificationMaterial": {}, "dsseEnvelope": {}}', "exactly one kind of verification"),
    (b"[" * 100 + b"]" * 100, "nests JSON too deeply"),
])
def test_not_a_bundle(model: Path, key: KeyPair, capsys: pytest.CaptureFixture[str],
                      content: bytes, text: str) -> None:
    sig = model / "model.sig"
    sig.write_bytes(content)
    line = _run_exit_2(model, sig, key.public, capsys)
    assert str(sig) in line and text in line


def test_bundle_over_the_size_cap(model: Path, key: KeyPair,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    sig = model / "model.sig"
    with sig.open("wb") as f:  # sparse: refused from its size, never read
        f.truncate(MAX_BUNDLE_BYTES + 1)
    line = _run_exit_2(model, sig, key.public, capsys)
    assert str(sig) in line and "too large" in line


def test_size_cap_is_a_parameter(model: Path, key: KeyPair) -> None:
    (model / "model.sig").write_bytes(_signed(key, _statement()))
    with pytest.raises(SignatureFormatError, match="too large"):
        verify_model(model, key=key.public, max_signature_bytes=100)


def test_wrong_payload_type(model: Path, key: KeyPair,
                            capsys: pytest.CaptureFixture[str]) -> None:
    def change(o: dict[str, Any]) -> None:
        o["dsseEnvelope"]["payloadType"] = "application/json"

    sig = model / "model.sig"
    sig.write_bytes(_edit(_signed(key, _statement()), change))
    line = _run_exit_2(model, sig, key.public, capsys)
    assert str(sig) in line and "wrong DSSE payloadType" in line


def test_two_signatures(model: Path, key: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    def change(o: dict[str, Any]) -> None:
        sigs = o["dsseEnvelope"]["signatures"]
        sigs.append(dict(sigs[0]))

    sig = model / "model.sig"
    sig.write_bytes(_edit(_signed(key, _statement()), change))
    line = _run_exit_2(model, sig, key.public, capsys)
    assert str(sig) in line and "exactly one signature" in line


def test_payload_not_base64(model: Path, key: KeyPair,
                            capsys: pytest.CaptureFixture[str]) -> None:
    def change(o: dict[str, Any]) -> None:
        o["dsseEnvelope"]["payload"] = "%%%not base64%%%"

    sig = model / "model.sig"
    sig.write_bytes(_edit(_signed(key, _statement()), change))
    line = _run_exit_2(model, sig, key.public, capsys)
    assert str(sig) in line and "base64" in line


@pytest.mark.parametrize("statement, text", [
    (_statement(predicate_type="https://slsa.dev/provenance/v1"), "wrong predicateType"),
    (_statement(subjects=[]), "has no subject"),
    (_statement(subjects=[{"name": "a", "digest": {"sha256": _root(DIGEST)}},
                          {"name": "b", "digest": {"sha256": _root(DIGEST)}}]),
     "exactly one subject"),
    (_statement([{"name": "w.bin", "algorithm": "sha256", "digest": DIGEST}] * 2),
     "duplicate resource"),
    (_statement([{"name": "/etc/passwd", "algorithm": "sha256", "digest": DIGEST}]),
     "is an absolute path"),
    (_statement([{"name": "../w.bin", "algorithm": "sha256", "digest": DIGEST}]),
     "'..' path component"),
    (_statement([{"name": "sub\\w.bin", "algorithm": "sha256", "digest": DIGEST}]),
     "contains a backslash"),
    (_statement([{"name": "w.bin\u0000x", "algorithm": "sha256", "digest": DIGEST}]),
     "contains a NUL character"),
    ({**_statement(), "_type": "https://in-toto.io/Statement/v0.1"}, "not an in-toto Statement"),
    ({**_statement(), "predicate": {"resources": []}}, "predicate.serialization"),
])
def test_validly_signed_but_malformed_statement(model: Path, key: KeyPair,
                                                capsys: pytest.CaptureFixture[str],
                                                statement: dict[str, Any], text: str) -> None:
    sig = model / "model.sig"
    sig.write_bytes(_signed(key, statement))
    line = _run_exit_2(model, sig, key.public, capsys)
    assert str(sig) in line and text in line, line


def test_statement_inconsistent_root_digest(model: Path, key: KeyPair,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    st = _statement(subjects=[{"name": "m", "digest": {"sha256": "00" * 32}}])
    sig = model / "model.sig"
    sig.write_bytes(_signed(key, st))
    line = _run_exit_2(model, sig, key.public, capsys)
    assert "do not hash to the subject digest" in line


@pytest.mark.parametrize("curve", ["secp256k1", "ed25519", "rsa2048"])
def test_unsupported_public_key(model: Path, key: KeyPair, tmp_path: Path, curve: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (model / "model.sig").write_bytes(_signed(key, _statement()))
    bad = make_key(tmp_path / "bad", curve=curve)  # type: ignore[arg-type]
    line = _run_exit_2(model, model / "model.sig", bad.public, capsys)
    assert str(bad.public) in line and "unsupported public key" in line
    with pytest.raises(KeyMaterialError):
        verify_model(model, key=bad.public)


def test_key_file_is_not_a_key(model: Path, key: KeyPair, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (model / "model.sig").write_bytes(_signed(key, _statement()))
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    line = _run_exit_2(model, model / "model.sig", junk, capsys)
    assert str(junk) in line and "not a PEM public key" in line


@pytest.mark.parametrize("args, text", [
    (["--identity", "a@b.c"], "needs its own --issuer"),
    (["--issuer", "https://x"], "needs its own --issuer"),
    (["--identity", "a@b.c", "--identity-regex", "^x", "--issuer", "https://x"],
     "needs its own --issuer"),
    (["--identity-regex", "([", "--issuer", "https://x"], "not a valid regular expression"),
    ([], "refusing to verify a keyless signature without an identity rule"),
    (["--staging", "--trust-config", "x.json", "--identity", "a", "--issuer", "b"],
     "mutually exclusive"),
    (["--trusted-root", "x.json", "--refresh-trust", "--identity", "a", "--issuer", "b"],
     "--refresh-trust cannot be combined"),
    (["--unsafe-skip-identity-check", "--identity", "a", "--issuer", "b"], "contradicts"),
])
def test_bad_keyless_options(model: Path, key: KeyPair, capsys: pytest.CaptureFixture[str],
                             args: list[str], text: str) -> None:
    (model / "model.sig").write_bytes(_signed(key, _statement()))
    code = run(["verify", str(model), *args])
    err = capsys.readouterr().err
    assert code == 2 and text in err and "Traceback" not in err, err


def test_key_and_cert_chain_together(model: Path, key: KeyPair,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["verify", str(model), "--key", str(key.public), "--cert-chain", str(key.public)])
    assert code == 2 and "choose one of --key and --cert-chain" in capsys.readouterr().err


def test_trusted_root_file_not_json(model: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    shared_fixtures: Path) -> None:
    import shutil

    shutil.copy(shared_fixtures / "oms-peer" / "v1.0.1-sigstore" / "model.sig",
                model / "model.sig")
    bad = tmp_path / "root.json"
    bad.write_text("{not json")
    code = run(["verify", str(model), "--trusted-root", str(bad), "--identity", "a",
                "--issuer", "b"])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}: not a valid trusted root" in err, err
