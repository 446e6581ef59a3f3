"""Attacks on ``model.sig`` itself: forged, replayed, confused and oversized bundles.

Malicious bundles are honest ones: the DSSE signatures in them are real ECDSA signatures by the
publisher's (or a stranger's) key over exactly the bytes shown, so a rejection is the verifier
refusing the *content*, not a broken signature by accident.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign.claims import attest
from modelsign.errors import SignatureError, SignatureFormatError
from modelsign.manifest import MAX_RESOURCES
from modelsign.signing import CertificateSigner
from modelsign.statements import OMS_PREDICATE_TYPE
from modelsign.statements._bundle import BUNDLE_MEDIA_TYPE, MAX_BUNDLE_BYTES, pae
from modelsign.statements._json import MAX_JSON_DEPTH
from modelsign.testing._pki import make_cert_chain
from modelsign.verify import Identity, verify_model

from .conftest import (
    IN_TOTO,
    Party,
    b64,
    bundle_json,
    dump,
    make_model,
    oms_statement_obj,
    payload_of,
    rejected,
    resource,
    sign,
    signed_obj,
    signed_raw,
    write_sig,
)


def _ecdsa(party: Party, data: bytes) -> bytes:
    return party.signer._key.sign(data, ec.ECDSA(hashes.SHA256()))


def _honest_payload(model: Path) -> bytes:
    """The payload the publisher signed for ``model`` (read from its real model.sig)."""
    return payload_of((model / "model.sig").read_bytes())


def _envelope_bundle(payload_type: str, payload: bytes, sigs: list[bytes], hint: str) -> bytes:
    return dump({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {"payload": b64(payload), "payloadType": payload_type,
                         "signatures": [{"sig": b64(s), "keyid": ""} for s in sigs]},
    })


# ------------------------------------------------------------------------- forged signatures
def test_signed_by_a_stranger(model: Path, publisher: Party, stranger: Party) -> None:
    """The files are replaced and re-signed with the attacker's own key."""
    (model / "model.safetensors").write_bytes(b"evil weights")
    sign(model, stranger)
    with rejected(SignatureError, "signed with a different key"):
        verify_model(model, key=publisher.public)


def test_stranger_signature_with_the_publishers_key_hint(model: Path, publisher: Party,
                                                         stranger: Party) -> None:
    """The attacker copies the publisher's key hint into a bundle they signed."""
    (model / "model.safetensors").write_bytes(b"evil weights")
    sign(model, stranger)
    obj = bundle_json((model / "model.sig").read_bytes())
    obj["verificationMaterial"]["publicKey"]["hint"] = publisher.signer.key_hint
    write_sig(model, dump(obj))
    with rejected(SignatureError, "the DSSE signature does not verify"):
        verify_model(model, key=publisher.public)


def test_signed_statement_edited(model: Path, publisher: Party) -> None:
    """The weights are swapped and the digest inside the signed payload edited to match."""
    evil = b"evil weights"
    (model / "model.safetensors").write_bytes(evil)
    obj = bundle_json((model / "model.sig").read_bytes())
    st = json.loads(payload_of((model / "model.sig").read_bytes()))
    for r in st["predicate"]["resources"]:
        if r["name"] == "model.safetensors":
            r["digest"] = resource("x", evil)["digest"]
    obj["dsseEnvelope"]["payload"] = b64(json.dumps(st).encode())
    write_sig(model, dump(obj))
    with rejected(SignatureError, "the DSSE signature does not verify"):
        verify_model(model, key=publisher.public)


