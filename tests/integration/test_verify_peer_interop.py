"""Signatures made with model_signing 1.1.1's API verify with modelsign: files, shards, blake3,
blake2b; keys and certificates. Shard and blake3 signatures are cases model_signing's own CLI
cannot verify (it always re-hashes as files/sha256); one test shows that it fails where we pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelsign.verify import IntegrityFailure, verify_model

model_signing = pytest.importorskip("model_signing", reason="the peer (model-signing 1.1.1) "
                                    "is a test dependency: pip install -e .[test]")

from modelsign.testing._pki import CertChain, KeyPair, make_cert_chain, make_key  # noqa: E402

SHARD = 1024


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    (m / "sub").mkdir(parents=True)
    (m / "weights.bin").write_bytes(os.urandom(3 * SHARD))  # exactly three shards
    (m / "sub" / "config.json").write_bytes(b'{"hidden": 8}\n')
    (m / "tokenizer.txt").write_bytes(b"a b c\n" * 300)
    return m


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", curve="secp256r1")


@pytest.fixture
def pki(tmp_path: Path) -> CertChain:
    return make_cert_chain(tmp_path / "pki", curve="secp384r1")


def _hashing(kind: str) -> Any:
    cfg = model_signing.hashing.Config()
    if kind == "files-sha256":
        return cfg.use_file_serialization()
    if kind == "files-blake2":
        return cfg.use_file_serialization(hashing_algorithm="blake2")
    if kind == "blake3":
        return cfg.use_file_serialization(hashing_algorithm="blake3")
    if kind == "shards-sha256":
        return cfg.use_shard_serialization(shard_size=SHARD)
    if kind == "shards-blake2":
        return cfg.use_shard_serialization(hashing_algorithm="blake2", shard_size=SHARD)
    raise AssertionError(kind)


def _peer_sign_key(model: Path, key: KeyPair, kind: str, sig: Path) -> Path:
    (model_signing.signing.Config().use_elliptic_key_signer(private_key=key.private)
     .set_hashing_config(_hashing(kind)).sign(model, sig))
    return sig


KINDS = [("files-sha256", "files", "sha256"), ("files-blake2", "files", "blake2b"),
         ("blake3", "files", "blake3"), ("shards-sha256", "shards", "sha256"),
         ("shards-blake2", "shards", "blake2b")]


@pytest.mark.parametrize("kind, method, algorithm", KINDS)
def test_peer_key_signature_verifies(model: Path, key: KeyPair, tmp_path: Path, kind: str,
                                     method: str, algorithm: str) -> None:
    sig = _peer_sign_key(model, key, kind, tmp_path / f"{kind}.sig")
    result = verify_model(model, signature=sig, key=key.public)
    ser = result.manifest.serialization
    assert result.verified, result.failures
    assert (ser.method, ser.hash_type) == (method, algorithm)
    if method == "shards":
        assert ser.shard_size == SHARD and isinstance(ser.shard_size, int)  # peer wrote 1024.0
        assert [f.name for f in result.files if f.name.startswith("weights.bin")] == [
            "weights.bin:0:1024", "weights.bin:1024:2048", "weights.bin:2048:3072"]
    assert all(f.status == "ok" for f in result.files)


@pytest.mark.parametrize("kind", ["files-sha256", "shards-sha256", "blake3"])
def test_peer_certificate_signature_verifies(model: Path, pki: CertChain, tmp_path: Path,
                                             kind: str) -> None:
    sig = tmp_path / "cert.sig"
    (model_signing.signing.Config()
     .use_certificate_signer(private_key=pki.key, signing_certificate=pki.leaf,
                             certificate_chain=[pki.intermediate])
     .set_hashing_config(_hashing(kind)).sign(model, sig))
    result = verify_model(model, signature=sig, cert_chain=[pki.root])
    assert result.verified
    assert result.signer.kind == "certificate"
    assert result.signer.identity == "CN=modelsign test signer,O=modelsign test PKI"
    assert result.signer.issuer == "CN=modelsign test root CA,O=modelsign test PKI"


@pytest.mark.parametrize("kind", ["shards-sha256", "blake3"])
def test_peer_cli_cannot_verify_what_we_verify(model: Path, key: KeyPair, tmp_path: Path,
                                               kind: str) -> None:
    sig = _peer_sign_key(model, key, kind, tmp_path / "peer.sig")
    peer = subprocess.run(
        [sys.executable, "-m", "model_signing", "verify", "key", str(model), "--signature",
         str(sig), "--public_key", str(key.public)], capture_output=True, text=True, timeout=60)
    assert peer.returncode != 0 and "Signature mismatch" in peer.stdout + peer.stderr
    assert verify_model(model, signature=sig, key=key.public).verified


@pytest.mark.parametrize("kind", ["files-sha256", "shards-sha256", "blake3"])
def test_peer_signature_fails_after_one_byte(model: Path, key: KeyPair, tmp_path: Path,
                                             kind: str) -> None:
    sig = _peer_sign_key(model, key, kind, tmp_path / "peer.sig")
    data = bytearray((model / "weights.bin").read_bytes())
    data[SHARD + 5] ^= 0x80
    (model / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(model, signature=sig, key=key.public)
    (bad,) = ei.value.result.failures
    expected_name = "weights.bin:1024:2048" if kind.startswith("shards") else "weights.bin"
    assert (bad.name, bad.status) == (expected_name, "changed")
    assert bad.expected and bad.actual and bad.expected != bad.actual


def test_shards_growth_on_a_shard_boundary_is_never_an_unsigned_file(
        model: Path, key: KeyPair, tmp_path: Path) -> None:
    """Appending a whole shard only adds a resource; --ignore-unsigned-files must not hide it."""
    sig = _peer_sign_key(model, key, "shards-sha256", tmp_path / "peer.sig")
    with (model / "weights.bin").open("ab") as f:
        f.write(b"\0" * SHARD)
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(model, signature=sig, key=key.public, ignore_unsigned_files=True)
    assert [(f.name, f.status, f.expected) for f in ei.value.result.failures] == [
        ("weights.bin:3072:4096", "extra", None)]


def test_shards_added_empty_file_is_caught(model: Path, key: KeyPair, tmp_path: Path) -> None:
    sig = _peer_sign_key(model, key, "shards-sha256", tmp_path / "peer.sig")
    (model / "sub" / "__init__.py").write_bytes(b"")
    with pytest.raises(IntegrityFailure, match="extra empty file sub/__init__.py") as ei:
        verify_model(model, signature=sig, key=key.public)
    (bad,) = ei.value.result.failures
    assert (bad.name, bad.status, bad.expected) == ("sub/__init__.py", "extra", None)
    assert bad.actual == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # A caller who knows the empty file belongs there can say so; it stays visible as a warning.
    result = verify_model(model, signature=sig, key=key.public, ignore_unsigned_files=True)
    assert result.verified and any("sub/__init__.py" in w for w in result.warnings)


def test_files_mode_extra_and_missing_files(model: Path, key: KeyPair, tmp_path: Path) -> None:
    sig = _peer_sign_key(model, key, "files-sha256", tmp_path / "peer.sig")
    (model / "tokenizer.txt").unlink()
    (model / "sub" / "evil.py").write_bytes(b"import os\n")
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(model, signature=sig, key=key.public)
    got = {(f.name, f.status) for f in ei.value.result.failures}
    assert got == {("tokenizer.txt", "missing"), ("sub/evil.py", "extra")}
    missing = next(f for f in ei.value.result.failures if f.status == "missing")
    assert missing.expected and missing.actual is None
