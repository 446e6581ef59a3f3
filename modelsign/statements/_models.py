"""Pydantic models of the parts of the derivation predicate we define, and their JSON Schemas.

The derivation predicate is SLSA Provenance v1 with buildType
``https://modelsign.dev/buildtypes/derivation/v1``. SLSA leaves two things to the buildType:
``buildDefinition.externalParameters`` and the ``annotations`` of ResourceDescriptors. Both are
modelled here; ``schemas/derivation-external-parameters.schema.json`` and
``schemas/derivation-annotations.schema.json`` are generated from these models::

    python -m modelsign.statements._models --write-schemas   # rewrite the checked-in schemas
    python -m modelsign.statements._models --check-schemas   # exit 1 when they drifted

These are *wire* models (we read them from claims other tools may have written), so unknown fields
are kept (``extra="allow"``) and values are frozen. Closed vocabularies (relations, roles) are
``Literal`` types.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, SkipJsonSchema
from pydantic_core import core_schema

__all__ = [
    "COUNT_KEY",
    "DEPENDENCY_ROLES",
    "DERIVATION_BUILD_TYPE",
    "HUB_BASE_MODEL_RELATION",
    "RELATIONS",
    "ROLE_KEY",
    "SCHEMA_FILES",
    "SIGNED_KEY",
    "SLSA_PROVENANCE_V1",
    "SPLIT_KEY",
    "BuilderDependencyAnnotations",
    "BuilderRole",
    "ConfigReference",
    "DependencyAnnotations",
    "DependencyRole",
    "DerivationAnnotations",
    "DerivationExternalParameters",
    "DigestSet",
    "Relation",
    "check_schemas",
    "schemas",
    "write_schemas",
]

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
#: An identifier, documented by the schemas below; never fetched.
DERIVATION_BUILD_TYPE = "https://modelsign.dev/buildtypes/derivation/v1"

Relation = Literal[
    "pretrain",
    "finetune",
    "adapter",
    "merge",
    "quantized",
    "distillation",
    "continued_pretraining",
    "pruning",
    "format_conversion",
    "other",
]
RELATIONS: tuple[Relation, ...] = get_args(Relation)

#: Our relation -> the Hugging Face model card's ``base_model_relation``, where the Hub has one.
HUB_BASE_MODEL_RELATION: Mapping[Relation, str] = {
    "finetune": "finetune",
    "adapter": "adapter",
    "merge": "merge",
    "quantized": "quantized",
}

DependencyRole = Literal["base_model", "dataset", "code", "framework"]
DEPENDENCY_ROLES: tuple[DependencyRole, ...] = get_args(DependencyRole)
#: Roles of ``runDetails.builder.builderDependencies``: the hardware and its runtime (CUDA).
BuilderRole = Literal["accelerator", "runtime"]

ROLE_KEY = "modelsign.role"
SIGNED_KEY = "modelsign.signed"
SPLIT_KEY = "modelsign.split"
COUNT_KEY = "modelsign.count"

_SHORT = 256
_LONG = 4096
_MAX_PARAMS = 1024

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
GitCommit = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=_SHORT)]
Uri = Annotated[str, StringConstraints(min_length=1, max_length=_LONG)]
ParamValue = Annotated[str, StringConstraints(max_length=_LONG)]


class _Wire(BaseModel):
    """A part of a format we read: unknown fields kept, values frozen, aliases on the wire."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, strict=True)


class DigestSet(_Wire):
    """An in-toto DigestSet restricted to what we write: ``sha256`` and/or ``gitCommit``."""

    sha256: Sha256Hex | SkipJsonSchema[None] = None
    gitCommit: GitCommit | SkipJsonSchema[None] = None


class ConfigReference(_Wire):
    """The training config or recipe, by digest (and where to find it)."""

    uri: Uri | SkipJsonSchema[None] = None
    digest: DigestSet


class DerivationExternalParameters(_Wire):
    """``buildDefinition.externalParameters`` of a derivation: how the artifact was derived.

    ``params`` values are strings on purpose: protobuf ``Struct`` (which the in-toto library uses)
    holds every number as a double, and a hyper-parameter must round-trip exactly.
    """

    model_config = ConfigDict(
        title="modelsign derivation externalParameters",
        json_schema_extra={
            "description": (
                "buildDefinition.externalParameters of an SLSA Provenance v1 predicate whose "
                "buildType is " + DERIVATION_BUILD_TYPE + ". Unknown fields are allowed and "
                "must be ignored by readers."),
        },
    )

    relation: Relation = Field(description=(
        "How the subject was derived from its base models (none for pretrain). Maps to the "
        "Hugging Face base_model_relation for finetune, adapter, merge and quantized."))
    method: ShortText | SkipJsonSchema[None] = Field(
        default=None, description="The technique, free text: 'lora', 'sft', 'dpo', 'gptq', ...")
    params: dict[ShortText, ParamValue] = Field(
        default_factory=dict, max_length=_MAX_PARAMS,
        description="Hyper-parameters and options as strings (exact, never floats).")
    config: ConfigReference | SkipJsonSchema[None] = Field(
        default=None, description="The training config or recipe file, by digest.")


