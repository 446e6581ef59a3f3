"""The policy file model: ``apiVersion: modelsign/v1``, ``kind: ModelPolicy``.

User input, so the models are strict on purpose (STYLE.md): unknown keys are rejected
(``extra="forbid"``), values are not coerced (``strict``), everything is frozen, choices are
``Literal`` types, and every CEL condition is compiled while the file is read, so a typo is an
error at load and at lint, never a surprise at evaluation.

The JSON Schema in ``schemas/policy.schema.json`` is generated from these classes
(:func:`policy_json_schema`); a test fails when the two drift.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from modelsign.policy._cel import CelError, compile_condition
from modelsign.statements._models import Relation

__all__ = [
    "API_VERSION",
    "CLAIM_CONTEXT_NAMES",
    "CONTEXT_NAMES",
    "EXTENSION_OIDS",
    "KIND",
    "MAX_CONDITIONS",
    "ClaimConditionSpec",
    "ClaimRequirement",
    "Condition",
    "ConditionSpec",
    "DatasetRules",
    "LineageRules",
    "ParentRule",
    "PolicyDocument",
    "PolicyMetadata",
    "SerializationRules",
    "SignerRule",
    "TrustRootFile",
    "condition_text",
    "parse_duration",
    "policy_json_schema",
]

API_VERSION = "modelsign/v1"
KIND = "ModelPolicy"

#: Variables every condition may use (documented in docs/decisions/0009-policy.md).
CONTEXT_NAMES = frozenset({"signature", "claims", "lineage", "files", "frameworks"})
#: ... plus, inside ``requireClaims[].conditions``, the claim being judged and its predicate.
CLAIM_CONTEXT_NAMES = CONTEXT_NAMES | {"claim", "predicate"}

#: Certificate-extension pins -> the Fulcio OID each reads (1.3.6.1.4.1.57264.1.*).
EXTENSION_OIDS: dict[str, str] = {
    "workflowRef": "1.3.6.1.4.1.57264.1.9",          # Build Signer URI
    "runnerEnvironment": "1.3.6.1.4.1.57264.1.11",
    "sourceRepository": "1.3.6.1.4.1.57264.1.12",    # Source Repository URI
    "sourceRepositoryDigest": "1.3.6.1.4.1.57264.1.13",
    "sourceRepositoryRef": "1.3.6.1.4.1.57264.1.14",
    "buildTrigger": "1.3.6.1.4.1.57264.1.20",
}
_FULCIO_OID = re.compile(r"^1\.3\.6\.1\.4\.1\.57264\.1\.(?:[1-9][0-9]{0,2})$")

#: Bound on conditions in one policy, over all sections.
MAX_CONDITIONS = 256
_MAX_TEXT = 4096
_MAX_LIST = 10_000

_DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DIGEST_REF = re.compile(r"^sha256:[0-9a-f]{64}$")
_URI_REF = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def parse_duration(text: str) -> timedelta:
    """``"365d"`` -> 365 days. Units: s, m, h, d, w."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit, e.g. 365d, "
                         "12h, 30m, 2w")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False,
                              use_enum_values=True)


Text = Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]


# ------------------------------------------------------------------------------ conditions
def _checked(names: frozenset[str]) -> Any:
    def check(source: str) -> str:
        try:
            compile_condition(source, names)
        except CelError as e:
            raise ValueError(str(e)) from None
        return source
    return AfterValidator(check)


class ConditionSpec(_Input):
    """A CEL condition with the words to show the operator when it is false."""

    expr: Annotated[Text, _checked(CONTEXT_NAMES)] = Field(
        description="A CEL expression over the context that must evaluate to true.")
    message: Text | None = Field(
        default=None, description="Shown to the operator when the condition is false.")


class ClaimConditionSpec(_Input):
    """A CEL condition of ``requireClaims`` (also sees ``claim`` and ``predicate``), with the
    words to show the operator when it is false."""

    expr: Annotated[Text, _checked(CLAIM_CONTEXT_NAMES)] = Field(
        description="A CEL expression over `predicate`, `claim` and the context that must "
        "evaluate to true.")
    message: Text | None = Field(
        default=None, description="Shown to the operator when the condition is false.")


def _condition_kind(value: Any) -> str:
    return "expr" if isinstance(value, str) else "spec"


