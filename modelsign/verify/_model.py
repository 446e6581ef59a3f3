"""``verify_model``: signature, signer, then every file, hashed as the signature records."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from modelsign.errors import ModelsignError, PathError
from modelsign.hashing._spec import CLAIMS_FILE, SIGNATURE_FILE
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
    use_cache: bool = False,
    unsafe_skip_identity: bool = False,
    clock: Callable[[], datetime] | None = None,
    max_signature_bytes: int = MAX_BUNDLE_BYTES,
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
    """
    root = Path(path)
    identities, cert_chain = normalize(identities, cert_chain)
    select_mode(identities, key, cert_chain, unsafe_skip_identity)  # usage first
    if not root.exists() and not root.is_symlink():
        raise PathError("model path does not exist", path=root,
                        hint="check the path; verify takes the model directory (or file)")
    sig_path = Path(signature) if signature is not None else default_signature_path(root)
    data = read_bundle(sig_path, max_bytes=max_signature_bytes)
    verified = verify_bundle(data, identities=identities, key=key, cert_chain=cert_chain,
                             trust=trust, unsafe_skip_identity=unsafe_skip_identity,
                             source=str(sig_path), clock=clock)
    try:
        signed = manifest_from_statement(verified.statement)
    except ModelsignError as e:
        raise with_path(e, str(sig_path)) from e

    spec = signed.serialization.to_spec(use_cache=use_cache)
    extra = [SIGNATURE_FILE, CLAIMS_FILE]
    rel_sig = _relative_inside(sig_path, root)
    if rel_sig is not None:
        extra.append(rel_sig)
    spec = dataclasses.replace(spec, extra_ignores=tuple(dict.fromkeys(extra)))

    from modelsign.manifest import hash_model

    actual = hash_model(root, spec)
    files, failed, empties = _compare(signed, actual, ignore_unsigned_files)
    warnings = list(verified.warnings)
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


def _compare(signed: Manifest, actual: Manifest,
             ignore_unsigned: bool) -> tuple[tuple[FileResult, ...], bool, frozenset[str]]:
    """Every signed resource, then every unsigned one, with its status; whether any failed; and
    the empty files a shards-mode signature could not list."""
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
    for c in diff.extra:
        res = act[c.name]
        # An extra byte range of a *signed* file means the file grew: never tolerated.
        tolerated = ignore_unsigned and res.path not in signed_paths
        out.append(FileResult(c.name, "unsigned" if tolerated else "extra", None, c.actual))
    empty = _empty_digest(signed.serialization.hash_type) if diff.extra_files else None
    for p in diff.extra_files:
        out.append(FileResult(p, "unsigned" if ignore_unsigned else "extra", None, empty))
    failed = any(not f.ok for f in out)
    return tuple(out), failed, frozenset(diff.extra_files)


def _describe(f: FileResult, empty_unlisted: bool = False) -> str:
    if f.status == "missing":
        return f"missing {f.name} (signed {f.expected})"
    if f.status == "changed":
        return f"changed {f.name} (signed {f.expected}, on disk {f.actual})"
    if empty_unlisted:
        return f"extra empty file {f.name} (not signed)"
    return f"extra {f.name} (on disk {f.actual}, not signed)"