class DependencyAnnotations(_Wire):
    """``annotations`` of a ``resolvedDependencies`` entry."""

    role: DependencyRole = Field(alias=ROLE_KEY, description=(
        "What the dependency is to the subject. base_model and dataset carry the parent's "
        "root digest in digest.sha256 (and digest.gitCommit for a Hub revision); framework "
        "carries a package URL in uri; code carries a uri and digest.gitCommit."))
    signed: bool | SkipJsonSchema[None] = Field(default=None, alias=SIGNED_KEY, description=(
        "base_model and dataset only: true when the parent's own signature was verified when "
        "the claim was made, false when it had none (or was recorded by reference only)."))
    split: ShortText | SkipJsonSchema[None] = Field(
        default=None, alias=SPLIT_KEY, description="dataset only: the split used ('train', ...).")


class BuilderDependencyAnnotations(_Wire):
    """``annotations`` of a ``runDetails.builder.builderDependencies`` entry (hardware, CUDA)."""

    role: BuilderRole = Field(alias=ROLE_KEY, description=(
        "accelerator: name is the device name, with modelsign.count devices; runtime: uri is a "
        "package URL of the accelerator runtime, e.g. pkg:generic/cuda@12.4."))
    # Not strict: a claim that went through protobuf Struct without RFC 8785 says 8.0.
    count: Annotated[int, Field(ge=1, le=1_000_000, strict=False)] | SkipJsonSchema[None] = Field(
        default=None, alias=COUNT_KEY, description="accelerator only: how many devices.")


class DerivationAnnotations(RootModel[DependencyAnnotations | BuilderDependencyAnnotations]):
    """Either kind of annotations; for the schema file."""

    model_config = ConfigDict(
        title="modelsign derivation ResourceDescriptor annotations",
        json_schema_extra={
            "description": (
                "annotations of resolvedDependencies and runDetails.builder.builderDependencies "
                "entries in an SLSA Provenance v1 predicate whose buildType is "
                + DERIVATION_BUILD_TYPE + ". Unknown keys are allowed and must be ignored."),
        },
    )


# ------------------------------------------------------------------------------------ schemas
_SCHEMA_BASE = "https://modelsign.dev/schemas/"
SCHEMA_FILES: Mapping[str, type[BaseModel]] = {
    "derivation-external-parameters.schema.json": DerivationExternalParameters,
    "derivation-annotations.schema.json": DerivationAnnotations,
}


class _NoNullDefaults(GenerateJsonSchema):
    """Leave out ``"default": null``: absent fields are simply absent on the wire."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        out = super().default_schema(schema)
        if out.get("default", ...) is None:
            del out["default"]
        return out


def schemas() -> dict[str, str]:
    """File name -> schema text (stable: sorted keys, two-space indent, final newline)."""
    out = {}
    for name, model in SCHEMA_FILES.items():
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _SCHEMA_BASE + name,
            **model.model_json_schema(by_alias=True, mode="validation",
                                      schema_generator=_NoNullDefaults),
        }
        out[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def _default_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "schemas"


def write_schemas(directory: Path | None = None) -> list[Path]:
    """(Re)write the checked-in schemas; returns the files written."""
    directory = directory or _default_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(directory: Path | None = None) -> list[str]:
    """Names of the schema files that are missing or differ from the models (empty: in sync)."""
    directory = directory or _default_dir()
    drifted = []
    for name, text in schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            drifted.append(name)
    return drifted


def _main(argv: list[str]) -> int:
    if argv == ["--write-schemas"]:
        for p in write_schemas():
            print(f"wrote {p}")
        return 0
    if argv == ["--check-schemas"]:
        drifted = check_schemas()
        for name in drifted:
            print(f"schemas/{name} differs from the pydantic model; run "
                  "`python -m modelsign.statements._models --write-schemas`", file=sys.stderr)
        return 1 if drifted else 0
    print("usage: python -m modelsign.statements._models --write-schemas | --check-schemas",
          file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main(sys.argv[1:]))
