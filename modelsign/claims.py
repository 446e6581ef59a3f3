"""Claims: signed statements about an artifact, one Sigstore bundle per line of ``claims.jsonl``.

Two halves:

* the file: :func:`append_claim` adds one line atomically (``O_APPEND`` + an exclusive
  ``flock``, one write, ``fsync``): concurrent appends from several processes never interleave and
  earlier lines are never rewritten. :func:`read_claims` reads lines with caps and line numbers,
  and reports (never crashes on) a truncated last line or an over-long line.
* the derivation claim: :func:`attest` computes the artifact's root digest, resolves its parents
  (a local directory -- its ``model.sig`` verified --, ``sha256:<hex>``, or a Hub revision
  ``hf://org/name@<commit>``, recorded and never fetched), reads the environment, builds the SLSA
  Provenance v1 statement (:func:`modelsign.statements.provenance_statement`), signs it with any
  :class:`modelsign.signing.Signer`, and appends it.

Nothing here says "verified" about a claim: :func:`modelsign.verify.verify_claims` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelsign._claimsfile import (
    MAX_CLAIM_LINE_BYTES,
    MAX_CLAIM_LINES,
    MAX_CLAIMS_FILE_BYTES,
    ClaimLine,
    ClaimsFile,
    claims_path,
    read_claims,
)
from modelsign.errors import InputError, PathError, SignatureFormatError
from modelsign.hashing._spec import CLAIMS_FILE, HashSpec
from modelsign.statements._json import load_json
from modelsign.statements._models import ConfigReference, DigestSet, Relation
from modelsign.statements._provenance import (
    DEFAULT_BUILDER_ID,
    Dependency,
    DerivationView,
    Framework,
    parse_provenance,
    provenance_statement,
)

if TYPE_CHECKING:  # pragma: no cover
    from modelsign._frameworks import Environment
    from modelsign.signing import SignedBundle, Signer
    from modelsign.statements import Statement

__all__ = [
    "CLAIMS_FILE",
    "MAX_CLAIMS_FILE_BYTES",
    "MAX_CLAIM_LINES",
    "MAX_CLAIM_LINE_BYTES",
    "Claim",
    "ClaimInfo",
    "ClaimLine",
    "ClaimsFile",
    "Parent",
    "ParentVerifier",
    "append_claim",
    "attest",
    "claims_path",
    "inspect_claims",
    "iter_statements",
    "parse_code_ref",
    "read_claims",
    "resolve_parent",
]


def _check_line(line: bytes) -> bytes:
    body = line[:-1] if line.endswith(b"\n") else line
    if not body.strip():
        raise InputError("a claim line cannot be empty")
    if b"\n" in body or b"\r" in body:
        raise InputError("a claim must be a single line of JSON",
                         hint="write the bundle as compact (canonical) JSON")
    if len(body) > MAX_CLAIM_LINE_BYTES:
        raise InputError("the claim is too large", expected=f"<= {MAX_CLAIM_LINE_BYTES} bytes",
                         actual=f"{len(body)} bytes")
    obj = load_json(body, what="claim")
    if not isinstance(obj, dict):
        raise InputError("a claim must be a JSON object (a Sigstore bundle)",
                         actual=type(obj).__name__)
    return body


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _count_lines(fd: int, size: int) -> tuple[int, bool]:
    """(newlines in the file, whether it ends with a newline), read with pread in chunks."""
    count, offset, last = 0, 0, b"\n"
    while offset < size:
        block = os.pread(fd, min(1 << 20, size - offset), offset)
        if not block:
            break
        count += block.count(b"\n")
        last = block[-1:]
        offset += len(block)
    return count, last == b"\n"


def append_claim(path: str | os.PathLike[str], bundle: bytes) -> int:
    """Append ``bundle`` (one compact JSON line) to the claims file at ``path``; return its line
    number (1-based).

    The file is opened with ``O_APPEND`` (created ``0o644`` if missing, never through a symlink),
    locked with an exclusive ``flock`` for the whole append, written with one logical write and
    ``fsync``-ed. A last line left without its newline by an interrupted append is kept as it is;
    the new claim starts on a line of its own. ``path`` may be the artifact (directory) instead.
    """
    p = Path(path)
    if p.is_dir():
        p = claims_path(p)
    body = _check_line(bundle)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(p, flags, 0o644)
    except OSError as e:
        if p.is_symlink():
            raise PathError("the claims file is a symbolic link; refusing to write through it",
                            path=p, hint="replace the link with a copy of the file") from e
        raise PathError(f"cannot open the claims file for appending: {e.strerror or e}",
                        path=p) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PathError("the claims file is not a regular file", path=p)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size + len(body) + 2 > MAX_CLAIMS_FILE_BYTES:
                raise InputError("the claims file would grow past its size cap", path=p,
                                 expected=f"<= {MAX_CLAIMS_FILE_BYTES} bytes",
                                 actual=f"{size + len(body) + 1} bytes")
            newlines, ends_clean = _count_lines(fd, size)
            data = (b"" if ends_clean else b"\n") + body + b"\n"
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError as e:
        raise PathError(f"cannot append to the claims file: {e.strerror or e}", path=p) from e
    finally:
        os.close(fd)
    if size == 0:
        _fsync_dir(p.parent)
    return newlines + (1 if ends_clean else 2)


# ----------------------------------------------------------------------------------- parents
ParentKind = Literal["local", "digest", "hub"]

_SHA256_REF = re.compile(r"^sha256:(?P<hex>[0-9a-f]{64})(?:=(?P<uri>\S+))?$")
_HUB_REF = re.compile(
    r"^hf://(?P<datasets>datasets/)?"
    r"(?P<repo>(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*)"  # org/ optional (gpt2)
    r"@(?P<commit>[0-9a-f]{40})$")
_CODE_REF = re.compile(r"^(?P<uri>\S+)@(?P<commit>[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True, slots=True)
class Parent:
    """A parent (base model or dataset) as it will be recorded in the claim.

    ``signed`` is true only when the parent's own signature was verified here.
    """

    kind: ParentKind
    name: str | None
    uri: str | None
    root_digest: str | None
    git_commit: str | None
    signed: bool

    def dependency(self, role: Literal["base_model", "dataset"], *,
                   split: str | None = None) -> Dependency:
        digest = {k: v for k, v in (("sha256", self.root_digest), ("gitCommit", self.git_commit))
                  if v}
        return Dependency(role, name=self.name, uri=self.uri, digest=digest, signed=self.signed,
                          split=split if role == "dataset" else None)


class ParentVerifier:
    """Verifies a local parent's ``model.sig`` and returns its root digest (hex).

    Wraps :func:`modelsign.verify.verify_model` with the identity options the caller gives
    (``verify_options`` are passed through as keyword arguments: ``identities=``, ``key=``,
    ``cert_chain=``, ``trust=``, ...), so the same options that say who may sign a model say who
    may sign its parents. ``use_cache`` defaults to true here.
    """

    def __init__(self, **verify_options: Any) -> None:
        # The attester re-hashes parents that may be hundreds of GB; like the artifact itself,
        # they may use the incremental cache unless the caller says use_cache=False.
        self.options = {"use_cache": True, **verify_options}

    def __call__(self, path: Path) -> tuple[str, str]:
        """(root digest hex, subject name) of the verified parent; raises on any failure."""
        from modelsign.verify import verify_model

        result = verify_model(path, **self.options)
        return result.root_digest, result.subject_name


def _subject_name(path: Path) -> str:
    return path.resolve().name or "artifact"


def resolve_parent(
    ref: str | os.PathLike[str],
    *,
    what: str = "base model",
    uri: str | None = None,
    verifier: ParentVerifier | None = None,
    spec: HashSpec | None = None,
) -> Parent:
    """Turn a REF into a :class:`Parent`. Nothing is fetched.

    * an existing local directory (or file): with a signature beside it, the signature is
      verified by ``verifier`` and the root digest taken from it (``signed=True``); with none,
      the directory is hashed and the parent recorded as unsigned;
    * ``sha256:<hex>`` (optionally ``sha256:<hex>=<uri>``, or ``uri=``): recorded as given,
      unsigned;
    * ``hf://org/name@<40-hex commit>`` / ``hf://datasets/org/name@<commit>``: recorded with
      ``digest.gitCommit``, unsigned (the Hub revision is not fetched).
    """
    text = os.fspath(ref)
    if isinstance(ref, os.PathLike) or Path(text).exists():
        return _resolve_local(Path(text), what=what, verifier=verifier, spec=spec)
    m = _SHA256_REF.match(text)
    if m:
        given = m["uri"] or uri
        return Parent("digest", None, given, m["hex"], None, False)
    m = _HUB_REF.match(text)
    if m:
        repo = m["repo"]
        prefix = "hf://datasets/" if m["datasets"] else "hf://"
        return Parent("hub", repo, prefix + repo, None, m["commit"], False)
    if text.startswith("hf://"):
        raise InputError(f"{what} {text!r} is not a pinned Hub revision",
                         expected="hf://org/name@<40-hex commit> (datasets: hf://datasets/org/name@...)",
                         actual=text[:200],
                         hint="pin the exact revision: a branch name can move")
    raise InputError(f"{what} {text!r} is neither a local path, sha256:<hex>, nor hf://...@<commit>",
                     expected="a directory, sha256:<64 hex>[=<uri>], or hf://org/name@<commit>",
                     actual=text[:200], hint="check the path exists")


def _resolve_local(path: Path, *, what: str, verifier: ParentVerifier | None,
                   spec: HashSpec | None) -> Parent:
    from modelsign.statements._bundle import default_signature_path

    if not path.exists():
        raise PathError(f"{what} not found", path=path)
    sig = default_signature_path(path)
    if sig.exists():
        if verifier is None:
            raise InputError(
                f"{what} {path} is signed, and nobody said who may sign it", path=sig,
                hint="pass the parent identity options (--parent-key, --parent-identity and "
                     "--parent-issuer, ...) so its signature can be verified")
        root, name = verifier(path)
        return Parent("local", name or _subject_name(path), None, root, None, True)
    from modelsign.manifest import hash_model

    manifest = hash_model(path, spec or HashSpec())
    return Parent("local", manifest.name, None, manifest.root_hex, None, False)


def parse_code_ref(text: str) -> Dependency:
    """``URI@COMMIT`` (40 or 64 hex) -> the ``code`` dependency."""
    m = _CODE_REF.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InputError("the training code must be given as URI@COMMIT",
                         expected="e.g. https://github.com/acme/train@<40-hex commit>",
                         actual=repr(text)[:200])
    return Dependency("code", uri=m["uri"], digest={"gitCommit": m["commit"]})


# ----------------------------------------------------------------------------------- attest
@dataclass(frozen=True, slots=True)
class Claim:
    """A claim that was written: where, as which line, and what it says."""

    path: Path
    line: int
    bundle: SignedBundle
    view: DerivationView

    @property
    def statement(self) -> Statement:
        return self.bundle.statement


def _signature_spec(path: Path) -> HashSpec | None:
    """The hashing parameters recorded in the artifact's own signature, if it has a readable one
    (read, not verified: they only choose how to hash; verification judges the signature)."""
    from modelsign.statements import manifest_from_statement, parse_statement
    from modelsign.statements._bundle import (
        default_signature_path,
        load_bundle,
        parse_envelope,
        read_bundle,
    )

    sig = default_signature_path(path)
    if not sig.is_file():
        return None
    try:
        env = parse_envelope(load_bundle(read_bundle(sig)))
        manifest = manifest_from_statement(parse_statement(env.payload))
    except SignatureFormatError:
        return None  # unreadable: verification will say so; hash with the default
    return manifest.serialization.to_spec(use_cache=True)


def _artifact_spec(path: Path, spec: HashSpec | None, use_cache: bool) -> HashSpec:
    """Hash with the serialization of the artifact's own signature when it has one, so the
    claim's subject is the root digest that signature (and its verifier) will compute. An
    explicit ``spec`` that contradicts that signature is refused."""
    import dataclasses

    from modelsign.manifest import Serialization

    signed = _signature_spec(path)
    if spec is not None and signed is not None:
        a, b = Serialization.from_spec(spec), Serialization.from_spec(signed)
        if (a.method, a.hash_type, a.shard_size, a.allow_symlinks, set(a.ignore_paths)) != \
                (b.method, b.hash_type, b.shard_size, b.allow_symlinks, set(b.ignore_paths)):
            raise InputError(
                "the hashing options differ from the ones the artifact's signature records",
                path=path, expected=repr(b.to_json()), actual=repr(a.to_json()),
                hint="drop the hashing options: a signed artifact's claims use its signature's")
    chosen = spec or signed or HashSpec()
    return dataclasses.replace(chosen, use_cache=use_cache and chosen.use_cache)


def _config_reference(config: str | os.PathLike[str] | ConfigReference | None
                      ) -> ConfigReference | None:
    if config is None or isinstance(config, ConfigReference):
        return config
    p = Path(config)
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise PathError(f"cannot read the config file: {e.strerror or e}", path=p) from e
    return ConfigReference(uri=p.name, digest=DigestSet(sha256=h.hexdigest()))


def _parents(refs: Iterable[str | os.PathLike[str] | Parent], *, what: str,
             verifier: ParentVerifier | None, uris: list[str]) -> list[Parent]:
    out = []
    for ref in refs:
        if isinstance(ref, Parent):
            out.append(ref)
            continue
        parent = resolve_parent(ref, what=what, verifier=verifier)
        if parent.kind == "digest" and parent.uri is None and uris:
            parent = Parent("digest", None, uris.pop(0), parent.root_digest, None, False)
        out.append(parent)
    return out


def attest(
    path: str | os.PathLike[str],
    *,
    signer: Signer,
    relation: Relation,
    method: str | None = None,
    params: Mapping[str, str | int | float | bool] | None = None,
    config: str | os.PathLike[str] | ConfigReference | None = None,
    base_models: Sequence[str | os.PathLike[str] | Parent] = (),
    datasets: Sequence[str | os.PathLike[str] | Parent] = (),
    dataset_split: str | None = None,
    uri: str | None = None,
    code: str | Dependency | None = None,
    frameworks: Iterable[str | Framework] = (),
    environment: Environment | None = None,
    builder_id: str = DEFAULT_BUILDER_ID,
    started_on: datetime | None = None,
    finished_on: datetime | None = None,
    invocation_id: str | None = None,
    parent_verifier: ParentVerifier | None = None,
    spec: HashSpec | None = None,
    use_cache: bool = True,
    import_torch: bool = True,
) -> Claim:
    """Sign a derivation claim about the artifact at ``path`` and append it to its claims file.

    The subject is the artifact's root digest, hashed with the serialization of its own
    ``model.sig`` when it has one (an explicit ``spec`` must agree with it), else with ``spec``
    or the default; the incremental cache is used unless ``use_cache=False``. Parents are REFs as
    :func:`resolve_parent` takes them; ``uri`` names the one ``sha256:<hex>`` REF given without
    an inline ``=<uri>``. The environment (frameworks, accelerators, CUDA) is detected unless
    ``environment`` is given; ``frameworks`` (``NAME==VERSION``) add or replace entries.
    """
    from modelsign import __version__
    from modelsign._frameworks import detect_environment
    from modelsign.manifest import hash_model

    artifact = Path(path)
    if not artifact.exists():
        raise PathError("artifact not found", path=artifact,
                        hint="pass the model (or dataset) directory the claim is about")
    digest_refs = [r for r in (*base_models, *datasets)
                   if isinstance(r, str) and _SHA256_REF.match(r) and "=" not in r]
    uris = [uri] if uri else []
    if uri and len(digest_refs) != 1:
        raise InputError("--uri names the URI of exactly one sha256:<hex> parent",
                         expected="one sha256:<hex> REF without an inline =<uri>",
                         actual=f"{len(digest_refs)}",
                         hint="give each its URI inline: sha256:<hex>=<uri>")
    if dataset_split is not None and not datasets:
        raise InputError("--dataset-split needs a --dataset")
    bases = _parents(base_models, what="base model", verifier=parent_verifier, uris=uris)
    data = _parents(datasets, what="dataset", verifier=parent_verifier, uris=uris)
    deps = [p.dependency("base_model") for p in bases]
    deps += [p.dependency("dataset", split=dataset_split) for p in data]
    if code is not None:
        deps.append(code if isinstance(code, Dependency) else parse_code_ref(code))

    env = environment
    if env is None:
        env = detect_environment(overrides=frameworks, import_torch=import_torch)
    elif frameworks:
        from modelsign._frameworks import Environment as _Env
        from modelsign._frameworks import _merge, parse_framework_override

        over = [f if isinstance(f, Framework) else parse_framework_override(f) for f in frameworks]
        env = _Env(_merge(env.frameworks, over), env.accelerators, env.runtimes)

    manifest = hash_model(artifact, _artifact_spec(artifact, spec, use_cache))
    for parent in (*bases, *data):
        if parent.root_digest == manifest.root_hex:
            raise InputError("a parent has the same root digest as the artifact itself",
                             path=artifact, actual=f"sha256:{manifest.root_hex}",
                             hint="check the --base-model / --dataset paths")
    statement = provenance_statement(
        manifest.name, manifest.root_hex,
        relation=relation, method=method, params=params, config=_config_reference(config),
        dependencies=deps, frameworks=env.frameworks, builder_id=builder_id,
        builder_version={"modelsign": __version__}, invocation_id=invocation_id,
        started_on=started_on, finished_on=finished_on, accelerators=env.accelerators,
        runtimes=env.runtimes)
    bundle = signer.sign(statement)
    target = claims_path(artifact)
    line = append_claim(target, bundle.raw)
    return Claim(target, line, bundle, parse_provenance(statement))


def iter_statements(lines: Iterable[ClaimLine]) -> Iterator[tuple[ClaimLine, Statement | None,
                                                                 str | None]]:
    """(line, statement or None, problem or None) for each line, *without verifying anything*:
    the payload of each bundle as its envelope carries it. For display (``modelsign claims``)."""
    from modelsign.statements import parse_statement
    from modelsign.statements._bundle import load_bundle, parse_envelope

    for line in lines:
        if line.problem:
            yield line, None, line.problem
            continue
        try:
            env = parse_envelope(load_bundle(line.raw, what=f"line {line.number}",
                                             max_bytes=MAX_CLAIM_LINE_BYTES),
                                 what=f"line {line.number}")
            st = parse_statement(env.payload, what=f"line {line.number} statement")
        except SignatureFormatError as e:
            if not line.complete:
                yield line, None, ("truncated: the last line has no newline and is not a "
                                   "complete bundle (an append was interrupted)")
            else:
                yield line, None, str(e)
            continue
        yield line, st, None


@dataclass(frozen=True, slots=True)
class ClaimInfo:
    """What one line *says*, unverified: for ``modelsign claims``, never for a decision.

    ``claimed_signer`` is read from the bundle's verification material as is (a key hint, or the
    certificate's identity) and proves nothing until :func:`modelsign.verify.verify_claims`.
    """

    line: int
    complete: bool
    problem: str | None
    statement: Statement | None
    derivation: DerivationView | None
    claimed_signer: str | None

    def to_json(self) -> dict[str, Any]:
        st = self.statement
        return {
            "line": self.line,
            "problem": self.problem,
            "predicate_type": st.predicate_type if st else None,
            "subject": ({"name": st.subjects[0].name, "digest": dict(st.subjects[0].digest)}
                        if st and st.subjects else None),
            "claimed_signer": self.claimed_signer,
            "derivation": self.derivation.to_json() if self.derivation else None,
            "statement": load_json(st.raw, what="statement") if st else None,
        }


def _claimed_signer(raw: bytes) -> str | None:
    from modelsign.verify._envelope import parse_bundle

    try:
        view = parse_bundle(raw, what="claim", max_bytes=MAX_CLAIM_LINE_BYTES)
    except SignatureFormatError:
        return None
    if view.material == "publicKey":
        return f"key sha256:{view.key_hint}" if view.key_hint else "a key (no hint)"
    try:
        from cryptography import x509

        from modelsign.verify._identity import certificate_identity, certificate_issuer

        cert = x509.load_der_x509_certificate(view.certificates[0])
        who = certificate_identity(cert) or cert.subject.rfc4514_string()
        issuer = certificate_issuer(cert)
    except (ValueError, IndexError):
        return f"{view.material} (unreadable certificate)"
    kind = "keyless" if view.material == "certificate" else "certificate"
    return f"{kind} {who}" + (f" (issuer {issuer})" if issuer else "")


def inspect_claims(path: str | os.PathLike[str]) -> tuple[ClaimsFile, tuple[ClaimInfo, ...]]:
    """Read an artifact's claims (or a ``*.jsonl`` claims file given directly) and parse what
    each line says, verifying nothing."""
    p = Path(path)
    read = read_claims(p if p.is_file() and p.name.endswith(".jsonl") else claims_path(p))
    out = []
    for line, st, problem in iter_statements(read.lines):
        view = None
        if st is not None:
            with contextlib.suppress(SignatureFormatError):
                view = parse_provenance(st)
        signer = _claimed_signer(line.raw) if st is not None else None
        out.append(ClaimInfo(line.number, line.complete, problem, st, view, signer))
    return read, tuple(out)
