"""Signing backends and ``sign_model``.

Each backend is small and has one hook, ``sign(statement) -> SignedBundle`` (the :class:`Signer`
protocol): :class:`KeySigner` (EC private key), :class:`CertificateSigner` (key + X.509 chain),
:class:`KeylessSigner` (Sigstore: OIDC token, Fulcio, Rekor). They sign any in-toto statement:
the OMS model signature here, provenance claims elsewhere. Bundles are what ``model_signing``
1.1.1 writes and verifies (docs/decisions/0005-signing.md).

Example::

    from modelsign.signing import KeySigner, sign_model
    result = sign_model("my-model", signer=KeySigner.from_pem_file("key.pem"))
    print(result.root_digest, result.path)
"""

from modelsign.signing._api import SignResult, sign_manifest, sign_model
from modelsign.signing._keyless import TOKEN_ENV, KeylessSigner, TokenSource, load_trust_config
from modelsign.signing._keys import (
    SUPPORTED_CURVES,
    CertificateSigner,
    Curve,
    KeySigner,
    load_private_key,
    read_password_file,
)
from modelsign.signing._types import SignedBundle, Signer, SignMethod
from modelsign.signing._write import write_atomic

__all__ = [
    "SUPPORTED_CURVES",
    "TOKEN_ENV",
    "CertificateSigner",
    "Curve",
    "KeySigner",
    "KeylessSigner",
    "SignMethod",
    "SignResult",
    "SignedBundle",
    "Signer",
    "TokenSource",
    "load_private_key",
    "load_trust_config",
    "read_password_file",
    "sign_manifest",
    "sign_model",
    "write_atomic",
]
