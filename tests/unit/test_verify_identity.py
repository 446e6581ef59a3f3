"""Identity rules: construction, reading the certificate, and the messages of a mismatch.

Certificates are built with cryptography the way Fulcio builds them (SAN + issuer extensions);
the rules are exercised through sigstore's ``AnyOf`` exactly as the verifier calls them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from sigstore.errors import VerificationError as SigstoreVerificationError

from modelsign.errors import IdentityError, InputError
from modelsign.verify import Identity
from modelsign.verify._identity import (
    IdentityPolicy,
    certificate_identity,
    certificate_issuer,
    certificate_sans,
)

GOOGLE = "https://accounts.google.com"
GITHUB = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/models/.github/workflows/release.yml@refs/tags/v1.2.0"


def _der_utf8(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 128
    return bytes([0x0C, len(b)]) + b


def _cert(*sans: x509.GeneralName, issuer_v2: str | None = None,
          issuer_v1: str | None = None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")]))
         .public_key(key.public_key()).serial_number(1)
         .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(minutes=9)))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=True)
    if issuer_v1 is not None:
        b = b.add_extension(x509.UnrecognizedExtension(
            ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer_v1.encode()), critical=False)
    if issuer_v2 is not None:
        b = b.add_extension(x509.UnrecognizedExtension(
            ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), _der_utf8(issuer_v2)), critical=False)
    return b.sign(key, hashes.SHA256())


def _email_cert(email: str = "alice@acme.example", issuer: str = GOOGLE) -> x509.Certificate:
    return _cert(x509.RFC822Name(email), issuer_v2=issuer, issuer_v1=issuer)


# ----------------------------------------------------------------------------- construction
@pytest.mark.parametrize("kwargs, text", [
    ({"issuer": GOOGLE}, "exactly one of identity and identity_regex"),
    ({"issuer": GOOGLE, "identity": "a", "identity_regex": "a"}, "exactly one"),
    ({"issuer": "", "identity": "a"}, "needs an issuer"),
    ({"issuer": "  ", "identity": "a"}, "needs an issuer"),
    ({"issuer": GOOGLE, "identity": ""}, "empty identity"),
    ({"issuer": GOOGLE, "identity_regex": "(unclosed"}, "not a valid regular expression"),
    ({"issuer": GOOGLE, "identity_regex": "x" * 2000}, "1 to 1024 characters"),
])
def test_identity_rule_refuses_bad_arguments(kwargs: dict[str, str], text: str) -> None:
    with pytest.raises(InputError, match=text):
        Identity(**kwargs)  # type: ignore[arg-type]


def test_identity_rule_is_a_frozen_value() -> None:
    a = Identity(identity="a@b.c", issuer=GOOGLE)
    assert a == Identity(identity="a@b.c", issuer=GOOGLE)
    with pytest.raises(AttributeError):
        a.identity = "x"  # type: ignore[misc]
    assert Identity(identity_regex="^x", issuer=GOOGLE).anchored
    assert not Identity(identity_regex="acme", issuer=GOOGLE).anchored


def test_policy_needs_a_rule() -> None:
    with pytest.raises(InputError):
        IdentityPolicy(())


# ----------------------------------------------------------------------------- the certificate
def test_reads_issuer_v2_before_v1() -> None:
    c = _cert(x509.RFC822Name("a@b.c"), issuer_v2=GOOGLE, issuer_v1="https://v1.example")
    assert certificate_issuer(c) == GOOGLE


def test_reads_issuer_v1_when_v2_absent() -> None:
    assert certificate_issuer(_cert(x509.RFC822Name("a@b.c"), issuer_v1=GITHUB)) == GITHUB


def test_no_issuer_no_san() -> None:
    c = _cert()
    assert certificate_issuer(c) is None
    assert certificate_sans(c) == () and certificate_identity(c) is None


def test_reads_uri_and_othername_sans() -> None:
    other = x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), _der_utf8("bob"))
    c = _cert(x509.UniformResourceIdentifier(WORKFLOW), other, issuer_v2=GITHUB)
    assert certificate_sans(c) == (WORKFLOW, "bob")
    assert certificate_identity(c) == WORKFLOW


# ----------------------------------------------------------------------------- matching
def _check(rules: list[Identity], cert: x509.Certificate) -> IdentityPolicy:
    policy = IdentityPolicy(tuple(rules))
    policy.verify(cert)
    return policy


def test_exact_match() -> None:
    assert not _check([Identity(identity="alice@acme.example", issuer=GOOGLE)],
                      _email_cert()).failed


def test_regex_is_searched_like_cosign() -> None:
    c = _cert(x509.UniformResourceIdentifier(WORKFLOW), issuer_v2=GITHUB)
    _check([Identity(identity_regex=r"^https://github\.com/acme/", issuer=GITHUB)], c)
    _check([Identity(identity_regex=r"@refs/tags/v\d", issuer=GITHUB)], c)


def test_any_of() -> None:
    rules = [Identity(identity="bob@acme.example", issuer=GOOGLE),
             Identity(identity="alice@acme.example", issuer=GOOGLE)]
    _check(rules, _email_cert())


def _reject(rules: list[Identity], cert: x509.Certificate) -> IdentityError:
    policy = IdentityPolicy(tuple(rules))
    with pytest.raises(SigstoreVerificationError):
        policy.verify(cert)
    assert policy.failed
    return policy.error(path="m/model.sig")


def test_wrong_identity_message() -> None:
    e = _reject([Identity(identity="bob@acme.example", issuer=GOOGLE)], _email_cert())
    assert str(e).startswith("m/model.sig: wrong identity: signed by 'alice@acme.example' "
                             f"from issuer '{GOOGLE}'")
    assert (e.expected, e.actual) == ("bob@acme.example", "alice@acme.example")


def test_wrong_issuer_message() -> None:
    e = _reject([Identity(identity="alice@acme.example", issuer=GITHUB)], _email_cert())
    assert "wrong issuer" in str(e) and (e.expected, e.actual) == (GITHUB, GOOGLE)


def test_regex_message() -> None:
    e = _reject([Identity(identity_regex="^bob@", issuer=GOOGLE)], _email_cert())
    assert "identity does not match the regex" in str(e)
    assert e.expected == "an identity matching /^bob@/"


def test_identity_is_not_matched_by_prefix_or_case() -> None:
    for bad in ("alice@acme.exampl", "Alice@acme.example", "alice@acme.example.evil.com"):
        _reject([Identity(identity=bad, issuer=GOOGLE)], _email_cert())


def test_issuer_is_exact() -> None:
    _reject([Identity(identity="alice@acme.example", issuer=GOOGLE + "/")], _email_cert())


def test_several_rules_message_names_the_kind() -> None:
    e = _reject([Identity(identity="bob@acme.example", issuer=GOOGLE),
                 Identity(identity="carol@acme.example", issuer=GOOGLE)], _email_cert())
    assert "wrong identity: none of the 2 identity rules accepts the signer" in str(e)
    e = _reject([Identity(identity="alice@acme.example", issuer=GITHUB),
                 Identity(identity_regex="^alice@", issuer="https://gitlab.com")], _email_cert())
    assert str(e).split(": ")[1] == "wrong issuer"
    e = _reject([Identity(identity_regex="^bob@", issuer=GOOGLE),
                 Identity(identity_regex="^carol@", issuer=GOOGLE)], _email_cert())
    assert "identity does not match any regex" in str(e)


def test_certificate_without_issuer_is_rejected() -> None:
    e = _reject([Identity(identity="a@b.c", issuer=GOOGLE)], _cert(x509.RFC822Name("a@b.c")))
    assert "wrong issuer" in str(e) and e.actual == "None"