#: A condition over the documented context (``signature``, ``claims``, ``lineage``, ``files``,
#: ``frameworks``): a CEL string, or ``{expr, message}``.
Condition = Annotated[
    Annotated[Annotated[Text, _checked(CONTEXT_NAMES)], Tag("expr")]
    | Annotated[ConditionSpec, Tag("spec")],
    Discriminator(_condition_kind),
]
#: A condition of ``requireClaims``: also sees ``claim`` and ``predicate``.
ClaimCondition = Annotated[
    Annotated[Annotated[Text, _checked(CLAIM_CONTEXT_NAMES)], Tag("expr")]
    | Annotated[ClaimConditionSpec, Tag("spec")],
    Discriminator(_condition_kind),
]


def condition_text(cond: str | ConditionSpec | ClaimConditionSpec) -> tuple[str, str | None]:
    """(expression, message) of a condition in either spelling."""
    if isinstance(cond, str):
        return cond, None
    return cond.expr, cond.message


# ----------------------------------------------------------------------------------- signers
def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from None
    return value


class SignerRule(_Input):
    """Who may have signed: one of a Sigstore identity (``identity`` or ``identityRegex``, with
    ``issuer``), a public key file, or a certificate chain file. Sigstore identities may also pin
    values of the Fulcio certificate's extensions."""

    identity: Text | None = Field(
        default=None, description="Exact signer identity (certificate SAN): an e-mail address "
        "or a URI such as a GitHub workflow identity.")
    identity_regex: Annotated[Text, AfterValidator(_regex)] | None = Field(
        default=None, alias="identityRegex",
        description="Python regular expression searched in the signer identity; anchor it "
        "with ^ (and $).")
    issuer: Text | None = Field(
        default=None, description="OIDC issuer the certificate names, exact "
        "(e.g. https://token.actions.githubusercontent.com).")
    public_key: Text | None = Field(
        default=None, alias="publicKey",
        description="PEM public key file, relative to the policy file.")
    certificate_chain: Text | None = Field(
        default=None, alias="certificateChain",
        description="PEM file with the trust anchor certificate(s) a certificate-signed "
        "bundle must chain to, relative to the policy file.")
    workflow_ref: Text | None = Field(
        default=None, alias="workflowRef",
        description="Pin: Build Signer URI (OID 1.3.6.1.4.1.57264.1.9), the workflow and its "
        "ref, e.g. https://github.com/acme/train/.github/workflows/release.yml@refs/heads/main.")
    runner_environment: Text | None = Field(
        default=None, alias="runnerEnvironment",
        description="Pin: Runner Environment (OID ...57264.1.11), e.g. github-hosted.")
    source_repository: Text | None = Field(
        default=None, alias="sourceRepository",
        description="Pin: Source Repository URI (OID ...57264.1.12), "
        "e.g. https://github.com/acme/train.")
    source_repository_digest: Text | None = Field(
        default=None, alias="sourceRepositoryDigest",
        description="Pin: Source Repository Digest (OID ...57264.1.13), the commit.")
    source_repository_ref: Text | None = Field(
        default=None, alias="sourceRepositoryRef",
        description="Pin: Source Repository Ref (OID ...57264.1.14), e.g. refs/heads/main.")
    build_trigger: Text | None = Field(
        default=None, alias="buildTrigger",
        description="Pin: Build Trigger (OID ...57264.1.20), e.g. push.")
    extensions: dict[Annotated[str, Field(pattern=_FULCIO_OID.pattern)], Text] | None = Field(
        default=None, description="Pins of other Fulcio extensions by OID "
        "(1.3.6.1.4.1.57264.1.N) -> exact value.")

    @property
    def kind(self) -> Literal["keyless", "key", "certificate"]:
        if self.public_key is not None:
            return "key"
        if self.certificate_chain is not None:
            return "certificate"
        return "keyless"

    def pins(self) -> dict[str, tuple[str, str]]:
        """Certificate-extension pins: OID -> (name, value)."""
        out: dict[str, tuple[str, str]] = {}
        for name, oid in EXTENSION_OIDS.items():
            value = getattr(self, _snake(name))
            if value is not None:
                out[oid] = (name, value)
        for oid, value in (self.extensions or {}).items():
            out[oid] = (oid, value)
        return out

    @model_validator(mode="after")
    def _one_kind(self) -> SignerRule:
        keyless = self.identity is not None or self.identity_regex is not None
        kinds = [k for k, on in (("identity/identityRegex", keyless),
                                 ("publicKey", self.public_key is not None),
                                 ("certificateChain", self.certificate_chain is not None)) if on]
        if len(kinds) != 1:
            raise ValueError("a signer is exactly one of: identity or identityRegex (with "
                             "issuer), publicKey, certificateChain; found "
                             + (" and ".join(kinds) if kinds else "none of them"))
        if self.identity is not None and self.identity_regex is not None:
            raise ValueError("give identity or identityRegex, not both")
        if keyless and self.issuer is None:
            raise ValueError("a Sigstore identity needs its issuer (the OIDC provider URL), "
                             "e.g. issuer: https://token.actions.githubusercontent.com")
        if not keyless and self.issuer is not None:
            raise ValueError("issuer applies only to Sigstore identities (identity or "
                             "identityRegex)")
        if not keyless and self.pins():
            raise ValueError("certificate-extension pins apply only to Sigstore identities")
        return self


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


