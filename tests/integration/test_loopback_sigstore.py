"""modelsign.testing's loopback Sigstore, driven by the real sigstore-python client and verifier.

Everything here talks to 127.0.0.1 only (a guard below fails any other connection).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import ipaddress
import json
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography import x509
from sigstore import dsse
from sigstore.errors import VerificationError
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.oidc import IdentityToken, detect_credential
from sigstore.sign import SigningContext
from sigstore.verify import Verifier, policy

from modelsign.testing import (
    GITHUB_ACTIONS_ISSUER,
    CertificateFault,
    GitHubWorkflow,
    LoopbackSigstore,
)
from modelsign.testing._sigstore import _MerkleTree

if TYPE_CHECKING:
    from modelsign.testing.pytest_plugin import GitHubActionsAmbient, TokenFactory

pytest_plugins = ["modelsign.testing.pytest_plugin"]

ALICE = "alice@modelsign.test"
MALLORY = "mallory@modelsign.test"
WORKFLOW_URI = "https://github.com/acme/model/.github/workflows/train.yml@refs/heads/main"
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SOURCE_REPOSITORY_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection that would leave this machine."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"test tried to reach {host}: tests must stay offline")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="module")
def foreign_sigstore() -> Iterator[LoopbackSigstore]:
    """A second, independent Sigstore: its root must mean nothing to the first one."""
    with LoopbackSigstore() as sigstore:
        yield sigstore


def statement(name: str = "model", content: bytes = b"weights") -> dsse.Statement:
    return (dsse.StatementBuilder()
            .subjects([dsse.Subject(name=name,
                                    digest={"sha256": hashlib.sha256(content).hexdigest()})])
            .predicate_type("https://model_signing/signature/v1.0")
            .predicate({"serialization": {"method": "files", "hash_type": "sha256"}})
            .build())


def sign_dsse(sigstore: LoopbackSigstore, token: str,
              stmt: dsse.Statement | None = None) -> Bundle:
    with sigstore.signing_context().signer(IdentityToken(token)) as signer:
        bundle = signer.sign_dsse(stmt or statement())
    return Bundle.from_json(bundle.to_json())  # what a verifier reads back from disk


def edit_bundle(bundle: Bundle, edit: Any) -> Bundle:
    document = json.loads(bundle.to_json())
    edit(document)
    return Bundle.from_json(json.dumps(document))


def flip_base64(text: str, at: int = 12) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def request(sigstore: LoopbackSigstore, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    parts = urllib.parse.urlsplit(sigstore.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode()


# ------------------------------------------------------------------------------ happy paths
def test_dsse_statement_signed_by_real_client_verifies_with_identity_policy(
        loopback_sigstore: LoopbackSigstore, sigstore_trust_config: Path,
        identity_token: TokenFactory) -> None:
    trust_config = ClientTrustConfig.from_json(sigstore_trust_config.read_text())
    stmt = statement()
    with SigningContext.from_trust_config(trust_config).signer(
            IdentityToken(identity_token(ALICE))) as signer:
        bundle = Bundle.from_json(signer.sign_dsse(stmt).to_json())

    payload_type, payload = Verifier(trusted_root=trust_config.trusted_root).verify_dsse(
        bundle, policy.Identity(identity=ALICE, issuer=loopback_sigstore.url))

    assert payload_type == "application/vnd.in-toto+json"
    assert payload == stmt._contents
    entry = bundle.log_entry._inner
    assert (entry.kind_version.kind, entry.kind_version.version) == ("dsse", "0.0.1")
    assert entry.inclusion_proof.checkpoint is not None
    assert entry.inclusion_proof.checkpoint.envelope
    assert entry.inclusion_promise is not None
    assert entry.inclusion_promise.signed_entry_timestamp
    cert = bundle.signing_certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [ALICE]


def test_uri_identity_github_workflow_style_verifies(loopback_sigstore: LoopbackSigstore,
                                                      identity_token: TokenFactory) -> None:
    bundle = sign_dsse(loopback_sigstore, identity_token(WORKFLOW_URI))

    loopback_sigstore.verifier().verify_dsse(
        bundle, policy.Identity(identity=WORKFLOW_URI, issuer=loopback_sigstore.url))
    san = bundle.signing_certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WORKFLOW_URI]


def test_many_signatures_give_varied_tree_shapes_and_all_verify() -> None:
    """Entries 1..n are proven against trees of size 1..n: proofs of every length and side."""
    contents = [f"artifact {i}".encode() for i in range(19)]
    with LoopbackSigstore() as sigstore:
        with sigstore.signing_context().signer(IdentityToken(sigstore.mint_token(ALICE))) as s:
            bundles = [s.sign_artifact(c) if i % 2 else s.sign_dsse(statement(content=c))
                       for i, c in enumerate(contents)]
        verifier = sigstore.verifier()
        identity = policy.Identity(identity=ALICE, issuer=sigstore.url)
        proofs = []
        for i, (content, signed) in enumerate(zip(contents, bundles, strict=True)):
            bundle = Bundle.from_json(signed.to_json())
            if i % 2:
                verifier.verify_artifact(content, bundle, identity)
            else:
                verifier.verify_dsse(bundle, identity)
            proof = bundle.log_entry._inner.inclusion_proof
            proofs.append((proof.log_index, proof.tree_size, len(proof.hashes)))
        assert sigstore.log_size == len(contents)
    assert [(index, size) for index, size, _ in proofs] == [(i, i + 1) for i in range(19)]
    assert {length for _, _, length in proofs} == {0, 1, 2, 3, 4}


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH, straight from its recursive definition."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _root_from_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: recompute the root from an inclusion proof."""
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        assert sn != 0, "proof too long"
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0, "proof too short"
    return r