def test_shard_reordering_in_the_signed_statement(tmp_path: Path, publisher: Party) -> None:
    """The resources of a shards-mode signature are reordered (digests moved between byte
    ranges) to match a file whose halves were swapped."""
    from modelsign.hashing import HashSpec

    m = make_model(tmp_path / "m", {"w.bin": b"A" * 100 + b"B" * 100, "config.json": b"{}"})
    sign(m, publisher, HashSpec(method="shards", shard_size=100, use_cache=False))
    (m / "w.bin").write_bytes(b"B" * 100 + b"A" * 100)
    obj = bundle_json((m / "model.sig").read_bytes())
    st = json.loads(payload_of((m / "model.sig").read_bytes()))
    rs = {r["name"]: r for r in st["predicate"]["resources"]}
    rs["w.bin:0:100"]["digest"], rs["w.bin:100:200"]["digest"] = (
        rs["w.bin:100:200"]["digest"], rs["w.bin:0:100"]["digest"])
    obj["dsseEnvelope"]["payload"] = b64(json.dumps(st).encode())
    write_sig(m, dump(obj))
    with rejected(SignatureError, "the DSSE signature does not verify"):
        verify_model(m, key=publisher.public)


def test_bundle_with_two_signatures(model: Path, publisher: Party, stranger: Party) -> None:
    """A second (valid, stranger's) signature over the same envelope: which one counts?"""
    obj = bundle_json((model / "model.sig").read_bytes())
    env = obj["dsseEnvelope"]
    extra = _ecdsa(stranger, pae(env["payloadType"], payload_of((model / "model.sig")
                                                                  .read_bytes())))
    env["signatures"].append({"sig": b64(extra), "keyid": "stranger"})
    write_sig(model, dump(obj))
    with rejected(SignatureFormatError, "the DSSE envelope must carry exactly one signature"):
        verify_model(model, key=publisher.public)


# ------------------------------------------------------------------------------- confusions
def test_dsse_payload_type_confusion(model: Path, publisher: Party) -> None:
    """The publisher's key once signed this very statement as another DSSE payload type (say,
    for a different protocol); the attacker presents that envelope as a model signature."""
    payload = _honest_payload(model)
    other = "application/vnd.example.release+json"
    sig = _ecdsa(publisher, pae(other, payload))
    write_sig(model, _envelope_bundle(other, payload, [sig], publisher.signer.key_hint))
    with rejected(SignatureFormatError, "wrong DSSE payloadType"):
        verify_model(model, key=publisher.public)


def test_dsse_payload_type_relabelled(model: Path, publisher: Party) -> None:
    """The same foreign-protocol signature, with its payloadType relabelled to in-toto: PAE
    binds the type, so the signature no longer verifies."""
    payload = _honest_payload(model)
    sig = _ecdsa(publisher, pae("application/vnd.example.release+json", payload))
    write_sig(model, _envelope_bundle("application/vnd.in-toto+json", payload, [sig],
                                      publisher.signer.key_hint))
    with rejected(SignatureError, "the DSSE signature does not verify"):
        verify_model(model, key=publisher.public)


def test_signature_over_raw_payload_without_pae(model: Path, publisher: Party) -> None:
    """The publisher's key signed the statement bytes directly (a detached signature, no DSSE
    pre-authentication encoding); wrapped into an envelope it must not verify."""
    payload = _honest_payload(model)
    write_sig(model, _envelope_bundle("application/vnd.in-toto+json", payload,
                                      [_ecdsa(publisher, payload)], publisher.signer.key_hint))
    with rejected(SignatureError, "the DSSE signature does not verify"):
        verify_model(model, key=publisher.public)


def test_blob_signature_presented_as_model_signature(model: Path, publisher: Party) -> None:
    """A Sigstore *message* signature (over some blob) by the publisher's key."""
    blob = (model / "model.safetensors").read_bytes()
    write_sig(model, dump({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": publisher.signer.key_hint},
                                 "tlogEntries": []},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                               "digest": b64(b"\0" * 32)},
                             "signature": b64(_ecdsa(publisher, blob))},
    }))
    with rejected(SignatureFormatError, "signs a blob, not an in-toto statement"):
        verify_model(model, key=publisher.public)


