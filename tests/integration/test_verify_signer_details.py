"""What the verifier reports about the signer beyond who it is: the Fulcio certificate
extensions (``Signer.extensions``) and the trust anchor the chain ended at
(``Signer.anchor_fingerprint``), for every kind of signature, in the API and in the JSON report.

Keyless signatures are real: a GitHub Actions token minted by the loopback Sigstore, a
certificate from its Fulcio (with the extensions the public Fulcio sets), a Rekor entry, the
sigstore-python client and verifier. Nothing is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from modelsign.signing import (
    CertificateSigner,
    KeylessSigner,
    KeySigner,
    load_trust_config,
    sign_model,
)
from modelsign.testing import GITHUB_ACTIONS_ISSUER, GitHubWorkflow, LoopbackSigstore
from modelsign.testing._pki import make_cert_chain, make_key
from modelsign.verify import Identity, Trust, verify_model

REPO = Path(__file__).resolve().parents[2]
FULCIO = "1.3.6.1.4.1.57264.1."
WORKFLOW = GitHubWorkflow(repository="acme/llama-ft", workflow_file="train.yml",
                          ref="refs/tags/v2.0.0", runner_environment="self-hosted")


def _report_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads((REPO / "schemas" / "verify-report.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    m.mkdir()
    (m / "config.json").write_text('{"layers": 2}\n')
    (m / "weights.bin").write_bytes(bytes(range(256)) * 4)
    return m


def _sha256_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _loopback_fulcio_root(sigstore: LoopbackSigstore) -> str:
    """The fingerprint of the loopback Fulcio's root, read from its trusted root document."""
    (ca,) = sigstore.trusted_root_json()["certificateAuthorities"]
    chain = [base64.b64decode(c["rawBytes"]) for c in ca["certChain"]["certificates"]]
    root = x509.load_der_x509_certificate(chain[-1])
    assert root.issuer == root.subject  # the last one is the self-signed root
    return _sha256_der(chain[-1])


def test_github_workflow_certificate_extensions(model: Path, loopback_sigstore: LoopbackSigstore,
                                                sigstore_trust_config: Path) -> None:
    signer = KeylessSigner(trust_config=load_trust_config(path=sigstore_trust_config),
                           identity_token=loopback_sigstore.mint_github_token(WORKFLOW))
    sign_model(model, signer=signer)
    result = verify_model(model, trust=Trust.from_trust_config(sigstore_trust_config),
                          identities=Identity(issuer=GITHUB_ACTIONS_ISSUER,
                                              identity=WORKFLOW.identity))
    ext = result.signer.extensions
    # v2 (DER UTF8String)
    assert ext[FULCIO + "8"] == GITHUB_ACTIONS_ISSUER
    assert ext[FULCIO + "9"] == WORKFLOW.identity  # Build Signer URI
    assert ext[FULCIO + "11"] == "self-hosted"  # Runner Environment
    assert ext[FULCIO + "12"] == "https://github.com/acme/llama-ft"  # Source Repository URI
    assert ext[FULCIO + "12"] == WORKFLOW.source_repository_uri
    assert ext[FULCIO + "13"] == WORKFLOW.sha  # Source Repository Digest
    assert ext[FULCIO + "14"] == "refs/tags/v2.0.0"  # Source Repository Ref
    assert ext[FULCIO + "18"] == (  # Build Config URI: the workflow ref
        "https://github.com/acme/llama-ft/.github/workflows/train.yml@refs/tags/v2.0.0")
    assert ext[FULCIO + "20"] == "push"  # Build Trigger
    assert ext[FULCIO + "21"] == (
        "https://github.com/acme/llama-ft/actions/runs/1000000001/attempts/1")
    # v1 (raw bytes, deprecated but still issued)
    assert ext[FULCIO + "1"] == GITHUB_ACTIONS_ISSUER
    assert ext[FULCIO + "2"] == "push"
    assert ext[FULCIO + "3"] == WORKFLOW.sha
    assert ext[FULCIO + "4"] == "Release"
    assert ext[FULCIO + "5"] == "acme/llama-ft"
    assert ext[FULCIO + "6"] == "refs/tags/v2.0.0"
    assert FULCIO + "7" not in ext  # the SAN other-name OID is never an extension
    # nothing but Fulcio's arc, and sorted by OID number
    assert all(k.startswith(FULCIO) for k in ext)
    numbers = [int(k.rsplit(".", 1)[1]) for k in ext]
    assert numbers == sorted(numbers) and set(numbers) == {*range(1, 7), *range(8, 23)}

    # read-only and hashable (a Signer is a frozen value)
    with pytest.raises(TypeError):
        ext[FULCIO + "12"] = "https://github.com/evil/x"  # type: ignore[index]
    assert hash(result.signer) == hash(result.signer)

    # the anchor: the loopback Fulcio's root from the trusted root
    assert result.signer.anchor_fingerprint == _loopback_fulcio_root(loopback_sigstore)

    doc = result.to_json()
    _report_schema().validate(doc)
    assert doc["signer"]["extensions"] == dict(ext)
    assert list(doc["signer"]["extensions"]) == list(ext)
    assert doc["signer"]["certificate"]["anchor_sha256"] == result.signer.anchor_fingerprint


