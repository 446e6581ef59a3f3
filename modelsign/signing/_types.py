"""The one hook every signing backend implements, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from modelsign.statements import Statement

SignMethod = Literal["key", "certificate", "sigstore"]


@dataclass(frozen=True, slots=True)
class SignedBundle:
    """A Sigstore bundle over one statement, ready to write.

    ``raw`` is the exact file content (RFC 8785 canonical JSON and a newline); the DSSE payload
    inside it is ``statement.raw``, byte for byte. The other fields describe the signer for
    humans and reports; they are what the signer *claimed*, not anything verified.
    """

    raw: bytes
    statement: Statement
    method: SignMethod
    #: key: hex SHA-256 of the public key PEM (``publicKey.hint``); certificate: of the leaf's key.
    key_hint: str | None = None
    #: certificate: the leaf's subject (RFC 4514); sigstore: the token's identity.
    identity: str | None = None
    #: sigstore: the OIDC issuer of the token.
    issuer: str | None = None
    #: sigstore: the transparency log index of the entry.
    log_index: int | None = None

    def describe(self) -> str:
        """One line naming the signer, for the CLI."""
        if self.method == "sigstore":
            return (f"Sigstore keyless as {self.identity} (issuer {self.issuer}), "
                    f"log index {self.log_index}")
        if self.method == "certificate":
            return f"certificate {self.identity} (key {self.key_hint})"
        return f"key {self.key_hint}"


@runtime_checkable
class Signer(Protocol):
    """Signs an in-toto statement into a Sigstore bundle with a DSSE envelope.

    Implementations sign ``statement.raw`` exactly (payload type ``application/vnd.in-toto+json``)
    and never re-serialize it. Any statement may be signed: the OMS model signature, and the SLSA
    provenance claims of later issues. Failures are :class:`modelsign.errors.ModelsignError`.
    """

    def sign(self, statement: Statement) -> SignedBundle: ...