def test_merkle_proofs_match_rfc_9162_for_every_leaf_of_every_size_up_to_70() -> None:
    tree = _MerkleTree()
    leaves = [hashlib.sha256(b"\x00" + bytes([i])).digest() for i in range(70)]
    assert tree.root(0) == hashlib.sha256(b"").digest()
    for leaf in leaves:
        tree.append(leaf)
        size = len(tree)
        root = _mth(leaves[:size])
        assert tree.root(size) == root
        for index in range(size):
            assert _root_from_proof(index, size, leaves[index],
                                    tree.inclusion_proof(index, size)) == root
    # Proofs for an older size stay valid after the tree grew (cached subtrees are immutable).
    assert _root_from_proof(5, 13, leaves[5], tree.inclusion_proof(5, 13)) == _mth(leaves[:13])


def test_concurrent_signers_get_distinct_entries_that_all_verify() -> None:
    with LoopbackSigstore() as sigstore:
        context = sigstore.signing_context()

        def sign(i: int) -> Bundle:
            token = IdentityToken(sigstore.mint_token(f"worker{i}@modelsign.test"))
            with context.signer(token) as signer:
                return signer.sign_dsse(statement(content=bytes([i])))

        with ThreadPoolExecutor(max_workers=8) as pool:
            bundles = list(pool.map(sign, range(16)))
        verifier = sigstore.verifier()
        for i, bundle in enumerate(bundles):
            verifier.verify_dsse(bundle, policy.Identity(identity=f"worker{i}@modelsign.test",
                                                         issuer=sigstore.url))
        assert sorted(b.log_entry._inner.log_index for b in bundles) == list(range(16))


def test_injected_clock_dates_certificate_and_log_entry() -> None:
    then = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
    with LoopbackSigstore(clock=lambda: then) as sigstore:
        bundle = sign_dsse(sigstore, sigstore.mint_token(ALICE))
        sigstore.verifier().verify_dsse(bundle, policy.Identity(identity=ALICE,
                                                                issuer=sigstore.url))
    assert bundle.log_entry._inner.integrated_time == int(then.timestamp())
    assert bundle.signing_certificate.not_valid_before_utc == then
    # ... and valid until after the wall clock's now, or sigstore's client would not use it.
    assert bundle.signing_certificate.not_valid_after_utc > dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------- rejections
def test_wrong_identity_is_rejected(loopback_sigstore: LoopbackSigstore,
                                    identity_token: TokenFactory) -> None:
    bundle = sign_dsse(loopback_sigstore, identity_token(ALICE))
    with pytest.raises(VerificationError, match="SANs do not match"):
        loopback_sigstore.verifier().verify_dsse(
            bundle, policy.Identity(identity=MALLORY, issuer=loopback_sigstore.url))


