"""Keyless end to end, offline: the real sigstore-python client signs against the loopback
Sigstore (modelsign.testing), then ``modelsign verify`` checks the result with that trust config.

Every way it must fail is tried, each with its own message and exit code 1: wrong identity, wrong
issuer, a regex that does not match, a tampered file, tampered bundle fields, a foreign trust root
(a second LoopbackSigstore).
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelsign.cli._app import run
from modelsign.testing import LoopbackSigstore

SIGNER = "release@acme.example"


@pytest.fixture(scope="module")
def sigstore() -> Iterator[LoopbackSigstore]:
    with LoopbackSigstore() as s:
        yield s


@pytest.fixture(scope="module")
def foreign() -> Iterator[LoopbackSigstore]:
    with LoopbackSigstore() as s:
        yield s


@pytest.fixture(scope="module")
def trust_config(sigstore: LoopbackSigstore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore.write_trust_config(tmp_path_factory.mktemp("trust") / "trust_config.json")


@pytest.fixture(scope="module")
def signed_model(sigstore: LoopbackSigstore, trust_config: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model signed once with ``modelsign sign`` (sigstore-python's SigningContext inside)."""
    m = tmp_path_factory.mktemp("signed") / "tiny-model"
    (m / "sub").mkdir(parents=True)
    (m / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (m / "config.json").write_bytes(b'{"layers": 2}\n')
    (m / "sub" / "tokenizer.json").write_bytes(b'{"vocab": {}}\n')
    token = sigstore.mint_token(SIGNER)
    assert run(["sign", str(m), "--trust-config", str(trust_config),
                "--identity-token", token]) == 0
    assert (m / "model.sig").is_file()
    return m


@pytest.fixture
def model(signed_model: Path, tmp_path: Path) -> Path:
    """A private copy of the signed model, free to tamper with."""
    dst = tmp_path / signed_model.name
    shutil.copytree(signed_model, dst)
    return dst


def _verify(model: Path, trust_config: Path, *args: str) -> list[str]:
    return ["verify", str(model), "--trust-config", str(trust_config), *args]


def _ok_rule(sigstore: LoopbackSigstore) -> list[str]:
    return ["--identity", SIGNER, "--issuer", sigstore.url]


def _fail(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    return err


def test_verifies(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_verify(model, trust_config, *_ok_rule(sigstore))) == 0
    out = capsys.readouterr().out
    assert f"keyless signer {SIGNER} (issuer {sigstore.url})" in out
    assert "3 of 3 resources match" in out


def test_verifies_with_trusted_root_and_regex(model: Path, sigstore: LoopbackSigstore,
                                              tmp_path: Path) -> None:
    root = sigstore.write_trusted_root(tmp_path / "trusted_root.json")
    assert run(["verify", str(model), "--trusted-root", str(root),
                "--identity", "nobody@else.example", "--issuer", sigstore.url,
                "--identity-regex", r"^release@acme\.example$", "--issuer", sigstore.url]) == 0


def test_json_report(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_verify(model, trust_config, *_ok_rule(sigstore), "--format", "json")) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["verdict"] == "verified" and doc["error"] is None
    assert doc["signer"]["kind"] == "keyless"
    assert (doc["signer"]["identity"], doc["signer"]["issuer"]) == (SIGNER, sigstore.url)
    assert isinstance(doc["signer"]["log_index"], int)
    assert doc["signer"]["integrated_time"].endswith("Z")
    assert {f["name"]: f["status"] for f in doc["files"]} == {
        "config.json": "ok", "model.safetensors": "ok", "sub/tokenizer.json": "ok"}
    assert "verified" in out.err  # the human summary goes to stderr in JSON mode


def test_wrong_identity(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    err = _fail(capsys, _verify(model, trust_config, "--identity", "mallory@acme.example",
                                "--issuer", sigstore.url))
    assert f"wrong identity: signed by '{SIGNER}'" in err
    assert "expected mallory@acme.example" in err


def test_wrong_issuer(model: Path, trust_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fail(capsys, _verify(model, trust_config, "--identity", SIGNER,
                                "--issuer", "https://accounts.google.com"))
    assert "wrong issuer" in err and "expected https://accounts.google.com" in err


def test_regex_does_not_match(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    err = _fail(capsys, _verify(model, trust_config, "--identity-regex", r"^ci@acme\.example$",
                                "--issuer", sigstore.url))
    assert "identity does not match the regex" in err


def test_tampered_file(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    (model / "config.json").write_bytes(b'{"layers": 3}\n')
    err = _fail(capsys, _verify(model, trust_config, *_ok_rule(sigstore)))
    assert "1 difference(s) between the signature and the files: changed config.json" in err
    assert "changed  config.json: signed " in err


def _edit_bundle(model: Path, change: Any) -> None:
    sig = model / "model.sig"
    obj = json.loads(sig.read_bytes())
    change(obj)
    sig.write_text(json.dumps(obj))


def test_tampered_log_index(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    def change(o: dict[str, Any]) -> None:
        entry = o["verificationMaterial"]["tlogEntries"][0]
        entry["logIndex"] = str(int(entry["logIndex"]) + 1000)

    _edit_bundle(model, change)
    err = _fail(capsys, _verify(model, trust_config, *_ok_rule(sigstore)))
    assert "the transparency log entry does not verify (tampered bundle)" in err


def test_tampered_integrated_time(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def change(o: dict[str, Any]) -> None:
        entry = o["verificationMaterial"]["tlogEntries"][0]
        entry["integratedTime"] = str(int(entry["integratedTime"]) + 86400)

    _edit_bundle(model, change)
    err = _fail(capsys, _verify(model, trust_config, *_ok_rule(sigstore)))
    assert "transparency log time lies outside the signing certificate's validity" in err


def test_tampered_statement(model: Path, sigstore: LoopbackSigstore, trust_config: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """The attack: change a weight file *and* rewrite the signed manifest to match."""
    import hashlib

    new = b'{"layers": 99}\n'
    (model / "config.json").write_bytes(new)

    def change(o: dict[str, Any]) -> None:
        env = o["dsseEnvelope"]
        st = json.loads(base64.b64decode(env["payload"]))
        for r in st["predicate"]["resources"]:
            if r["name"] == "config.json":
                r["digest"] = hashlib.sha256(new).hexdigest()
        root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"])
                                       for r in st["predicate"]["resources"])).hexdigest()
        st["subject"][0]["digest"]["sha256"] = root
        env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()

    _edit_bundle(model, change)
    err = _fail(capsys, _verify(model, trust_config, *_ok_rule(sigstore)))
    assert "the DSSE signature does not verify (tampered bundle or statement)" in err


def test_foreign_trust_root(model: Path, sigstore: LoopbackSigstore, foreign: LoopbackSigstore,
                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = foreign.write_trust_config(tmp_path / "foreign.json")
    err = _fail(capsys, ["verify", str(model), "--trust-config", str(other),
                         *_ok_rule(sigstore)])
    assert "does not chain to the trusted root" in err and "foreign or wrong trust root" in err


def test_production_root_rejects_loopback_signature(model: Path, sigstore: LoopbackSigstore,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    err = _fail(capsys, ["verify", str(model), *_ok_rule(sigstore)])
    assert "foreign or wrong trust root" in err and "Sigstore production" in err


def test_each_failure_has_its_own_message(model: Path, sigstore: LoopbackSigstore,
                                          foreign: LoopbackSigstore, trust_config: Path,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The messages of the six rejections above are pairwise different in their first clause."""
    heads = set()
    for argv in (
        _verify(model, trust_config, "--identity", "x@y.z", "--issuer", sigstore.url),
        _verify(model, trust_config, "--identity", SIGNER, "--issuer", "https://other.example"),
        _verify(model, trust_config, "--identity-regex", "^nomatch$", "--issuer", sigstore.url),
        ["verify", str(model), "--trust-config",
         str(foreign.write_trust_config(tmp_path / "f.json")), *_ok_rule(sigstore)],
    ):
        err = _fail(capsys, argv)
        heads.add(err.strip().splitlines()[-1].split(":")[3])
    assert len(heads) == 4, heads


def test_unsafe_skip_identity_warns(model: Path, trust_config: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_verify(model, trust_config, "--unsafe-skip-identity-check",
                       "--format", "json")) == 0
    out = capsys.readouterr()
    assert "WARNING: --unsafe-skip-identity-check" in out.err
    doc = json.loads(out.out)
    assert doc["verdict"] == "verified"
    assert any("identity check SKIPPED" in w for w in doc["warnings"])


def test_raw_sigstore_signing_context_bundle_verifies(sigstore: LoopbackSigstore,
                                                      trust_config: Path, model: Path,
                                                      tmp_path: Path) -> None:
    """A bundle made directly with sigstore-python's SigningContext (no modelsign signer)."""
    from sigstore.dsse import Statement as SigstoreStatement
    from sigstore.oidc import IdentityToken

    from modelsign.manifest import hash_model
    from modelsign.statements import oms_statement
    from modelsign.verify import Identity, Trust, verify_model

    payload = oms_statement(hash_model(model)).raw
    with sigstore.signing_context().signer(IdentityToken(sigstore.mint_token(SIGNER))) as s:
        bundle = s.sign_dsse(SigstoreStatement(payload))
    sig = tmp_path / "direct.sig"
    sig.write_text(bundle.to_json())
    result = verify_model(model, signature=sig, trust=Trust.from_trust_config(trust_config),
                          identities=[Identity(identity=SIGNER, issuer=sigstore.url)])
    assert result.verified and result.signer.identity == SIGNER
    assert result.statement.statement.raw == payload
