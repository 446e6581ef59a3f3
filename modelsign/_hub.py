"""The Hugging Face Hub, low level: a commit's file metadata, the pre-flight comparison of a
signed manifest with it, and the verification of a downloaded directory in the Hub's layouts.

Shared by :mod:`modelsign.lineage` (Hub parents) and :mod:`modelsign.integrations.huggingface`
(``modelsign hf``), which sits above lineage in the dependency order: this module is below both,
and imports nothing of either. It reaches the Hub through ``huggingface_hub`` (imported lazily)
with ``endpoint=`` passed explicitly, from the argument or ``HF_ENDPOINT`` read at call time.

Local layouts (:func:`verify_local`): the Hub cache (``snapshots/<commit>/`` symlinks, followed
only into that repo's own ``blobs/``), ``local_dir`` downloads (``.cache/huggingface/`` is left
out) and plain directories. The first two are verified through a private view of hard links (a
copy where the file system refuses links), so the hashing engine sees regular files only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelsign.errors import (
    InputError,
    IntegrityError,
    ModelsignError,
    PathError,
    SymlinkError,
)
from modelsign.hashing._spec import CLAIMS_FILE, SIGNATURE_FILE

if TYPE_CHECKING:  # pragma: no cover
    from huggingface_hub import HfApi

    from modelsign.manifest import Manifest
    from modelsign.verify import Identity, VerificationResult
    from modelsign.verify._trust import Trust

__all__ = [
    "COMMIT_RE",
    "MAX_CLAIMS_BYTES",
    "HubFile",
    "HubSnapshot",
    "LocalVerification",
    "PreflightReport",
    "RepoType",
    "hub_errors",
    "hub_snapshot",
    "is_ignored",
    "make_api",
    "preflight",
    "resolve_endpoint",
    "verify_local",
]

PathLike = str | os.PathLike[str]
RepoType = Literal["model", "dataset", "space"]
#: Cap on ``claims.jsonl`` fetched from a Hub (checked on the metadata before downloading).
MAX_CLAIMS_BYTES = 64 * 1024 * 1024
#: A git commit id, as the Hub names one.
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
#: Directories of a local directory that are never part of a model.
_LOCAL_DIR_METADATA = ".cache/huggingface"


# --------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True)
class HubFile:
    """What the Hub says about one file of a commit, without downloading it.

    ``sha256`` is set for LFS/Xet files (the same value as an OMS files-mode sha256 digest);
    regular git files only have ``blob_id``, a git sha1.
    """

    path: str
    size: int | None
    sha256: str | None
    blob_id: str | None


@dataclass(frozen=True, slots=True)
class HubSnapshot:
    """A repo revision resolved to a commit, with the Hub's metadata of every file in it."""

    repo_id: str
    repo_type: RepoType
    revision: str
    commit: str
    files: Mapping[str, HubFile]



@dataclass(frozen=True, slots=True)
class PreflightReport:
    """The signed manifest against the Hub's metadata of one commit.

    ``checked``: signed files whose Hub sha256 equals the signed digest. ``unchecked``: signed
    files the Hub gives no sha256 for (regular git files, or a signature that is not files-mode
    sha256): they are checked after download. ``changed``: ``(path, signed, hub)`` where the
    Hub's sha256 differs. ``missing``: signed files not in the commit. ``extra``: files of the
    commit that are neither signed nor ignored by the signature.
    """

    commit: str
    checked: tuple[str, ...]
    unchecked: tuple[str, ...]
    changed: tuple[tuple[str, str, str], ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def describe(self) -> list[str]:
        out = [f"changed {p} (signed {s}, Hub sha256 {h})" for p, s, h in self.changed]
        out += [f"missing {p} (signed, not in the commit)" for p in self.missing]
        out += [f"extra {p} (in the commit, not signed)" for p in self.extra]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "ok": self.ok, "checked": list(self.checked),
                "unchecked": list(self.unchecked),
                "changed": [{"name": p, "expected": s, "actual": h} for p, s, h in self.changed],
                "missing": list(self.missing), "extra": list(self.extra)}


