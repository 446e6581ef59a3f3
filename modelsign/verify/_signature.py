"""Bundle → :class:`VerifiedStatement`: the signature and the signer, never the predicate."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from modelsign.errors import InputError, ModelsignError, SignatureError, SignatureFormatError
from modelsign.statements import parse_statement
from modelsign.statements._bundle import public_key_hint
from modelsign.verify._envelope import BundleView, parse_bundle
from modelsign.verify._identity import (
    Identity,
    IdentityPolicy,
    certificate_identity,
    certificate_issuer,
    fulcio_extensions,
)
from modelsign.verify._keys import (
    load_public_key,
    load_trust_anchors,
    verify_chain,
    verify_envelope_sig,
)
from modelsign.verify._result import _TOKEN, Signer, VerifiedStatement
from modelsign.verify._trust import Trust

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

__all__ = ["verify_bundle", "Mode", "normalize", "select_mode", "with_path", "UNSAFE_WARNING"]

Mode = Literal["keyless", "key", "certificate"]
PathLike = str | os.PathLike[str]

UNSAFE_WARNING = ("identity check SKIPPED (--unsafe-skip-identity-check): the signature is valid "
                  "for the trust root, but ANYONE with an account at ANY issuer it trusts could "
                  "have made it")
_UNANCHORED = ("identity regex {!r} is not anchored with '^': it matches anywhere in the "
               "identity, e.g. inside an attacker's URL; prefer '^...$'")


def normalize(identities: Sequence[Identity] | Identity,
              cert_chain: Sequence[PathLike] | PathLike | None
              ) -> tuple[tuple[Identity, ...], tuple[PathLike, ...]]:
    """Tuples of the rules and CA files; a lone rule or path is taken as a list of one."""
    rules = (identities,) if isinstance(identities, Identity) else tuple(identities)
    if cert_chain is None:
        chain: tuple[PathLike, ...] = ()
    elif isinstance(cert_chain, (str, os.PathLike)):
        chain = (cert_chain,)
    else:
        chain = tuple(cert_chain)
    return rules, chain


def select_mode(identities: Sequence[Identity], key: PathLike | None,
                cert_chain: Sequence[PathLike], unsafe_skip_identity: bool) -> Mode:
    """Which kind of verification the arguments ask for; usage errors are :class:`InputError`."""
    if key is not None and cert_chain:
        raise InputError("choose one of --key and --cert-chain, not both")
    if key is not None or cert_chain:
        flag = "--key" if key is not None else "--cert-chain"
        if identities:
            why = ("a key signature names no identity" if key is not None
                   else "they match Sigstore certificates only")
            raise InputError(f"identity rules (--identity/--issuer) apply to keyless "
                             f"signatures only; they cannot be combined with {flag}",
                             hint=f"drop --identity/--issuer ({why}), or drop {flag}")
        if unsafe_skip_identity:
            raise InputError(f"--unsafe-skip-identity-check cannot be combined with {flag}")
        return "key" if key is not None else "certificate"
    for rule in identities:
        if not isinstance(rule, Identity):
            raise InputError("identities must be modelsign.verify.Identity rules",
                             actual=type(rule).__name__)
    if not identities and not unsafe_skip_identity:
        raise InputError(
            "refusing to verify a keyless signature without an identity rule: anyone can get a "
            "valid Sigstore signature",
            expected="--identity ID (or --identity-regex RE) with --issuer URL",
            actual="no identity rule",
            hint="e.g. --identity release@acme.example --issuer https://accounts.google.com, "
                 "or --key PUB.pem / --cert-chain CA.pem for non-keyless signatures")
    if identities and unsafe_skip_identity:
        raise InputError("--unsafe-skip-identity-check contradicts the identity rules given")
    return "keyless"


def verify_bundle(
    bundle_bytes: bytes,
    *,
    identities: Sequence[Identity] | Identity = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] | PathLike | None = None,
    trust: Trust | None = None,
    unsafe_skip_identity: bool = False,
    source: str | None = None,
    clock: Callable[[], datetime] | None = None,
    key_flag: str = "--key",
) -> VerifiedStatement:
    """Verify the signature and the signer of a Sigstore bundle holding a DSSE in-toto statement.

    Exactly one of: keyless (``identities``, any of which may match, checked against the
    certificate that chained to ``trust``, default the production root bundled with sigstore),
    ``key`` (PEM public key file) or ``cert_chain`` (PEM CA files). The statement is parsed but its
    predicate is not judged. ``source`` names the input in error messages (a file path, or
    ``claims.jsonl:3``). ``clock`` gives "now" for certificate-chain validity (keyless uses the
    transparency log's signed time instead). ``key_flag`` is the option that supplied ``key``, as
    named in the message when the signature is by another key (e.g. ``--parent-key``).

    Raises :class:`SignatureError` / :class:`IdentityError` (exit 1) when the signature or signer
    does not verify, :class:`SignatureFormatError` / :class:`InputError` (exit 2) on bad input.
    """
    rules, chain = normalize(identities, cert_chain)
    mode = select_mode(rules, key, chain, unsafe_skip_identity)
    try:
        return _verify(bundle_bytes, mode, rules, key, chain,
                       trust or Trust(), unsafe_skip_identity, clock, key_flag)
    except ModelsignError as e:
        raise with_path(e, source) from e


def with_path(e: ModelsignError, path: str | None) -> ModelsignError:
    """``e`` naming ``path`` when it does not name a file yet (same class, same details)."""
    if path is None or e.path is not None or type(e).__init__ is not ModelsignError.__init__:
        return e
    return type(e)(e.problem, path=path, expected=e.expected, actual=e.actual, hint=e.hint)


def _verify(bundle_bytes: bytes, mode: Mode, identities: tuple[Identity, ...],
            key: PathLike | None, cert_chain: tuple[PathLike, ...], trust: Trust,
            unsafe_skip_identity: bool,
            clock: Callable[[], datetime] | None, key_flag: str = "--key") -> VerifiedStatement:
    view = parse_bundle(bundle_bytes, what="signature")
    warnings: list[str] = []
    if mode == "keyless":
        _require_material(view, ("certificate", "x509CertificateChain"), mode)
        signer, payload_type, payload = _keyless(view, identities, trust)
        if unsafe_skip_identity:
            warnings.insert(0, UNSAFE_WARNING)
        warnings.extend(_UNANCHORED.format(r.identity_regex) for r in identities
                        if not r.anchored)
    elif mode == "key":
        assert key is not None
        _require_material(view, ("publicKey",), mode)
        signer, payload_type, payload = _with_key(view, key, warnings, key_flag)
    else:
        _require_material(view, ("x509CertificateChain",), mode)
        signer, payload_type, payload = _with_chain(view, cert_chain, clock, warnings)
    statement = parse_statement(payload, what="signed statement")
    return VerifiedStatement(statement, payload_type, signer, view.sha256, tuple(warnings),
                             _token=_TOKEN)


_MATERIAL_HINT = {
    "publicKey": "it was signed with a private key: verify with --key PUB.pem",
    "certificate": "it was signed keylessly with Sigstore: verify with --identity/--issuer",
    "x509CertificateChain": "it was signed with a certificate: verify with --cert-chain CA.pem",
}


def _require_material(view: BundleView, allowed: tuple[str, ...], mode: Mode) -> None:
    if view.material not in allowed:
        raise SignatureError(
            f"the signature is not a {mode} signature",
            expected=" or ".join(allowed), actual=view.material,
            hint=_MATERIAL_HINT[view.material])


# ---------------------------------------------------------------------- keyless (Sigstore)
class _NoIdentityPolicy:
    """Accepts any certificate identity. Reached only through ``unsafe_skip_identity=True``."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


def _keyless(view: BundleView, identities: tuple[Identity, ...],
             trust: Trust) -> tuple[Signer, str, bytes]:
    from sigstore.errors import CertValidationError
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier

    trusted_root = trust.load()
    try:
        bundle = Bundle.from_json(view.raw)
    except InvalidBundle as e:
        raise SignatureFormatError("not a valid Sigstore bundle",
                                   actual=str(e).strip().splitlines()[0][:200]) from e
    except (ValueError, TypeError, KeyError) as e:
        raise SignatureFormatError("not a valid Sigstore bundle",
                                   actual=f"{type(e).__name__}: {str(e)[:200]}") from e
    policy = IdentityPolicy(identities) if identities else None
    try:
        verifier = Verifier(trusted_root=trusted_root)  # type: ignore[arg-type]
        payload_type, payload = verifier.verify_dsse(bundle, policy or _NoIdentityPolicy())
    except SigstoreVerificationError as e:
        if policy is not None and policy.failed:
            raise policy.error() from e
        raise _classify(e, isinstance(e, CertValidationError), trust, bundle) from e
    except SigstoreError as e:  # e.g. an envelope sigstore refuses to load
        raise SignatureError("the Sigstore bundle does not verify",
                             actual=str(e)[:300], hint=_TAMPER_HINT) from e
    if payload != view.payload or payload_type != view.payload_type:
        raise SignatureError("the verified payload differs from the envelope's",
                             hint=_TAMPER_HINT)  # cannot happen; sigstore reads the same bytes
    cert = bundle.signing_certificate
    entry = bundle.log_entry._inner
    if entry.integrated_time is None:  # sigstore verified a time from it; never happens
        raise SignatureError("the transparency log entry has no integrated time",
                             hint=_TAMPER_HINT)
    integrated = datetime.fromtimestamp(int(entry.integrated_time), tz=UTC)
    signer = Signer(
        kind="keyless",
        identity=certificate_identity(cert),
        issuer=certificate_issuer(cert),
        log_index=int(entry.log_index),
        integrated_time=integrated,
        cert_not_before=cert.not_valid_before_utc,
        cert_not_after=cert.not_valid_after_utc,
        cert_fingerprint=_fingerprint(cert),
        extensions=fulcio_extensions(cert),
        anchor_fingerprint=_fulcio_root(cert, trusted_root),
    )
    return signer, payload_type, payload


_MAX_CA_DEPTH = 8


def _fulcio_root(leaf: x509.Certificate, trusted_root: Any) -> str | None:
    """Fingerprint of the Fulcio root certificate of ``trusted_root`` that issued ``leaf``.

    ``leaf`` already chained (sigstore checked it); this only names the root: walk up through
    the trusted root's Fulcio certificates by signature (``verify_directly_issued_by``) to a
    self-signed one. ``None`` when there is no such unique path (two different issuers verify at
    some step, no issuer is found, or the walk exceeds the depth bound).
    """
    try:
        cas = list(trusted_root.get_fulcio_certs())
    except Exception:  # noqa: BLE001 - sigstore raises MetadataError and others; anchor unknown
        return None
    current = leaf
    for _ in range(_MAX_CA_DEPTH):
        here = _fingerprint(current)
        if current is not leaf and _directly_issued(current, current):
            return here  # self-signed: the root
        issuers = {fp: c for c in cas
                   if (fp := _fingerprint(c)) != here and _directly_issued(current, c)}
        if len(issuers) != 1:
            return None
        (current,) = issuers.values()
    return None


def _directly_issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


_TAMPER_HINT = "the bundle was altered or corrupted; obtain model.sig again from the publisher"


def _classify(e: Exception, chain_failed: bool, trust: Trust, bundle: Any) -> SignatureError:
    """Turn sigstore's verification error into a specific message (the verdict is already
    "rejected"; this only picks the words)."""
    msg = str(e)
    low = msg.lower()
    if chain_failed and _log_time_outside_certificate(bundle):
        return SignatureError(
            "the transparency log time lies outside the signing certificate's validity "
            "(tampered bundle)", actual=msg[:300], hint=_TAMPER_HINT)
    if chain_failed or "sct" in low or "certificate chain" in low:
        return SignatureError(
            "the signing certificate does not chain to the trusted root "
            f"({trust.describe()}): foreign or wrong trust root",
            expected="a certificate issued by the trusted root's Fulcio CA",
            actual=_issuer_of(bundle) or msg[:300],
            hint="verify against the Sigstore instance that signed it: --trusted-root FILE, "
                 "--trust-config FILE or --staging")
    if "log entry" in low or "inclusion" in low or "checkpoint" in low or "entry" in low:
        return SignatureError(
            "the transparency log entry does not verify (tampered bundle)",
            actual=msg[:300], hint=_TAMPER_HINT)
    if "expired at time of signing" in low:
        return SignatureError(
            "the certificate was not valid when the log recorded the signature",
            actual=msg[:300], hint=_TAMPER_HINT)
    if "signature" in low:
        return SignatureError(
            "the DSSE signature does not verify (tampered bundle or statement)",
            actual=msg[:300], hint=_TAMPER_HINT)
    return SignatureError("the Sigstore bundle does not verify", actual=msg[:300],
                          hint=_TAMPER_HINT)


def _issuer_of(bundle: Any) -> str | None:
    """"a certificate issued by 'CN=...'" for the bundle's (unverified) signing certificate."""
    try:
        issuer = bundle.signing_certificate.issuer.rfc4514_string()
    except (AttributeError, TypeError, ValueError):
        return None
    return f"a certificate issued by {issuer[:200]!r}" if issuer else None


def _log_time_outside_certificate(bundle: Any) -> bool:
    """Whether the bundle's (unverified) log time is outside its leaf's validity window: then a
    failed chain check means an altered or inconsistent time, not a foreign root."""
    try:
        cert = bundle.signing_certificate
        t = datetime.fromtimestamp(int(bundle.log_entry._inner.integrated_time), tz=UTC)
    except (AttributeError, TypeError, ValueError, OverflowError, OSError):
        return False
    return not cert.not_valid_before_utc <= t <= cert.not_valid_after_utc


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


# ---------------------------------------------------------------------- key
def _with_key(view: BundleView, key_path: PathLike, warnings: list[str],
              key_flag: str = "--key") -> tuple[Signer, str, bytes]:
    key = load_public_key(key_path)
    hint = public_key_hint(key)
    if view.key_hint is None:
        warnings.append("the signature does not name its key (no publicKey.hint; an older "
                        "model_signing format); it was checked against the given key only")
    elif view.key_hint.lower() != hint:
        raise SignatureError(
            "signed with a different key",
            expected=f"key hint {hint} (sha256 of {os.fspath(key_path)})",
            actual=f"key hint {view.key_hint[:80]}",
            hint=f"check that {key_flag} is the publisher's public key")
    if view.tlog_entries:
        warnings.append("the bundle carries transparency-log entries; key verification does not "
                        "check them")
    warnings.extend(verify_envelope_sig(key, view.payload_type, view.payload, view.signature))
    return Signer(kind="key", identity=f"sha256:{hint}", issuer=None), view.payload_type, \
        view.payload


# ---------------------------------------------------------------------- certificate chain
def _with_chain(view: BundleView, cert_chain: tuple[PathLike, ...],
                clock: Callable[[], datetime] | None,
                warnings: list[str]) -> tuple[Signer, str, bytes]:
    anchors = load_trust_anchors(cert_chain)
    now = clock() if clock is not None else datetime.now(UTC)
    result = verify_chain(view.certificates, anchors, now)
    leaf_key: Any = result.leaf.public_key()
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
        raise SignatureError("the signing certificate's key is not an EC key",
                             expected="EC P-256/384/521", actual=type(leaf_key).__name__)
    if view.tlog_entries:
        warnings.append("the bundle carries transparency-log entries; certificate verification "
                        "does not check them")
    warnings.extend(verify_envelope_sig(leaf_key, view.payload_type, view.payload,
                                        view.signature, compat_sha256=True))
    leaf = result.leaf
    signer = Signer(
        kind="certificate",
        identity=certificate_identity(leaf) or leaf.subject.rfc4514_string(),
        issuer=result.anchor.subject.rfc4514_string(),
        cert_not_before=leaf.not_valid_before_utc,
        cert_not_after=leaf.not_valid_after_utc,
        cert_fingerprint=_fingerprint(leaf),
        extensions=fulcio_extensions(leaf),
        anchor_fingerprint=_fingerprint(result.anchor),
    )
    return signer, view.payload_type, view.payload
