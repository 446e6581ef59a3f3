"""KeylessSigner against the loopback Sigstore: token precedence, trust configuration, and the
bundle sigstore-python's own verifier accepts. No network: production and staging trust configs
come from the copy inside the sigstore wheel."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sigstore.models import Bundle
from sigstore.verify import policy

from modelsign.errors import InputError
from modelsign.hashing._spec import HashSpec
from modelsign.manifest import Manifest, Resource, Serialization
from modelsign.signing import KeylessSigner, Signer, load_trust_config, sign_manifest
from modelsign.statements import make_statement, oms_statement
from modelsign.testing import LoopbackSigstore


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoopbackSigstore, Path]:
    with LoopbackSigstore() as s:
        tc = s.write_trust_config(tmp_path_factory.mktemp("sigstore") / "trust_config.json")
        yield s, tc


def _manifest() -> Manifest:
    r = [Resource("w.bin", "sha256", hashlib.sha256(b"w").digest())]
    return Manifest.build("m", Serialization.from_spec(HashSpec()), r)


def test_production_and_staging_trust_configs_load_offline() -> None:
    prod = load_trust_config()
    assert "sigstore.dev" in prod.signing_config.get_fulcio().url
    staging = load_trust_config(staging=True)
    assert "sigstage.dev" in staging.signing_config.get_fulcio().url
    with pytest.raises(InputError, match="mutually exclusive"):
        load_trust_config(staging=True, path="tc.json")


def test_bundle_verifies_with_sigstore_python(sigstore: tuple[LoopbackSigstore, Path]) -> None:
    s, tc = sigstore
    signer = KeylessSigner(trust_config=load_trust_config(path=tc),
                           identity_token=s.mint_token("a@modelsign.test"), environ={})
    assert isinstance(signer, Signer)
    st = oms_statement(_manifest())
    b = signer.sign(st)
    assert (b.method, b.identity, b.issuer) == ("sigstore", "a@modelsign.test", s.url)
    assert b.log_index is not None and b.log_index >= 0
    ptype, payload = s.verifier().verify_dsse(
        Bundle.from_json(b.raw), policy.Identity(identity="a@modelsign.test", issuer=s.url))
    assert ptype == "application/vnd.in-toto+json" and payload == st.raw


def test_any_statement_can_be_signed(sigstore: tuple[LoopbackSigstore, Path]) -> None:
    """Claims reuse the signers: a SLSA provenance statement signs the same way."""
    s, tc = sigstore
    st = make_statement("m", {"sha256": "ab" * 32}, "https://slsa.dev/provenance/v1",
                        {"buildDefinition": {"buildType": "https://modelsign.dev/x"}})
    b = KeylessSigner(trust_config=load_trust_config(path=tc),
                      identity_token=s.mint_token("a@modelsign.test"), environ={}).sign(st)
    env = json.loads(b.raw)["dsseEnvelope"]
    assert env["payloadType"] == "application/vnd.in-toto+json"


def test_explicit_token_beats_the_environment(sigstore: tuple[LoopbackSigstore, Path]) -> None:
    s, tc = sigstore
    env = {"SIGSTORE_ID_TOKEN": s.mint_token("env@modelsign.test")}
    explicit = KeylessSigner(trust_config=load_trust_config(path=tc), environ=env,
                             identity_token=s.mint_token("cli@modelsign.test"))
    assert sign_manifest(_manifest(), signer=explicit).identity == "cli@modelsign.test"
    from_env = KeylessSigner(trust_config=load_trust_config(path=tc), environ=env)
    assert sign_manifest(_manifest(), signer=from_env).identity == "env@modelsign.test"


def test_no_token_and_no_interaction_is_a_clear_error(sigstore: tuple[LoopbackSigstore, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "GITLAB_CI", "BUILDKITE",
                 "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)
    _, tc = sigstore
    signer = KeylessSigner(trust_config=load_trust_config(path=tc), environ={},
                           interactive=False)
    with pytest.raises(InputError, match="no identity token") as e:
        sign_manifest(_manifest(), signer=signer)
    assert "\n" not in str(e.value)


def test_token_for_another_audience_is_refused_early(sigstore: tuple[LoopbackSigstore, Path]
                                                     ) -> None:
    s, tc = sigstore
    with pytest.raises(InputError, match="not usable"):
        KeylessSigner(trust_config=load_trust_config(path=tc), environ={},
                      identity_token=s.mint_token("a@modelsign.test", audience="other"))


def test_ct_log_not_in_the_trust_config_fails_with_context(
        sigstore: tuple[LoopbackSigstore, Path], tmp_path: Path) -> None:
    """Fulcio of one instance, trust root of another: the SCT does not verify at signing time."""
    s, _ = sigstore
    with LoopbackSigstore() as other:
        tc = json.loads(Path(other.write_trust_config(tmp_path / "other.json")).read_text())
    mine = json.loads(Path(s.write_trust_config(tmp_path / "mine.json")).read_text())
    mine["trustedRoot"] = tc["trustedRoot"]  # services of `s`, keys of `other`
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(mine))
    signer = KeylessSigner(trust_config=load_trust_config(path=mixed), environ={},
                           identity_token=s.mint_token("a@modelsign.test"))
    with pytest.raises(InputError) as e:
        sign_manifest(_manifest(), signer=signer)
    assert "--trust-config" in str(e.value) and "\n" not in str(e.value)
