"""Reading Fulcio certificate extensions (``fulcio_extensions``), the read-only ``Extensions``
mapping of a ``Signer``, and naming the Fulcio root a keyless certificate chained to.

Certificates are built with cryptography; every malformed value is one Fulcio would never issue
but an attacker-controlled CA (in certificate mode) or a future Fulcio could.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from modelsign.verify import Signer
from modelsign.verify._identity import fulcio_extensions
from modelsign.verify._result import Extensions
from modelsign.verify._signature import _fulcio_root

F = "1.3.6.1.4.1.57264.1."


def _der_utf8(s: str, *, tag: int = 0x0C) -> bytes:
    b = s.encode()
    assert len(b) < 128
    return bytes([tag, len(b)]) + b


def _cert(extensions: dict[str, bytes]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")]))
         .public_key(key.public_key()).serial_number(1)
         .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(minutes=9)))
    for oid, raw in extensions.items():
        b = b.add_extension(x509.UnrecognizedExtension(ObjectIdentifier(oid), raw),
                            critical=False)
    return b.sign(key, hashes.SHA256())


def test_v1_raw_and_v2_der_values_are_decoded_and_sorted_by_number() -> None:
    cert = _cert({
        F + "12": _der_utf8("https://github.com/acme/model"),
        F + "5": b"acme/model",
        F + "8": _der_utf8("https://token.actions.githubusercontent.com"),
        F + "2": b"push",
        F + "9": _der_utf8("https://github.com/acme/model/.github/workflows/r.yml@refs/heads/main"),
        F + "1": b"https://token.actions.githubusercontent.com",
        F + "11": _der_utf8("github-hosted"),
        F + "22": _der_utf8("public"),
        F + "30": _der_utf8("a future Fulcio extension"),
        "1.3.6.1.4.1.99999.1": _der_utf8("not Fulcio's arc"),
    })
    ext = fulcio_extensions(cert)
    assert list(ext) == [F + n for n in ("1", "2", "5", "8", "9", "11", "12", "22", "30")]
    assert ext[F + "5"] == "acme/model" and ext[F + "2"] == "push"
    assert ext[F + "12"] == "https://github.com/acme/model"
    assert ext[F + "11"] == "github-hosted" and ext[F + "30"] == "a future Fulcio extension"


@pytest.mark.parametrize("oid, raw", [
    (F + "12", b"https://github.com/acme/model"),  # v2 OID holding raw bytes (no DER)
    (F + "12", _der_utf8("abc") + b"X"),  # trailing bytes after the DER value
    (F + "12", b"\x0c\x05abc"),  # length beyond the data
    (F + "12", b"\x0c\x81\x03abc"),  # non-minimal (BER) length
    (F + "12", _der_utf8("abc", tag=0x13)),  # PrintableString, not UTF8String
    (F + "12", _der_utf8("abc", tag=0x16)),  # IA5String
    (F + "12", b"\x0c\x02\xff\xfe"),  # UTF8String that is not UTF-8
    (F + "12", b""),
    (F + "5", b"\xff\xfe"),  # v1 raw bytes that are not UTF-8
    (F + "7", _der_utf8("the SAN other-name OID is not an extension")),
    (F + "12.1", _der_utf8("a deeper arc")),
    (F + "0", _der_utf8("arc zero")),
])
def test_undecodable_or_foreign_values_are_left_out(oid: str, raw: bytes) -> None:
    cert = _cert({oid: raw, F + "11": _der_utf8("github-hosted")})
    assert fulcio_extensions(cert) == {F + "11": "github-hosted"}


def test_an_overlong_value_is_left_out() -> None:
    long = "x" * 9000
    raw = b"\x0c\x82" + len(long).to_bytes(2, "big") + long.encode()
    assert fulcio_extensions(_cert({F + "12": raw, F + "14": _der_utf8("refs/heads/main")})) == {
        F + "14": "refs/heads/main"}


def test_control_characters_are_kept_verbatim() -> None:
    """Values are reported exactly; escaping for a terminal is the printer's job (policy and
    CLI do it), not a reason to change what the certificate says."""
    cert = _cert({F + "14": _der_utf8("refs/heads/main\x1b[2J")})
    assert fulcio_extensions(cert) == {F + "14": "refs/heads/main\x1b[2J"}


def test_extensions_mapping_is_read_only_hashable_and_compares_with_dicts() -> None:
    ext = Extensions({F + "12": "https://github.com/acme/model", F + "11": "github-hosted"})
    assert ext == {F + "11": "github-hosted", F + "12": "https://github.com/acme/model"}
    assert list(ext) == [F + "12", F + "11"]  # the order given
    assert ext.get(F + "13") is None and len(ext) == 2
    with pytest.raises(TypeError):
        ext[F + "12"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        ext.update({})  # type: ignore[attr-defined]
    assert hash(ext) == hash(Extensions(dict(reversed(list(ext.items())))))
    assert ext != [F + "12"] and ext != Extensions({})


def test_signer_defaults_and_coerces_a_dict() -> None:
    bare = Signer("key", "sha256:00", None)
    assert bare.extensions == {} and bare.anchor_fingerprint is None
    assert bare.to_json()["extensions"] == {}
    s = Signer("keyless", "a@b", "https://issuer", extensions={F + "12": "u", F + "9": "w"})
    assert isinstance(s.extensions, Extensions)
    assert list(s.to_json()["extensions"]) == [F + "9", F + "12"]  # sorted by OID number
    assert hash(s) == hash(Signer("keyless", "a@b", "https://issuer",
                                  extensions={F + "9": "w", F + "12": "u"}))


# ------------------------------------------------------------------------- the Fulcio root
def _ca(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
        issuer_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject if issuer is None else issuer.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


class _Root:
    def __init__(self, *certs: x509.Certificate) -> None:
        self.certs = list(certs)

    def get_fulcio_certs(self) -> list[x509.Certificate]:
        return self.certs


def _fp(c: x509.Certificate) -> str:
    return hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_fulcio_root_walks_to_the_self_signed_issuer() -> None:
    rk, ik, lk = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _ca("fulcio", rk, None, rk)
    inter = _ca("fulcio-intermediate", ik, root, rk)
    leaf = _ca("leaf", lk, inter, ik)
    # another root with the same name but another key (as Sigstore's retired 2021-03 root)
    retired_key = ec.generate_private_key(ec.SECP256R1())
    retired = _ca("fulcio", retired_key, None, retired_key)
    assert _fulcio_root(leaf, _Root(retired, inter, root)) == _fp(root)
    assert _fulcio_root(leaf, _Root(root)) is None  # the intermediate is not in the root
    # the same root key in two certificates (a re-issued root): ambiguous, so no answer
    twin = _ca("fulcio", rk, None, rk)
    assert _fulcio_root(leaf, _Root(inter, root, twin)) is None


def test_fulcio_root_of_a_trusted_root_that_cannot_list_its_certificates() -> None:
    class Broken:
        def get_fulcio_certs(self) -> list[x509.Certificate]:
            raise RuntimeError("Fulcio certificates not found in trusted root")

    k = ec.generate_private_key(ec.SECP256R1())
    assert _fulcio_root(_ca("x", k, None, k), Broken()) is None