def test_wrong_issuer_is_rejected(loopback_sigstore: LoopbackSigstore,
                                  identity_token: TokenFactory) -> None:
    bundle = sign_dsse(loopback_sigstore, identity_token(ALICE))
    with pytest.raises(VerificationError, match="OIDCIssuer does not match"):
        loopback_sigstore.verifier().verify_dsse(
            bundle, policy.Identity(identity=ALICE, issuer="https://accounts.google.com"))


def test_tampered_payload_is_rejected(loopback_sigstore: LoopbackSigstore,
                                      identity_token: TokenFactory) -> None:
    bundle = sign_dsse(loopback_sigstore, identity_token(ALICE))
    evil = base64.b64encode(statement(content=b"backdoored weights")._contents).decode()

    def swap_payload(document: dict[str, Any]) -> None:
        document["dsseEnvelope"]["payload"] = evil

    with pytest.raises(VerificationError, match="invalid signature"):
        loopback_sigstore.verifier().verify_dsse(
            edit_bundle(bundle, swap_payload),
            policy.Identity(identity=ALICE, issuer=loopback_sigstore.url))


def test_foreign_trust_root_rejects_our_signature(loopback_sigstore: LoopbackSigstore,
                                                  foreign_sigstore: LoopbackSigstore,
                                                  identity_token: TokenFactory) -> None:
    bundle = sign_dsse(loopback_sigstore, identity_token(ALICE))
    with pytest.raises(VerificationError, match="certificate chain"):
        foreign_sigstore.verifier().verify_dsse(
            bundle, policy.Identity(identity=ALICE, issuer=loopback_sigstore.url))


def test_signature_from_foreign_sigstore_is_rejected(loopback_sigstore: LoopbackSigstore,
                                                     foreign_sigstore: LoopbackSigstore) -> None:
    """Same identity, same issuer URL claimed, but a CA and log our root does not list."""
    bundle = sign_dsse(foreign_sigstore,
                       foreign_sigstore.mint_token(ALICE, issuer=loopback_sigstore.url))
    with pytest.raises(VerificationError, match="certificate chain"):
        loopback_sigstore.verifier().verify_dsse(
            bundle, policy.Identity(identity=ALICE, issuer=loopback_sigstore.url))


def _tamper_set(entry: dict[str, Any]) -> None:
    promise = entry["inclusionPromise"]
    promise["signedEntryTimestamp"] = flip_base64(promise["signedEntryTimestamp"], at=-3)


def _tamper_integrated_time(entry: dict[str, Any]) -> None:
    # Later, but still within the certificate's validity: only the SET can catch it.
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 60)


def _tamper_proof_hash(entry: dict[str, Any]) -> None:
    proof = entry["inclusionProof"]
    proof["rootHash"] = flip_base64(proof["rootHash"])


def _tamper_checkpoint(entry: dict[str, Any]) -> None:
    checkpoint = entry["inclusionProof"]["checkpoint"]
    body, _, signature_line = checkpoint["envelope"].rstrip("\n").rpartition("\n")
    prefix, _, signature = signature_line.rpartition(" ")
    checkpoint["envelope"] = f"{body}\n{prefix} {flip_base64(signature, at=-2)}\n"


@pytest.mark.parametrize(("tamper", "reason"), [
    (_tamper_set, "SET"),
    (_tamper_integrated_time, "SET"),
    (_tamper_proof_hash, "inclusion proof"),
    (_tamper_checkpoint, "checkpoint"),
], ids=["signed_entry_timestamp", "integrated_time", "root_hash", "checkpoint_signature"])
def test_tampered_log_entry_is_rejected(loopback_sigstore: LoopbackSigstore,
                                        identity_token: TokenFactory, tamper: Any,
                                        reason: str) -> None:
    bundle = sign_dsse(loopback_sigstore, identity_token(ALICE))

    def edit(document: dict[str, Any]) -> None:
        tamper(document["verificationMaterial"]["tlogEntries"][0])

    with pytest.raises(VerificationError, match=reason):
        loopback_sigstore.verifier().verify_dsse(
            edit_bundle(bundle, edit),
            policy.Identity(identity=ALICE, issuer=loopback_sigstore.url))


