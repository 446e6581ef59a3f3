"""The Hub resolver's interface, and the meter that bounds remote resolution.

The walker never talks to a Hub itself: it calls a :class:`HubClient` (``hub=``), so tests and
other hubs plug in their own. :class:`modelsign.lineage.HuggingFaceHub` is the implementation
over ``huggingface_hub`` and :mod:`modelsign._hub` (never the integrations, which sit above).

What a client returns is material to verify, never a verdict: the walker verifies ``model.sig``
and ``claims.jsonl`` itself, and the one thing it takes from the client, the comparison of the
signed manifest with the Hub's per-file sha256 metadata, is reported as "checked against the
Hub's metadata" (a claim of the Hub's), not as re-hashed bytes. With ``fetch_files`` the client
downloads the files and returns a :class:`~modelsign.verify.VerificationResult`, which only
:mod:`modelsign.verify` can make.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from modelsign.errors import LineageError
from modelsign.lineage._model import Budget
from modelsign.manifest import Manifest
from modelsign.verify import Trust, VerificationResult

__all__ = [
    "HubClient",
    "HubComparison",
    "HubFiles",
    "HubRef",
    "RemoteBudgetExceeded",
    "RemoteMeter",
    "parse_hub_uri",
]

_HUB_URI = re.compile(
    r"^hf://(?P<datasets>datasets/)?(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
    r"/[A-Za-z0-9][A-Za-z0-9._-]{0,95})$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class HubRef:
    """A Hub repository pinned to a commit: what a child recorded as ``uri`` + ``gitCommit``."""

    repo_id: str
    repo_type: Literal["model", "dataset"]
    commit: str

    @property
    def uri(self) -> str:
        prefix = "hf://datasets/" if self.repo_type == "dataset" else "hf://"
        return f"{prefix}{self.repo_id}"

    def __str__(self) -> str:
        return f"{self.uri}@{self.commit}"


def parse_hub_uri(uri: str | None, commit: str | None) -> HubRef | None:
    """``hf://org/name`` (or ``hf://datasets/org/name``) + a 40-hex commit, else ``None``."""
    if not uri or not commit or not _COMMIT.fullmatch(commit):
        return None
    m = _HUB_URI.fullmatch(uri)
    if m is None or ".." in m["repo"]:
        return None
    return HubRef(m["repo"], "dataset" if m["datasets"] else "model", commit)


class RemoteBudgetExceeded(LineageError):
    """The walk's time or byte budget for remote resolution is spent."""


class RemoteMeter:
    """Counts time and bytes of remote resolution against a :class:`Budget` (one per walk)."""

    def __init__(self, budget: Budget, clock: Callable[[], float] | None = None) -> None:
        self.budget = budget
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self.bytes = 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    @property
    def remaining_seconds(self) -> float:
        return self.budget.max_seconds - self.elapsed

    @property
    def remaining_bytes(self) -> int:
        return self.budget.max_bytes - self.bytes

    def check_time(self, what: str) -> None:
        if self.elapsed > self.budget.max_seconds:
            raise RemoteBudgetExceeded(
                f"{what}: the time budget for remote resolution is spent",
                expected=f"<= {self.budget.max_seconds:g} s",
                actual=f"{self.elapsed:.1f} s",
                hint="raise --remote-timeout, or resolve from --store / --upstream")

    def charge(self, nbytes: int, what: str) -> None:
        """Account for ``nbytes`` about to be fetched; refuse before fetching when over."""
        self.check_time(what)
        if self.bytes + nbytes > self.budget.max_bytes:
            raise RemoteBudgetExceeded(
                f"{what}: the byte budget for remote resolution would be exceeded",
                expected=f"<= {self.budget.max_bytes} bytes in all",
                actual=f"{self.bytes} fetched + {nbytes}",
                hint="raise --remote-max-bytes, or resolve from --store / --upstream")
        self.bytes += nbytes


@dataclass(frozen=True, slots=True)
class HubFiles:
    """``model.sig`` and ``claims.jsonl`` of one pinned revision, downloaded (nothing else).

    ``signature`` is ``None`` when the commit has no ``model.sig``. ``handle`` is the client's
    own state (e.g. the file metadata it read), passed back to :meth:`HubClient.compare`.
    """

    ref: HubRef
    signature: Path | None
    claims: Path | None
    handle: object = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class HubComparison:
    """The signed manifest against the Hub's per-file metadata at the commit.

    ``checked``: files whose Hub sha256 equals the signed digest; ``unchecked``: signed files
    the Hub has no sha256 for (regular git files, or a non-sha256 signature); ``problems``: one
    line per changed, missing or extra file.
    """

    checked: int
    unchecked: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@runtime_checkable
class HubClient(Protocol):
    """How the walker reaches a Hub (inject with ``verify_lineage(..., hub=...)``).

    Raise :class:`~modelsign.errors.ModelsignError` subclasses on failure (the walker records
    them on the node as ``unresolved``) and charge every byte to ``meter`` *before* fetching it.
    """

    def fetch(self, ref: HubRef, *, meter: RemoteMeter) -> HubFiles:
        """Download ``model.sig`` and ``claims.jsonl`` (when present) at ``ref.commit``."""
        ...

    def compare(self, files: HubFiles, manifest: Manifest) -> HubComparison:
        """Compare a *verified* signed manifest with the Hub's per-file sha256 metadata."""
        ...

    def download_and_verify(self, files: HubFiles, *, identities: Sequence[object] = (),
                            key: Path | None = None, cert_chain: Sequence[Path] = (),
                            trust: Trust | None = None,
                            meter: RemoteMeter) -> VerificationResult:
        """Download every file at the commit and verify the local bytes (``--fetch-files``)."""
        ...

