"""Attacks on keyless (Sigstore) signatures, against real Sigstore protocol code: the
sigstore-python client signs against :class:`modelsign.testing.LoopbackSigstore` (Fulcio, Rekor,
an OIDC issuer) and the real sigstore verifier checks, with modelsign's identity rules on top.

Anyone can get a valid Sigstore signature; what matters is *who* (identity + issuer), *under
which root*, and *when* (the transparency log's time).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelsign.errors import IdentityError, SignatureError, SignatureFormatError
from modelsign.signing import KeylessSigner, load_trust_config, sign_model
from modelsign.testing import CertificateFault, LoopbackSigstore
from modelsign.verify import Identity, Trust, verify_model

from .conftest import bundle_json, dump, make_model, rejected, write_sig

PUBLISHER = "release@acme.example"
MALLORY = "mallory@evil.example"


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoopbackSigstore, Path]]:
    """A second, independent Sigstore: a foreign root of trust."""
    with LoopbackSigstore() as s:
        yield s, s.write_trust_config(tmp_path_factory.mktemp("foreign") / "tc.json")


def _keyless(sigstore: LoopbackSigstore, trust_config: Path, identity: str,
             **token: object) -> KeylessSigner:
    return KeylessSigner(trust_config=load_trust_config(path=trust_config),
                         identity_token=sigstore.mint_token(identity, **token),  # type: ignore[arg-type]
                         ambient=False, interactive=False)


def _rule(sigstore: LoopbackSigstore, identity: str = PUBLISHER) -> list[Identity]:
    return [Identity(issuer=sigstore.url, identity=identity)]


@pytest.fixture
def keyless_model(tmp_path: Path, loopback_sigstore: LoopbackSigstore,
                  sigstore_trust_config: Path) -> Path:
    m = make_model(tmp_path / "m")
    sign_model(m, signer=_keyless(loopback_sigstore, sigstore_trust_config, PUBLISHER))
    return m


def test_sigstore_certificate_from_a_foreign_root(tmp_path: Path,
                                                  loopback_sigstore: LoopbackSigstore,
                                                  sigstore_trust_config: Path,
                                                  foreign: tuple[LoopbackSigstore, Path]) -> None:
    """Another Sigstore deployment (same identity string, same issuer URL spelled in the rule)
    certified the attacker's signature; the consumer trusts only their own root."""
    other, other_tc = foreign
    m = make_model(tmp_path / "m")
    sign_model(m, signer=_keyless(other, other_tc, PUBLISHER, issuer=loopback_sigstore.url))
    with rejected(SignatureError, "does not chain to the trusted root"):
        verify_model(m, identities=_rule(loopback_sigstore),
                     trust=Trust.from_trust_config(sigstore_trust_config))


def test_keyless_signature_by_a_stranger(tmp_path: Path, loopback_sigstore: LoopbackSigstore,
                                         sigstore_trust_config: Path) -> None:
    """Mallory has an account at the same issuer and signs tampered weights."""
    m = make_model(tmp_path / "m", seed=7)
    sign_model(m, signer=_keyless(loopback_sigstore, sigstore_trust_config, MALLORY))
    with rejected(IdentityError, "wrong identity: signed by 'mallory@evil.example'"):
        verify_model(m, identities=_rule(loopback_sigstore),
                     trust=Trust.from_trust_config(sigstore_trust_config))


def test_keyless_same_identity_from_another_issuer(tmp_path: Path,
                                                   loopback_sigstore: LoopbackSigstore,
                                                   sigstore_trust_config: Path) -> None:
    """The publisher's e-mail address, vouched for by an issuer the attacker controls (Fulcio
    certifies tokens of every issuer it federates with)."""
    m = make_model(tmp_path / "m", seed=8)
    sign_model(m, signer=_keyless(loopback_sigstore, sigstore_trust_config, PUBLISHER,
                                  issuer="https://idp.evil.example"))
    with rejected(IdentityError, "wrong issuer: signed by 'release@acme.example' from issuer "
                                 "'https://idp.evil.example'"):
        verify_model(m, identities=_rule(loopback_sigstore),
                     trust=Trust.from_trust_config(sigstore_trust_config))


