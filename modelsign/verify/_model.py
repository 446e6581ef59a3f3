"""``verify_model``: signature, signer, then every file, hashed as the signature records."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from modelsign.errors import InputError, ModelsignError, PathError
from modelsign.hashing._spec import CLAIMS_FILE, SIGNATURE_FILE, HashSpec
from modelsign.hashing._walk import name_key
from modelsign.manifest import Manifest, Resource
from modelsign.statements import manifest_from_statement
from modelsign.statements._bundle import MAX_BUNDLE_BYTES, default_signature_path, read_bundle
from modelsign.verify._identity import Identity
from modelsign.verify._result import (
    _TOKEN,
    FileResult,
    IntegrityFailure,
    VerificationResult,
)
from modelsign.verify._signature import normalize, select_mode, verify_bundle, with_path
from modelsign.verify._trust import Trust

__all__ = ["verify_model"]

PathLike = str | os.PathLike[str]


def verify_model(
    path: PathLike,
    *,
    signature: PathLike | None = None,
    identities: Sequence[Identity] | Identity = (),
    key: PathLike | None = None,
    cert_chain: Sequence[PathLike] | PathLike | None = None,
    trust: Trust | None = None,
    ignore_unsigned_files: bool = False,
    ignore_paths: Sequence[str] = (),
    use_cache: bool = False,
    unsafe_skip_identity: bool = False,
    clock: Callable[[], datetime] | None = None,
    max_signature_bytes: int = MAX_BUNDLE_BYTES,
    key_flag: str = "--key",
) -> VerificationResult:
    """Verify a model directory (or file) against its signature; return the full result.

    Order: arguments → signature file read (bounded) → signature and signer verified
    (:func:`verify_bundle`) → statement checked to be an OMS model signature (v1.0, or v0.1 of
    older producers) → the model re-hashed with the serialization *recorded in the signature*
    (always leaving out the signature file and ``claims.jsonl``) → compared resource by resource.

    Raises :class:`~modelsign.errors.SignatureError` / ``IdentityError`` when the signature or the
    signer does not verify, :class:`IntegrityFailure` (an ``IntegrityError`` whose ``result``
    lists every file with expected and actual digests) when files are missing, extra or changed,
    and :class:`~modelsign.errors.InputError` subclasses (exit 2) on bad input. With
    ``ignore_unsigned_files`` files the signature does not cover become warnings; bytes added to a
    signed file never do. ``use_cache`` lets the hashing engine reuse digests of unchanged files.

    ``ignore_paths`` (like model_signing's ``--ignore-paths`` on verify) are further relative
    POSIX paths to leave out at verification time, added to those the signature records; a
    path matches whole components (``logs`` is the file or directory ``logs``, not ``logs2``).
    Signed resources always win: a file the signature lists stays required and compared even
    when a path given here names it or a directory above it (a warning says so). What was left
    out this way is named in a warning, so the report shows it.

    ``key_flag`` names the option that supplied ``key`` in error messages (``--parent-key`` when
    the attester verifies a parent).
    """
    root = Path(path)
    identities, cert_chain = normalize(identities, cert_chain)
    select_mode(identities, key, cert_chain, unsafe_skip_identity)  # usage first
    user_ignores = _check_ignore_paths(ignore_paths)
    if not root.exists() and not root.is_symlink():
        raise PathError("model path does not exist", path=root,
                        hint="check the path; verify takes the model directory (or file)")
    sig_path = Path(signature) if signature is not None else default_signature_path(root)
    data = read_bundle(sig_path, max_bytes=max_signature_bytes)
    verified = verify_bundle(data, identities=identities, key=key, cert_chain=cert_chain,
                             trust=trust, unsafe_skip_identity=unsafe_skip_identity,
                             source=str(sig_path), clock=clock, key_flag=key_flag)
    try:
        signed = manifest_from_statement(verified.statement)
    except ModelsignError as e:
        raise with_path(e, str(sig_path)) from e

    spec = signed.serialization.to_spec(use_cache=use_cache)
    extra = [SIGNATURE_FILE, CLAIMS_FILE]
    rel_sig = _relative_inside(sig_path, root)
    if rel_sig is not None:
        extra.append(rel_sig)
    # Verification-time ignores: those above no signed file are left out of the walk; those
    # naming a signed file (or a directory holding one) only hide the *unsigned* files under
    # them, after hashing, so the signed ones are still compared.
    covered = _covering(signed.paths())
    walk_ignores = tuple(p for p in user_ignores if p not in covered)
    filter_ignores = tuple(p for p in user_ignores if p in covered)
    spec = dataclasses.replace(spec, extra_ignores=tuple(dict.fromkeys(extra)),
                               ignore_paths=spec.ignore_paths + walk_ignores)

    from modelsign.manifest import hash_model

    actual = hash_model(root, spec)
    files, failed, empties = _compare(signed, actual, ignore_unsigned_files, filter_ignores,
                                      str(root))
    warnings = list(verified.warnings)
    if walk_ignores:
        warnings.append("left out at verification time (ignore_paths), in addition to the "
                        "signature's own: " + _listing(walk_ignores))
    if filter_ignores:
        warnings.append("ignore path(s) naming signed files did not hide them: the signed files "
                        "were checked, only unsigned files under them were left out: "
                        + _listing(filter_ignores))
    unsigned = [f.name for f in files if f.status == "unsigned"]
    if unsigned:
        warnings.append(f"{len(unsigned)} file(s) not covered by the signature were ignored "
                        f"(--ignore-unsigned-files): " + ", ".join(unsigned[:20])
                        + (" ..." if len(unsigned) > 20 else ""))
    result = VerificationResult(
        verified=not failed,
        path=str(root),
        signature_path=str(sig_path),
        root_digest=signed.root_hex,
        subject_name=signed.name,
        predicate_type=verified.statement.predicate_type,
        manifest=signed,
        signer=verified.signer,
        files=files,
        warnings=tuple(warnings),
        statement=verified,
        _token=_TOKEN,
    )
    if failed:
        bad = result.failures
        lines = [_describe(f, f.name in empties) for f in bad]
        raise IntegrityFailure(
            result,
            f"{len(bad)} difference(s) between the signature and the files: "
            + "; ".join(lines[:5]) + (f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else ""),
            path=str(root),
            hint="the model was modified after signing; obtain it again from its publisher"
                 + ("" if ignore_unsigned_files or not any(f.status == "extra" for f in bad)
                    else " (or pass --ignore-unsigned-files if the extra files are expected)")
                 + ("" if not empties else "; shards-mode signatures cannot list empty files, "
                    "so an empty file present at signing time also shows up here"))
    return result


_MAX_IGNORE_PATHS = 10_000
_MAX_IGNORE_PATH_CHARS = 4096


def _check_ignore_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """Verification-time ignore paths, validated as :class:`HashSpec` does (relative POSIX, no
    backslash, no NUL), also refusing ``..`` and paths with no component; normalized (``./a/``
    -> ``a``) and de-duplicated in order. A lone string is one path, not its characters."""
    if isinstance(paths, str):
        paths = (paths,)
    try:
        given = tuple(paths)
    except TypeError:
        raise InputError("ignore_paths must be a list of relative paths",
                         expected="a list of strings", actual=type(paths).__name__) from None
    if len(given) > _MAX_IGNORE_PATHS:
        raise InputError("too many ignore paths", expected=f"<= {_MAX_IGNORE_PATHS}",
                         actual=str(len(given)))
    HashSpec(ignore_paths=given)  # the same checks (and message) as when hashing
    out: list[str] = []
    for p in given:
        parts = [c for c in p.split("/") if c not in ("", ".")]
        if not parts or ".." in parts or len(p) > _MAX_IGNORE_PATH_CHARS:
            raise InputError("ignore paths must be relative POSIX paths inside the model",
                             expected="e.g. 'logs' or 'checkpoints/tmp' (no '..', not empty)",
                             actual=repr(p[:200]))
        out.append("/".join(parts))
    return tuple(dict.fromkeys(out))


def _listing(paths: tuple[str, ...]) -> str:
    return ", ".join(paths[:20]) + (f" ... ({len(paths) - 20} more)" if len(paths) > 20 else "")


def _covering(signed_paths: frozenset[str]) -> frozenset[str]:
    """Every path that names a signed file or a directory above one."""
    out: set[str] = set()
    for path in signed_paths:
        parts = path.split("/")
        out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(out)


def _under(path: str, ignores: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in ignores)


def _relative_inside(sig: Path, root: Path) -> str | None:
    """The signature's path relative to the model directory, when it lies inside it."""
    if not root.is_dir():
        return None
    try:
        rel = sig.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def _empty_digest(algorithm: str) -> str:
    if algorithm == "blake3":
        import blake3

        return str(blake3.blake3(b"").hexdigest())
    return hashlib.new(algorithm, b"").hexdigest()


def _refuse_twins_of_signed(signed_paths: frozenset[str], unsigned: set[str],
                            root: str) -> None:
    """An unsigned file is tolerated (``--ignore-unsigned-files``, or under a verification-time
    ignore path) only when it cannot be taken for a signed one: not when its name differs from
    a signed file's only in case (or Unicode normalization), because on a case-insensitive file
    system (macOS, Windows) it *is* that file, and a copy or a loader there may pick the
    unsigned bytes. Without tolerance such a twin is simply an extra file (a failure)."""
    if not unsigned:
        return
    keys = {name_key(p): p for p in signed_paths}
    for p in sorted(unsigned):
        twin = keys.get(name_key(p))
        if twin is not None:
            raise PathError(
                f"unsigned file name differs from the signed {twin!r} only in case (or Unicode "
                "normalization); on a case-insensitive file system it is the signed file",
                path=os.path.join(root, p), expected=f"no name that folds to {twin!r}",
                actual=repr(p), hint="remove the twin; --ignore-unsigned-files tolerates only "
                                     "files that cannot be mistaken for signed ones")


def _compare(signed: Manifest, actual: Manifest, ignore_unsigned: bool,
             ignored: tuple[str, ...] = (), root: str = "."
             ) -> tuple[tuple[FileResult, ...], bool, frozenset[str]]:
    """Every signed resource, then every unsigned one, with its status; whether any failed; and
    the empty files a shards-mode signature could not list. Unsigned files under an ``ignored``
    path are left out (never a byte range of a signed file)."""
    diff = signed.diff(actual)
    act = actual.by_name()
    out: list[FileResult] = []
    for r in signed.resources:
        a: Resource | None = act.get(r.name)
        if a is None:
            out.append(FileResult(r.name, "missing", r.hex, None))
        elif a.digest != r.digest:
            out.append(FileResult(r.name, "changed", r.hex, a.hex))
        else:
            out.append(FileResult(r.name, "ok", r.hex, a.hex))
    signed_paths = signed.paths()
    unsigned = ({act[c.name].path for c in diff.extra} | set(diff.extra_files)) - signed_paths
    _refuse_twins_of_signed(signed_paths, {p for p in unsigned
                                           if ignore_unsigned or _under(p, ignored)}, root)
    for c in diff.extra:
        res = act[c.name]
        if res.path not in signed_paths and _under(res.path, ignored):
            continue
        # An extra byte range of a *signed* file means the file grew: never tolerated.
        tolerated = ignore_unsigned and res.path not in signed_paths
        out.append(FileResult(c.name, "unsigned" if tolerated else "extra", None, c.actual))
    extra_files = [p for p in diff.extra_files if not _under(p, ignored)]
    empty = _empty_digest(signed.serialization.hash_type) if extra_files else None
    for p in extra_files:
        out.append(FileResult(p, "unsigned" if ignore_unsigned else "extra", None, empty))
    failed = any(not f.ok for f in out)
    return tuple(out), failed, frozenset(extra_files)


def _describe(f: FileResult, empty_unlisted: bool = False) -> str:
    if f.status == "missing":
        return f"missing {f.name} (signed {f.expected})"
    if f.status == "changed":
        return f"changed {f.name} (signed {f.expected}, on disk {f.actual})"
    if empty_unlisted:
        return f"extra empty file {f.name} (not signed)"
    return f"extra {f.name} (on disk {f.actual}, not signed)"
