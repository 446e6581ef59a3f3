"""Load transformers models only after they verify.

Example::

    from transformers import AutoModel
    from modelsign.transformers import from_pretrained

    model = from_pretrained(AutoModel, "acme/model", revision="main", key="release.pub")

The implementation lives in :mod:`modelsign.integrations.transformers`; transformers itself is
imported by the class you pass, not by modelsign.
"""

from __future__ import annotations

from modelsign.integrations.transformers import (
    PICKLE_SUFFIXES,
    LoadRefusedError,
    PickleRule,
    VerifiedModelDir,
    find_pickles,
    from_pretrained,
    verify_for_loading,
)

__all__ = [
    "PICKLE_SUFFIXES",
    "LoadRefusedError",
    "PickleRule",
    "VerifiedModelDir",
    "find_pickles",
    "from_pretrained",
    "verify_for_loading",
]