Signers = Annotated[tuple[SignerRule, ...], Field(min_length=1, max_length=256)]


# ------------------------------------------------------------------------------- sections
class ClaimRequirement(_Input):
    """A claim that must be present, verified, signed by an allowed signer, and satisfy every
    condition; at least ``minCount`` such claims."""

    predicate_type: Text = Field(alias="predicateType",
                                 description="e.g. https://slsa.dev/provenance/v1")
    signers: Signers | None = Field(
        default=None, description="Who may sign this claim; default: the policy's signers.")
    conditions: tuple[ClaimCondition, ...] = Field(
        default=(), max_length=64,
        description="CEL conditions over `predicate`, `claim` and the whole context.")
    min_count: int = Field(default=1, ge=1, le=10_000, alias="minCount")


def _dataset_ref(value: str) -> str:
    if _DIGEST_REF.match(value) or _URI_REF.match(value):
        return value
    raise ValueError(f"{value!r} is neither a root digest (sha256:<64 lowercase hex>) nor a "
                     "URI (scheme://..., * and ? allowed as wildcards)")


DatasetRef = Annotated[str, Field(min_length=1, max_length=_MAX_TEXT),
                       AfterValidator(_dataset_ref)]


class DatasetRules(_Input):
    """Which datasets provenance may name: by root digest (``sha256:<hex>``) or URI glob."""

    allow: tuple[DatasetRef, ...] | None = Field(
        default=None, max_length=_MAX_LIST,
        description="Only these datasets may appear (absent: any not denied).")
    deny: tuple[DatasetRef, ...] = Field(default=(), max_length=_MAX_LIST)
    require_signed: bool = Field(
        default=False, alias="requireSigned",
        description="Every dataset's own signature must have been verified (lineage).")

    @model_validator(mode="after")
    def _something(self) -> DatasetRules:
        if self.allow is None and not self.deny and not self.require_signed:
            raise ValueError("datasets needs at least one of allow, deny, requireSigned: true")
        return self


def _parent_pattern(value: str) -> str:
    if value.startswith("sha256:") and not _DIGEST_REF.match(value):
        raise ValueError(f"{value[:80]!r}: a digest pattern is sha256:<64 lowercase hex>")
    return value


class ParentRule(_Input):
    """Rules for the ancestors a pattern selects, as ``modelsign lineage --parent-*`` selects
    them: ``sha256:<root digest>`` (exact), or a glob over the URI the child recorded, else over
    its recorded name (local and store ancestors have no URI). Digest patterns are tried first,
    then the first glob that matches: each ancestor is judged by one pattern's rules."""

    match: Annotated[str, Field(min_length=1, max_length=1024),
                     AfterValidator(_parent_pattern)] = Field(
        description="sha256:<root digest>, or a glob (* and ?) over the ancestor's recorded "
        "URI, else its recorded name: e.g. hf://meta-llama/*, sha256:<64 hex>, base-*, *")
    signers: Signers = Field(description="Who must have signed a matching ancestor.")


