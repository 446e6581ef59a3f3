"""pytest fixtures for signing and verifying offline against a loopback Sigstore.

Enable them in a ``conftest.py`` (or with ``pytest -p modelsign.testing.pytest_plugin``)::

    pytest_plugins = ["modelsign.testing.pytest_plugin"]

Then, in a test::

    def test_release_is_signed(sigstore_trust_config, identity_token, loopback_sigstore):
        token = identity_token("release@acme.example")
        run_my_pipeline(trust_config=sigstore_trust_config, identity_token=token)
        verify(..., identity="release@acme.example", issuer=loopback_sigstore.url)

Fixtures:

``loopback_sigstore`` (session)
    a started :class:`~modelsign.testing.LoopbackSigstore`, stopped at the end of the session.
``sigstore_trust_config`` (session)
    path of its ``ClientTrustConfig`` JSON (what ``--trust-config`` and
    ``ClientTrustConfig.from_json`` read).
``sigstore_trusted_root`` (session)
    path of its ``TrustedRoot`` JSON (what ``--trusted-root`` reads).
``identity_token`` (function)
    ``identity_token(identity=DEFAULT_IDENTITY, **options) -> str``: a token for the loopback
    Fulcio; options as :meth:`~modelsign.testing.LoopbackSigstore.mint_token`.
``github_actions_ambient`` (function)
    ``github_actions_ambient(workflow=None) -> GitHubWorkflow``: sets the environment of a
    GitHub Actions job (undone after the test), so ambient credential detection finds a token for
    ``workflow`` from the loopback issuer.

The session instance is shared by every test of a worker: do not rely on the log's size there;
start your own ``LoopbackSigstore`` for tests that need a fresh log or a second, foreign root.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import pytest

from modelsign.testing._sigstore import CertificateFault, GitHubWorkflow, LoopbackSigstore

__all__ = [
    "DEFAULT_IDENTITY",
    "GitHubActionsAmbient",
    "TokenFactory",
    "github_actions_ambient",
    "identity_token",
    "loopback_sigstore",
    "sigstore_trust_config",
    "sigstore_trusted_root",
]

DEFAULT_IDENTITY = "signer@modelsign.test"
"""The identity :func:`identity_token` mints for when none is given."""


class TokenFactory(Protocol):
    """What the ``identity_token`` fixture returns."""

    def __call__(
        self,
        identity: str = DEFAULT_IDENTITY,
        *,
        email: bool | None = None,
        ttl: int = 600,
        issuer: str | None = None,
        extra: Mapping[str, object] | None = None,
        certificate_fault: CertificateFault | None = None,
    ) -> str: ...


class GitHubActionsAmbient(Protocol):
    """What the ``github_actions_ambient`` fixture returns."""

    def __call__(self, workflow: GitHubWorkflow | None = None) -> GitHubWorkflow: ...


@pytest.fixture(scope="session")
def loopback_sigstore() -> Iterator[LoopbackSigstore]:
    """A loopback Sigstore for the whole session (one per xdist worker)."""
    with LoopbackSigstore() as sigstore:
        yield sigstore


@pytest.fixture(scope="session")
def sigstore_trust_config(loopback_sigstore: LoopbackSigstore,
                          tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the session Sigstore's ``ClientTrustConfig`` JSON."""
    directory = tmp_path_factory.mktemp("loopback-sigstore")
    return loopback_sigstore.write_trust_config(directory / "trust_config.json")


@pytest.fixture(scope="session")
def sigstore_trusted_root(loopback_sigstore: LoopbackSigstore,
                          tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the session Sigstore's ``TrustedRoot`` JSON."""
    directory = tmp_path_factory.mktemp("loopback-sigstore")
    return loopback_sigstore.write_trusted_root(directory / "trusted_root.json")


@pytest.fixture
def identity_token(loopback_sigstore: LoopbackSigstore) -> TokenFactory:
    """A factory of identity tokens from the session Sigstore's issuer."""

    def mint(
        identity: str = DEFAULT_IDENTITY,
        *,
        email: bool | None = None,
        ttl: int = 600,
        issuer: str | None = None,
        extra: Mapping[str, object] | None = None,
        certificate_fault: CertificateFault | None = None,
    ) -> str:
        return loopback_sigstore.mint_token(identity, email=email, ttl=ttl, issuer=issuer,
                                            extra=extra, certificate_fault=certificate_fault)

    return mint


@pytest.fixture
def github_actions_ambient(loopback_sigstore: LoopbackSigstore,
                           monkeypatch: pytest.MonkeyPatch) -> GitHubActionsAmbient:
    """Make the test look like a GitHub Actions job whose OIDC tokens come from the loopback."""

    def enter(workflow: GitHubWorkflow | None = None) -> GitHubWorkflow:
        workflow = workflow or GitHubWorkflow()
        for name, value in loopback_sigstore.github_actions_env(workflow).items():
            monkeypatch.setenv(name, value)
        return workflow

    return enter
