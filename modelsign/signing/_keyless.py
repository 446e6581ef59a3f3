"""Sigstore keyless signing: an OIDC identity token buys a short-lived Fulcio certificate for an
ephemeral key; the DSSE envelope is logged in Rekor; the bundle carries certificate + log entry.

The real sigstore-python client does the protocol (``SigningContext``); this module picks the
trust configuration and the identity token, and turns sigstore's errors into ours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelsign.errors import InputError, PathError
from modelsign.signing._types import SignedBundle
from modelsign.statements import Statement
from modelsign.statements._bundle import bundle_bytes

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken

__all__ = [
    "TOKEN_ENV",
    "KeylessSigner",
    "TokenSource",
    "load_trust_config",
]

#: Environment variable holding an explicit identity token (as for the ``sigstore`` CLI).
TOKEN_ENV = "SIGSTORE_ID_TOKEN"
TokenSource = Literal["explicit", "environment", "ambient", "interactive"]
_MAX_TRUST_CONFIG_BYTES = 4 * 1024 * 1024
_OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"


def load_trust_config(*, staging: bool = False, path: str | os.PathLike[str] | None = None,
                      offline: bool = True) -> ClientTrustConfig:
    """The Sigstore instance to sign with: production (default), staging, or a file.

    ``path`` is a ``ClientTrustConfig`` JSON document (trusted root + signing config), what a
    private Sigstore deployment or ``modelsign sigstore serve`` publishes. Production and staging
    come from the copy shipped in the sigstore wheel (``offline=True``, no TUF round trip) or,
    with ``offline=False``, from a TUF refresh.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    if staging and path is not None:
        raise InputError("--staging and --trust-config are mutually exclusive",
                         hint="pass one of them")
    if path is not None:
        p = Path(path)
        try:
            with open(p, "rb") as f:
                data = f.read(_MAX_TRUST_CONFIG_BYTES + 1)
        except FileNotFoundError as e:
            raise PathError("trust config not found", path=p) from e
        except OSError as e:
            raise PathError(f"cannot read the trust config: {e.strerror or e}", path=p) from e
        if len(data) > _MAX_TRUST_CONFIG_BYTES:
            raise InputError("trust config is too large", path=p,
                             expected=f"<= {_MAX_TRUST_CONFIG_BYTES} bytes", actual="more")
        try:
            return ClientTrustConfig.from_json(data.decode("utf-8"))
        except (ValueError, KeyError, TypeError, SigstoreError) as e:
            raise InputError("not a valid Sigstore ClientTrustConfig", path=p,
                             expected="application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                             actual=_config_problem(e),
                             hint="pass the trust_config.json your deployment (or `modelsign "
                                  "sigstore serve`) writes") from e
    try:
        if staging:
            return ClientTrustConfig.staging(offline=offline)
        return ClientTrustConfig.production(offline=offline)
    except SigstoreError as e:
        raise InputError(f"cannot load the {'staging' if staging else 'production'} Sigstore "
                         f"trust configuration: {_first_line(e)}",
                         hint="pass --trust-config FILE") from e


def _config_problem(e: BaseException) -> str:
    """The field a trust config fails on (pydantic lists every error over many lines)."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError) and e.errors():
        errors = e.errors()
        first = errors[0]
        loc = ".".join(str(part) for part in first["loc"])
        field = f"field {loc!r}" if loc else "the document"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{field}: {first['msg']}{more}"[:200]
    return f"{type(e).__name__}: {_first_line(e)[:120]}"


def _identity_token(raw: str, *, client_id: str, source: TokenSource) -> IdentityToken:
    from sigstore.oidc import ExpiredIdentity, IdentityError, IdentityToken

    where = {"explicit": "the identity token", "environment": f"${TOKEN_ENV}",
             "ambient": "the ambient CI identity token",
             "interactive": "the identity token from the browser flow"}[source]
    try:
        return IdentityToken(raw.strip(), client_id)
    except (IdentityError, ExpiredIdentity) as e:
        found, hint = _token_problem(e, client_id)
        raise InputError(f"{where} is not usable",
                         expected=f"an unexpired OIDC JWT with aud={client_id!r}, iss, sub, "
                                  "iat and exp",
                         actual=found, hint=hint) from e


def _token_problem(e: BaseException, client_id: str) -> tuple[str, str]:
    """What is wrong with an identity token sigstore refused, and what to do about it.

    sigstore's ``IdentityError`` says only "malformed or missing claims"; the PyJWT error it
    wraps names the claim."""
    import jwt

    fresh = "get a fresh token (tokens last minutes)"
    cause = e.__cause__
    if isinstance(cause, jwt.MissingRequiredClaimError):
        return f"no {cause.claim!r} claim", "pass an OIDC ID token from a Sigstore-supported issuer"
    if isinstance(cause, jwt.ExpiredSignatureError):
        return "an expired token (exp is in the past)", fresh
    if isinstance(cause, (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError)):
        return "a token not valid yet (iat or nbf in the future)", "check the system clock"
    if isinstance(cause, jwt.InvalidAudienceError):
        return (f"a token for another audience ({_first_line(cause)})",
                f"request the token with audience {client_id!r}")
    if isinstance(cause, jwt.DecodeError):
        return (f"not a JWT ({_first_line(cause)})",
                "pass the raw OIDC ID token (three base64url parts joined by '.')")
    if cause is not None:
        return f"{type(cause).__name__}: {_first_line(cause)}", fresh
    detail = _first_line(e)  # sigstore's own checks: validity period, issuer-specific claim
    if "validity" in detail:
        return detail, fresh
    return detail, "pass an ID token that has that claim (e.g. request the email scope)"


def _first_line(e: BaseException) -> str:
    """A foreign exception as one short line (pydantic and sigstore errors span many)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]