def test_keyless_bundle_without_a_log_entry(keyless_model: Path,
                                            loopback_sigstore: LoopbackSigstore,
                                            sigstore_trust_config: Path) -> None:
    """The transparency-log entry is stripped: the short-lived certificate has expired by the
    time anyone verifies, and nothing proves it signed while valid."""
    obj = bundle_json((keyless_model / "model.sig").read_bytes())
    obj["verificationMaterial"]["tlogEntries"] = []
    write_sig(keyless_model, dump(obj))
    with rejected(SignatureFormatError, "not a valid Sigstore bundle"):
        verify_model(keyless_model, identities=_rule(loopback_sigstore),
                     trust=Trust.from_trust_config(sigstore_trust_config))


def test_keyless_certificate_expired_when_logged(tmp_path: Path,
                                                 loopback_sigstore: LoopbackSigstore,
                                                 sigstore_trust_config: Path) -> None:
    """The log entry was made after the signing certificate had expired (a stolen, expired
    certificate key used later)."""
    m = make_model(tmp_path / "m")
    sign_model(m, signer=_keyless(loopback_sigstore, sigstore_trust_config, PUBLISHER,
                                  certificate_fault=CertificateFault.EXPIRED))
    with rejected(SignatureError, "transparency log time lies outside the signing "
                                  "certificate's validity"):
        verify_model(m, identities=_rule(loopback_sigstore),
                     trust=Trust.from_trust_config(sigstore_trust_config))


def test_keyless_log_time_rewritten(keyless_model: Path, loopback_sigstore: LoopbackSigstore,
                                    sigstore_trust_config: Path) -> None:
    """The attacker edits the log entry's integrated time (to make an old signature look
    fresh for a maxAge rule): the signed entry timestamp no longer verifies."""
    obj = bundle_json((keyless_model / "model.sig").read_bytes())
    entry = obj["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 60)
    write_sig(keyless_model, dump(obj))
    with rejected(SignatureError, "does not verify"):
        verify_model(keyless_model, identities=_rule(loopback_sigstore),
                     trust=Trust.from_trust_config(sigstore_trust_config))


# ------------------------------------------------------------------------------- rollback
class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _policy(tmp: Path, sigstore: LoopbackSigstore, max_age: str) -> Path:
    p = tmp / "policy.yaml"
    p.write_text(f"apiVersion: modelsign/v1\nkind: ModelPolicy\n"
                 f"signers:\n  - {{issuer: \"{sigstore.url}\", identity: {PUBLISHER}}}\n"
                 f"maxAge: {max_age}\n")
    return p


def test_rollback_to_an_older_signature_of_the_same_model(tmp_path: Path) -> None:
    """The publisher signed v1 400 days ago and v2 today (a security fix). A mirror serves v1
    with its genuine signature. That signature is valid -- modelsign cannot know a newer one
    exists -- so it reports the signing time from the transparency log, and a policy with
    ``maxAge`` refuses it."""
    from modelsign.policy import build_facts, evaluate, load_policy

    wall = datetime.now(UTC)
    clock = _Clock(wall - timedelta(days=400))
    with LoopbackSigstore(clock=clock) as s:
        tc = s.write_trust_config(tmp_path / "tc.json")
        v1 = make_model(tmp_path / "v1", seed=1)
        sign_model(v1, signer=_keyless(s, tc, PUBLISHER))
        clock.now = wall
        v2 = make_model(tmp_path / "v2", seed=2)
        sign_model(v2, signer=_keyless(s, tc, PUBLISHER))
        trust = Trust.from_trust_config(tc)
        old = verify_model(v1, identities=_rule(s), trust=trust)
        new = verify_model(v2, identities=_rule(s), trust=trust)
    assert old.signer.integrated_time is not None and new.signer.integrated_time is not None
    assert old.signer.integrated_time < wall - timedelta(days=399)
    assert json.loads(json.dumps(old.to_json()))["signer"]["integrated_time"].startswith(
        str((wall - timedelta(days=400)).year))
    policy = load_policy(_policy(tmp_path, s, "365d"))
    report = evaluate(policy, build_facts(old, sniff_files=False), clock=lambda: wall)
    assert report.verdict == "fail"
    rule = next(r for r in report.rules if r.rule == "maxAge")
    assert rule.status == "fail"
    assert "model.sig was signed 400 days ago (transparency-log time" in rule.reason
    fresh = evaluate(policy, build_facts(new, sniff_files=False), clock=lambda: wall)
    assert fresh.verdict == "pass"