@pytest.mark.parametrize(("fault", "reason"), [
    (CertificateFault.EXPIRED, "not valid at validation time"),
    (CertificateFault.NOT_YET_VALID, "not valid at validation time"),
    (CertificateFault.UNTRUSTED_CA, "candidates exhausted"),
])
def test_defective_certificate_is_logged_but_rejected(loopback_sigstore: LoopbackSigstore,
                                                      identity_token: TokenFactory,
                                                      fault: CertificateFault,
                                                      reason: str) -> None:
    bundle = sign_dsse(loopback_sigstore, identity_token(ALICE, certificate_fault=fault))
    assert bundle.log_entry._inner.inclusion_promise is not None  # the log took it
    with pytest.raises(VerificationError, match=reason):
        loopback_sigstore.verifier().verify_dsse(
            bundle, policy.Identity(identity=ALICE, issuer=loopback_sigstore.url))


def test_expired_certificate_fault_logs_after_expiry(loopback_sigstore: LoopbackSigstore,
                                                     identity_token: TokenFactory) -> None:
    bundle = sign_dsse(loopback_sigstore,
                       identity_token(ALICE, certificate_fault=CertificateFault.EXPIRED))
    logged = bundle.log_entry._inner.integrated_time
    assert logged is not None
    assert logged > bundle.signing_certificate.not_valid_after_utc.timestamp()


# ----------------------------------------------------------------- GitHub Actions identities
def test_github_actions_ambient_credential_signs_with_workflow_extensions(
        loopback_sigstore: LoopbackSigstore,
        github_actions_ambient: GitHubActionsAmbient) -> None:
    workflow = github_actions_ambient(GitHubWorkflow(repository="acme/llama-ft",
                                                     workflow_file="train.yml"))
    raw = detect_credential()  # sigstore -> id -> GET ACTIONS_ID_TOKEN_REQUEST_URL
    assert raw is not None
    token = IdentityToken(raw)
    assert token.issuer == GITHUB_ACTIONS_ISSUER

    bundle = sign_dsse(loopback_sigstore, raw)

    loopback_sigstore.verifier().verify_dsse(bundle, policy.AllOf([
        policy.Identity(identity=workflow.identity, issuer=GITHUB_ACTIONS_ISSUER),
        policy.OIDCSourceRepositoryURI("https://github.com/acme/llama-ft"),
        policy.OIDCBuildSignerURI(workflow.identity),
        policy.OIDCRunnerEnvironment("github-hosted"),
        policy.OIDCSourceRepositoryRef("refs/heads/main"),
        policy.GitHubWorkflowRepository("acme/llama-ft"),
        policy.GitHubWorkflowTrigger("push"),
    ]))
    assert workflow.identity == ("https://github.com/acme/llama-ft/.github/workflows/"
                                 "train.yml@refs/heads/main")


@pytest.mark.parametrize("pin", [
    policy.OIDCSourceRepositoryURI("https://github.com/evil/llama-ft"),
    policy.OIDCRunnerEnvironment("github-hosted"),
    policy.OIDCSourceRepositoryRef("refs/tags/v1.0"),
], ids=["other_repository", "self_hosted_runner", "other_ref"])
def test_github_pins_reject_other_workflow_runs(loopback_sigstore: LoopbackSigstore,
                                                pin: policy.VerificationPolicy) -> None:
    workflow = GitHubWorkflow(repository="acme/llama-ft", runner_environment="self-hosted")
    bundle = sign_dsse(loopback_sigstore, loopback_sigstore.mint_github_token(workflow))
    verifier = loopback_sigstore.verifier()
    identity = policy.Identity(identity=workflow.identity, issuer=GITHUB_ACTIONS_ISSUER)
    verifier.verify_dsse(bundle, identity)  # the identity alone is fine ...
    with pytest.raises(VerificationError, match="does not match"):  # ... the pin refuses
        verifier.verify_dsse(bundle, policy.AllOf([identity, pin]))


