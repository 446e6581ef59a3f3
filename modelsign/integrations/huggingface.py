"""The Hugging Face Hub: publish signed models in one commit, verify them before and after download.

Publishing (:func:`publish`) signs a directory, then uploads every file with ``model.sig`` and
``claims.jsonl`` in *one* ``create_commit`` whose ``parent_commit`` is the head that was read, so
no other push lands in between; files are uploaded from descriptors opened and checked against the
signed manifest (size, mtime, and, for sha256 ``files`` signatures, the digest the client computes
while preparing the upload), so a directory that changes between hashing and upload is refused.

Verifying (:func:`verify_hub`) works in this order, and stops at the first failure:

1. resolve the revision to a commit (one ``repo_info`` call with file metadata); everything else is
   pinned to that commit;
2. download ``model.sig`` (and ``claims.jsonl``, when present), bounded by the metadata's sizes,
   and verify the signature and the signer;
3. **pre-flight**: compare the signed sha256 digests with the Hub's per-file LFS/Xet sha256
   metadata, and the signed file set with the Hub's, *before any weight is downloaded*;
4. download pinned to the commit (``snapshot_download``; ``include`` patterns for a subset), then
   verify the local bytes (the Hub's metadata is only a claim of the Hub's).

Local layouts (:func:`verify_local`): the Hub cache, ``local_dir`` downloads and plain
directories (see :mod:`modelsign._hub`).

Everything here uses the public API of ``modelsign.signing`` and ``modelsign.verify``, and
:mod:`modelsign._hub` (the Hub's metadata, the pre-flight and the local layouts, which
:mod:`modelsign.lineage` shares from below); the Hub is reached through ``huggingface_hub``
(imported lazily) with ``endpoint=`` passed explicitly, from the argument or ``HF_ENDPOINT`` read
at call time.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from modelsign._hub import (
    COMMIT_RE,
    MAX_CLAIMS_BYTES,
    HubFile,
    HubSnapshot,
    LocalVerification,
    PreflightReport,
    RepoType,
    hub_errors,
    hub_snapshot,
    is_ignored,
    make_api,
    preflight,
    resolve_endpoint,
    verify_local,
)
from modelsign.errors import (
    FileChangedError,
    InputError,
    IntegrityError,
    PathError,
    SignatureError,
    SignatureFormatError,
    SymlinkError,
)
from modelsign.hashing._spec import CLAIMS_FILE, SIGNATURE_FILE, HashSpec

if TYPE_CHECKING:  # pragma: no cover
    from huggingface_hub import HfApi

    from modelsign.manifest import Manifest
    from modelsign.signing import Signer, SignResult
    from modelsign.verify import Identity, VerificationResult
    from modelsign.verify._claims import ClaimsReport
    from modelsign.verify._trust import Trust

__all__ = [
    "HubFile",
    "HubSnapshot",
    "PreflightReport",
    "LocalVerification",
    "HubVerification",
    "PublishResult",
    "RepoRef",
    "parse_repo_ref",
    "hub_snapshot",
    "preflight",
    "verify_local",
    "verify_hub",
    "verified_snapshot",
    "publish",
    "card_metadata",
    "write_card_metadata",
    "MAX_CLAIMS_BYTES",
]

PathLike = str | os.PathLike[str]
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


# --------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True)
class RepoRef:
    repo_id: str
    revision: str | None


@dataclass(frozen=True, slots=True)
class HubVerification:
    """What :func:`verify_hub` did: the commit, what the pre-flight saw, the local result."""

    repo_id: str
    repo_type: RepoType
    revision: str
    commit: str
    path: Path
    preflight: PreflightReport
    local: LocalVerification
    claims_path: Path | None
    #: every line of ``claims.jsonl`` verified (signer options as for the model); ``None`` when
    #: the repo has no claims. A failed line does not fail the model: requiring claims is policy.
    claims: ClaimsReport | None = None

    @property
    def result(self) -> VerificationResult:
        return self.local.result

    @property
    def absent(self) -> tuple[str, ...]:
        return self.local.absent

    def to_json(self) -> dict[str, Any]:
        """The verify report (``modelsign verify --format json``) plus a ``hub`` section. In
        subset mode the verdict is ``verified`` with ``hub.complete`` false and the absent files
        listed (their ``files`` entries say ``missing``)."""
        doc = self.result.to_json()
        doc["verdict"] = "verified"  # an instance exists only when everything present verified
        doc["hub"] = {"repo_id": self.repo_id, "repo_type": self.repo_type,
                      "revision": self.revision, "commit": self.commit,
                      "layout": self.local.layout, "complete": self.local.complete,
                      "absent": list(self.absent), "preflight": self.preflight.to_json(),
                      "claims_path": None if self.claims_path is None
                      else str(self.claims_path),
                      "claims": None if self.claims is None else self.claims.to_json()}
        doc["path"] = str(self.path)
        return doc


@dataclass(frozen=True, slots=True)
class PublishResult:
    repo_id: str
    repo_type: RepoType
    revision: str
    parent: str
    commit: str
    commit_url: str
    pr_revision: str | None
    pr_url: str | None
    sign: SignResult
    uploaded: tuple[str, ...]


# --------------------------------------------------------------------------- small helpers
def parse_repo_ref(text: str) -> RepoRef:
    """``org/name`` or ``org/name@revision`` (a branch, tag, ``refs/pr/N`` or a commit id)."""
    repo_id, sep, revision = text.partition("@")
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or (sep and not revision):
        raise InputError("not a Hub repo reference", expected="org/name or org/name@revision",
                         actual=repr(text)[:200],
                         hint="name the repo with its owner, e.g. acme/llama-ft or "
                              "acme/llama-ft@main")
    return RepoRef(repo_id, revision or None)


# --------------------------------------------------------------------------- verify from the Hub
def _opt_path(p: PathLike | None) -> Path | None:
    return None if p is None else Path(p)


def _download(repo_id: str, filename: str, *, snapshot: HubSnapshot, limit: int,
              cache_dir: PathLike | None, local_dir: PathLike | None, endpoint: str | None,
              token: str | bool | None) -> Path:
    from huggingface_hub import hf_hub_download

    meta = snapshot.files[filename]
    if meta.size is not None and meta.size > limit:
        raise SignatureFormatError(f"{filename} on the Hub is too large", path=repo_id,
                                   expected=f"<= {limit} bytes", actual=f"{meta.size} bytes")
    with hub_errors(repo_id, snapshot.commit, f"downloading {filename}"):
        got = hf_hub_download(repo_id, filename, revision=snapshot.commit,
                              repo_type=snapshot.repo_type, cache_dir=_opt_path(cache_dir),
                              local_dir=_opt_path(local_dir), endpoint=resolve_endpoint(endpoint),
                              token=token)
    p = Path(got)
    size = p.stat().st_size
    if size > limit:
        raise SignatureFormatError(f"{filename} is too large", path=p,
                                   expected=f"<= {limit} bytes", actual=f"{size} bytes")
    return p


def verify_hub(
    repo_id: str,
    *,
    revision: str | None = None,
    repo_type: RepoType = "model",
    include: Sequence[str] | None = None,
    identities: Sequence[Identity] = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] = (),
    trust: Trust | None = None,
    unsafe_skip_identity: bool = False,
    cache_dir: PathLike | None = None,
    local_dir: PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    api: HfApi | None = None,
    clock: Callable[[], datetime] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> HubVerification:
    """Verify a Hub repo at ``revision``: signature, pre-flight on metadata, download, local bytes.

    ``include`` (glob patterns, as ``snapshot_download``'s ``allow_patterns``) downloads and
    verifies a subset; the result lists the signed files left ``absent``. Raises
    :class:`~modelsign.errors.VerificationError` subclasses (exit 1) when anything does not
    verify, :class:`~modelsign.errors.InputError` (exit 2) for what the user can fix.
    """
    from huggingface_hub import snapshot_download

    from modelsign.statements import manifest_from_statement
    from modelsign.statements._bundle import MAX_BUNDLE_BYTES
    from modelsign.verify import verify_bundle
    from modelsign.verify._signature import select_mode

    say = on_event or (lambda _msg: None)
    select_mode(tuple(identities), key, tuple(cert_chain), unsafe_skip_identity)  # usage first
    if cache_dir is not None and local_dir is not None:
        raise InputError("choose one of cache_dir and local_dir")
    api = make_api(api, endpoint, token)
    snap = hub_snapshot(repo_id, revision, repo_type=repo_type, api=api)
    where = f"{repo_id}@{snap.commit}"
    say(f"{repo_id}@{snap.revision} is commit {snap.commit} ({len(snap.files)} files)")
    if SIGNATURE_FILE not in snap.files:
        raise SignatureError(f"the repo has no {SIGNATURE_FILE} at this commit: it is not signed",
                             path=where, expected=SIGNATURE_FILE, actual="absent",
                             hint="ask the publisher to sign it (modelsign hf publish)")

    # 1. the signature (and claims) first, pinned to the commit, bounded
    dl = {"snapshot": snap, "cache_dir": cache_dir, "local_dir": local_dir, "endpoint": endpoint,
          "token": token}
    sig_path = _download(repo_id, SIGNATURE_FILE, limit=MAX_BUNDLE_BYTES, **dl)  # type: ignore[arg-type]
    claims_path = None
    if CLAIMS_FILE in snap.files:
        claims_path = _download(repo_id, CLAIMS_FILE, limit=MAX_CLAIMS_BYTES, **dl)  # type: ignore[arg-type]
    verified = verify_bundle(sig_path.read_bytes(), identities=identities, key=key,
                             cert_chain=cert_chain, trust=trust,
                             unsafe_skip_identity=unsafe_skip_identity,
                             source=f"{where}:{SIGNATURE_FILE}", clock=clock)
    manifest = manifest_from_statement(verified.statement)
    say(f"signature verified: {verified.signer.kind} {verified.signer.identity}")
    claims = None
    if claims_path is not None:
        from modelsign.verify._claims import verify_claims

        claims = verify_claims(claims_path.parent, manifest.root_hex, claims_file=claims_path,
                               identities=identities, key=key, cert_chain=cert_chain,
                               trust=trust, unsafe_skip_identity=unsafe_skip_identity,
                               clock=clock)
        say(f"claims: {len(claims.verified)} of {len(claims.claims)} verified")
        for line in claims.describe_failures():
            say(f"warning: claim not verified (left out): {line}")

    # 2. pre-flight on the Hub's metadata, before any weight is downloaded
    report = preflight(manifest, snap, include=include)
    if not report.ok:
        lines = report.describe()
        raise IntegrityError(
            f"pre-flight: the Hub's files differ from the signed manifest ({len(lines)} "
            "difference(s); nothing else was downloaded): " + "; ".join(lines[:5])
            + (" ..." if len(lines) > 5 else ""),
            path=where, hint="the repo was modified after signing (or the Hub is compromised); "
                             "do not use it, and tell the publisher")
    say(f"pre-flight: {len(report.checked)} file(s) match the Hub's sha256, "
        f"{len(report.unchecked)} to check after download")

    # 3. download pinned to the commit, then verify the local bytes
    patterns = None if not include else [*include, SIGNATURE_FILE, CLAIMS_FILE]
    with hub_errors(repo_id, snap.commit, "downloading"):
        got = snapshot_download(repo_id, revision=snap.commit, repo_type=repo_type,
                                cache_dir=_opt_path(cache_dir),
                                local_dir=_opt_path(local_dir), allow_patterns=patterns,
                                endpoint=resolve_endpoint(endpoint), token=token)
    path = Path(got)
    local = verify_local(path, subset=bool(include), identities=identities, key=key,
                         cert_chain=cert_chain, trust=trust,
                         unsafe_skip_identity=unsafe_skip_identity, clock=clock)
    if local.result.root_digest != manifest.root_hex:  # the same signature both times
        raise SignatureError("the signature changed during verification", path=where,
                             expected=manifest.root_hex, actual=local.result.root_digest)
    return HubVerification(repo_id, repo_type, snap.revision, snap.commit, path, report, local,
                           claims_path, claims)


def verified_snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    policy: Any = None,
    identities: Sequence[Identity] = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] = (),
    include: Sequence[str] | None = None,
    repo_type: RepoType = "model",
    cache_dir: PathLike | None = None,
    local_dir: PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    trust: Trust | None = None,
    unsafe_skip_identity: bool = False,
) -> Path:
    """Verify a Hub repo (see :func:`verify_hub`), then return the verified local directory.

    ``policy`` is reserved for the policy layer and must be ``None`` for now.
    """
    if policy is not None:
        raise InputError("policy= is not supported yet",
                         hint="pass identities= or key= (the policy layer is being written)")
    return verify_hub(repo_id, revision=revision, repo_type=repo_type, include=include,
                      identities=identities, key=key, cert_chain=cert_chain, trust=trust,
                      unsafe_skip_identity=unsafe_skip_identity, cache_dir=cache_dir,
                      local_dir=local_dir, endpoint=endpoint, token=token).path


# --------------------------------------------------------------------------- publish
@dataclass(frozen=True, slots=True)
class _Stat:
    size: int
    mtime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Stat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def _upload_set(root: Path) -> dict[str, Path]:
    """Every regular file to upload, by repo path: all of the directory but ``.git/`` and
    ``.cache/huggingface/`` (never model content), and the signature files (added separately)."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d != ".git"]
        if rel_dir == Path(".cache"):
            dirnames[:] = [d for d in dirnames if d != "huggingface"]
        for d in dirnames:
            if (here / d).is_symlink():
                raise SymlinkError("refusing to publish a directory holding symbolic links",
                                   path=here / d, hint="replace links by the files they point to")
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel in (SIGNATURE_FILE, CLAIMS_FILE):
                continue
            if (here / name).is_symlink():
                raise SymlinkError("refusing to publish a directory holding symbolic links",
                                   path=here / name,
                                   hint="replace links by the files they point to")
            out[rel] = here / name
    return out


def _stats(files: Mapping[str, Path]) -> dict[str, _Stat]:
    out = {}
    for rel, p in files.items():
        try:
            out[rel] = _Stat.of(os.stat(p))
        except OSError as e:
            raise FileChangedError(f"{rel} disappeared while publishing", path=p,
                                   hint="let the writer finish, then publish again") from e
    return out


def _changed(before: Mapping[str, _Stat], after: Mapping[str, _Stat]) -> list[str]:
    out = [f"added {p}" for p in sorted(set(after) - set(before))]
    out += [f"removed {p}" for p in sorted(set(before) - set(after))]
    out += [f"modified {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return out


def publish(
    path: PathLike,
    repo_id: str,
    *,
    signer: Signer,
    spec: HashSpec | None = None,
    revision: str = "main",
    repo_type: RepoType = "model",
    create_pr: bool = False,
    create_repo: bool = True,
    private: bool | None = None,
    commit_message: str | None = None,
    claims: Callable[[SignResult], bytes | None] | None = None,
    delete_extra: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
    api: HfApi | None = None,
    on_event: Callable[[str], None] | None = None,
) -> PublishResult:
    """Sign the directory ``path`` and upload it with ``model.sig`` in one commit.

    ``claims``, when given, is called with the signing result and returns the ``claims.jsonl``
    bytes to upload with it (or ``None``); an existing ``PATH/claims.jsonl`` is uploaded otherwise.
    Files on the Hub that the signed directory does not have make the published repo fail
    verification: they are refused unless ``delete_extra`` (then deleted in the same commit).
    Raises :class:`~modelsign.errors.FileChangedError` when the directory changes between
    hashing and upload, :class:`~modelsign.errors.InputError` on a Hub conflict (HTTP 412).
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from modelsign.signing import sign_model

    say = on_event or (lambda _msg: None)
    root = Path(path)
    if not root.is_dir():
        raise PathError("hf publish takes a model directory", path=root,
                        hint="pass the directory holding the model's files")
    if create_pr and revision != "main":
        raise InputError("--create-pr opens a pull request against main; drop --revision",
                         actual=revision)
    api = make_api(api, endpoint, token)
    if create_repo:
        with hub_errors(repo_id, None, "creating the repo"):
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    with hub_errors(repo_id, revision, "reading the repo"):
        head = api.repo_info(repo_id, revision=revision, repo_type=repo_type).sha
        if not isinstance(head, str) or not COMMIT_RE.fullmatch(head):
            raise InputError("the Hub did not say which commit the branch is at",
                             path=f"{repo_id}@{revision}", actual=repr(head)[:80])
        remote = set(api.list_repo_files(repo_id, revision=head, repo_type=repo_type))
    say(f"{repo_id}@{revision} is at {head}")

    files = _upload_set(root)
    before = _stats(files)
    result = sign_model(root, signer=signer, spec=spec or HashSpec())
    say(f"signed {result.manifest.name}: sha256:{result.root_digest} "
        f"({len(result.manifest.resources)} resources)")
    claims_bytes = claims(result) if claims is not None else None
    if claims_bytes is None and (root / CLAIMS_FILE).is_file():
        claims_bytes = (root / CLAIMS_FILE).read_bytes()

    with contextlib.ExitStack() as stack:
        handles: dict[str, BinaryIO] = {}
        for rel, p in files.items():
            handles[rel] = stack.enter_context(open(p, "rb"))  # noqa: SIM115 - kept open
        opened = {rel: _Stat.of(os.fstat(f.fileno())) for rel, f in handles.items()}
        diffs = _changed(before, {**_stats(_upload_set(root)), **opened})
        if diffs:
            raise FileChangedError(
                "the directory changed between hashing and upload: " + "; ".join(diffs[:5])
                + (" ..." if len(diffs) > 5 else ""), path=root,
                hint="nothing was uploaded; let the writer finish, then publish again")
        ops: list[Any] = [CommitOperationAdd(rel, f) for rel, f in sorted(handles.items())]
        _check_upload_digests(result.manifest, ops, root)
        ops.append(CommitOperationAdd(SIGNATURE_FILE, result.bundle.raw))
        uploaded = [*sorted(handles), SIGNATURE_FILE]
        if claims_bytes is not None:
            ops.append(CommitOperationAdd(CLAIMS_FILE, claims_bytes))
            uploaded.append(CLAIMS_FILE)
        keep = set(uploaded) | {".gitattributes"}
        stale = sorted(p for p in remote if p not in keep
                       and not is_ignored(p, result.manifest.serialization.ignore_paths))
        if stale and not delete_extra:
            raise InputError(
                f"the repo has {len(stale)} file(s) the signed directory does not: "
                + ", ".join(stale[:10]) + (" ..." if len(stale) > 10 else ""),
                path=f"{repo_id}@{revision}",
                hint="they would make the repo fail verification; pass --delete-extra to delete "
                     "them in the same commit, or add them to the directory")
        ops += [CommitOperationDelete(p) for p in stale]
        message = commit_message or f"Publish signed model (sha256:{result.root_digest[:16]}...)"
        with hub_errors(repo_id, revision, "uploading"):
            info = api.create_commit(
                repo_id, operations=ops, commit_message=message, repo_type=repo_type,
                revision=None if create_pr else revision, create_pr=create_pr,
                parent_commit=head,
                commit_description=f"Signed with modelsign: root digest "
                                   f"sha256:{result.root_digest}; model.sig "
                                   f"({result.bundle.describe()}).")
        after = {rel: _Stat.of(os.fstat(f.fileno())) for rel, f in handles.items()}
        diffs = _changed(opened, after)
        if diffs:
            raise FileChangedError(
                f"files changed while uploading; commit {info.oid} may not verify: "
                + "; ".join(diffs[:5]), path=root,
                hint=f"run: modelsign hf verify {repo_id}@{info.oid} (and publish again)")
    say(f"committed {info.oid} ({len(uploaded)} files"
        + (f", {len(stale)} deleted" if stale else "") + ")")
    return PublishResult(repo_id, repo_type, revision, head, info.oid, str(info.commit_url),
                         info.pr_revision, info.pr_url, result, tuple(uploaded))


# --------------------------------------------------------------------------- model card
def _hub_id(uri: str | None, *, dataset: bool) -> str | None:
    """``hf://org/name[@rev]`` -> ``org/name`` (``hf://datasets/...`` for datasets), else None."""
    if not uri or not uri.startswith("hf://"):
        return None
    rest = uri[len("hf://"):].split("@", 1)[0]
    if rest.startswith("datasets/") != dataset:
        return None
    rest = rest.removeprefix("datasets/")
    return rest if _REPO_ID.fullmatch(rest) else None


def card_metadata(relation: str, base_models: Sequence[Any],
                  datasets: Sequence[Any]) -> dict[str, Any]:
    """The model card's ``base_model``, ``base_model_relation`` and ``datasets`` for a derivation.

    ``base_models`` / ``datasets`` are anything with a ``uri`` (the ``Dependency`` entries of a
    derivation claim, or the parents ``modelsign.claims.resolve_parent`` returns); only Hub parents
    (``hf://...``) have a Hub id. ``base_model_relation`` is set where the Hub has the relation.
    """
    from modelsign.statements._models import HUB_BASE_MODEL_RELATION

    bases = [i for d in base_models if (i := _hub_id(getattr(d, "uri", None), dataset=False))]
    data = [i for d in datasets if (i := _hub_id(getattr(d, "uri", None), dataset=True))]
    out: dict[str, Any] = {}
    if bases:
        out["base_model"] = bases[0] if len(bases) == 1 else bases
        rel = HUB_BASE_MODEL_RELATION.get(relation)  # type: ignore[call-overload]
        if rel is not None:
            out["base_model_relation"] = rel
    if data:
        out["datasets"] = data
    return out


def write_card_metadata(path: PathLike, metadata: Mapping[str, Any]) -> Path:
    """Set these keys in the YAML header of ``PATH/README.md`` (created when missing), keeping
    the rest of the card. Returns the card's path."""
    from huggingface_hub.repocard import metadata_load, metadata_save

    card = Path(path) / "README.md"
    try:
        current = metadata_load(card) if card.is_file() else None
    except (ValueError, OSError) as e:
        raise InputError(f"the model card's YAML header is unreadable: {e}", path=card,
                         hint="fix the header between the '---' lines") from e
    data = dict(current or {})
    data.update(metadata)
    metadata_save(card, data)
    return card


def _check_upload_digests(manifest: Manifest, ops: Sequence[Any], root: Path) -> None:
    """The client hashed each open file to prepare the upload: for files-mode sha256 signatures,
    that digest must be the signed one (the bytes about to leave are the bytes signed)."""
    ser = manifest.serialization
    if ser.method != "files" or ser.hash_type != "sha256":
        return
    signed = {r.path: r.hex for r in manifest.resources}
    bad = []
    for op in ops:
        want = signed.get(op.path_in_repo)
        got = getattr(op.upload_info, "sha256", None)
        if want is not None and got is not None and got.hex() != want:
            bad.append(f"{op.path_in_repo} (signed {want}, now {got.hex()})")
    if bad:
        raise FileChangedError("files changed between hashing and upload: " + "; ".join(bad[:5]),
                               path=root, hint="nothing was uploaded; publish again")