def test_in_toto_statement_with_two_subjects(model: Path, publisher: Party) -> None:
    """A second subject (another model's root digest) rides along in a valid signature."""
    st = json.loads(_honest_payload(model))
    st["subject"].append({"name": "other-model", "digest": {"sha256": "ab" * 32}})
    write_sig(model, signed_obj(st, publisher))
    with rejected(SignatureFormatError, "statement must have exactly one subject"):
        verify_model(model, key=publisher.public)


def test_predicate_type_confusion_claim_as_model_sig(model: Path, publisher: Party) -> None:
    """A provenance claim about this very model (right subject, right signer) is presented as
    its model.sig: it vouches for a derivation, not for the file list."""
    from modelsign._frameworks import Environment

    claim = attest(model, signer=publisher.signer, relation="finetune",
                   environment=Environment(frameworks=(), accelerators=(), runtimes=()),
                   use_cache=False)
    write_sig(model, claim.bundle.raw)
    with rejected(SignatureFormatError, "this is not a model signature (wrong predicateType)"):
        verify_model(model, key=publisher.public)


def test_statement_of_another_in_toto_version(model: Path, publisher: Party) -> None:
    st = json.loads(_honest_payload(model))
    st["_type"] = "https://in-toto.io/Statement/v0.1"
    write_sig(model, signed_obj(st, publisher))
    with rejected(SignatureFormatError, "is not an in-toto Statement v1"):
        verify_model(model, key=publisher.public)


def test_statement_whose_resources_do_not_hash_to_its_subject(model: Path,
                                                             publisher: Party) -> None:
    """A signed statement whose subject digest is not the root digest of its resource list:
    tools reading only the subject and tools reading only the list would disagree."""
    st = json.loads(_honest_payload(model))
    st["subject"][0]["digest"]["sha256"] = "0" * 64
    write_sig(model, signed_obj(st, publisher))
    with rejected(SignatureFormatError, "statement is inconsistent: the resources do not hash "
                                        "to the subject digest"):
        verify_model(model, key=publisher.public)


def test_duplicate_resource_in_signed_statement(model: Path, publisher: Party) -> None:
    """The same name twice with two digests: which one would a verifier compare?"""
    st = json.loads(_honest_payload(model))
    res = st["predicate"]["resources"]
    res.append(dict(res[0], digest="ee" * 32))
    write_sig(model, signed_obj(oms_statement_obj(res), publisher))
    with rejected(SignatureFormatError, f"duplicate resource {res[0]['name']!r}"):
        verify_model(model, key=publisher.public)


def test_duplicate_json_keys_in_signed_statement(model: Path, publisher: Party) -> None:
    honest = json.loads(_honest_payload(model))
    decoy = json.dumps({"name": "other", "digest": {"sha256": "cd" * 32}})
    raw = json.dumps(honest).encode()
    # {"_type": ..., "subject": [decoy], ... , "subject": [honest]}: json.loads keeps the last
    raw = raw.replace(b'{"_type"', b'{"subject": [' + decoy.encode() + b'], "_type"', 1)
    write_sig(model, signed_raw(raw, publisher))
    with rejected(SignatureFormatError, "duplicate"):
        verify_model(model, key=publisher.public)


def test_bundle_with_two_kinds_of_verification_material(model: Path, publisher: Party) -> None:
    """A key bundle that also carries a certificate: a verifier that picked the material by the
    caller's mode instead of by the bundle could check one and report the other."""
    obj = bundle_json((model / "model.sig").read_bytes())
    obj["verificationMaterial"]["certificate"] = {"rawBytes": b64(b"0" * 64)}
    write_sig(model, dump(obj))
    with rejected(SignatureFormatError, "must carry exactly one kind of verification material"):
        verify_model(model, key=publisher.public)


