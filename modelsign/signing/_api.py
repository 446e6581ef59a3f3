"""``sign_model``: hash an artifact, sign its OMS statement, write ``model.sig`` atomically."""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign.errors import InputError, PathError
from modelsign.hashing._spec import SIGNATURE_FILE, HashSpec
from modelsign.manifest import Manifest
from modelsign.signing._types import SignedBundle, Signer
from modelsign.signing._write import check_writable, remove_stale_temps, write_atomic
from modelsign.statements import Statement, oms_statement
from modelsign.statements._bundle import default_signature_path

__all__ = ["SignResult", "sign_manifest", "sign_model"]

_DEFAULT_SPEC = HashSpec()


@dataclass(frozen=True, slots=True)
class SignResult:
    """What ``sign_model`` did: the manifest it signed, the bundle, and where it went."""

    path: Path
    manifest: Manifest
    bundle: SignedBundle

    @property
    def root_digest(self) -> str:
        """Hex SHA-256 root digest of the signed manifest (the statement's subject)."""
        return self.manifest.root_hex

    @property
    def statement(self) -> Statement:
        return self.bundle.statement


def sign_manifest(manifest: Manifest, *, signer: Signer) -> SignedBundle:
    """Sign the OMS v1.0 statement of an already computed manifest."""
    return signer.sign(oms_statement(manifest))


def _with_output_ignored(spec: HashSpec, model: Path, output: Path) -> HashSpec:
    """When the signature is written inside the model directory under another name than
    ``model.sig``, leave it out of the manifest (recorded in ``ignore_paths``, as the peer does),
    so that signing again or verifying does not see it as an extra file."""
    if not model.is_dir():
        return spec
    try:
        rel = output.relative_to(model.resolve()).as_posix()
    except ValueError:
        return spec
    if rel == SIGNATURE_FILE or rel in spec.ignore_paths:
        return spec
    return dataclasses.replace(spec, ignore_paths=(*spec.ignore_paths, rel))


def sign_model(path: str | os.PathLike[str], *, signer: Signer, spec: HashSpec = _DEFAULT_SPEC,
               output: str | os.PathLike[str] | None = None, **hash_options: Any) -> SignResult:
    """Hash the model (directory or single file) at ``path``, sign it, and write the bundle.

    The signature goes to ``output``, by default ``PATH/model.sig`` (``PATH.sig`` beside a
    single-file model). The write is atomic: an existing signature is replaced only by a complete
    new one, and left untouched when anything fails. The destination is checked before hashing,
    so a bad ``output`` fails fast. Temporary files an interrupted signing left beside the
    destination (``.model.sig.<random>.tmp``) are removed before hashing, with a warning, so they
    are never signed. ``hash_options`` go to the hashing engine (``executor=``, ``progress=``,
    ...). Errors are :class:`modelsign.errors.ModelsignError`.
    """
    model = Path(path)
    if not model.exists():
        kind = "broken symbolic link" if model.is_symlink() else "path"
        raise PathError(f"model {kind} not found", path=model,
                        hint="pass the model directory (or file) to sign")
    target = Path(output) if output is not None else default_signature_path(model)
    target = check_writable(target)
    if model.is_file() and target == Path(os.path.abspath(model)):
        raise InputError("the signature output is the model file itself", path=target,
                         hint="choose another --output path")
    spec = _with_output_ignored(spec, model, target.parent.resolve() / target.name)
    # A sign killed between creating and renaming its temporary file left it beside the target
    # (inside the model, by default): remove it before hashing, or it would be signed.
    stale = remove_stale_temps(target)
    if stale:
        warnings.warn(f"modelsign: removed {len(stale)} temporary file(s) left by an "
                      f"interrupted signing: {', '.join(str(s) for s in stale[:5])}",
                      stacklevel=2)

    from modelsign.manifest import hash_model

    manifest = hash_model(model, spec, **hash_options)
    bundle = sign_manifest(manifest, signer=signer)
    written = write_atomic(target, bundle.raw)
    return SignResult(written, manifest, bundle)
