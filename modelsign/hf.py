"""Hugging Face Hub: publish signed models and verify them before use.

Example::

    from modelsign.hf import verified_snapshot
    path = verified_snapshot("acme/model", revision="main", key="release.pub")

The implementation lives in :mod:`modelsign.integrations.huggingface` (imported on first use).
"""

from __future__ import annotations

from modelsign.integrations.huggingface import (
    HubFile,
    HubSnapshot,
    HubVerification,
    LocalVerification,
    PreflightReport,
    PublishResult,
    hub_snapshot,
    preflight,
    publish,
    verified_snapshot,
    verify_hub,
    verify_local,
)

__all__ = [
    "HubFile",
    "HubSnapshot",
    "HubVerification",
    "LocalVerification",
    "PreflightReport",
    "PublishResult",
    "hub_snapshot",
    "preflight",
    "publish",
    "verified_snapshot",
    "verify_hub",
    "verify_local",
]