def _http_detail(e: BaseException) -> str:
    """Status and body of the HTTP error behind a sigstore client error, if any."""
    import requests

    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, requests.HTTPError):
        cause = cause.__cause__
    if cause is None or cause.response is None:
        return _first_line(e)
    body = " ".join(cause.response.text.split())[:200]
    return f"HTTP {cause.response.status_code}" + (f": {body}" if body else "")


def _certificate_identity(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """The SAN identity and the OIDC issuer extension of a Fulcio certificate."""
    from cryptography import x509 as _x509
    from cryptography.x509.oid import ObjectIdentifier

    identity = None
    try:
        san = cert.extensions.get_extension_for_class(_x509.SubjectAlternativeName).value
        values = ([str(v) for v in san.get_values_for_type(_x509.RFC822Name)]
                  + [str(v) for v in san.get_values_for_type(_x509.UniformResourceIdentifier)])
        identity = values[0] if values else None
    except _x509.ExtensionNotFound:
        pass
    issuer = None
    for oid in (_OID_ISSUER_V2, _OID_ISSUER_V1):
        try:
            raw = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value
        except _x509.ExtensionNotFound:
            continue
        value: bytes = getattr(raw, "value", b"")
        if oid == _OID_ISSUER_V2 and len(value) >= 2 and value[0] == 0x0C:  # DER UTF8String
            value = value[2:] if value[1] < 0x80 else value[2 + (value[1] & 0x7F):]
        issuer = value.decode("utf-8", "replace")
        break
    return identity, issuer


class KeylessSigner:
    """Sign with Sigstore: identity token -> Fulcio certificate -> DSSE -> Rekor entry.

    The token is taken, in order, from ``identity_token``, the ``SIGSTORE_ID_TOKEN`` environment
    variable (``environ``), ambient CI credentials (GitHub Actions, GitLab, GCP, Buildkite,
    CircleCI; when ``ambient``), and finally the interactive browser flow of the trust config's
    OIDC issuer (when ``interactive``; ``force_oob`` prints a URL and reads a pasted code). An
    explicit or environment token is checked when the signer is built, so a bad one fails before
    hashing; ambient and interactive tokens are fetched at signing time, so they are fresh.
    """

    __slots__ = (
        "_ambient",
        "_client_id",
        "_client_secret",
        "_force_oob",
        "_interactive",
        "_oidc_issuer",
        "_token",
        "_token_source",
        "_trust_config",
    )

    def __init__(self, *, trust_config: ClientTrustConfig | None = None,
                 identity_token: str | None = None, ambient: bool = True,
                 interactive: bool = True, force_oob: bool = False,
                 oidc_issuer: str | None = None, client_id: str = "sigstore",
                 client_secret: str = "", environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._trust_config = trust_config if trust_config is not None else load_trust_config()
        self._client_id = client_id
        self._client_secret = client_secret
        self._ambient = ambient
        self._interactive = interactive
        self._force_oob = force_oob
        self._oidc_issuer = oidc_issuer
        self._token: IdentityToken | None = None
        self._token_source: TokenSource | None = None
        if identity_token:
            self._token_source = "explicit"
            self._token = _identity_token(identity_token, client_id=client_id, source="explicit")
        elif env.get(TOKEN_ENV):
            self._token_source = "environment"
            self._token = _identity_token(env[TOKEN_ENV], client_id=client_id,
                                          source="environment")

    @property
    def trust_config(self) -> ClientTrustConfig:
        return self._trust_config

    def _get_token(self) -> tuple[IdentityToken, TokenSource]:
        if self._token is not None and self._token_source is not None:
            # Re-parse: an explicit token checked at start-up may have expired while hashing.
            return (_identity_token(str(self._token), client_id=self._client_id,
                                    source=self._token_source), self._token_source)
        if self._ambient:
            from sigstore.oidc import IdentityError, detect_credential

            try:
                raw = detect_credential(self._client_id)
            except IdentityError as e:
                raise InputError("ambient CI credentials were found but cannot be used: "
                                 f"{_first_line(e)}",
                                 hint="check the CI job's OIDC permissions (e.g. GitHub "
                                      "`permissions: id-token: write`), or pass "
                                      "--identity-token") from e
            if raw:
                return _identity_token(raw, client_id=self._client_id, source="ambient"), "ambient"
        if not self._interactive:
            raise InputError("no identity token for keyless signing",
                             expected=f"--identity-token, ${TOKEN_ENV} or CI credentials",
                             actual="none", hint="pass --identity-token, or sign with --key")
        return self._interactive_token(), "interactive"

    def _interactive_token(self) -> IdentityToken:
        from sigstore.errors import Error as SigstoreError
        from sigstore.oidc import ExpiredIdentity, Issuer, IssuerError

        url = self._oidc_issuer
        try:
            if url is None:
                url = self._trust_config.signing_config.get_oidc_url()
            return Issuer(url).identity_token(client_id=self._client_id,
                                              client_secret=self._client_secret,
                                              force_oob=self._force_oob)
        except (IssuerError, SigstoreError, ExpiredIdentity) as e:
            raise InputError(f"the interactive sign-in with {url or 'the OIDC issuer'} failed: "
                             f"{_http_detail(e)}",
                             hint="retry, use --oauth-force-oob to paste a code, or pass "
                                  "--identity-token") from e
        except EOFError as e:  # the out-of-band flow read a code from a closed stdin (CI)
            raise InputError("no identity token for keyless signing: the interactive sign-in "
                             "needs a terminal, and no token or CI credentials were found",
                             hint="pass --identity-token or set SIGSTORE_ID_TOKEN; in CI, grant "
                                  "the job an OIDC token; or sign with --key") from e

    def sign(self, statement: Statement) -> SignedBundle:
        import requests
        from sigstore import dsse
        from sigstore._internal.fulcio.client import ExpiredCertificate, FulcioClientError
        from sigstore._internal.rekor import RekorClientError
        from sigstore.errors import Error as SigstoreError
        from sigstore.oidc import ExpiredIdentity
        from sigstore.sign import SigningContext

        token, source = self._get_token()
        sc = self._trust_config.signing_config
        fulcio_url = rekor_url = "?"
        try:
            fulcio = sc.get_fulcio()
            fulcio_url = fulcio.url
            ctx = SigningContext.from_trust_config(self._trust_config)
            rekor_url = getattr(ctx._rekor, "url", rekor_url)
            payload = dsse.Statement(statement.raw)
        except (SigstoreError, ValueError) as e:
            raise InputError("the Sigstore signing configuration is not usable: "
                             f"{_first_line(e)}",
                             hint="check --trust-config / --staging") from e
        stage = "certificate"
        try:
            with ctx.signer(token) as signer:
                stage = "log"
                bundle = signer.sign_dsse(payload)
        except FulcioClientError as e:
            raise InputError(
                f"Fulcio at {fulcio_url} refused the signing certificate for {token.identity} "
                f"(issuer {token.issuer}, token from {source}): {_http_detail(e)}",
                hint="the token may be expired, for another audience, or from an issuer this "
                     "Fulcio does not trust; get a fresh token, or check --trust-config") from e
        except RekorClientError as e:
            raise InputError(f"Rekor at {rekor_url} refused the log entry: {_http_detail(e)}",
                             hint="retry; check --trust-config") from e
        except (ExpiredIdentity, ExpiredCertificate) as e:
            raise InputError(f"the identity token for {token.identity} expired before signing",
                             hint="get a fresh token and sign again") from e
        except requests.RequestException as e:
            where = fulcio_url if stage == "certificate" else rekor_url
            raise InputError(f"cannot reach the Sigstore service at {where}: "
                             f"{type(e).__name__}",
                             hint="check the network, or --trust-config for a private "
                                  "deployment") from e
        except SigstoreError as e:
            # e.g. the certificate's SCT does not verify against this trust config's CT keys.
            raise InputError(f"Sigstore signing failed at the {stage} step: {_first_line(e)}",
                             hint="check that --trust-config matches the Fulcio/Rekor "
                                  "services it names") from e
        obj: dict[str, Any] = json.loads(bundle.to_json())
        identity, issuer = _certificate_identity(bundle.signing_certificate)
        log_index: int | None = None
        entries = obj.get("verificationMaterial", {}).get("tlogEntries") or []
        if entries and str(entries[0].get("logIndex", "")).isdigit():
            log_index = int(entries[0]["logIndex"])
        return SignedBundle(bundle_bytes(obj), statement, "sigstore",
                            identity=identity or token.identity,
                            issuer=issuer or token.issuer, log_index=log_index)
