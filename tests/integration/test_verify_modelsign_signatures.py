"""modelsign's own signatures, and older producers' (OMS v0.1 statements, pre-1.0 DSSE encoding).

Verification re-hashes with what the signature records, never with defaults; the signature file
being checked and claims.jsonl are always left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign.cli._app import run
from modelsign.hashing._spec import HashSpec
from modelsign.signing import CertificateSigner, KeySigner, sign_model
from modelsign.statements import canonical_bytes
from modelsign.statements._bundle import (
    BUNDLE_MEDIA_TYPE,
    DSSE_PAYLOAD_TYPE,
    b64encode,
    bundle_bytes,
    public_key_hint,
)
from modelsign.testing._pki import KeyPair, make_cert_chain, make_key
from modelsign.verify import IntegrityFailure, verify_model
from modelsign.verify._keys import COMPAT_WARNING, _pae_compat


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", curve="secp521r1")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    (m / "shards").mkdir(parents=True)
    (m / "shards" / "part-1.bin").write_bytes(bytes(range(200)))
    (m / "config.json").write_bytes(b"{}\n")
    return m


def test_recorded_parameters_are_used(model: Path, key: KeyPair) -> None:
    spec = HashSpec(method="shards", algorithm="blake2b", shard_size=64)
    sign_model(model, signer=KeySigner.from_pem_file(key.private), spec=spec)
    result = verify_model(model, key=key.public)
    ser = result.manifest.serialization
    assert (ser.method, ser.hash_type, ser.shard_size) == ("shards", "blake2b", 64)
    assert [f.name for f in result.files if f.name.startswith("shards/")] == [
        "shards/part-1.bin:0:64", "shards/part-1.bin:64:128", "shards/part-1.bin:128:192",
        "shards/part-1.bin:192:200"]


def test_claims_and_the_checked_signature_are_left_out(model: Path, key: KeyPair,
                                                       tmp_path: Path) -> None:
    sign_model(model, signer=KeySigner.from_pem_file(key.private))
    (model / "claims.jsonl").write_text('{"later": "claims"}\n')
    assert verify_model(model, key=key.public).verified
    # the same signature copied under another name inside the model: it is the one being checked
    (model / "release.sig").write_bytes((model / "model.sig").read_bytes())
    (model / "model.sig").unlink()
    assert verify_model(model, signature=model / "release.sig", key=key.public).verified
    # ... but another stray file there is not left out
    (model / "copy.sig").write_bytes((model / "release.sig").read_bytes())
    with pytest.raises(IntegrityFailure, match="extra copy.sig"):
        verify_model(model, signature=model / "release.sig", key=key.public)


def test_signature_output_elsewhere_inside_the_model(model: Path, key: KeyPair) -> None:
    out = model / "signatures" / "v1.sig"
    out.parent.mkdir()
    sign_model(model, signer=KeySigner.from_pem_file(key.private), output=out)
    assert run(["verify", str(model), "--signature", str(out), "--key", str(key.public)]) == 0


def test_single_file_model(tmp_path: Path, key: KeyPair) -> None:
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"\x00" * 1000)
    sign_model(f, signer=KeySigner.from_pem_file(key.private))
    assert (tmp_path / "weights.safetensors.sig").is_file()
    assert verify_model(f, key=key.public).verified
    f.write_bytes(b"\x00" * 999 + b"\x01")
    with pytest.raises(IntegrityFailure):
        verify_model(f, key=key.public)


def test_certificate_signature(model: Path, tmp_path: Path) -> None:
    pki = make_cert_chain(tmp_path / "pki", curve="secp256r1")
    sign_model(model, signer=CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain]))
    result = verify_model(model, cert_chain=[pki.root])
    assert result.signer.kind == "certificate"
    # the intermediate alone is a trust anchor too when the user says so (as model_signing)
    assert verify_model(model, cert_chain=[pki.intermediate]).verified


# ----------------------------------------------------------------------------- older producers
def _v01_bundle(model: Path, key: KeyPair, *, compat_pae: bool) -> bytes:
    subjects = [{"name": p.relative_to(model).as_posix(),
                 "digest": {"sha256": hashlib.sha256(p.read_bytes()).hexdigest()}}
                for p in sorted(model.rglob("*")) if p.is_file() and p.name != "model.sig"]
    payload = canonical_bytes({"_type": "https://in-toto.io/Statement/v1", "subject": subjects,
                               "predicateType": "https://model_signing/Digests/v0.1",
                               "predicate": {}})
    priv = serialization.load_pem_private_key(key.private.read_bytes(), None)
    assert isinstance(priv, ec.EllipticCurvePrivateKey)
    pae = (_pae_compat(DSSE_PAYLOAD_TYPE, payload) if compat_pae else
           b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload))
    sig = priv.sign(pae, ec.ECDSA(hashes.SHA512()))
    return bundle_bytes({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": public_key_hint(priv.public_key())}},
        "dsseEnvelope": {"payload": b64encode(payload), "payloadType": DSSE_PAYLOAD_TYPE,
                         "signatures": [{"sig": b64encode(sig)}]},
    })


@pytest.mark.parametrize("compat_pae", [False, True])
def test_v01_statement_verifies(model: Path, key: KeyPair, compat_pae: bool) -> None:
    (model / "model.sig").write_bytes(_v01_bundle(model, key, compat_pae=compat_pae))
    result = verify_model(model, key=key.public)
    assert result.verified
    assert result.predicate_type == "https://model_signing/Digests/v0.1"
    assert {f.name for f in result.files} == {"config.json", "shards/part-1.bin"}
    assert (COMPAT_WARNING in result.warnings) is compat_pae


def test_v01_statement_detects_a_change(model: Path, key: KeyPair) -> None:
    (model / "model.sig").write_bytes(_v01_bundle(model, key, compat_pae=True))
    (model / "config.json").write_bytes(b'{"x": 1}\n')
    with pytest.raises(IntegrityFailure) as ei:
        verify_model(model, key=key.public)
    assert [(f.name, f.status) for f in ei.value.result.failures] == [("config.json", "changed")]


def test_report_json_of_v01(model: Path, key: KeyPair,
                            capsys: pytest.CaptureFixture[str]) -> None:
    (model / "model.sig").write_bytes(_v01_bundle(model, key, compat_pae=False))
    assert run(["verify", str(model), "--key", str(key.public), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["predicate_type"] == "https://model_signing/Digests/v0.1"
