"""The real signatures model_signing wrote (../shared/fixtures/oms-peer) verify offline, and stop
verifying once one byte of a file changes.

* v1.0.1-sigstore: signed on the public-good Sigstore instance; verified against the production
  trusted root bundled in the sigstore wheel (no network, nothing written to the cache).
* v1.1.0-elliptic-key: P-384 key; v1.1.0-certificate: key + certificate chain.

``ignore-me`` was left out when signing: the 1.1.0 signatures record it in ``ignore_paths``;
v1.0.1 did not record ignore paths, so there it is an unsigned file (an error, or a warning with
``ignore_unsigned_files``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelsign.cli._app import run
from modelsign.errors import IdentityError, IntegrityError, SignatureError
from modelsign.verify import Identity, IntegrityFailure, Trust, verify_model

IBM_ID = "stefanb@us.ibm.com"
IBM_ISSUER = "https://sigstore.verify.ibm.com/oauth2"


@pytest.fixture
def peer(shared_fixtures: Path, tmp_path: Path) -> Path:
    """A writable copy of the oms-peer fixtures."""
    dst = tmp_path / "oms-peer"
    shutil.copytree(shared_fixtures / "oms-peer", dst)
    return dst


def _flip_byte(path: Path, offset: int = 0) -> tuple[bytes, bytes]:
    data = bytearray(path.read_bytes())
    before = bytes(data)
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return before, bytes(data)


def test_sigstore_fixture_verifies_offline_against_bundled_production_root(
        peer: Path, tmp_path: Path) -> None:
    model = peer / "v1.0.1-sigstore"
    result = verify_model(model, identities=[Identity(identity=IBM_ID, issuer=IBM_ISSUER)],
                          ignore_unsigned_files=True)
    assert result.verified and result.verdict == "verified"
    assert result.signer.kind == "keyless"
    assert (result.signer.identity, result.signer.issuer) == (IBM_ID, IBM_ISSUER)
    assert result.signer.log_index == 588939812
    assert result.signer.integrated_time is not None
    assert result.signer.integrated_time.isoformat() == "2025-10-07T15:33:48+00:00"
    assert result.root_digest == "61d4849d9d90076d6215f4d525f13d6574af8e3f67aef3e6f36fc40a14fdd226"
    assert {f.name: f.status for f in result.files} == {
        "signme-1": "ok", "signme-2": "ok", "ignore-me": "unsigned"}
    assert any("ignore-me" in w for w in result.warnings)


def test_sigstore_fixture_does_not_touch_the_user_cache(peer: Path) -> None:
    import os

    cache = Path(os.environ["XDG_CACHE_HOME"])
    verify_model(peer / "v1.0.1-sigstore", identities=[Identity(identity=IBM_ID,
                                                                issuer=IBM_ISSUER)],
                 ignore_unsigned_files=True)
    assert not (cache / "sigstore-python").exists()
    assert not cache.exists() or not any(cache.rglob("trusted_root.json"))


def test_sigstore_fixture_unsigned_file_fails_without_the_flag(peer: Path) -> None:
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(peer / "v1.0.1-sigstore",
                     identities=[Identity(identity=IBM_ID, issuer=IBM_ISSUER)])
    assert isinstance(ei.value, IntegrityError)
    (extra,) = ei.value.result.failures
    assert (extra.name, extra.status, extra.expected) == ("ignore-me", "extra", None)
    assert extra.actual and len(extra.actual) == 64
    assert "extra ignore-me" in str(ei.value)


def test_sigstore_fixture_strict_after_removing_the_unsigned_file(peer: Path) -> None:
    model = peer / "v1.0.1-sigstore"
    (model / "ignore-me").unlink()
    result = verify_model(model, identities=[Identity(identity=IBM_ID, issuer=IBM_ISSUER)])
    assert result.verified and not result.warnings


def test_sigstore_fixture_fails_when_a_byte_changes(peer: Path) -> None:
    model = peer / "v1.0.1-sigstore"
    _flip_byte(model / "signme-2", 3)
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(model, identities=[Identity(identity=IBM_ID, issuer=IBM_ISSUER)],
                     ignore_unsigned_files=True)
    (bad,) = ei.value.result.failures
    assert bad.name == "signme-2" and bad.status == "changed"
    assert bad.expected == "32dcb1f8e1ae52d5963e56a6ba06ab58b424c15ed2a6b70d2feca1d089370028"
    assert bad.actual and bad.actual != bad.expected
    assert f"changed signme-2 (signed {bad.expected}, on disk {bad.actual})" in str(ei.value)


@pytest.mark.parametrize("rule, error, text", [
    (Identity(identity="mallory@example.com", issuer=IBM_ISSUER), IdentityError,
     "wrong identity"),
    (Identity(identity=IBM_ID, issuer="https://accounts.google.com"), IdentityError,
     "wrong issuer"),
    (Identity(identity_regex=r"^[a-z]+@example\.com$", issuer=IBM_ISSUER), IdentityError,
     "identity does not match the regex"),
])
def test_sigstore_fixture_wrong_signer(peer: Path, rule: Identity, error: type,
                                       text: str) -> None:
    with pytest.raises(error, match=text):
        verify_model(peer / "v1.0.1-sigstore", identities=[rule], ignore_unsigned_files=True)


def test_sigstore_fixture_regex_and_any_of(peer: Path) -> None:
    rules = [Identity(identity="someone@else.example", issuer="https://accounts.google.com"),
             Identity(identity_regex=r"^stefanb@(us\.)?ibm\.com$", issuer=IBM_ISSUER)]
    assert verify_model(peer / "v1.0.1-sigstore", identities=rules,
                        ignore_unsigned_files=True).verified


def test_sigstore_fixture_against_staging_root_is_a_foreign_root(peer: Path) -> None:
    with pytest.raises(SignatureError, match="foreign or wrong trust root"):
        verify_model(peer / "v1.0.1-sigstore",
                     identities=[Identity(identity=IBM_ID, issuer=IBM_ISSUER)],
                     trust=Trust.staging(), ignore_unsigned_files=True)


def test_key_fixture_verifies_with_recorded_ignore_paths(peer: Path) -> None:
    result = verify_model(peer / "v1.1.0-elliptic-key",
                          key=peer / "keys" / "signing-key-pub.pem")
    assert result.verified and result.signer.kind == "key"
    assert result.signer.identity == ("sha256:e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57"
                                      "abba763df3e3f8e")
    assert [f.name for f in result.files] == ["signme-1", "signme-2"]  # ignore-me: as recorded
    assert "ignore-me" in result.manifest.serialization.ignore_paths
    assert not result.warnings


def test_key_fixture_fails_when_a_byte_changes(peer: Path) -> None:
    model = peer / "v1.1.0-elliptic-key"
    _flip_byte(model / "signme-1")
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(model, key=peer / "keys" / "signing-key-pub.pem")
    (bad,) = ei.value.result.failures
    assert (bad.name, bad.status) == ("signme-1", "changed")
    assert bad.expected == "bc9a717db6064a32cbe9eae6fc40651dd6d36ef1757183f590eff2b1765d7ebc"


def test_key_fixture_ignored_path_may_change(peer: Path) -> None:
    model = peer / "v1.1.0-elliptic-key"
    (model / "ignore-me").write_bytes(b"anything at all")
    assert verify_model(model, key=peer / "keys" / "signing-key-pub.pem").verified


def test_certificate_fixture_verifies(peer: Path) -> None:
    result = verify_model(peer / "v1.1.0-certificate", cert_chain=[peer / "keys" / "ca-cert.pem"])
    assert result.verified and result.signer.kind == "certificate"
    assert result.signer.issuer == "CN=root-ca"
    assert result.signer.identity == "CN=intermediate-ca"
    assert [f.status for f in result.files] == ["ok", "ok"]


def test_certificate_fixture_fails_when_a_byte_changes(peer: Path) -> None:
    model = peer / "v1.1.0-certificate"
    _flip_byte(model / "signme-2", 1)
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(model, cert_chain=[peer / "keys" / "ca-cert.pem"])
    assert [(f.name, f.status) for f in ei.value.result.failures] == [("signme-2", "changed")]


def test_certificate_fixture_with_a_foreign_ca_fails(peer: Path, tmp_path: Path) -> None:
    from modelsign.testing._pki import make_cert_chain

    other = make_cert_chain(tmp_path / "other-pki")
    with pytest.raises(SignatureError, match="does not chain to the given CA"):
        verify_model(peer / "v1.1.0-certificate", cert_chain=[other.root])


def test_key_fixture_with_another_key_fails(peer: Path) -> None:
    from modelsign.testing._pki import make_key

    other = make_key(peer, "other", curve="secp384r1")
    with pytest.raises(SignatureError, match="signed with a different key"):
        verify_model(peer / "v1.1.0-elliptic-key", key=other.public)


# --------------------------------------------------------------------------- through the CLI
def test_cli_verifies_all_three(peer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["verify", str(peer / "v1.0.1-sigstore"), "--identity", IBM_ID, "--issuer",
                IBM_ISSUER, "--ignore-unsigned-files"]) == 0
    out = capsys.readouterr()
    assert "verified" in out.out and IBM_ID in out.out and "588939812" in out.out
    assert "ignore-me" in out.err  # the warning
    assert run(["verify", str(peer / "v1.1.0-elliptic-key"), "--key",
                str(peer / "keys" / "signing-key-pub.pem")]) == 0
    assert run(["verify", str(peer / "v1.1.0-certificate"), "--cert-chain",
                str(peer / "keys" / "ca-cert.pem")]) == 0


def test_cli_changed_byte_exits_1_listing_digests(peer: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = peer / "v1.1.0-elliptic-key"
    _flip_byte(model / "signme-2")
    code = run(["verify", str(model), "--key", str(peer / "keys" / "signing-key-pub.pem")])
    err = capsys.readouterr().err
    assert code == 1
    assert "changed  signme-2: signed 32dcb1f8e1ae52d5963e56a6ba06ab58b424c15ed2a6b70d2feca1d08" \
           "9370028, on disk " in err
    assert "Traceback" not in err
