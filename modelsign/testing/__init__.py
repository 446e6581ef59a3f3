"""Test Sigstore signing offline: a loopback Sigstore and pytest fixtures.

:class:`LoopbackSigstore` serves Fulcio v2, Rekor v1 and an OIDC issuer on ``127.0.0.1``; the
real sigstore-python client signs against it and the real verifier accepts the result when given
its trust root (:meth:`LoopbackSigstore.write_trust_config`). It is for tests only: it issues
identity tokens for any identity to anyone who can reach its port.

pytest users enable the fixtures (``loopback_sigstore``, ``sigstore_trust_config``,
``sigstore_trusted_root``, ``identity_token``, ``github_actions_ambient``) with::

    pytest_plugins = ["modelsign.testing.pytest_plugin"]

and ``modelsign sigstore serve`` runs the same stack from the command line.
"""

from __future__ import annotations

from modelsign.testing._hub import LoopbackHub
from modelsign.testing._pki import CertChain, KeyPair, make_cert_chain, make_key
from modelsign.testing._sigstore import (
    DEFAULT_MAX_REQUEST_BYTES,
    GITHUB_ACTIONS_ISSUER,
    CertificateFault,
    GitHubWorkflow,
    LoopbackSigstore,
)

__all__ = [
    "CertChain",
    "KeyPair",
    "make_cert_chain",
    "make_key",
    "DEFAULT_MAX_REQUEST_BYTES",
    "GITHUB_ACTIONS_ISSUER",
    "CertificateFault",
    "GitHubWorkflow",
    "LoopbackHub",
    "LoopbackSigstore",
]
