"""Identity rules for keyless signatures, as sigstore ``VerificationPolicy`` objects.

A rule is an issuer plus either an exact identity or a regular expression. The rules are checked
by sigstore's ``Verifier`` *after* the certificate chained to the trusted root and its SCT
verified, so everything they read comes from a verified certificate, never from the payload.
Several rules combine with ``sigstore.verify.policy.AnyOf``: any one may match.

Each rule records why it failed, so the caller can say "wrong identity", "wrong issuer" or "regex
did not match" instead of sigstore's generic "0 of N policies succeeded".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelsign.errors import IdentityError, InputError

# cryptography.x509 takes ~25 ms to import: it is loaded when a certificate is read (keyless and
# certificate verification), not by every `verify --key`.
if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

__all__ = ["Identity", "certificate_identity", "certificate_issuer", "fulcio_extensions"]

_OIDC_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"  # DER UTF8String
_OIDC_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"  # raw bytes (deprecated)
_SAN_OTHERNAME = "1.3.6.1.4.1.57264.1.7"  # Fulcio "username" other name
_MAX_PATTERN = 1024
_FULCIO_ARC = "1.3.6.1.4.1.57264.1."
#: Fulcio extensions whose value is the raw UTF-8 string (the deprecated v1 form: issuer,
#: GitHub workflow trigger, SHA, name, repository, ref). From .8 on every extension is a DER
#: UTF8String (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md); .7 is the
#: username other-name of the SAN, never an extension.
_RAW_V1 = frozenset({1, 2, 3, 4, 5, 6})
_MAX_EXTENSION_VALUE = 8192  # characters; Fulcio's values are URIs, refs and digests


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who may have signed: ``issuer`` and exactly one of ``identity`` / ``identity_regex``
    (keyword arguments only, so an identity cannot be passed where the issuer goes).

    ``identity`` is compared for equality with a Subject Alternative Name of the certificate (an
    e-mail address, a URI such as a GitHub workflow ref, or Fulcio's username other name).
    ``identity_regex`` is searched (Python ``re.search``, like cosign's ``--certificate-identity-
    regexp``) in each SAN; anchor it with ``^`` and ``$`` to match the whole identity. ``issuer``
    is compared for equality with the certificate's OIDC issuer extension.
    """

    issuer: str
    identity: str | None = None
    identity_regex: str | None = None
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False,
                                              compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer.strip():
            raise InputError("an identity rule needs an issuer",
                             expected="--issuer URL, e.g. https://accounts.google.com",
                             actual=repr(self.issuer))
        if (self.identity is None) == (self.identity_regex is None):
            raise InputError("an identity rule needs exactly one of identity and identity_regex",
                             actual=f"identity={self.identity!r}, "
                                    f"identity_regex={self.identity_regex!r}")
        if self.identity is not None and not self.identity:
            raise InputError("an identity rule has an empty identity", actual="''")
        if self.identity_regex is not None:
            if not self.identity_regex or len(self.identity_regex) > _MAX_PATTERN:
                raise InputError("identity regex must be 1 to 1024 characters",
                                 actual=f"{len(self.identity_regex)} characters")
            try:
                compiled = re.compile(self.identity_regex)
            except re.error as e:
                raise InputError(f"identity regex {self.identity_regex!r} is not a valid "
                                 "regular expression", expected="a Python regular expression",
                                 actual=str(e),
                                 hint="use Python re syntax, e.g. '^https://github\\.com/acme/'"
                                 ) from e
            object.__setattr__(self, "_compiled", compiled)

    @property
    def anchored(self) -> bool:
        """Whether a regex rule is anchored at the start (``^`` or ``\\A``)."""
        r = self.identity_regex
        return r is None or r.startswith(("^", "\\A"))

    def describe(self) -> str:
        who = (f"identity {self.identity!r}" if self.identity is not None
               else f"identity matching /{self.identity_regex}/")
        return f"{who} from issuer {self.issuer!r}"

    def matches(self, sans: tuple[str, ...]) -> bool:
        if self.identity is not None:
            return self.identity in sans
        assert self._compiled is not None
        return any(self._compiled.search(s) for s in sans)


# ------------------------------------------------------------------ reading the certificate
def certificate_sans(cert: x509.Certificate) -> tuple[str, ...]:
    """The identities a Fulcio certificate names: e-mail, URI and username SANs, in order."""
    from cryptography import x509
    from cryptography.hazmat import asn1

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    out: list[str] = []
    for gn in san:
        if isinstance(gn, (x509.RFC822Name, x509.UniformResourceIdentifier)):
            out.append(gn.value)
        elif isinstance(gn, x509.OtherName) and gn.type_id.dotted_string == _SAN_OTHERNAME:
            try:
                out.append(asn1.decode_der(str, gn.value))
            except Exception:  # noqa: BLE001 - a malformed other name is simply not an identity
                continue
    return tuple(out)


