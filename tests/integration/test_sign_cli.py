"""`modelsign sign` on bad input: exit 2, one line on stderr, never a traceback; and model.sig is
never half-written: a signature that fails after hashing leaves the old one untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelsign import HashSpec, hash_model
from modelsign.cli._app import run
from modelsign.errors import InputError
from modelsign.signing import KeySigner, SignedBundle, sign_model
from modelsign.statements import Statement
from modelsign.testing import LoopbackSigstore
from modelsign.testing._pki import make_cert_chain, make_key

OLD = b'{"an": "earlier signature"}\n'


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoopbackSigstore, Path]:
    with LoopbackSigstore() as s:
        tc = s.write_trust_config(tmp_path_factory.mktemp("sigstore") / "trust_config.json")
        yield s, tc


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    m.mkdir()
    (m / "config.json").write_text("{}")
    (m / "weights.bin").write_bytes(b"\x01" * 4096)
    (m / "model.sig").write_bytes(OLD)
    return m


def _fails(capsys: pytest.CaptureFixture[str], *args: str | Path, code: int = 2) -> str:
    rc = run(["sign", *map(str, args)])
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("modelsign: error: ")
    return lines[0]


def _unchanged(model: Path) -> None:
    assert (model / "model.sig").read_bytes() == OLD
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.sig", "weights.bin"]


@pytest.mark.parametrize("kind,needle", [("secp256k1", "unsupported elliptic curve"),
                                         ("rsa2048", "unsupported key type"),
                                         ("ed25519", "unsupported key type")])
def test_unsupported_key(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         kind: str, needle: str) -> None:
    kp = make_key(tmp_path / "k", curve=kind)  # type: ignore[arg-type]
    line = _fails(capsys, model, "--key", kp.private)
    assert needle in line and str(kp.private) in line
    _unchanged(model)


def test_encrypted_key_without_password(model: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "k", password="pw")
    assert "--password-file" in _fails(capsys, model, "--key", kp.private)
    _unchanged(model)


def test_wrong_password(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "k", password="right")
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    assert "wrong password" in _fails(capsys, model, "--key", kp.private, "--password-file", pw)
    _unchanged(model)


def test_missing_password_file(model: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "k", password="pw")
    line = _fails(capsys, model, "--key", kp.private, "--password-file", tmp_path / "none")
    assert "password file not found" in line


def test_certificate_does_not_match_key(model: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_cert_chain(tmp_path / "pki")
    other = make_key(tmp_path / "k")
    line = _fails(capsys, model, "--key", other.private, "--cert", pki.leaf, "--chain", pki.chain)
    assert "does not match the private key" in line
    _unchanged(model)


def test_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "k")
    line = _fails(capsys, tmp_path / "no-such-model", "--key", kp.private)
    assert "model path not found" in line and "no-such-model" in line


@pytest.mark.parametrize("where", ["directory", "missing-parent", "parent-is-file"])
def test_unwritable_output(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           where: str) -> None:
    kp = make_key(tmp_path / "k")
    out = {"directory": tmp_path,
           "missing-parent": tmp_path / "nope" / "model.sig",
           "parent-is-file": model / "config.json" / "model.sig"}[where]
    line = _fails(capsys, model, "--key", kp.private, "--output", out)
    assert {"directory": "is a directory", "missing-parent": "does not exist",
            "parent-is-file": "not a directory"}[where] in line
    _unchanged(model)


def test_output_on_a_read_only_filesystem(model: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Root ignores permission bits, so use a filesystem nobody can create files in."""
    target = Path("/proc/modelsign-test.sig")
    if not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    kp = make_key(tmp_path / "k")
    line = _fails(capsys, model, "--key", kp.private, "--output", target)
    assert "/proc" in line
    assert not target.exists()


@pytest.mark.parametrize("args,needle", [
    (["--cert", "leaf.pem"], "--cert needs --key"),
    (["--chain", "ca.pem"], "--chain needs --key"),
    (["--password-file", "pw"], "--password-file needs --key"),
    (["--key", "KEY", "--chain", "ca.pem"], "--chain needs --cert"),
    (["--key", "KEY", "--identity-token", "t"], "cannot be combined with --key"),
    (["--key", "KEY", "--staging"], "cannot be combined with --key"),
    (["--staging", "--trust-config", "tc.json"], "mutually exclusive"),
])
def test_meaningless_flag_combinations(model: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], args: list[str],
                                       needle: str) -> None:
    kp = make_key(tmp_path / "k")
    args = [str(kp.private) if a == "KEY" else a for a in args]
    assert needle in _fails(capsys, model, *args)
    _unchanged(model)