def test_github_certificate_extensions_use_fulcio_encodings(
        loopback_sigstore: LoopbackSigstore) -> None:
    workflow = GitHubWorkflow()
    bundle = sign_dsse(loopback_sigstore, loopback_sigstore.mint_github_token(workflow))
    extensions = bundle.signing_certificate.extensions

    def raw(oid: x509.ObjectIdentifier) -> bytes:
        value = extensions.get_extension_for_oid(oid).value
        assert isinstance(value, x509.UnrecognizedExtension)
        return value.value

    uri = workflow.source_repository_uri.encode()
    assert raw(SOURCE_REPOSITORY_URI) == b"\x0c" + bytes([len(uri)]) + uri  # DER UTF8String
    issuer = GITHUB_ACTIONS_ISSUER.encode()
    assert raw(OIDC_ISSUER_V2) == b"\x0c" + bytes([len(issuer)]) + issuer
    assert raw(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")) == issuer  # v1: raw bytes


# ------------------------------------------------------------------------- the OIDC issuer
def test_token_endpoint_mints_tokens_verifiable_through_discovery(
        loopback_sigstore: LoopbackSigstore) -> None:
    status, raw = request(loopback_sigstore, "GET", "/token?sub=carol@modelsign.test")
    assert status == 200
    token = IdentityToken(raw)
    assert (token.identity, token.issuer) == ("carol@modelsign.test", loopback_sigstore.url)

    _, discovery = request(loopback_sigstore, "GET", "/.well-known/openid-configuration")
    assert discovery["issuer"] == loopback_sigstore.url
    jwks_path = urllib.parse.urlsplit(discovery["jwks_uri"]).path
    _, jwks = request(loopback_sigstore, "GET", jwks_path)
    key = jwt.PyJWK(jwks["keys"][0])
    assert jwt.get_unverified_header(raw)["kid"] == key.key_id
    claims = jwt.decode(raw, key.key, algorithms=["ES256"], audience="sigstore",
                        issuer=loopback_sigstore.url)
    assert claims["email_verified"] is True


def _csr_request() -> dict[str, str]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM)
    return {"certificateSigningRequest": base64.b64encode(pem).decode()}


@pytest.mark.parametrize("case", ["forged_signature", "expired", "wrong_audience",
                                  "unverified_email", "no_token"])
def test_fulcio_refuses_bad_identity_tokens(loopback_sigstore: LoopbackSigstore,
                                            foreign_sigstore: LoopbackSigstore,
                                            case: str) -> None:
    tokens = {
        "forged_signature": foreign_sigstore.mint_token(ALICE, issuer=loopback_sigstore.url),
        "expired": loopback_sigstore.mint_token(ALICE, ttl=-60),
        "wrong_audience": loopback_sigstore.mint_token(ALICE, audience="not-sigstore"),
        "unverified_email": loopback_sigstore.mint_token(ALICE, extra={"email_verified": False}),
    }
    headers = {"Content-Type": "application/json"}
    if case in tokens:
        headers["Authorization"] = f"Bearer {tokens[case]}"
    status, body = request(loopback_sigstore, "POST", "/api/v2/signingCert",
                           json.dumps(_csr_request()).encode(), headers)
    assert status == 401, body
    assert body["code"] == 401
    assert body["message"]


@pytest.mark.parametrize("subject", ["just-a-name", "repo:acme/model:ref:refs/heads/main"])
def test_fulcio_refuses_a_subject_that_is_neither_email_nor_uri(
        loopback_sigstore: LoopbackSigstore, subject: str) -> None:
    token = loopback_sigstore.mint_token(subject, email=False)
    status, body = request(loopback_sigstore, "POST", "/api/v2/signingCert",
                           json.dumps(_csr_request()).encode(),
                           {"Authorization": f"Bearer {token}"})
    assert status == 400
    assert "not a URI" in body["message"]


# ------------------------------------------------------------------------ bounded requests
@pytest.fixture(scope="module")
def small_sigstore() -> Iterator[LoopbackSigstore]:
    with LoopbackSigstore(max_request_bytes=4096) as sigstore:
        yield sigstore


