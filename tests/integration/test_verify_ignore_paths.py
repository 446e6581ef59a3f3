"""``verify_model(..., ignore_paths=...)``: paths left out at verification time, added to the
ones the signature records (model_signing's ``--ignore-paths`` on verify).

Needed for the real v1.0.1 Sigstore signature, made with ``ignore-me`` excluded but without
recording its ignore paths. The rule that keeps it safe: the signed resources always win, so an
ignore path can hide unsigned files but never a signed one (nor bytes appended to one).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from modelsign.errors import InputError
from modelsign.hashing import HashSpec
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify import Identity, IntegrityFailure, verify_model

REPO = Path(__file__).resolve().parents[2]
IBM = Identity(identity="stefanb@us.ibm.com", issuer="https://sigstore.verify.ibm.com/oauth2")


@pytest.fixture
def peer_v101(shared_fixtures: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "v1.0.1-sigstore"
    shutil.copytree(shared_fixtures / "oms-peer" / "v1.0.1-sigstore", dst)
    return dst


def test_v101_sigstore_fixture_verifies_strictly_with_its_ignore_path(peer_v101: Path) -> None:
    result = verify_model(peer_v101, identities=IBM, ignore_paths=["ignore-me"])
    assert result.verified
    assert {f.name: f.status for f in result.files} == {"signme-1": "ok", "signme-2": "ok"}
    assert result.warnings == (
        "left out at verification time (ignore_paths), in addition to the signature's own: "
        "ignore-me",)
    # the report keeps what the signature recorded (nothing); the warning says what we added
    doc = result.to_json()
    assert doc["serialization"]["ignore_paths"] == []
    schema = json.loads((REPO / "schemas" / "verify-report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_v101_sigstore_fixture_fails_without_it(peer_v101: Path) -> None:
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(peer_v101, identities=IBM)
    (extra,) = ei.value.result.failures
    assert (extra.name, extra.status) == ("ignore-me", "extra")
    with pytest.raises(IntegrityFailure):  # ignoring something else does not help
        verify_model(peer_v101, identities=IBM, ignore_paths=["ignore-m", "ignore-me2"])


def test_v101_signed_file_stays_required_when_named(peer_v101: Path) -> None:
    (peer_v101 / "signme-1").write_bytes(b"swapped")
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(peer_v101, identities=IBM, ignore_paths=["ignore-me", "signme-1"])
    (bad,) = ei.value.result.failures
    assert (bad.name, bad.status) == ("signme-1", "changed")
    (peer_v101 / "signme-1").unlink()
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(peer_v101, identities=IBM, ignore_paths=["ignore-me", "signme-1"])
    (bad,) = ei.value.result.failures
    assert (bad.name, bad.status) == ("signme-1", "missing")


# ---------------------------------------------------------------- our own signatures
@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", "k")


def _model(root: Path) -> Path:
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "a.bin").write_bytes(b"a" * 300)
    (root / "weights" / "b.bin").write_bytes(b"b" * 10)
    (root / "config.json").write_text("{}")
    return root


def test_a_directory_holding_signed_files_only_hides_the_unsigned_ones(
        tmp_path: Path, key: KeyPair) -> None:
    m = _model(tmp_path / "m")
    sign_model(m, signer=KeySigner.from_pem_file(key.private))
    (m / "weights" / "scratch.tmp").write_bytes(b"later")
    (m / "logs").mkdir()
    (m / "logs" / "run.txt").write_text("log")
    result = verify_model(m, key=key.public, ignore_paths=["weights", "logs/"])
    assert result.verified
    assert [f.name for f in result.files] == ["config.json", "weights/a.bin", "weights/b.bin"]
    assert any("signed files were checked" in w and "weights" in w for w in result.warnings)
    assert any(w.endswith("in addition to the signature's own: logs") for w in result.warnings)
    # and a signed file under it is still compared
    (m / "weights" / "b.bin").write_bytes(b"B" * 10)
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(m, key=key.public, ignore_paths=["weights", "logs"])
    assert [(f.name, f.status) for f in ei.value.result.failures] == [("weights/b.bin", "changed")]


def test_shards_mode_appended_bytes_of_a_signed_file_are_never_hidden(
        tmp_path: Path, key: KeyPair) -> None:
    m = _model(tmp_path / "m")
    sign_model(m, signer=KeySigner.from_pem_file(key.private),
               spec=HashSpec(method="shards", shard_size=100))
    with (m / "weights" / "a.bin").open("ab") as f:
        f.write(b"a" * 100)  # one more whole shard
    (m / "weights" / "empty.bin").write_bytes(b"")  # an unsigned empty file under the path
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(m, key=key.public, ignore_paths=["weights"], ignore_unsigned_files=True)
    assert [(f.name, f.status) for f in ei.value.result.failures] == [
        ("weights/a.bin:300:400", "extra")]
    assert "weights/empty.bin" not in [f.name for f in ei.value.result.files]
    # without the ignore path, the empty file is reported (and fails)
    (m / "weights" / "a.bin").write_bytes(b"a" * 300)
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(m, key=key.public)
    assert [(f.name, f.status) for f in ei.value.result.failures] == [
        ("weights/empty.bin", "extra")]
    assert verify_model(m, key=key.public, ignore_paths=["weights/empty.bin"]).verified


def test_ignored_paths_are_not_even_walked(tmp_path: Path, key: KeyPair) -> None:
    """A path that covers no signed file is left out of the walk, as when hashing: a symlink
    or a FIFO there does not make verification fail."""
    import os

    m = _model(tmp_path / "m")
    sign_model(m, signer=KeySigner.from_pem_file(key.private))
    (m / "cache").mkdir()
    (m / "cache" / "link").symlink_to("/etc/hostname")
    os.mkfifo(m / "cache" / "fifo")
    assert verify_model(m, key=key.public, ignore_paths=["cache"]).verified


@pytest.mark.parametrize("bad", [["../m"], ["a/../../b"], [""], ["/abs"], ["."], ["./"],
                                 ["a\\b"], ["a\0b"], [b"bytes"], [Path("p")], 5])
def test_bad_ignore_paths_are_usage_errors_before_anything_is_read(
        tmp_path: Path, key: KeyPair, bad: object) -> None:
    with pytest.raises(InputError, match="ignore"):
        verify_model(tmp_path / "does-not-exist", key=key.public,
                     ignore_paths=bad)  # type: ignore[arg-type]


def test_a_lone_string_is_one_path(tmp_path: Path, key: KeyPair) -> None:
    m = _model(tmp_path / "m")
    sign_model(m, signer=KeySigner.from_pem_file(key.private))
    (m / "notes.md").write_text("x")
    result = verify_model(m, key=key.public, ignore_paths="notes.md")
    assert result.verified and result.warnings[-1].endswith("signature's own: notes.md")