def test_bad_trust_config(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tc = tmp_path / "tc.json"
    tc.write_text('{"mediaType": "nope"}')
    assert "ClientTrustConfig" in _fails(capsys, model, "--trust-config", tc,
                                         "--identity-token", "x")
    assert "trust config not found" in _fails(capsys, model, "--trust-config", tmp_path / "no",
                                              "--identity-token", "x")


def test_malformed_or_expired_token_fails_before_hashing(
        model: Path, sigstore: tuple[LoopbackSigstore, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    s, tc = sigstore
    assert "identity token is not usable" in _fails(capsys, model, "--trust-config", tc,
                                                    "--identity-token", "not-a-jwt")
    expired = s.mint_token("a@modelsign.test", ttl=0)
    assert "identity token is not usable" in _fails(capsys, model, "--trust-config", tc,
                                                    "--identity-token", expired)
    _unchanged(model)


def test_fulcio_refusal_after_hashing_keeps_the_old_signature(
        model: Path, sigstore: tuple[LoopbackSigstore, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """A token from another issuer parses fine, so hashing runs; Fulcio then refuses it."""
    s, tc = sigstore
    with LoopbackSigstore() as foreign:
        token = foreign.mint_token("mallory@modelsign.test")
    line = _fails(capsys, model, "--trust-config", tc, "--identity-token", token)
    assert "Fulcio at " + s.url in line and "refused" in line and "HTTP 4" in line
    assert "mallory@modelsign.test" in line
    _unchanged(model)


def test_signer_failure_midway_keeps_the_old_signature(model: Path, tmp_path: Path) -> None:
    """Through the API with a signer that fails after the manifest is built (e.g. an HSM that
    refuses): the existing model.sig must survive, and no temp file is left behind."""
    calls: list[Statement] = []

    class RefusingSigner:
        def sign(self, statement: Statement) -> SignedBundle:
            calls.append(statement)
            raise InputError("the hardware token refused to sign")

    with pytest.raises(InputError):
        sign_model(model, signer=RefusingSigner())
    assert calls and calls[0].subject.digest["sha256"] == hash_model(model).root_hex
    _unchanged(model)


def test_success_replaces_the_old_signature_and_reports(model: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "k")
    rc = run(["sign", str(model), "--key", str(kp.private)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    root = hash_model(model, HashSpec()).root_hex
    assert f"sha256:{root}" in out and str(model / "model.sig") in out
    bundle = json.loads((model / "model.sig").read_bytes())
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == \
        KeySigner.from_pem_file(kp.private).key_hint
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.sig", "weights.bin"]


def test_single_file_model_gets_a_sibling_signature(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    kp = make_key(tmp_path / "k")
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"\x02" * 100)
    assert run(["sign", str(f), "--key", str(kp.private)]) == 0
    assert (tmp_path / "weights.safetensors.sig").is_file()
    assert _fails(capsys, f, "--key", kp.private, "--output", f)


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sign", "--help"]) == 0
    out = capsys.readouterr().out
    for needle in ("Examples", "--key", "--cert", "--chain", "--identity-token",
                   "--trust-config", "--staging", "--oauth-force-oob", "--password-file",
                   "--output", "model.sig"):
        assert needle in out


def test_interactive_sign_in_that_cannot_complete_is_one_line(
        model: Path, sigstore: tuple[LoopbackSigstore, Path]) -> None:
    """No token, no CI credentials, no terminal: `--oauth-force-oob` cannot get a code. Whatever
    step fails (the issuer's discovery document, or reading the code from a closed stdin), the
    user gets exit 2 and one line, and the old signature stays."""
    import os
    import subprocess
    import sys

    _, tc = sigstore
    ci_vars = ("SIGSTORE_ID_TOKEN", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL",
               "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITLAB_CI", "BUILDKITE", "CIRCLECI",
               "GOOGLE_SERVICE_ACCOUNT_NAME")
    env = {k: v for k, v in os.environ.items() if k not in ci_vars}
    proc = subprocess.run(
        [sys.executable, "-m", "modelsign", "sign", str(model), "--trust-config", str(tc),
         "--oauth-force-oob"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "sign-in" in lines[0] or "identity token" in lines[0]
    _unchanged(model)