@dataclass(frozen=True, slots=True)
class LocalVerification:
    """A local directory verified against its signature.

    ``complete`` is false in subset mode when signed files are ``absent`` (not downloaded); every
    file that *is* present verified (``result.verified`` is then false, as ``verify_model`` saw
    missing files: use ``complete``). ``layout`` says how the directory was read.
    """

    path: Path
    result: VerificationResult
    layout: Literal["plain", "hub-cache", "local-dir"]
    absent: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.absent



# --------------------------------------------------------------------------- helpers
def resolve_endpoint(endpoint: str | None) -> str | None:
    value = endpoint if endpoint is not None else os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else None


def make_api(api: HfApi | None, endpoint: str | None, token: str | bool | None) -> HfApi:
    if api is not None:
        return api
    try:
        from huggingface_hub import HfApi
    except ImportError as e:  # pragma: no cover - a dependency of modelsign
        raise InputError("huggingface_hub is not installed", hint="pip install huggingface_hub") \
            from e
    return HfApi(endpoint=resolve_endpoint(endpoint), token=token)


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None, what: str) -> Iterator[None]:
    """Wrap ``huggingface_hub``'s errors at the boundary: exit 2 for what the user can fix."""
    from huggingface_hub import errors as hf

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        yield
    except hf.RepositoryNotFoundError as e:
        raise InputError(f"{what}: repository not found on the Hub", path=repo_id,
                         hint="check the repo id, --repo-type, and that your token can read it "
                              "(HF_TOKEN)") from e
    except hf.RevisionNotFoundError as e:
        raise InputError(f"{what}: revision not found", path=where,
                         hint="check the branch, tag or commit id after '@'") from e
    except hf.EntryNotFoundError as e:
        raise InputError(f"{what}: file not found in the repo", path=where,
                         actual=str(e).splitlines()[0][:200]) from e
    except hf.HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status == 412:
            raise InputError(f"{what}: the branch moved since it was read (HTTP 412: another "
                             "commit landed first); nothing was uploaded", path=where,
                             hint="run the command again to sign and publish on the new head") \
                from e
        raise InputError(f"{what}: the Hub answered HTTP {status}", path=where,
                         actual=str(e).splitlines()[0][:300],
                         hint="check HF_ENDPOINT, HF_TOKEN and the repo's permissions") from e
    except OSError as e:
        raise InputError(f"{what}: cannot reach the Hub ({type(e).__name__}: {e})", path=where,
                         hint="check the network and HF_ENDPOINT") from e
    except Exception as e:
        # Transport errors (connection refused, timeouts) of the client's HTTP library, which is
        # httpx or its fork httpx2 depending on the huggingface_hub version.
        if any(c.__module__.split(".")[0] in ("httpx", "httpx2") for c in type(e).__mro__):
            raise InputError(f"{what}: cannot reach the Hub ({type(e).__name__}: {e})",
                             path=where, hint="check the network and HF_ENDPOINT") from e
        raise


