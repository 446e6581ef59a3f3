"""The provenance store: what lineage needs of an artifact, without its weights.

Layout (content-addressed by root digest)::

    <store>/sha256/<64 hex>/model.sig        the artifact's signature, byte for byte
    <store>/sha256/<64 hex>/claims.jsonl     its claims, when it has any
    <store>/sha256/<64 hex>/manifest.json    the signed manifest, for people and tools

Lineage trusts only ``model.sig`` (verified under the parent's rule, its signed root digest
compared with the digest the child recorded) and ``claims.jsonl`` (each line verified).
``manifest.json`` is a convenience copy of what ``model.sig`` signs; it is never read to decide
anything. The folder name is only an index: a signature filed under the wrong digest fails.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from modelsign.claims import MAX_CLAIMS_FILE_BYTES, claims_path, read_claims
from modelsign.errors import IdentityError, InputError, IntegrityError, PathError
from modelsign.hashing._spec import CLAIMS_FILE, SIGNATURE_FILE
from modelsign.lineage._model import SignerRule
from modelsign.statements import canonical_bytes, manifest_from_statement, parse_statement
from modelsign.statements._bundle import (
    default_signature_path,
    load_bundle,
    parse_envelope,
    read_bundle,
)
from modelsign.verify import Trust

__all__ = ["MANIFEST_FILE", "StoreEntry", "store_add", "store_entry"]

MANIFEST_FILE = "manifest.json"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class StoreEntry:
    """One artifact in the store: its folder, root digest, and the files it holds."""

    path: Path
    root_digest: str
    files: tuple[str, ...]
    verified_signer: str | None = None


def store_entry(store: str | os.PathLike[str], digest: str) -> Path | None:
    """The folder of ``digest`` (hex) in ``store``, or ``None`` when the store does not have it.

    A folder that is a symbolic link is not followed (a store is a plain tree).
    """
    if not _HEX64.fullmatch(digest):
        return None
    folder = Path(store) / "sha256" / digest
    if folder.is_symlink() or not folder.is_dir():
        return None
    return folder


def _merge_claims(existing: Path, new_lines: list[bytes]) -> bytes:
    """Earlier lines first, then lines the store does not have yet (claims are append-only, so
    a store filled from two copies of an artifact keeps every claim of both)."""
    old = [ln.raw for ln in read_claims(existing).lines if ln.problem is None]
    seen = set(old)
    out = list(old) + [ln for ln in new_lines if ln not in seen]
    return b"".join(ln + b"\n" for ln in out)


def store_add(
    path: str | os.PathLike[str],
    store: str | os.PathLike[str],
    *,
    signer: SignerRule | None = None,
    trust: Trust | None = None,
    use_cache: bool = False,
) -> StoreEntry:
    """Copy ``model.sig``, ``claims.jsonl`` and the signed manifest of the artifact at ``path``
    into ``store``, under its root digest.

    The artifact's files are hashed with the serialization its signature records and must match
    it (:class:`~modelsign.errors.IntegrityError` otherwise), so the store never files a
    signature under bytes it does not describe. With ``signer`` the signature and signer are
    verified too (``verify_model``); without, who signed is left to lineage, which verifies every
    store node under the rule for it. Claims already in the store are kept; new lines are
    appended. Every file is written atomically.
    """
    from modelsign.signing import write_atomic

    root = Path(path)
    if not root.exists():
        raise PathError("artifact not found", path=root,
                        hint="pass the model (or dataset) directory to add")
    sig = default_signature_path(root)
    if not sig.is_file():
        raise InputError("the artifact is not signed: the store keeps signatures", path=sig,
                         expected=SIGNATURE_FILE, actual="absent",
                         hint="sign it first (modelsign sign), then add it")
    data = read_bundle(sig)
    who: str | None = None
    if signer is not None:
        from modelsign.lineage._walk import verify_with_rule

        try:
            result = verify_with_rule(root, signer, trust=trust, use_cache=use_cache)
        except IdentityError as e:
            if e.hint is not None:
                raise
            raise IdentityError(e.problem, path=e.path, expected=e.expected, actual=e.actual,
                                hint="check who signed it; pass that signer's --key/--identity "
                                     "if you trust it") from e
        manifest = result.manifest
        who = f"{result.signer.kind} {result.signer.identity}"
    else:
        env = parse_envelope(load_bundle(data))
        manifest = manifest_from_statement(parse_statement(env.payload))
        from modelsign.manifest import hash_model

        spec = manifest.serialization.to_spec(use_cache=use_cache)
        spec = dataclasses.replace(spec, extra_ignores=(SIGNATURE_FILE, CLAIMS_FILE))
        actual = hash_model(root, spec)
        diff = manifest.diff(actual)
        if not diff.ok:
            lines = diff.describe()
            raise IntegrityError(
                f"the files differ from {SIGNATURE_FILE} ({len(lines)} difference(s)): "
                + "; ".join(lines[:5]) + (" ..." if len(lines) > 5 else ""),
                path=root, hint="refusing to store a signature of other bytes; re-sign or "
                                "obtain the artifact again")
    digest = manifest.root_hex
    folder = Path(store) / "sha256" / digest
    if folder.is_symlink():
        raise PathError("the store folder is a symbolic link; refusing to write through it",
                        path=folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [SIGNATURE_FILE, MANIFEST_FILE]
    write_atomic(folder / SIGNATURE_FILE, data)
    doc = {"name": manifest.name, "rootDigest": {"sha256": digest}, **manifest.to_predicate()}
    write_atomic(folder / MANIFEST_FILE, canonical_bytes(doc) + b"\n")
    claims = claims_path(root)
    if claims.is_file():
        if claims.stat().st_size > MAX_CLAIMS_FILE_BYTES:
            raise InputError("the claims file is too large", path=claims,
                             expected=f"<= {MAX_CLAIMS_FILE_BYTES} bytes")
        new_lines = [ln.raw for ln in read_claims(claims).lines
                     if ln.problem is None and ln.complete]
        target = folder / CLAIMS_FILE
        body = _merge_claims(target, new_lines) if target.is_file() else \
            b"".join(ln + b"\n" for ln in new_lines)
        write_atomic(target, body)
        written.append(CLAIMS_FILE)
    return StoreEntry(folder, digest, tuple(sorted(written)), who)
