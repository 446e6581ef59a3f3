"""Where keyless verification gets its root of trust.

The default is Sigstore's production trusted root *as shipped inside the installed sigstore
wheel*: no network, no TUF refresh, nothing written to the user's cache. That root is as fresh as
the wheel; ``refresh=True`` (CLI ``--refresh-trust``) opts into a TUF update, which does touch the
network and sigstore-python's cache. ``Trust.from_trusted_root`` / ``from_trust_config`` read a
file (private deployments, the loopback Sigstore of ``modelsign.testing``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from modelsign.errors import InputError, SignatureError

__all__ = ["Trust"]

TrustKind = Literal["production", "staging", "trusted_root", "trust_config"]

_PRODUCTION_TUF = "https://tuf-repo-cdn.sigstore.dev"
_STAGING_TUF = "https://tuf-repo-cdn.sigstage.dev"
_MAX_TRUST_FILE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Trust:
    """A frozen description of a Sigstore root of trust; loading happens at verification time."""

    kind: TrustKind = "production"
    path: str | None = None
    refresh: bool = False

    @classmethod
    def production(cls, *, refresh: bool = False) -> Trust:
        """Sigstore's public-good instance (the root bundled in the sigstore wheel)."""
        return cls("production", None, refresh)

    @classmethod
    def staging(cls, *, refresh: bool = False) -> Trust:
        """Sigstore's staging instance (bundled root; for testing signing pipelines)."""
        return cls("staging", None, refresh)

    @classmethod
    def from_trusted_root(cls, path: str | os.PathLike[str]) -> Trust:
        """A ``trusted_root.json`` (``application/vnd.dev.sigstore.trustedroot+json``)."""
        return cls("trusted_root", os.fspath(path), False)

    @classmethod
    def from_trust_config(cls, path: str | os.PathLike[str]) -> Trust:
        """A client trust config (``application/vnd.dev.sigstore.clienttrustconfig.v0.1+json``)."""
        return cls("trust_config", os.fspath(path), False)

    def __post_init__(self) -> None:
        if self.kind in ("trusted_root", "trust_config") and not self.path:
            raise InputError(f"{self.kind} trust needs a file path")
        if self.refresh and self.kind not in ("production", "staging"):
            raise InputError("--refresh-trust only applies to the production or staging instance",
                             hint="a trusted root read from a file is used as is")

    def describe(self) -> str:
        if self.kind in ("production", "staging"):
            how = "refreshed over TUF" if self.refresh else "bundled with sigstore, offline"
            return f"Sigstore {self.kind} ({how})"
        return f"{self.kind.replace('_', ' ')} {self.path}"

    def load(self) -> object:
        """The ``sigstore.models.TrustedRoot`` (typed ``object``: sigstore stays out of the API)."""
        if self.kind in ("production", "staging") and not self.refresh:
            return _bundled(self.kind)
        return _load(self)


@lru_cache(maxsize=2)
def _bundled(kind: str) -> object:
    """The bundled roots never change within a process: parse each once."""
    return _load(Trust(kind, None, False))  # type: ignore[arg-type]


def _load(trust: Trust) -> object:
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    try:
        if trust.kind in ("production", "staging"):
            url = _PRODUCTION_TUF if trust.kind == "production" else _STAGING_TUF
            if trust.refresh:
                cfg = (ClientTrustConfig.production() if trust.kind == "production"
                       else ClientTrustConfig.staging())
                return cfg.trusted_root
            raw = (resources.files("sigstore._store") / quote(url, safe="") /
                   "trusted_root.json").read_bytes()
            return TrustedRoot(trustroot_v1.TrustedRoot.from_json(raw))
        assert trust.path is not None
        data = _read_trust_file(Path(trust.path))
        if trust.kind == "trusted_root":
            return TrustedRoot(trustroot_v1.TrustedRoot.from_json(data))
        return ClientTrustConfig.from_json(data.decode("utf-8")).trusted_root
    except InputError:
        raise
    except FileNotFoundError as e:  # the bundled asset itself: a broken installation
        raise SignatureError(f"the trusted root bundled with sigstore is missing: {e}",
                             hint="reinstall sigstore, or pass --trusted-root FILE") from e
    except Exception as e:  # noqa: BLE001 - sigstore/pydantic/TUF raise many kinds
        if trust.refresh:
            raise SignatureError(f"could not refresh the {trust.kind} trusted root over TUF",
                                 actual=f"{type(e).__name__}: {str(e)[:200]}",
                                 hint="check network access, or drop --refresh-trust to use "
                                      "the root bundled with sigstore") from e
        raise InputError(f"not a valid {trust.kind.replace('_', ' ')}",
                         path=trust.path,
                         expected="a Sigstore trusted_root.json" if trust.kind == "trusted_root"
                         else "a Sigstore client trust config JSON",
                         actual=f"{type(e).__name__}: {str(e)[:160]}") from e


def _read_trust_file(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_TRUST_FILE + 1)
    except OSError as e:
        raise InputError(f"cannot read trust file: {e.strerror or e}", path=path,
                         hint="check the --trusted-root / --trust-config path") from e
    if len(data) > _MAX_TRUST_FILE:
        raise InputError("trust file is too large", path=path,
                         expected=f"<= {_MAX_TRUST_FILE} bytes", actual="more")
    return data