def is_ignored(rel: str, ignore_paths: Sequence[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in ignore_paths)


def _matches(path: str, patterns: Sequence[str] | None) -> bool:
    if not patterns:
        return True
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

    return bool(list(filter_repo_objects([path], allow_patterns=list(patterns))))


# --------------------------------------------------------------------------- Hub metadata
def hub_snapshot(repo_id: str, revision: str | None = None, *, repo_type: RepoType = "model",
                 api: HfApi | None = None, endpoint: str | None = None,
                 token: str | bool | None = None) -> HubSnapshot:
    """Resolve ``revision`` (default ``main``) to a commit and read every file's metadata, in one
    ``repo_info(files_metadata=True)`` call, so the commit and the metadata belong together."""
    api = make_api(api, endpoint, token)
    rev = revision or "main"
    with hub_errors(repo_id, rev, "reading the repo"):
        info = api.repo_info(repo_id, revision=rev, repo_type=repo_type, files_metadata=True)
    commit = getattr(info, "sha", None)
    if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
        raise InputError("the Hub did not say which commit the revision is at",
                         path=f"{repo_id}@{rev}", expected="a 40-hex commit id",
                         actual=repr(commit)[:80])
    if COMMIT_RE.fullmatch(rev) and rev != commit:
        raise IntegrityError("the Hub answered for another commit than the one asked",
                             path=repo_id, expected=rev, actual=commit)
    files: dict[str, HubFile] = {}
    for s in getattr(info, "siblings", None) or []:
        lfs = getattr(s, "lfs", None)
        sha = lfs.sha256 if lfs is not None else None
        files[s.rfilename] = HubFile(s.rfilename, getattr(s, "size", None),
                                     sha.lower() if isinstance(sha, str) else None,
                                     getattr(s, "blob_id", None))
    return HubSnapshot(repo_id, repo_type, rev, commit, files)


def preflight(manifest: Manifest, snapshot: HubSnapshot, *,
              include: Sequence[str] | None = None) -> PreflightReport:
    """Compare a *verified* signed manifest with the Hub's metadata, before downloading weights.

    Digests are compared for every signed file the Hub has a sha256 for (files-mode sha256
    signatures). With ``include`` (a subset download), missing and extra files are only looked
    for among the paths the patterns select; a changed digest fails wherever it is.
    """
    ser = manifest.serialization
    ignores = (*ser.ignore_paths, SIGNATURE_FILE, CLAIMS_FILE)
    comparable = ser.method == "files" and ser.hash_type == "sha256"
    signed: dict[str, str | None] = {}
    for r in manifest.resources:
        signed[r.path] = r.hex if comparable else None
    checked, unchecked, changed, missing = [], [], [], []
    for path, digest in sorted(signed.items()):
        hub = snapshot.files.get(path)
        if hub is None:
            if _matches(path, include):
                missing.append(path)
            continue
        if digest is None or hub.sha256 is None:
            unchecked.append(path)
        elif hub.sha256 != digest:
            changed.append((path, digest, hub.sha256))
        else:
            checked.append(path)
    extra = sorted(p for p in snapshot.files
                   if p not in signed and not is_ignored(p, ignores) and _matches(p, include))
    if ser.method == "shards":  # zero-byte files have no resource in shards mode
        extra = [p for p in extra if snapshot.files[p].size != 0]
    return PreflightReport(snapshot.commit, tuple(checked), tuple(unchecked), tuple(changed),
                           tuple(missing), tuple(extra))


# --------------------------------------------------------------------------- local layouts
def _storage_of(path: Path) -> Path | None:
    """``<cache>/models--org--name`` when ``path`` is ``<that>/snapshots/<commit>``."""
    if path.parent.name == "snapshots" and (path.parent.parent / "blobs").is_dir():
        return path.parent.parent
    return None


def _layout(path: Path) -> Literal["plain", "hub-cache", "local-dir"]:
    if path.is_dir() and _storage_of(path.absolute()) is not None:
        return "hub-cache"
    if (path / _LOCAL_DIR_METADATA).is_dir():
        return "local-dir"
    return "plain"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: copy (slower, same bytes)
        shutil.copyfile(src, dst)


@contextlib.contextmanager
def _local_view(path: Path) -> Iterator[tuple[Path, Literal["plain", "hub-cache", "local-dir"]]]:
    """A directory of regular files holding exactly the model's files, for the verifier.

    Plain directories are verified as they are. For the two Hub layouts, a private view of hard
    links (copies where links are refused) is built beside them and removed afterwards.
    """
    layout = _layout(path)
    if layout == "plain":
        yield path, layout
        return
    root = path.absolute()
    blobs: Path | None = None
    if layout == "hub-cache":
        storage = _storage_of(root)
        assert storage is not None
        blobs = (storage / "blobs").resolve()
        parent = storage
    else:
        parent = root / _LOCAL_DIR_METADATA  # skipped by the walk below
    view = Path(tempfile.mkdtemp(prefix=".modelsign-view-", dir=parent))
    try:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            rel_dir = here.relative_to(root).as_posix()
            if layout == "local-dir" and rel_dir == ".cache":
                dirnames[:] = [d for d in dirnames if d != "huggingface"]
            for d in dirnames:
                if (here / d).is_symlink():
                    raise SymlinkError("a directory of the download is a symbolic link",
                                       path=here / d, hint="download the model again")
            for name in filenames:
                src = here / name
                rel = src.relative_to(root).as_posix()
                _link_or_copy(_safe_target(src, blobs, rel), view / rel)
        yield view, layout
    finally:
        shutil.rmtree(view, ignore_errors=True)


def _safe_target(src: Path, blobs: Path | None, rel: str) -> Path:
    """The regular file behind ``src``: in the cache, a symlink into this repo's own ``blobs/``."""
    try:
        st = os.lstat(src)
    except OSError as e:
        raise PathError(f"cannot read {rel}: {e.strerror or e}", path=src) from e
    if stat.S_ISLNK(st.st_mode):
        if blobs is None:
            raise SymlinkError("a symbolic link in a local_dir download", path=src,
                               hint="download the model again")
        target = Path(os.path.realpath(src))
        if target.parent != blobs:
            raise SymlinkError("a snapshot link points outside this repo's blobs/ directory",
                               path=src, expected=f"{blobs}/<blob>", actual=str(target),
                               hint="the Hub cache was tampered with; delete it and download "
                                    "again")
        if not target.is_file() or target.is_symlink():
            raise SymlinkError("a snapshot link points at a missing or irregular blob",
                               path=src, actual=str(target),
                               hint="delete the repo from the Hub cache and download again")
        return target
    if not stat.S_ISREG(st.st_mode):
        raise PathError("not a regular file", path=src)
    return src


def verify_local(
    path: PathLike,
    *,
    subset: bool = False,
    identities: Sequence[Identity] = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] = (),
    trust: Trust | None = None,
    unsafe_skip_identity: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> LocalVerification:
    """Verify a downloaded (or any local) model directory with its ``model.sig``.

    ``subset``: signed files that are absent are listed in ``absent`` instead of failing (a
    partial download); files that are present must all verify, and no unsigned file may be there.
    """
    from modelsign.verify import verify_model
    from modelsign.verify._result import IntegrityFailure

    root = Path(path)
    if not root.is_dir():
        raise PathError("not a directory", path=root,
                        hint="pass the model directory (the snapshot or local_dir)")
    with _local_view(root) as (view, layout):
        try:
            result = verify_model(view, identities=identities, key=key, cert_chain=cert_chain,
                                  trust=trust, unsafe_skip_identity=unsafe_skip_identity,
                                  clock=clock)
            absent: tuple[str, ...] = ()
        except IntegrityFailure as e:
            bad = e.result.failures
            if subset and bad and all(f.status == "missing" for f in bad):
                result = e.result
                absent = tuple(sorted({f.name.rsplit(":", 2)[0]
                                       if result.manifest.serialization.method == "shards"
                                       else f.name for f in bad}))
            else:
                raise IntegrityFailure(e.result, e.problem, path=str(root),
                                       hint=e.hint or "") from e
        except ModelsignError as e:
            if view != root and e.path is not None and e.path.startswith(str(view)):
                raise type(e)(e.problem, path=str(root) + e.path[len(str(view)):],
                              expected=e.expected, actual=e.actual, hint=e.hint) from e
            raise
    return LocalVerification(root, result, layout, absent)