def certificate_identity(cert: x509.Certificate) -> str | None:
    """The first SAN identity of ``cert`` (Fulcio certificates carry exactly one)."""
    sans = certificate_sans(cert)
    return sans[0] if sans else None


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer of a Fulcio certificate: extension ...57264.1.8, else ...57264.1.1."""
    from cryptography import x509
    from cryptography.hazmat import asn1

    exts = cert.extensions
    try:
        raw = exts.get_extension_for_oid(x509.ObjectIdentifier(_OIDC_ISSUER_V2)).value
        value = asn1.decode_der(str, raw.value)  # type: ignore[attr-defined]
        if isinstance(value, str):
            return value
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        raw = exts.get_extension_for_oid(x509.ObjectIdentifier(_OIDC_ISSUER_V1)).value
        return bytes(raw.value).decode("utf-8")  # type: ignore[attr-defined]
    except (x509.ExtensionNotFound, UnicodeDecodeError):
        return None


def fulcio_extensions(cert: x509.Certificate) -> dict[str, str]:
    """The Fulcio extensions ``1.3.6.1.4.1.57264.1.N`` of ``cert``: dotted OID -> value.

    .1-.6 (v1) are raw bytes, decoded as strict UTF-8; .8 and later (v2) are DER UTF8Strings,
    decoded by cryptography's strict DER reader (exact length, no trailing bytes, tag 0x0C).
    A value that does not decode, an unknown form (.7, a non-numeric arc) or a value over 8,192
    characters is left out: the mapping only holds what the certificate unambiguously says.
    Sorted by OID number. Call it on a certificate that verified, never on an unverified one.
    """
    from cryptography import x509

    try:
        extensions = list(cert.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        return {}
    found: list[tuple[int, str, str]] = []
    for ext in extensions:
        oid = ext.oid.dotted_string
        if not oid.startswith(_FULCIO_ARC):
            continue
        arc = oid[len(_FULCIO_ARC):]
        if not arc.isascii() or not arc.isdigit() or arc.startswith("0"):
            continue  # a deeper arc (.1.N.M) or .1.0: not a Fulcio extension
        number = int(arc)
        raw = getattr(ext.value, "value", None)
        if not isinstance(raw, bytes):
            continue
        value = _decode_extension(number, raw)
        if value is not None and len(value) <= _MAX_EXTENSION_VALUE:
            found.append((number, oid, value))
    return {oid: value for _, oid, value in sorted(found)}


def _decode_extension(number: int, raw: bytes) -> str | None:
    if number in _RAW_V1:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if number < 8:
        return None
    from cryptography.hazmat import asn1

    try:
        value = asn1.decode_der(str, raw)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------ sigstore policies
@dataclass(slots=True)
class _Outcome:
    """What the policy saw on the verified certificate (filled in by ``verify``)."""

    seen: bool = False
    sans: tuple[str, ...] = ()
    issuer: str | None = None


class _RulePolicy:
    """One :class:`Identity` as a sigstore ``VerificationPolicy``."""

    def __init__(self, rule: Identity) -> None:
        self.rule = rule

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        issuer = certificate_issuer(cert)
        if issuer != self.rule.issuer:
            raise SigstoreVerificationError(
                f"certificate issuer {issuer!r} is not {self.rule.issuer!r}")
        sans = certificate_sans(cert)
        if not self.rule.matches(sans):
            raise SigstoreVerificationError(
                f"certificate identity {sans!r} does not match {self.rule.describe()}")


class IdentityPolicy:
    """``AnyOf`` over the rules, remembering the certificate it was shown.

    A fresh instance is made for each verification (it holds per-call state).
    """

    def __init__(self, rules: tuple[Identity, ...]) -> None:
        if not rules:
            raise InputError("no identity rule given")  # callers check first; belt and braces
        self.rules = rules
        self.outcome = _Outcome()
        self.failed = False
        from sigstore.verify.policy import AnyOf  # sigstore loads in ~0.5 s: keyless only

        self._any = AnyOf([_RulePolicy(r) for r in rules])

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        self.outcome = _Outcome(True, certificate_sans(cert), certificate_issuer(cert))
        try:
            self._any.verify(cert)
        except SigstoreVerificationError:
            self.failed = True
            raise

    def error(self, *, path: str | None = None) -> IdentityError:
        """The specific :class:`IdentityError` for a certificate no rule accepted."""
        sans, issuer = self.outcome.sans, self.outcome.issuer
        identity = sans[0] if sans else None
        signer = f"{identity!r} from issuer {issuer!r}"
        hint = ("check who publishes this model; if the signer is legitimate, pass its identity "
                "and issuer with --identity/--identity-regex and --issuer")
        if len(self.rules) == 1:
            rule = self.rules[0]
            if issuer != rule.issuer:
                return IdentityError(f"wrong issuer: signed by {signer}",
                                     path=path, expected=rule.issuer, actual=str(issuer),
                                     hint=hint)
            if rule.identity is not None:
                return IdentityError(f"wrong identity: signed by {signer}",
                                     path=path, expected=rule.identity, actual=str(identity),
                                     hint=hint)
            return IdentityError(
                f"identity does not match the regex: signed by {signer}",
                path=path, expected=f"an identity matching /{rule.identity_regex}/",
                actual=str(identity), hint=hint)
        same_issuer = [r for r in self.rules if r.issuer == issuer]
        if not same_issuer:
            what = "wrong issuer"
        elif all(r.identity is not None for r in same_issuer):
            what = "wrong identity"
        elif all(r.identity_regex is not None for r in same_issuer):
            what = "identity does not match any regex"
        else:
            what = "wrong identity (no identity or regex matched)"
        return IdentityError(
            f"{what}: none of the {len(self.rules)} identity rules accepts the signer; "
            f"signed by {signer}",
            path=path, expected=" or ".join(r.describe() for r in self.rules)[:1000],
            actual=f"identity {identity!r} from issuer {issuer!r}", hint=hint)
