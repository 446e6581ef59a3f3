"""Verification: bundles → :class:`VerifiedStatement`, models → :class:`VerificationResult`.

The only code in modelsign that says "verified". Lineage and policy accept nothing else.
"""

from modelsign.statements._bundle import MAX_BUNDLE_BYTES
from modelsign.verify._identity import Identity
from modelsign.verify._model import verify_model
from modelsign.verify._result import (
    FileResult,
    FileStatus,
    IntegrityFailure,
    Signer,
    SignerKind,
    VerificationResult,
    VerifiedStatement,
)
from modelsign.verify._signature import verify_bundle
from modelsign.verify._trust import Trust

__all__ = [
    "MAX_BUNDLE_BYTES",
    "FileResult",
    "FileStatus",
    "Identity",
    "IntegrityFailure",
    "Signer",
    "SignerKind",
    "Trust",
    "VerificationResult",
    "VerifiedStatement",
    "verify_bundle",
    "verify_model",
]
