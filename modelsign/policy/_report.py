"""The policy report: every rule with pass / fail / warn and a reason an operator can act on.

Output, so the models are frozen but not strict. ``schemas/policy-report.schema.json`` is
generated from :class:`PolicyReport`. :meth:`PolicyReport.to_json_bytes` is canonical JSON (RFC
8785: sorted keys, no whitespace): the same model, policy and clock give the same bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from modelsign.statements._json import canonical_bytes

__all__ = [
    "POLICY_SCHEMA_ID",
    "REPORT_SCHEMA_ID",
    "PolicyRef",
    "PolicyReport",
    "ReportSubject",
    "RuleResult",
    "RuleStatus",
    "report_json_schema",
    "schema_texts",
]

REPORT_SCHEMA_ID = "https://modelsign.dev/schemas/policy-report.schema.json"
POLICY_SCHEMA_ID = "https://modelsign.dev/schemas/policy.schema.json"

RuleStatus = Literal["pass", "fail", "warn"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RuleResult(_Out):
    """One rule of the policy as applied to this model."""

    rule: str = Field(description="Key path of the rule in the policy, e.g. requireClaims[0], "
                      "frameworks.torch, lineage.maxDepth.")
    status: RuleStatus
    reason: str = Field(description="What was found and what the policy asks, in words.")
    line: int | None = Field(default=None, description="Line of the rule in the policy file.")


class PolicyRef(_Out):
    source: str = Field(description="The policy file as given.")
    sha256: str = Field(description="SHA-256 of the policy file's bytes.")
    name: str | None = None


class ReportSubject(_Out):
    name: str
    digest: dict[str, str] = Field(description="{'sha256': root digest (hex)}")


class PolicyReport(_Out):
    """The outcome of evaluating one policy against one verified model."""

    api_version: Literal["modelsign/v1"] = Field(default="modelsign/v1", alias="apiVersion")
    kind: Literal["PolicyReport"] = "PolicyReport"
    verdict: Literal["pass", "fail"] = Field(
        description="fail when any rule failed; warnings do not fail.")
    policy: PolicyRef
    subject: ReportSubject
    evaluated_at: datetime = Field(alias="evaluatedAt",
                                   description="When the policy was evaluated (UTC).")
    summary: dict[RuleStatus, int]
    rules: tuple[RuleResult, ...]

    @field_serializer("evaluated_at")
    def _utc(self, t: datetime) -> str:
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if r.status == "fail")

    @property
    def warnings(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if r.status == "warn")

    def rule(self, name: str) -> RuleResult:
        """The result of the rule at key path ``name``; KeyError when there is none."""
        for r in self.rules:
            if r.rule == name:
                return r
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The report document (``schemas/policy-report.schema.json``)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (RFC 8785): stable bytes for the same inputs."""
        return canonical_bytes(self.to_json())

    def to_text(self) -> str:
        """Human lines: one per rule, then the verdict."""
        mark = {"pass": "PASS", "fail": "FAIL", "warn": "WARN"}
        lines = [f"{mark[r.status]}  {r.rule}: {r.reason}" for r in self.rules]
        statuses: tuple[RuleStatus, ...] = ("pass", "fail", "warn")
        counts = ", ".join(f"{self.summary.get(s, 0)} {s}" for s in statuses)
        lines.append(f"policy {self.verdict.upper()} ({counts}) for {self.subject.name} "
                     f"sha256:{self.subject.digest.get('sha256', '')}")
        return "\n".join(lines)


class _NoNullDefaults(GenerateJsonSchema):
    """No ``"default": null`` and no per-property titles: smaller, stable schemas."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        out = super().default_schema(schema)
        if out.get("default", ...) is None:
            del out["default"]
        return out

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of the report (what ``schemas/policy-report.schema.json`` holds)."""
    body = PolicyReport.model_json_schema(by_alias=True, mode="serialization",
                                          schema_generator=_NoNullDefaults)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": REPORT_SCHEMA_ID,
            **body}


def _policy_schema() -> dict[str, Any]:
    from modelsign.policy._model import PolicyDocument

    body = PolicyDocument.model_json_schema(by_alias=True, mode="validation",
                                            schema_generator=_NoNullDefaults)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": POLICY_SCHEMA_ID,
            **body}


def schema_texts() -> dict[str, str]:
    """File name -> checked-in schema text (sorted keys, two-space indent, final newline)."""
    return {name: json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for name, schema in (("policy.schema.json", _policy_schema()),
                                 ("policy-report.schema.json", report_json_schema()))}


def write_schemas(directory: str | None = None) -> list[str]:
    """(Re)write ``schemas/policy.schema.json`` and ``schemas/policy-report.schema.json``."""
    from pathlib import Path

    target = Path(directory) if directory else Path(__file__).resolve().parents[2] / "schemas"
    written = []
    for name, text in schema_texts().items():
        (target / name).write_text(text, encoding="utf-8")
        written.append(str(target / name))
    return written


if __name__ == "__main__":  # python -m modelsign.policy._report  (regenerates the schemas)
    for path in write_schemas():
        print(f"wrote {path}")