def test_oversized_body_is_refused_before_it_is_read(small_sigstore: LoopbackSigstore) -> None:
    parts = urllib.parse.urlsplit(small_sigstore.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        # Announce 1 GiB and send none of it: the answer must come without waiting for it.
        sock.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1073741824\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.0 413")


@pytest.mark.parametrize(("body", "headers", "status"), [
    (None, {}, 411),
    (b"{}", {"Transfer-Encoding": "chunked"}, 411),
    (b"{not json", {}, 400),
    (b"[" * 1500 + b"]" * 1500, {}, 400),
    (b'{"kind": "intoto", "apiVersion": "0.0.1", "spec": {}}', {}, 400),
    (b'{"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {}}', {}, 400),
], ids=["no_length", "chunked", "not_json", "deeply_nested", "unsupported_kind",
        "missing_fields"])
def test_bad_log_requests_get_json_errors(small_sigstore: LoopbackSigstore, body: bytes | None,
                                          headers: dict[str, str], status: int) -> None:
    parts = urllib.parse.urlsplit(small_sigstore.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/v1/log/entries")
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None and "Transfer-Encoding" not in headers:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if "Transfer-Encoding" not in headers else None)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert (response.status, answer["code"]) == (status, status)
    assert small_sigstore.running  # and the server keeps serving
    assert request(small_sigstore, "GET", "/api/v1/log")[0] == 200


def test_replayed_log_entry_is_refused(small_sigstore: LoopbackSigstore) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(b"weights").digest()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    proposed = json.dumps({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        "signature": {
            "content": base64.b64encode(
                key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))).decode(),
            "publicKey": {"content": base64.b64encode(public_pem).decode()}}}}).encode()
    headers = {"Content-Type": "application/json"}

    status, first = request(small_sigstore, "POST", "/api/v1/log/entries", proposed, headers)
    assert status == 201
    status, again = request(small_sigstore, "POST", "/api/v1/log/entries", proposed, headers)
    assert status == 409, again

    (uuid, entry), = first.items()
    status, fetched = request(small_sigstore, "GET", f"/api/v1/log/entries/{uuid}")
    assert status == 200
    assert fetched[uuid]["logIndex"] == entry["logIndex"]
    assert fetched[uuid]["verification"]["signedEntryTimestamp"] == \
        entry["verification"]["signedEntryTimestamp"]
    assert request(small_sigstore, "GET", "/api/v1/log/entries/" + "0" * 64)[0] == 404
    assert request(small_sigstore, "GET", "/no/such/route")[0] == 404


# ------------------------------------------------------------------- lifecycle and trust files
def test_lifecycle_binds_loopback_only_and_refuses_restart(tmp_path: Path) -> None:
    sigstore = LoopbackSigstore()
    with pytest.raises(RuntimeError, match="not started"):
        _ = sigstore.url
    with sigstore:
        assert sigstore.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already running"):
            sigstore.start()
        port = int(sigstore.url.rsplit(":", 1)[1])
        trust_config = sigstore.write_trust_config(tmp_path / "a" / "trust_config.json")
        trusted_root = sigstore.write_trusted_root(tmp_path / "trusted_root.json")
    assert not sigstore.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(RuntimeError, match="stopped"):
        sigstore.start()
    sigstore.stop()  # idempotent
    # The written trust material outlives the server: verification is offline.
    assert ClientTrustConfig.from_json(trust_config.read_text()).trusted_root
    assert TrustedRoot.from_file(str(trusted_root))
    assert not list(tmp_path.glob("**/.*"))  # no temporary files left behind


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        LoopbackSigstore(port=70000)
    with pytest.raises(ValueError, match="timezone"):
        LoopbackSigstore(clock=lambda: dt.datetime(2024, 1, 1))  # naive: the point
    with pytest.raises(ValueError, match="repository"):
        GitHubWorkflow(repository="no-slash")


def test_servers_do_not_share_state() -> None:
    with LoopbackSigstore() as one, LoopbackSigstore() as two:
        sign_dsse(one, one.mint_token(ALICE))
        assert (one.log_size, two.log_size) == (1, 0)
        a, b = one.trusted_root_json(), two.trusted_root_json()
        assert a["tlogs"][0]["logId"] != b["tlogs"][0]["logId"]
        assert a["certificateAuthorities"][0]["certChain"] != \
            b["certificateAuthorities"][0]["certChain"]