def test_plain_identity_has_only_the_issuer_extensions(
        model: Path, loopback_sigstore: LoopbackSigstore, sigstore_trust_config: Path) -> None:
    signer = KeylessSigner(trust_config=load_trust_config(path=sigstore_trust_config),
                           identity_token=loopback_sigstore.mint_token("ml@acme.test"))
    sign_model(model, signer=signer)
    result = verify_model(model, trust=Trust.from_trust_config(sigstore_trust_config),
                          identities=Identity(issuer=loopback_sigstore.url,
                                              identity="ml@acme.test"))
    assert result.signer.extensions == {FULCIO + "1": loopback_sigstore.url,
                                        FULCIO + "8": loopback_sigstore.url}
    assert result.signer.anchor_fingerprint == _loopback_fulcio_root(loopback_sigstore)


def test_the_extensions_come_from_the_verified_certificate_only(
        model: Path, loopback_sigstore: LoopbackSigstore, sigstore_trust_config: Path) -> None:
    """Swapping in a certificate with other extensions breaks the signature: nothing of an
    unverified certificate is ever reported."""
    from modelsign.errors import SignatureError

    github = KeylessSigner(trust_config=load_trust_config(path=sigstore_trust_config),
                           identity_token=loopback_sigstore.mint_github_token(WORKFLOW))
    sign_model(model, signer=github)
    genuine = json.loads((model / "model.sig").read_text())
    other = model.parent / "other"
    other.mkdir()
    (other / "x").write_text("x")
    evil = GitHubWorkflow(repository="evil/llama-ft")
    sign_model(other, signer=KeylessSigner(
        trust_config=load_trust_config(path=sigstore_trust_config),
        identity_token=loopback_sigstore.mint_github_token(evil)))
    evil_cert = json.loads((other / "model.sig").read_text())[
        "verificationMaterial"]["certificate"]
    genuine["verificationMaterial"]["certificate"] = evil_cert
    (model / "model.sig").write_text(json.dumps(genuine))
    with pytest.raises(SignatureError):
        verify_model(model, trust=Trust.from_trust_config(sigstore_trust_config),
                     unsafe_skip_identity=True)


def test_key_signature_has_no_extensions_and_no_anchor(model: Path, tmp_path: Path) -> None:
    key = make_key(tmp_path / "keys", "release")
    sign_model(model, signer=KeySigner.from_pem_file(key.private))
    result = verify_model(model, key=key.public)
    assert result.signer.extensions == {} and len(result.signer.extensions) == 0
    assert result.signer.anchor_fingerprint is None
    doc = result.to_json()
    _report_schema().validate(doc)
    assert doc["signer"]["extensions"] == {} and doc["signer"]["certificate"] is None


def test_certificate_chain_anchor_is_the_cert_chain_certificate_it_ended_at(
        model: Path, tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path / "pki")
    sign_model(model, signer=CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain]))

    def fingerprint(pem: Path) -> str:
        return _sha256_der(x509.load_pem_x509_certificate(pem.read_bytes())
                           .public_bytes(serialization.Encoding.DER))

    by_root = verify_model(model, cert_chain=[pki.root])
    assert by_root.signer.anchor_fingerprint == fingerprint(pki.root)
    assert by_root.signer.extensions == {}  # the test PKI sets no Fulcio extensions
    # the intermediate given as the anchor: the chain ends there
    by_intermediate = verify_model(model, cert_chain=[pki.intermediate])
    assert by_intermediate.signer.anchor_fingerprint == fingerprint(pki.intermediate)
    # another CA with the same subject name: same issuer string, different anchor
    other = make_cert_chain(tmp_path / "other-pki")
    assert x509.load_pem_x509_certificate(other.root.read_bytes()).subject == \
        x509.load_pem_x509_certificate(pki.root.read_bytes()).subject
    assert by_root.signer.anchor_fingerprint != fingerprint(other.root)
    doc = by_root.to_json()
    _report_schema().validate(doc)
    assert doc["signer"]["certificate"]["anchor_sha256"] == fingerprint(pki.root)


def test_production_fixture_anchor_is_the_sigstore_root(shared_fixtures: Path) -> None:
    """The real v1.0.1 signature chains to the public-good Fulcio root of 2021-10 (not the
    retired 2021-03 root, which has the same subject)."""
    result = verify_model(shared_fixtures / "oms-peer" / "v1.0.1-sigstore",
                          identities=Identity(identity="stefanb@us.ibm.com",
                                              issuer="https://sigstore.verify.ibm.com/oauth2"),
                          ignore_paths=["ignore-me"])
    assert result.signer.anchor_fingerprint == (
        "3ba7b6cc4e95469d4d334b49cb257ad8537076fa84b0ca87ff4ecfe6a54680c1")
    assert result.signer.extensions == {
        FULCIO + "1": "https://sigstore.verify.ibm.com/oauth2",
        FULCIO + "8": "https://sigstore.verify.ibm.com/oauth2"}
