"""``HuggingFaceHub``: the :class:`~modelsign.lineage.HubClient` over ``huggingface_hub``.

Built on :mod:`modelsign._hub` (``hub_snapshot`` reads a commit's file metadata in one call,
``preflight`` compares a signed manifest with it, ``verify_local`` verifies a download), the Hub
layer below both lineage and :mod:`modelsign.integrations.huggingface`: lineage never imports the
integrations, which sit above it in the dependency order. ``huggingface_hub`` itself is imported
only when a caller asks for the Hub.

Only ``model.sig`` and ``claims.jsonl`` are downloaded, pinned to the commit the child recorded,
each charged to the walk's byte budget (by the size the Hub reports, before downloading, and by
the size received); ``download_and_verify`` fetches everything (``--fetch-files``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelsign._hub import (
    MAX_CLAIMS_BYTES,
    HubSnapshot,
    hub_errors,
    hub_snapshot,
    preflight,
    resolve_endpoint,
    verify_local,
)
from modelsign.errors import SignatureFormatError
from modelsign.hashing._spec import CLAIMS_FILE, SIGNATURE_FILE
from modelsign.lineage._hub import HubComparison, HubFiles, HubRef, RemoteMeter
from modelsign.manifest import Manifest
from modelsign.verify import Trust, VerificationResult

__all__ = ["HuggingFaceHub"]

_MAX_SIG = 64 * 1024 * 1024


class HuggingFaceHub:
    """Resolve ``hf://org/name@<commit>`` parents on the Hugging Face Hub (or a compatible one).

    ``endpoint`` defaults to ``HF_ENDPOINT`` read at call time, then huggingface.co; ``token`` to
    the client's own lookup (``HF_TOKEN``). ``cache_dir`` is where downloads go (default: the
    Hugging Face cache). ``api`` injects an ``HfApi``.
    """

    def __init__(self, *, endpoint: str | None = None, token: str | bool | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, api: Any = None) -> None:
        self.endpoint = endpoint
        self.token = token
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.api = api

    def _endpoint(self) -> str | None:
        return resolve_endpoint(self.endpoint)

    def fetch(self, ref: HubRef, *, meter: RemoteMeter) -> HubFiles:
        meter.check_time(f"reading {ref}")
        snap = hub_snapshot(ref.repo_id, ref.commit, repo_type=ref.repo_type, api=self.api,
                            endpoint=self._endpoint(), token=self.token)
        sig = claims = None
        if SIGNATURE_FILE in snap.files:
            sig = self._get(ref, snap, SIGNATURE_FILE, _MAX_SIG, meter)
        if CLAIMS_FILE in snap.files:
            claims = self._get(ref, snap, CLAIMS_FILE, MAX_CLAIMS_BYTES, meter)
        return HubFiles(ref, sig, claims, snap)

    def _get(self, ref: HubRef, snap: HubSnapshot, name: str, limit: int,
             meter: RemoteMeter) -> Path:
        from huggingface_hub import hf_hub_download

        size = snap.files[name].size
        if size is not None and size > limit:
            raise SignatureFormatError(f"{name} on the Hub is too large", path=str(ref),
                                       expected=f"<= {limit} bytes", actual=f"{size} bytes")
        meter.charge(size or 0, f"downloading {name} of {ref}")
        with hub_errors(ref.repo_id, ref.commit, f"downloading {name}"):
            got = Path(hf_hub_download(ref.repo_id, name, revision=ref.commit,
                                       repo_type=ref.repo_type, cache_dir=self.cache_dir,
                                       endpoint=self._endpoint(), token=self.token))
        actual = got.stat().st_size
        if actual > limit:
            raise SignatureFormatError(f"{name} is too large", path=str(got),
                                       expected=f"<= {limit} bytes", actual=f"{actual} bytes")
        if size is None or actual != size:  # charge what really came
            meter.charge(max(actual - (size or 0), 0), f"downloading {name} of {ref}")
        return got

    def compare(self, files: HubFiles, manifest: Manifest) -> HubComparison:
        report = preflight(manifest, files.handle)  # type: ignore[arg-type]
        return HubComparison(len(report.checked), tuple(report.unchecked),
                             tuple(report.describe()))

    def download_and_verify(self, files: HubFiles, *, identities: Sequence[object] = (),
                            key: Path | None = None, cert_chain: Sequence[Path] = (),
                            trust: Trust | None = None,
                            meter: RemoteMeter) -> VerificationResult:
        from huggingface_hub import snapshot_download

        ref = files.ref
        snap: Any = files.handle
        total = sum(int(f.size or 0) for f in snap.files.values())
        meter.charge(total, f"downloading every file of {ref}")
        with hub_errors(ref.repo_id, ref.commit, "downloading"):
            got = snapshot_download(ref.repo_id, revision=ref.commit, repo_type=ref.repo_type,
                                    cache_dir=self.cache_dir, endpoint=self._endpoint(),
                                    token=self.token)
        local = verify_local(Path(got), identities=identities,  # type: ignore[arg-type]
                             key=key, cert_chain=cert_chain, trust=trust)
        return local.result
