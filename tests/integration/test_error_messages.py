"""Issue 9: every error a user can cause says what was expected, what was found and what to run
next. One test per message family, through the CLI (``run``), as a user sees it: the exit code,
and the "path: problem (expected X, found Y); next: Z" parts on stderr."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from modelsign.cli._app import run
from modelsign.testing._pki import make_cert_chain, make_key


def _fails(capsys: pytest.CaptureFixture[str], *args: str | Path, code: int) -> str:
    rc = run([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("modelsign: error: ")
    return lines[0].removeprefix("modelsign: error: ")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    m.mkdir()
    (m / "config.json").write_text("{}")
    (m / "weights.bin").write_bytes(b"\x01" * 1024)
    return m


def _jwt(claims: dict[str, object]) -> str:
    def part(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"


# ------------------------------------------------------------------------------------ keys
def test_missing_private_key(model: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    msg = _fails(capsys, "sign", model, "--key", tmp_path / "nokey.pem", code=2)
    assert msg.startswith(f"{tmp_path / 'nokey.pem'}: private key not found (")
    assert "expected a PEM private key file, found no such file" in msg
    assert "; next: pass the PEM private key to --key (create one: openssl ecparam" in msg


@pytest.mark.parametrize("which,found", [("public", "a PEM PUBLIC KEY"),
                                         ("cert", "a CERTIFICATE")])
def test_public_key_or_certificate_given_as_key(model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                which: str, found: str) -> None:
    key = make_key(tmp_path).public if which == "public" else make_cert_chain(tmp_path).leaf
    msg = _fails(capsys, "sign", model, "--key", key, code=2)
    assert "this is a public key or certificate, not a private key" in msg
    assert f"found {found})" in msg
    assert "; next: --key takes the private key" in msg


# --------------------------------------------------------------------------------- keyless
@pytest.mark.parametrize("token,found", [
    ("not-a-jwt", "found not a JWT ("),
    (_jwt({"aud": "sigstore", "iss": "https://issuer.test", "sub": "s", "iat": 0}),
     "found no 'exp' claim"),
    (_jwt({"aud": "sigstore", "iss": "https://issuer.test", "sub": "s", "iat": 1000,
           "exp": 2000}), "found an expired token"),
])
def test_unusable_identity_token_says_what_is_wrong(model: Path, capsys: pytest.CaptureFixture[str],
                                                    token: str, found: str) -> None:
    msg = _fails(capsys, "sign", model, "--identity-token", token, code=2)
    assert msg.startswith("the identity token is not usable (expected an unexpired OIDC JWT")
    assert found in msg
    assert "; next: " in msg


def test_keyless_sign_prints_no_sigstore_log_lines(model: Path, capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # The production trust root, offline: sigstore logs "TUF repository is loaded in offline
    # mode" at WARNING, which reached the terminal.
    logger = logging.getLogger("sigstore")
    before = logger.level
    _fails(capsys, "sign", model, "--identity-token", _jwt({"aud": "sigstore"}), code=2)
    assert not [r for r in caplog.records if r.name.startswith("sigstore")
                and r.levelno < logging.ERROR]
    assert logger.level == before  # the library's logging is left as it was


def test_invalid_trust_config_names_the_field(model: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    tc = tmp_path / "tc.json"
    tc.write_text('{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}')
    msg = _fails(capsys, "sign", model, "--trust-config", tc, "--identity-token", "x", code=2)
    assert msg.startswith(f"{tc}: not a valid Sigstore ClientTrustConfig (")
    assert "found field 'trustedRoot': Field required (+1 more))" in msg
    assert "; next: pass the trust_config.json your deployment (or `modelsign sigstore serve`)" \
        in msg


# --------------------------------------------------------------------------- verify usage
def test_ignore_path_outside_the_model(model: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path)
    msg = _fails(capsys, "sign", model, "--key", kp.private, "--ignore-path", "/abs", code=2)
    assert "--ignore-path '/abs' must be a relative POSIX path (expected e.g. 'logs'" in msg
    assert "found '/abs'); next: give it relative to the model, e.g. --ignore-path logs" in msg
    msg = _fails(capsys, "sign", model, "--key", kp.private, "--ignore-path", "../x", code=2)
    assert "must name something inside the model (expected a relative path without '..', " \
           "found '../x'); next: give it relative to the model" in msg


def test_identity_rules_with_key(model: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path)
    msg = _fails(capsys, "verify", model, "--key", kp.public, "--identity", "a@b.example",
                 "--issuer", "https://issuer.example", code=2)
    assert "cannot be combined with --key; next: drop --identity/--issuer (a key signature " \
           "names no identity), or drop --key" in msg


def test_invalid_identity_regex(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _fails(capsys, "verify", model, "--identity-regex", "(", "--issuer",
                 "https://issuer.example", code=2)
    assert "identity regex '(' is not a valid regular expression (expected a Python regular " \
           "expression, found missing )" in msg
    assert "; next: use Python re syntax" in msg


def test_wrong_parent_key_names_the_flag(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    parent, child = tmp_path / "parent", tmp_path / "child"
    for d in (parent, child):
        d.mkdir()
        (d / "w.bin").write_bytes(d.name.encode())
    a, b = make_key(tmp_path, "a"), make_key(tmp_path, "b")
    assert run(["sign", str(parent), "--key", str(a.private)]) == 0
    capsys.readouterr()
    msg = _fails(capsys, "attest", child, "--relation", "finetune", "--base-model", parent,
                 "--parent-key", b.public, "--key", a.private, code=1)
    assert msg.startswith(f"{parent / 'model.sig'}: signed with a different key (expected key "
                          f"hint ")
    assert f"(sha256 of {b.public}), found key hint " in msg
    assert msg.endswith("; next: check that --parent-key is the publisher's public key")


def test_foreign_trust_root_names_the_issuer(model: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from modelsign.testing import LoopbackSigstore

    with LoopbackSigstore() as s:
        tc = s.write_trust_config(tmp_path / "trust_config.json")
        assert run(["sign", str(model), "--trust-config", str(tc), "--identity-token",
                    s.mint_token("a@modelsign.test")]) == 0
        capsys.readouterr()
        msg = _fails(capsys, "verify", model, "--identity", "a@modelsign.test", "--issuer",
                     s.url, code=1)  # against the production root
    assert "does not chain to the trusted root (Sigstore production" in msg
    assert "foreign or wrong trust root (expected a certificate issued by the trusted root's " \
           "Fulcio CA, found a certificate issued by 'CN=modelsign loopback Fulcio" in msg
    assert "; next: verify against the Sigstore instance that signed it" in msg


# ------------------------------------------------------------------ claims, lineage store, hub
def test_claims_on_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _fails(capsys, "claims", tmp_path / "nope", code=2)
    assert msg == (f"{tmp_path / 'nope'}: path not found; next: pass the model (or dataset) "
                   "directory, or its claims.jsonl")


@pytest.mark.parametrize("relation,hint", [("fine", "did you mean 'finetune'?"),
                                           ("quantised", "did you mean 'quantized'?"),
                                           ("zzz", "pass one of the expected relations")])
def test_unknown_relation_suggests_one(model: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       relation: str, hint: str) -> None:
    msg = _fails(capsys, "attest", model, "--relation", relation,
                 "--key", make_key(tmp_path).private, code=2)
    assert msg.startswith("unknown --relation (expected pretrain | finetune | ")
    assert f"found {relation!r}); next: {hint}" in msg


def test_store_add_to_a_file(model: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    store.write_text("")
    msg = _fails(capsys, "store", "add", model, "--store", store, code=2)
    assert msg == (f"{store}: --store is not a directory (expected a directory (created if "
                   "missing), found a file); next: pass a directory to --store, e.g. --store "
                   "./provenance-store")


def test_store_add_with_another_signers_key(model: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_key(tmp_path, "a"), make_key(tmp_path, "b")
    assert run(["sign", str(model), "--key", str(a.private)]) == 0
    capsys.readouterr()
    msg = _fails(capsys, "store", "add", model, "--store", tmp_path / "store",
                 "--key", b.public, code=1)
    assert msg.startswith(f"{model / 'model.sig'}: signed with the key sha256:")
    assert f"which is not an allowed key: key {b.public}" in msg
    assert msg.endswith("; next: check who signed it; pass that signer's --key/--identity if you "
                        "trust it")


def test_bad_hub_repo_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _fails(capsys, "hf", "verify", "acme", "--key", make_key(tmp_path).public, code=2)
    assert msg == ("not a Hub repo reference (expected org/name or org/name@revision, found "
                   "'acme'); next: name the repo with its owner, e.g. acme/llama-ft or "
                   "acme/llama-ft@main")


# -------------------------------------------------------------------- signature files, policy
@pytest.mark.parametrize("content,found,hint", [
    (b"<html>", "found JSONDecodeError: Expecting value",
     "; next: get the file again (a truncated download or an HTML error page is not JSON), or "
     "re-create it with modelsign sign"),
    (b'{"dsseEnvelope": {}}', "found no mediaType)",
     "; next: not a Sigstore bundle; re-sign with modelsign sign"),
])
def test_signature_file_not_a_bundle(model: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     content: bytes, found: str, hint: str) -> None:
    (model / "model.sig").write_bytes(content)
    msg = _fails(capsys, "verify", model, "--key", make_key(tmp_path).public, code=2)
    assert msg.startswith(f"{model / 'model.sig'}: signature ")
    assert found in msg and hint in msg


def test_policy_lint_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(["policy", "lint", str(tmp_path / "nope.yaml")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert f"{tmp_path / 'nope.yaml'}: policy file not found; next: check the policy file " \
           "path" in out + err
    assert "--policy" not in out + err  # lint takes the file as an argument


def test_policy_names_no_sigstore_identity(model: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from modelsign.testing import LoopbackSigstore

    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: modelsign/v1\nkind: ModelPolicy\n"
                      f"signers:\n  - publicKey: {make_key(tmp_path).public}\n")
    with LoopbackSigstore() as s:
        tc = s.write_trust_config(tmp_path / "trust_config.json")
        assert run(["sign", str(model), "--trust-config", str(tc), "--identity-token",
                    s.mint_token("a@modelsign.test")]) == 0
    capsys.readouterr()
    msg = _fails(capsys, "verify", model, "--policy", policy, code=1)
    assert msg == (f"{model}: model.sig is a Sigstore keyless signature, but the policy's "
                   "signers name no Sigstore identity; next: add {issuer, identity} to the "
                   "policy's signers: if you trust that signer")


def test_every_help_names_its_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["policy", "schema", "--help"]) == 0
    assert "Exit codes: 0 printed" in capsys.readouterr().out
