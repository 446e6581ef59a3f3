"""The derivation claim: SLSA Provenance v1 with buildType ``.../buildtypes/derivation/v1``.

One statement says how an artifact (its root digest is the subject) was derived: the relation to
its parents (``finetune``, ``merge``, ...), the base models and datasets by *their* root digests,
the training code, the frameworks of the environment, and the run (builder, times, hardware).

Building goes through the ``in-toto-attestation`` protobuf messages (Statement, ResourceDescriptor,
Provenance), ``MessageToDict`` and then RFC 8785: the signed bytes are canonical, and the returned
:class:`~modelsign.statements.Statement` is parsed back *from those bytes*, so its view is exactly
what gets signed. Protobuf ``Struct`` keeps numbers as doubles; canonical JSON writes integral
doubles as integers, and ``params`` are strings, so nothing is rounded.

Reading (:func:`parse_provenance`) is tolerant of unknown fields and unknown dependency roles
(they are kept in the view), strict about the parts we define, and bounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, unquote

from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from in_toto_attestation.predicates.provenance.v1 import (  # type: ignore[import-untyped]
    provenance_pb2,
)
from in_toto_attestation.v1.resource_descriptor import (  # type: ignore[import-untyped]
    ResourceDescriptor,
)
from in_toto_attestation.v1.statement import (  # type: ignore[import-untyped]
    Statement as _PbStatement,
)
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from modelsign.errors import InputError, SignatureFormatError
from modelsign.statements._json import canonical_bytes
from modelsign.statements._models import (
    COUNT_KEY,
    DEPENDENCY_ROLES,
    DERIVATION_BUILD_TYPE,
    ROLE_KEY,
    SIGNED_KEY,
    SLSA_PROVENANCE_V1,
    SPLIT_KEY,
    BuilderDependencyAnnotations,
    ConfigReference,
    DependencyAnnotations,
    DependencyRole,
    DerivationExternalParameters,
    DigestSet,
    Relation,
)
from modelsign.statements._statement import Statement, parse_statement

__all__ = [
    "DEFAULT_BUILDER_ID",
    "MAX_DEPENDENCIES",
    "Accelerator",
    "ConfigReference",
    "Dependency",
    "DerivationView",
    "Framework",
    "param_value",
    "parse_provenance",
    "provenance_statement",
]

#: Who ran the derivation when nobody says otherwise: a person or script on their own machine.
DEFAULT_BUILDER_ID = "https://modelsign.dev/builders/local/v1"
#: Bounds on what we read from a claim.
MAX_DEPENDENCIES = 10_000
_MAX_TEXT = 4096

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
# A package URL with a type, a name (no namespace), a version and nothing else.
_PURL = re.compile(r"^pkg:(?P<type>[a-z][a-z0-9.+-]*)/(?P<name>[A-Za-z0-9._~%-]+)"
                   r"@(?P<version>[A-Za-z0-9._~%+!-]+)$")


# ----------------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True)
class Framework:
    """A piece of software of the environment, as a package URL: ``pkg:pypi/torch@2.6.0``.

    ``purl_type`` is ``pypi`` for Python distributions and ``generic`` for the interpreter
    (``python``) and accelerator runtimes (``cuda``). ``version`` is ``None`` only when a claim
    written by another tool carried a uri we cannot parse (``uri`` is then kept as is).
    """

    name: str
    version: str | None
    purl_type: str = "pypi"
    uri_override: str | None = field(default=None, compare=False)

    @property
    def uri(self) -> str:
        if self.uri_override is not None:
            return self.uri_override
        # purl: the version is percent-encoded ("2.6.0+cu124" -> "2.6.0%2Bcu124").
        name, version = quote(self.name, safe=""), quote(self.version or "", safe="")
        return f"pkg:{self.purl_type}/{name}@{version}"

    @classmethod
    def from_uri(cls, uri: str, *, name: str | None = None) -> Framework:
        """Parse ``pkg:<type>/<name>@<version>``; anything else is kept verbatim (version None)."""
        m = _PURL.match(uri)
        if m is None:
            return cls(name or uri[:_MAX_TEXT], None, "", uri)
        return cls(unquote(m["name"]), unquote(m["version"]), m["type"], uri)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.version is not None else self.uri


@dataclass(frozen=True, slots=True)
class Accelerator:
    """Devices of one kind the run used: ``Accelerator("NVIDIA H100 80GB HBM3", 8)``."""

    name: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class Dependency:
    """A ``resolvedDependencies`` entry: a base model, a dataset, training code or a framework.

    Parents (base models, datasets) are named by their root digest (``digest["sha256"]``) and/or
    a Hub revision (``digest["gitCommit"]``). ``signed`` says whether the parent's own signature
    was verified when the claim was made. ``annotations`` holds every annotation as read,
    including ones this version does not know.
    """

    role: DependencyRole
    name: str | None = None
    uri: str | None = None
    digest: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    signed: bool | None = None
    split: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def sha256(self) -> str | None:
        return self.digest.get("sha256")

    @property
    def git_commit(self) -> str | None:
        return self.digest.get("gitCommit")

    def label(self) -> str:
        """One short human name: uri, else name, else the digest."""
        base = self.uri or self.name or ""
        if self.sha256:
            return f"{base} sha256:{self.sha256}".strip()
        if self.git_commit:
            return f"{base} @{self.git_commit}".strip()
        return base


def param_value(value: str | int | float | bool) -> str:
    """How a hyper-parameter is recorded: exactly, as a string (bools as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise InputError("a parameter value must be a string, integer, float or boolean",
                     actual=type(value).__name__)


# ----------------------------------------------------------------------------------- building
def _check_text(what: str, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value or len(value) > _MAX_TEXT):
        raise InputError(f"{what} must be a non-empty string of at most {_MAX_TEXT} characters",
                         actual=repr(value)[:80])


def _utc(what: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{what} needs a time zone", expected="e.g. 2025-01-31T12:00:00Z",
                         actual=value.isoformat())
    return value.astimezone(UTC)


def _descriptor(dep: Dependency) -> ResourceDescriptor:
    ann: dict[str, Any] = {k: v for k, v in dep.annotations.items()
                           if k not in (ROLE_KEY, SIGNED_KEY, SPLIT_KEY)}
    try:
        typed = DependencyAnnotations.model_validate(
            {ROLE_KEY: dep.role, SIGNED_KEY: dep.signed, SPLIT_KEY: dep.split})
        digest = DigestSet.model_validate(dict(dep.digest))
    except ValidationError as e:
        raise InputError(f"dependency {dep.label()!r} is not valid",
                         actual=_first_error(e)) from e
    ann.update(typed.model_dump(by_alias=True, exclude_none=True, mode="json"))
    if dep.role in ("base_model", "dataset") and not (dep.sha256 or dep.git_commit):
        raise InputError(f"{dep.role.replace('_', ' ')} {dep.label()!r} has no digest",
                         expected="its root digest (sha256) or a Hub revision (gitCommit)",
                         actual=repr(dict(dep.digest))[:80])
    if not (dep.name or dep.uri or dep.digest):
        raise InputError(f"a {dep.role} dependency needs a name, uri or digest")
    _check_text("dependency name", dep.name)
    _check_text("dependency uri", dep.uri)
    return ResourceDescriptor(name=dep.name or "", uri=dep.uri or "",
                              digest=digest.model_dump(exclude_none=True) or None,
                              annotations=ann)


def provenance_statement(
    subject_name: str,
    root_digest: str,
    *,
    relation: Relation,
    method: str | None = None,
    params: Mapping[str, str | int | float | bool] | None = None,
    config: ConfigReference | None = None,
    dependencies: Sequence[Dependency] = (),
    frameworks: Sequence[Framework] = (),
    builder_id: str = DEFAULT_BUILDER_ID,
    builder_version: Mapping[str, str] | None = None,
    invocation_id: str | None = None,
    started_on: datetime | None = None,
    finished_on: datetime | None = None,
    accelerators: Sequence[Accelerator] = (),
    runtimes: Sequence[Framework] = (),
) -> Statement:
    """Build the derivation claim for the artifact whose root digest is ``root_digest`` (hex).

    ``dependencies`` are the parents and code, written in the order given (a merge's parents keep
    their order); ``frameworks`` follow, sorted by name. Returns the statement whose ``raw`` is the
    canonical (RFC 8785) bytes to sign. Raises :class:`~modelsign.errors.InputError` on bad input.
    """
    if not isinstance(root_digest, str) or not _HEX64.match(root_digest):
        raise InputError("the subject's root digest must be 64 lowercase hex characters",
                         actual=repr(root_digest)[:80])
    _check_text("subject name", subject_name)
    if not isinstance(builder_id, str) or not _URI.match(builder_id) or len(builder_id) > _MAX_TEXT:
        raise InputError("the builder id must be a URI", expected="e.g. https://ci.example/runner",
                         actual=repr(builder_id)[:80])
    _check_text("invocation id", invocation_id)
    start, finish = _utc("started-on", started_on), _utc("finished-on", finished_on)
    if start is not None and finish is not None and finish < start:
        raise InputError("the run finished before it started", expected=f">= {start.isoformat()}",
                         actual=finish.isoformat())
    try:
        external = DerivationExternalParameters.model_validate({
            "relation": relation,
            "method": method,
            "params": {k: param_value(v) for k, v in (params or {}).items()},
            "config": config,
        })
    except ValidationError as e:
        raise InputError("the derivation parameters are not valid", actual=_first_error(e)) from e
    seen: set[tuple[str, str]] = set()
    for dep in dependencies:
        key = (dep.role, dep.sha256 or dep.git_commit or dep.uri or dep.name or "")
        if dep.role in ("base_model", "dataset") and key in seen:
            raise InputError(f"{dep.role.replace('_', ' ')} {dep.label()!r} is listed twice",
                             expected="each parent once", actual="twice")
        seen.add(key)

    prov = provenance_pb2.Provenance()
    bd = prov.build_definition
    bd.build_type = DERIVATION_BUILD_TYPE
    bd.external_parameters.update(external.model_dump(by_alias=True, exclude_none=True,
                                                      mode="json"))
    fw_deps = [Dependency("framework", name=f.name, uri=f.uri)
               for f in sorted(frameworks, key=lambda f: (f.name, f.uri))]
    for dep in [*dependencies, *fw_deps]:
        bd.resolved_dependencies.append(_descriptor(dep).pb)

    run = prov.run_details
    run.builder.id = builder_id
    for k, v in (builder_version or {}).items():
        _check_text("builder version", v)
        run.builder.version[k] = v
    for acc in accelerators:
        _check_text("accelerator name", acc.name)
        ann = BuilderDependencyAnnotations.model_validate({ROLE_KEY: "accelerator",
                                                         COUNT_KEY: acc.count})
        run.builder.builder_dependencies.append(ResourceDescriptor(
            name=acc.name, annotations=ann.model_dump(by_alias=True, exclude_none=True)).pb)
    for rt in runtimes:
        run.builder.builder_dependencies.append(ResourceDescriptor(
            name=rt.name, uri=rt.uri, annotations={ROLE_KEY: "runtime"}).pb)
    if invocation_id:
        run.metadata.invocation_id = invocation_id
    if start is not None:
        run.metadata.started_on.FromDatetime(start)
    if finish is not None:
        run.metadata.finished_on.FromDatetime(finish)

    subject = ResourceDescriptor(name=subject_name, digest={"sha256": root_digest})
    stmt = _PbStatement([subject.pb], SLSA_PROVENANCE_V1, MessageToDict(prov))
    stmt.validate()
    raw = canonical_bytes(MessageToDict(stmt.pb))
    return parse_statement(raw, what="provenance statement")


# ----------------------------------------------------------------------------------- reading
class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _RD(_Wire):
    name: str | None = Field(default=None, max_length=_MAX_TEXT)
    uri: str | None = Field(default=None, max_length=_MAX_TEXT)
    digest: dict[str, str] = Field(default_factory=dict, max_length=64)
    annotations: dict[str, Any] = Field(default_factory=dict, max_length=256)


class _BuildDefinition(_Wire):
    buildType: str = Field(max_length=_MAX_TEXT)
    externalParameters: dict[str, Any]
    resolvedDependencies: list[_RD] = Field(default_factory=list,
                                            max_length=MAX_DEPENDENCIES)


class _Builder(_Wire):
    id: str = Field(max_length=_MAX_TEXT)
    version: dict[str, str] = Field(default_factory=dict, max_length=256)
    builderDependencies: list[_RD] = Field(default_factory=list,
                                           max_length=MAX_DEPENDENCIES)


class _Metadata(_Wire):
    invocationId: str | None = Field(default=None, max_length=_MAX_TEXT)
    startedOn: AwareDatetime | None = None
    finishedOn: AwareDatetime | None = None


class _RunDetails(_Wire):
    builder: _Builder
    metadata: _Metadata = Field(default_factory=_Metadata)


class _Predicate(_Wire):
    buildDefinition: _BuildDefinition
    runDetails: _RunDetails


def _first_error(e: ValidationError) -> str:
    errs = e.errors()
    if not errs:
        return str(e)[:200]
    err = errs[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg', '')}"[:300] + (f" (+{len(errs) - 1} more)"
                                                   if len(errs) > 1 else "")


@dataclass(frozen=True, slots=True)
class DerivationView:
    """A parsed derivation claim: what was derived from what, and how. Read-only.

    A view of a statement, not a verdict: whether the claim was signed by someone trusted and
    belongs to the artifact on disk is :func:`modelsign.verify.verify_claims`' business.
    """

    subject_name: str
    subject_digest: str
    relation: Relation
    method: str | None
    params: Mapping[str, str]
    config: ConfigReference | None
    base_models: tuple[Dependency, ...]
    datasets: tuple[Dependency, ...]
    code: tuple[Dependency, ...]
    frameworks: tuple[Framework, ...]
    other_dependencies: tuple[Mapping[str, Any], ...]
    builder_id: str
    builder_version: Mapping[str, str]
    invocation_id: str | None
    started_on: datetime | None
    finished_on: datetime | None
    accelerators: tuple[Accelerator, ...]
    runtimes: tuple[Framework, ...]
    external_parameters: DerivationExternalParameters

    def to_json(self) -> dict[str, Any]:
        """A plain summary for reports (``--format json``)."""
        def dep(d: Dependency) -> dict[str, Any]:
            out: dict[str, Any] = {"digest": dict(d.digest)}
            for k in ("name", "uri", "signed", "split"):
                if getattr(d, k) is not None:
                    out[k] = getattr(d, k)
            return out

        out: dict[str, Any] = {
            "relation": self.relation,
            "method": self.method,
            "params": dict(self.params),
            "baseModels": [dep(d) for d in self.base_models],
            "datasets": [dep(d) for d in self.datasets],
            "code": [dep(d) for d in self.code],
            "frameworks": [{"name": f.name, "version": f.version, "uri": f.uri}
                           for f in self.frameworks],
            "builderId": self.builder_id,
            "invocationId": self.invocation_id,
            "startedOn": self.started_on.isoformat() if self.started_on else None,
            "finishedOn": self.finished_on.isoformat() if self.finished_on else None,
            "accelerators": [{"name": a.name, "count": a.count} for a in self.accelerators],
            "runtimes": [{"name": r.name, "version": r.version, "uri": r.uri}
                         for r in self.runtimes],
        }
        if self.config is not None:
            out["config"] = self.config.model_dump(exclude_none=True, mode="json")
        return out


def _ro(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


def parse_provenance(statement: Statement) -> DerivationView:
    """The derivation view of a statement; :class:`SignatureFormatError` when it is not one.

    Unknown fields and dependencies with a role we do not know are kept (``other_dependencies``);
    the parts this buildType defines must be well formed.
    """
    if statement.predicate_type != SLSA_PROVENANCE_V1:
        raise SignatureFormatError("statement is not SLSA provenance",
                                   expected=SLSA_PROVENANCE_V1,
                                   actual=statement.predicate_type[:200])
    subject = statement.subject
    root = subject.digest.get("sha256")
    if root is None or not _HEX64.match(root):
        raise SignatureFormatError("provenance subject has no sha256 root digest",
                                   expected="digest.sha256 = 64 hex", actual=repr(root)[:80])
    try:
        pred = _Predicate.model_validate(statement.predicate)
    except ValidationError as e:
        raise SignatureFormatError("provenance predicate is malformed",
                                   actual=_first_error(e)) from e
    bd, run = pred.buildDefinition, pred.runDetails
    if bd.buildType != DERIVATION_BUILD_TYPE:
        raise SignatureFormatError("provenance has a buildType this version does not read",
                                   expected=DERIVATION_BUILD_TYPE, actual=bd.buildType[:200])
    try:
        external = DerivationExternalParameters.model_validate(bd.externalParameters)
    except ValidationError as e:
        raise SignatureFormatError("derivation externalParameters are malformed",
                                   actual=_first_error(e)) from e

    groups: dict[str, list[Dependency]] = {r: [] for r in DEPENDENCY_ROLES}
    frameworks: list[Framework] = []
    others: list[Mapping[str, Any]] = []
    for i, rd in enumerate(bd.resolvedDependencies):
        role = rd.annotations.get(ROLE_KEY)
        if role not in DEPENDENCY_ROLES:
            others.append(_ro(rd.model_dump(exclude_none=True)))
            continue
        try:
            ann = DependencyAnnotations.model_validate(rd.annotations)
            digest = DigestSet.model_validate(rd.digest)
        except ValidationError as e:
            raise SignatureFormatError(f"resolvedDependencies[{i}] is malformed",
                                       actual=_first_error(e)) from e
        dep = Dependency(ann.role, rd.name, rd.uri, _ro(rd.digest), ann.signed, ann.split,
                         _ro(rd.annotations))
        if ann.role in ("base_model", "dataset") and not (digest.sha256 or digest.gitCommit):
            raise SignatureFormatError(
                f"resolvedDependencies[{i}] ({ann.role}) has no digest",
                expected="digest.sha256 or digest.gitCommit", actual=repr(rd.digest)[:80])
        if ann.role == "framework":
            frameworks.append(Framework.from_uri(rd.uri or "", name=rd.name))
        groups[ann.role].append(dep)

    accelerators: list[Accelerator] = []
    runtimes: list[Framework] = []
    for rd in run.builder.builderDependencies:
        role = rd.annotations.get(ROLE_KEY)
        if role == "accelerator" and rd.name:
            try:
                bann = BuilderDependencyAnnotations.model_validate(rd.annotations)
            except ValidationError as e:
                raise SignatureFormatError("builder accelerator entry is malformed",
                                           actual=_first_error(e)) from e
            accelerators.append(Accelerator(rd.name, bann.count or 1))
        elif role == "runtime" and rd.uri:
            runtimes.append(Framework.from_uri(rd.uri, name=rd.name))

    return DerivationView(
        subject_name=subject.name,
        subject_digest=root,
        relation=external.relation,
        method=external.method,
        params=MappingProxyType(dict(external.params)),
        config=external.config,
        base_models=tuple(groups["base_model"]),
        datasets=tuple(groups["dataset"]),
        code=tuple(groups["code"]),
        frameworks=tuple(frameworks),
        other_dependencies=tuple(others),
        builder_id=run.builder.id,
        builder_version=MappingProxyType(dict(run.builder.version)),
        invocation_id=run.metadata.invocationId,
        started_on=run.metadata.startedOn,
        finished_on=run.metadata.finishedOn,
        accelerators=tuple(accelerators),
        runtimes=tuple(runtimes),
        external_parameters=external,
    )