# ---------------------------------------------------------------------------- certificates
def test_certificate_from_an_attackers_ca(model: Path, tmp_path: Path) -> None:
    """The attacker runs a CA of their own, with the same subject names as the publisher's."""
    good = make_cert_chain(tmp_path / "good")
    evil = make_cert_chain(tmp_path / "evil")
    (model / "model.safetensors").write_bytes(b"evil weights")
    sign_with = CertificateSigner.from_pem_files(evil.key, evil.leaf, [evil.chain])
    from modelsign.signing import sign_model

    sign_model(model, signer=sign_with)
    with rejected(SignatureError, "the signing certificate does not chain to the given CA"):
        verify_model(model, cert_chain=[good.root])


def test_expired_certificate_without_a_log_entry(tmp_path: Path) -> None:
    """Signed with a certificate that was valid then and has expired since. Without a
    transparency-log entry nothing proves *when* it signed, so it is judged now: refused."""
    start = datetime.now(UTC) - timedelta(days=3)
    pki = make_cert_chain(tmp_path / "pki", not_before=start, valid_for=timedelta(days=1))
    m = make_model(tmp_path / "m")
    signer = CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain],
                                              clock=lambda: start + timedelta(hours=1))
    from modelsign.signing import sign_model

    sign_model(m, signer=signer)
    assert bundle_json((m / "model.sig").read_bytes())["verificationMaterial"]["tlogEntries"] == []
    with rejected(SignatureError, "the signing certificate does not chain to the given CA") as info:
        verify_model(m, cert_chain=[pki.root])
    assert "not valid at" in str(info.value) or "expired" in str(info.value).lower()


def test_key_signature_offered_to_a_keyless_verifier(model: Path) -> None:
    """A consumer who checks Sigstore identities is handed a bare-key bundle (anyone can make a
    key): the identity rule must not be skipped because there is no certificate."""
    with rejected(SignatureError, "the signature is not a keyless signature"):
        verify_model(model, identities=[Identity(issuer="https://accounts.google.com",
                                                 identity="release@acme.example")])


# ---------------------------------------------------------------------------------- bounds
def test_oversized_bundle(model: Path, publisher: Party) -> None:
    """A sparse model.sig just over the cap: refused from its size, without reading it."""
    with (model / "model.sig").open("wb") as f:
        f.truncate(MAX_BUNDLE_BYTES + 1)
    t = time.monotonic()
    with rejected(SignatureFormatError, "signature file is too large"):
        verify_model(model, key=publisher.public)
    assert time.monotonic() - t < 2


def test_deeply_nested_json_bundle(model: Path, publisher: Party) -> None:
    write_sig(model, b"[" * 200_000 + b"]" * 200_000)
    with rejected(SignatureFormatError, "signature nests JSON too deeply"):
        verify_model(model, key=publisher.public)


def test_deeply_nested_json_inside_a_valid_signature(model: Path, publisher: Party) -> None:
    """The nesting hides in the signed payload, past the bundle's own depth check."""
    st = json.loads(_honest_payload(model))
    deep: object = "x"
    for _ in range(MAX_JSON_DEPTH + 10):
        deep = [deep]
    st["predicate"]["extension"] = deep
    write_sig(model, signed_obj(st, publisher))
    with rejected(SignatureFormatError, "signed statement nests JSON too deeply"):
        verify_model(model, key=publisher.public)


def test_a_million_resources(model: Path, publisher: Party) -> None:
    """One resource more than the cap, in a validly signed statement: refused quickly, before
    any per-resource work."""
    st = {"_type": IN_TOTO, "subject": [{"name": "m", "digest": {"sha256": "0" * 64}}],
          "predicateType": OMS_PREDICATE_TYPE,
          "predicate": {"serialization": {"method": "files", "hash_type": "sha256"},
                        "resources": [0] * (MAX_RESOURCES + 1)}}
    write_sig(model, signed_obj(st, publisher))
    t = time.monotonic()
    with rejected(SignatureFormatError, f"too many resources (expected <= {MAX_RESOURCES}"):
        verify_model(model, key=publisher.public)
    assert time.monotonic() - t < 10
