"""transformers: verify, then ``from_pretrained`` from the verified directory, offline.

transformers has no verification hook, so the order is what makes it safe: verify the exact
directory (a local one, or a Hub snapshot through
:func:`modelsign.integrations.huggingface.verify_hub`), check what the verified files would make
transformers *do* (run repository code, unpickle), then call
``cls.from_pretrained(<that directory>, local_files_only=True, ...)`` so nothing else is
fetched. Every refusal is a :class:`LoadRefusedError` whose message says what failed; the
underlying modelsign error, if any, is its ``__cause__``.

Checks after verification:

* ``trust_remote_code=True`` is refused unless every ``.py`` file in the directory is listed in
  the signed manifest (a file left out by the signature's ``ignore_paths`` verifies, yet nobody
  signed it), and unless ``config.json``'s ``auto_map`` names only code in this directory
  (``"org/repo--module.Class"`` would load another repo's code from the cache, unverified);
* pickle-based files, found by the same detector as the policy's ``serialization.pickle`` rule
  (:mod:`modelsign._sniff`): by content (a bare pickle of any protocol, 0 to 5; a zip holding
  ``*.pkl``, as ``torch.save`` writes; a NumPy array of objects), whatever the name, and by name
  (``.bin .pt .pth .ckpt .pkl ...``) unless the content is recognisably safetensors, GGUF or
  another non-pickle format, are refused under ``pickle="deny"`` (the default), reported with
  a warning under ``"warn"``, accepted under ``"allow"``. This keyword is the policy's
  ``serialization.pickle`` rule for a direct load;
* a PEFT adapter directory (``adapter_config.json``) is refused: transformers would load its base
  model from the cache or the Hub, unverified. Verify and load the base, then attach the adapter.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelsign._sniff import sniff_file
from modelsign.errors import (
    InputError,
    ModelsignError,
    PathError,
    SignatureFormatError,
    VerificationError,
)

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.manifest import Manifest
    from modelsign.verify import Identity
    from modelsign.verify._trust import Trust

__all__ = ["LoadRefusedError", "PickleRule", "PICKLE_SUFFIXES", "from_pretrained", "find_pickles",
           "verify_for_loading", "VerifiedModelDir"]

PickleRule = Literal["deny", "warn", "allow"]
PathLike = str | os.PathLike[str]
#: Suffixes of the files transformers (and torch) unpickle.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_PICKLE_RULES: tuple[PickleRule, ...] = ("deny", "warn", "allow")
_MAX_CONFIG_BYTES = 16 * 1024 * 1024


class LoadRefusedError(VerificationError):
    """modelsign refused to hand a model to transformers: it did not verify, or loading it would
    run code or unpickle data that the policy does not allow (exit code 1)."""


class VerifiedModelDir:
    """A directory that verified, with its signed manifest (what :func:`from_pretrained` loads)."""

    __slots__ = ("path", "manifest", "commit", "warnings")

    def __init__(self, path: Path, manifest: Manifest, commit: str | None,
                 warnings_: tuple[str, ...]) -> None:
        self.path, self.manifest, self.commit, self.warnings = path, manifest, commit, warnings_

    def __repr__(self) -> str:
        return f"VerifiedModelDir({str(self.path)!r}, root=sha256:{self.manifest.root_hex})"


# --------------------------------------------------------------------------- content checks
def _pickle_reason(path: Path) -> str | None:
    """Why ``path`` is pickle-based (by its bytes, then its name), or ``None``: the policy's
    detector (:mod:`modelsign._sniff`), so ``pickle=`` here and a policy's
    ``serialization.pickle`` agree on every file."""
    found = sniff_file(path)
    return found.detail if found.pickle else None


def _walk(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d != ".git"]
        if rel_dir == Path(".cache"):
            dirnames[:] = [d for d in dirnames if d != "huggingface"]
        for name in filenames:
            yield (rel_dir / name).as_posix()


def find_pickles(path: PathLike) -> list[tuple[str, str]]:
    """``(relative path, reason)`` of every pickle-based file under ``path`` (by content, then
    by name: :func:`modelsign._sniff.sniff_file`)."""
    root = Path(path)
    return [(rel, reason) for rel in sorted(_walk(root))
            if (reason := _pickle_reason(root / rel)) is not None]


def _check_remote_code(root: Path, manifest: Manifest) -> None:
    signed = manifest.paths()
    unsigned = sorted(rel for rel in _walk(root) if rel.endswith(".py") and rel not in signed)
    if unsigned:
        raise LoadRefusedError(
            "trust_remote_code=True refused: Python files that the signature does not list "
            "would be run: " + ", ".join(unsigned[:10]), path=root,
            expected="every .py file in the signed manifest", actual=f"{len(unsigned)} unsigned",
            hint="remove them, or ask the publisher to sign them; never trust_remote_code for "
                 "code nobody signed")
    config = root / "config.json"
    if not config.is_file():
        return
    try:
        if config.stat().st_size > _MAX_CONFIG_BYTES:
            raise LoadRefusedError("config.json is too large to check", path=config)
        obj = json.loads(config.read_bytes())
    except (OSError, ValueError) as e:
        raise LoadRefusedError(f"trust_remote_code=True refused: config.json is unreadable ({e})",
                               path=config) from e
    auto_map = obj.get("auto_map") if isinstance(obj, dict) else None
    refs: list[str] = []
    if isinstance(auto_map, dict):
        for value in auto_map.values():
            refs += [v for v in (value if isinstance(value, list) else [value])
                     if isinstance(v, str)]
    foreign = sorted({r for r in refs if "--" in r})
    if foreign:
        raise LoadRefusedError(
            "trust_remote_code=True refused: config.json's auto_map loads code from another repo, "
            "which modelsign did not verify: " + ", ".join(foreign[:5]), path=config,
            hint="ask the publisher to ship the code in the signed repo")


def _check_pickles(root: Path, rule: PickleRule) -> None:
    if rule == "allow":
        return
    found = find_pickles(root)
    if not found:
        return
    listing = ", ".join(f"{rel} ({why})" for rel, why in found[:5])
    if rule == "deny":
        raise LoadRefusedError(
            f"pickle files refused (pickle='deny'): unpickling runs arbitrary code: {listing}",
            path=root, expected="safetensors weights only", actual=f"{len(found)} pickle file(s)",
            hint="ask the publisher for safetensors weights, or pass pickle='warn' / 'allow' if "
                 "you trust the signer with code execution")
    warnings.warn(f"modelsign: {root}: loading a model with pickle files (pickle='warn'): "
                  f"{listing}", stacklevel=3)


# --------------------------------------------------------------------------- verification
def verify_for_loading(
    repo_or_path: PathLike,
    *,
    revision: str | None = None,
    policy: Any = None,
    pickle: PickleRule = "deny",
    trust_remote_code: bool = False,
    identities: Sequence[Identity] = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] = (),
    trust: Trust | None = None,
    unsafe_skip_identity: bool = False,
    repo_type: Literal["model", "dataset", "space"] = "model",
    cache_dir: PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> VerifiedModelDir:
    """Everything :func:`from_pretrained` does before it calls transformers: verify the local
    directory or Hub revision, then the remote-code, pickle and adapter checks."""
    from modelsign.integrations import huggingface as hf

    if pickle not in _PICKLE_RULES:
        raise InputError("pickle must be 'deny', 'warn' or 'allow'", actual=repr(pickle)[:40])
    if policy is not None:
        raise InputError("policy= is not supported yet",
                         hint="pass pickle='deny'|'warn'|'allow' and identities= or key= "
                              "(the policy layer is being written)")
    source = Path(repo_or_path)
    local = source.is_dir()
    if local and revision is not None:
        raise InputError("revision= applies to Hub repos, not to a local directory",
                         path=source, hint="drop revision=, or pass the repo id")
    if not local:
        ref = hf.parse_repo_ref(os.fspath(repo_or_path))  # InputError when not a repo id
        if ref.revision is not None and revision is not None:
            raise InputError("give the revision once: either repo@rev or revision=")
        revision = revision or ref.revision
    opts: dict[str, Any] = {"identities": identities, "key": key, "cert_chain": cert_chain,
                            "trust": trust, "unsafe_skip_identity": unsafe_skip_identity}
    from modelsign.verify._signature import select_mode

    select_mode(tuple(identities), key, tuple(cert_chain), unsafe_skip_identity)  # usage first
    try:
        commit = None
        if local:
            lv = hf.verify_local(source, **opts)
        else:
            hv = hf.verify_hub(ref.repo_id, revision=revision, repo_type=repo_type,
                               cache_dir=cache_dir, endpoint=endpoint, token=token, **opts)
            lv, commit = hv.local, hv.commit
        root, manifest = lv.path, lv.result.manifest
        if (root / "adapter_config.json").is_file():
            raise LoadRefusedError(
                "a PEFT adapter: transformers would load its base model unverified", path=root,
                hint="verify and load the base model with modelsign, then attach the adapter "
                     "with peft")
        if trust_remote_code:
            _check_remote_code(root, manifest)
        _check_pickles(root, pickle)
    except LoadRefusedError:
        raise
    except ModelsignError as e:
        if isinstance(e, InputError) and not isinstance(e, (PathError, SignatureFormatError)):
            raise  # a usage error (bad key file, unknown repo): not a verdict on the model
        raise LoadRefusedError(f"refusing to load: {e}", path=None) from e
    return VerifiedModelDir(root, manifest, commit, lv.result.warnings)


def from_pretrained(
    cls: Any,
    repo_or_path: PathLike,
    *,
    revision: str | None = None,
    policy: Any = None,
    pickle: PickleRule = "deny",
    identities: Sequence[Identity] = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] = (),
    trust: Trust | None = None,
    unsafe_skip_identity: bool = False,
    repo_type: Literal["model", "dataset", "space"] = "model",
    cache_dir: PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    **kwargs: Any,
) -> Any:
    """Verify ``repo_or_path`` (a local directory or ``org/name[@rev]`` on the Hub), then return
    ``cls.from_pretrained(<verified dir>, local_files_only=True, **kwargs)``.

    ``cls`` is any class with ``from_pretrained`` (``AutoModel``, ``AutoTokenizer``, a model
    class). Pass how to verify the signer: ``key=`` (a PEM public key), ``identities=`` (keyless),
    or ``cert_chain=``. ``pickle`` is the pickle rule (default ``"deny"``) until policies land.
    Raises :class:`LoadRefusedError` when anything fails to verify or is refused, before
    transformers sees the directory; bad arguments raise :class:`~modelsign.errors.InputError`.
    """
    if kwargs.get("local_files_only") is False:
        raise InputError("local_files_only=False cannot be combined with verification",
                         hint="drop it: modelsign loads the verified directory and nothing else")
    for name in ("force_download", "proxies", "code_revision", "_commit_hash"):
        if name in kwargs:
            raise InputError(f"{name}= makes transformers fetch; it cannot be combined with "
                             "verification", hint=f"drop {name}=")
    verified = verify_for_loading(
        repo_or_path, revision=revision, policy=policy, pickle=pickle,
        trust_remote_code=bool(kwargs.get("trust_remote_code")), identities=identities, key=key,
        cert_chain=cert_chain, trust=trust, unsafe_skip_identity=unsafe_skip_identity,
        repo_type=repo_type, cache_dir=cache_dir, endpoint=endpoint, token=token)
    for w in verified.warnings:
        warnings.warn(f"modelsign: {w}", stacklevel=2)
    kwargs["local_files_only"] = True
    return cls.from_pretrained(str(verified.path), **kwargs)