class LineageRules(_Input):
    """What the chain of ancestors (issue 5) may be."""

    max_depth: int | None = Field(default=None, ge=0, le=1024, alias="maxDepth",
                                  description="Most generations of ancestors allowed.")
    require_signed_parents: bool = Field(
        default=False, alias="requireSignedParents",
        description="Every ancestor's own signature must have verified.")
    allowed_relations: tuple[Relation, ...] | None = Field(
        default=None, alias="allowedRelations", min_length=1,
        description="Relations allowed for this model and every ancestor.")
    parents: tuple[ParentRule, ...] = Field(default=(), max_length=256)
    conditions: tuple[Condition, ...] = Field(
        default=(), max_length=64, description="CEL conditions (usually over `lineage`).")

    @model_validator(mode="after")
    def _something(self) -> LineageRules:
        if (self.max_depth is None and not self.require_signed_parents
                and self.allowed_relations is None and not self.parents and not self.conditions):
            raise ValueError("lineage needs at least one rule: maxDepth, requireSignedParents, "
                             "allowedRelations, parents or conditions")
        return self


def _specifier(value: str) -> str:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise ValueError(f"{value!r} is not a PEP 440 version specifier (e.g. '>=2.6', "
                         "'>=4.50,<6'); quote it in YAML") from None
    return value


def _framework_name(value: str) -> str:
    if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", value):
        raise ValueError(f"{value!r} is not a package name")
    return value


FrameworkName = Annotated[str, Field(min_length=1, max_length=128),
                          AfterValidator(_framework_name)]
FrameworkSpec = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_specifier)]


class SerializationRules(_Input):
    """What to do about pickle-based weight files (they can run code when loaded)."""

    pickle: Literal["deny", "warn", "allow"] = Field(
        description="deny: fail; warn: pass with a warning; allow: no check. Detected by "
        "content (pickle opcodes, PyTorch zip archives), not only by extension.")


class TrustRootFile(_Input):
    """A Sigstore trust root (``trusted_root.json`` / client trust config) from a file."""

    file: Text = Field(description="Path relative to the policy file.")


class PolicyMetadata(_Input):
    name: Text | None = None
    description: Text | None = None


def _max_age(value: str) -> str:
    parse_duration(value)
    return value


# The pattern is for editors (schema); the validator gives the better message.
Duration = Annotated[str, Field(json_schema_extra={"pattern": _DURATION.pattern}),
                     AfterValidator(_max_age)]


def _frameworks(value: dict[str, str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for name in value:
        canon = canonicalize_name(name)
        if canon in seen:
            raise ValueError(f"names {seen[canon]!r} and {name!r} are the same package")
        seen[canon] = name
    return value


class PolicyDocument(_Input):
    """A modelsign policy file."""

    model_config = ConfigDict(title="ModelPolicy")

    api_version: Literal["modelsign/v1"] = Field(alias="apiVersion")
    kind: Literal["ModelPolicy"]
    metadata: PolicyMetadata | None = None
    signers: Signers = Field(description="Who may sign model.sig (any of).")
    require_claims: tuple[ClaimRequirement, ...] = Field(default=(), alias="requireClaims",
                                                         max_length=256)
    datasets: DatasetRules | None = None
    lineage: LineageRules | None = None
    frameworks: Annotated[dict[FrameworkName, FrameworkSpec],
                          AfterValidator(_frameworks)] | None = Field(
        default=None, description="Package -> PEP 440 specifier the provenance must satisfy.")
    max_age: Duration | None = Field(
        default=None, alias="maxAge",
        description="Oldest signature accepted, from the transparency-log time or the "
        "certificate time (never from the predicate): e.g. 365d, 12h.")
    serialization: SerializationRules | None = None
    trust_root: Literal["production", "staging"] | TrustRootFile = Field(
        default="production", alias="trustRoot",
        description="Sigstore trust root for keyless signatures.")
    conditions: tuple[Condition, ...] = Field(
        default=(), max_length=MAX_CONDITIONS,
        description="CEL conditions over the whole context.")

    @model_validator(mode="after")
    def _bounds(self) -> PolicyDocument:
        n = len(self.conditions) + sum(len(r.conditions) for r in self.require_claims)
        n += len(self.lineage.conditions) if self.lineage else 0
        if n > MAX_CONDITIONS:
            raise ValueError(f"the policy has {n} conditions; at most {MAX_CONDITIONS} allowed")
        return self

    @property
    def max_age_delta(self) -> timedelta | None:
        return None if self.max_age is None else parse_duration(self.max_age)


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (what ``schemas/policy.schema.json`` holds)."""
    from modelsign.policy._report import _policy_schema

    return _policy_schema()
