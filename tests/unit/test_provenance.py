"""The derivation statement: what we sign is canonical, round-trips, and reads tolerantly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import rfc8785

from modelsign.errors import InputError, SignatureFormatError
from modelsign.statements import canonical_bytes, parse_statement
from modelsign.statements._models import (
    DERIVATION_BUILD_TYPE,
    RELATIONS,
    SLSA_PROVENANCE_V1,
    ConfigReference,
    DigestSet,
    check_schemas,
    schemas,
)
from modelsign.statements._provenance import (
    Accelerator,
    Dependency,
    Framework,
    param_value,
    parse_provenance,
    provenance_statement,
)

ROOT = "a" * 64
BASE = "b" * 64
DATA = "c" * 64
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _full(**kw: object):
    args: dict[str, object] = dict(
        relation="finetune", method="lora",
        params={"learning_rate": 2e-4, "epochs": 3, "bf16": True, "seed": 2**60 + 1},
        config=ConfigReference(uri="configs/train.yaml", digest=DigestSet(sha256="d" * 64)),
        dependencies=[
            Dependency("base_model", name="base", digest={"sha256": BASE}, signed=True),
            Dependency("dataset", uri="hf://datasets/acme/chat",
                       digest={"gitCommit": "e" * 40}, signed=False, split="train"),
            Dependency("dataset", name="local-data", digest={"sha256": DATA}, signed=True),
            Dependency("code", uri="git+https://github.com/acme/train",
                       digest={"gitCommit": "f" * 40}),
        ],
        frameworks=[Framework("torch", "2.6.0+cu124"), Framework("python", "3.11.9", "generic")],
        builder_id="https://ci.acme.example/runners/gpu",
        invocation_id="run-42", started_on=T0, finished_on=T0 + timedelta(hours=3, microseconds=5),
        accelerators=[Accelerator("NVIDIA H100 80GB HBM3", 8)],
        runtimes=[Framework("cuda", "12.4", "generic")],
    )
    args.update(kw)
    return provenance_statement("my-finetune", ROOT, **args)  # type: ignore[arg-type]


def test_statement_bytes_are_canonical_and_parse_back_to_the_same_view() -> None:
    st = _full()
    obj = json.loads(st.raw)
    assert rfc8785.dumps(obj) == st.raw == canonical_bytes(obj)
    assert obj["_type"] == "https://in-toto.io/Statement/v1"
    assert obj["predicateType"] == SLSA_PROVENANCE_V1
    assert obj["subject"] == [{"name": "my-finetune", "digest": {"sha256": ROOT}}]
    assert obj["predicate"]["buildDefinition"]["buildType"] == DERIVATION_BUILD_TYPE
    assert parse_statement(st.raw).predicate == st.predicate == obj["predicate"]


def test_params_are_exact_strings_and_integers_stay_integers() -> None:
    st = _full()
    ext = st.predicate["buildDefinition"]["externalParameters"]
    # 2**60 + 1 is not representable as a double: a Struct number would have rounded it.
    assert ext["params"] == {"learning_rate": "0.0002", "epochs": "3", "bf16": "true",
                             "seed": str(2**60 + 1)}
    acc = st.predicate["runDetails"]["builder"]["builderDependencies"][0]
    assert acc["annotations"]["modelsign.count"] == 8 and b'"modelsign.count":8' in st.raw


def test_view_carries_every_part() -> None:
    v = parse_provenance(_full())
    assert v.subject_digest == ROOT and v.relation == "finetune" and v.method == "lora"
    assert [d.sha256 for d in v.base_models] == [BASE] and v.base_models[0].signed is True
    d0 = v.datasets[0]
    assert (d0.uri, d0.git_commit, d0.split, d0.signed) == \
        ("hf://datasets/acme/chat", "e" * 40, "train", False)
    assert v.datasets[1].sha256 == DATA
    assert v.code[0].git_commit == "f" * 40
    assert {(f.name, f.version) for f in v.frameworks} == {("torch", "2.6.0+cu124"),
                                                         ("python", "3.11.9")}
    torch = next(f for f in v.frameworks if f.name == "torch")
    assert torch.uri == "pkg:pypi/torch@2.6.0%2Bcu124"
    assert v.accelerators == (Accelerator("NVIDIA H100 80GB HBM3", 8),)
    assert v.runtimes == (Framework("cuda", "12.4", "generic"),)
    assert v.started_on == T0 and v.finished_on == T0 + timedelta(hours=3, microseconds=5)
    assert v.invocation_id == "run-42" and v.builder_id == "https://ci.acme.example/runners/gpu"
    assert v.config is not None and v.config.digest.sha256 == "d" * 64
    json.dumps(v.to_json())  # the summary is plain JSON


def test_the_statement_matches_the_checked_in_schemas() -> None:
    st = _full()
    ext_schema = json.loads((SCHEMA_DIR / "derivation-external-parameters.schema.json").read_text())
    ann_schema = json.loads((SCHEMA_DIR / "derivation-annotations.schema.json").read_text())
    jsonschema.validate(st.predicate["buildDefinition"]["externalParameters"], ext_schema)
    rds = st.predicate["buildDefinition"]["resolvedDependencies"] + \
        st.predicate["runDetails"]["builder"]["builderDependencies"]
    for rd in rds:
        jsonschema.validate(rd["annotations"], ann_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"relation": "finetuned"}, ext_schema)


def test_checked_in_schemas_have_not_drifted_from_the_models() -> None:
    assert check_schemas(SCHEMA_DIR) == [], (
        "run `python -m modelsign.statements._models --write-schemas` and commit schemas/")


def test_schema_drift_is_detected(tmp_path: Path) -> None:
    for name, text in schemas().items():
        (tmp_path / name).write_text(text.replace('"title"', '"Title"'))
    assert sorted(check_schemas(tmp_path)) == sorted(schemas())


@pytest.mark.parametrize("relation", RELATIONS)
def test_every_relation_builds(relation: str) -> None:
    v = parse_provenance(provenance_statement("m", ROOT, relation=relation))  # type: ignore[arg-type]
    assert v.relation == relation and v.base_models == () and v.frameworks == ()


@pytest.mark.parametrize("kwargs, words", [
    ({"relation": "finetuned"}, "derivation parameters"),
    ({"relation": "finetune", "started_on": datetime(2025, 1, 1)}, "time zone"),
    ({"relation": "finetune", "started_on": T0, "finished_on": T0 - timedelta(seconds=1)},
     "finished before"),
    ({"relation": "finetune", "builder_id": "not a uri"}, "builder id"),
    ({"relation": "merge", "dependencies": [Dependency("base_model", name="x")]}, "no digest"),
    ({"relation": "merge", "dependencies": [Dependency("base_model", digest={"sha256": BASE})] * 2},
     "listed twice"),
    ({"relation": "finetune", "dependencies": [Dependency("dataset", digest={"sha256": "AB"})]},
     "not valid"),
    ({"relation": "finetune", "params": {"x": [1]}}, "parameter value"),
])
def test_bad_input_is_refused(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InputError, match=words):
        provenance_statement("m", ROOT, **kwargs)  # type: ignore[arg-type]


def test_root_digest_must_be_hex() -> None:
    with pytest.raises(InputError, match="root digest"):
        provenance_statement("m", "A" * 64, relation="finetune")


def test_param_value_spellings() -> None:
    assert [param_value(v) for v in (True, False, 3, 0.1, "x")] == \
        ["true", "false", "3", "0.1", "x"]


def _mutated(edit) -> bytes:  # type: ignore[no-untyped-def]
    obj = json.loads(_full().raw)
    edit(obj)
    return rfc8785.dumps(obj)


def test_unknown_fields_and_roles_are_kept_not_refused() -> None:
    def edit(o: dict) -> None:  # type: ignore[type-arg]
        bd = o["predicate"]["buildDefinition"]
        bd["externalParameters"]["futureField"] = {"x": 1}
        bd["resolvedDependencies"].append({"uri": "oci://x",
                                           "annotations": {"modelsign.role": "container"}})
        bd["resolvedDependencies"].append({"uri": "https://other.example"})
        bd["resolvedDependencies"][0]["annotations"]["vendor.note"] = "hi"
        o["predicate"]["runDetails"]["byproducts"] = [{"name": "log"}]
    v = parse_provenance(parse_statement(_mutated(edit)))
    assert v.external_parameters.model_extra == {"futureField": {"x": 1}}
    assert [d.get("uri") for d in v.other_dependencies] == ["oci://x", "https://other.example"]
    assert v.base_models[0].annotations["vendor.note"] == "hi"


@pytest.mark.parametrize("edit, words", [
    (lambda o: o.__setitem__("predicateType", "https://example.com/other"), "not SLSA"),
    (lambda o: o["predicate"]["buildDefinition"].__setitem__("buildType", "https://x"),
     "buildType"),
    (lambda o: o["predicate"]["buildDefinition"]["externalParameters"].__setitem__(
        "relation", "sideload"), "externalParameters"),
    (lambda o: o["predicate"]["buildDefinition"]["resolvedDependencies"][0].__setitem__(
        "digest", {}), "no digest"),
    (lambda o: o["predicate"]["buildDefinition"]["resolvedDependencies"][0]["annotations"]
        .__setitem__("modelsign.signed", "yes"), "malformed"),
    (lambda o: o["predicate"].pop("runDetails"), "malformed"),
    (lambda o: o["subject"][0].__setitem__("digest", {"sha512": "00"}), "sha256"),
    (lambda o: o["predicate"]["buildDefinition"].__setitem__(
        "resolvedDependencies", [{"name": "x"}] * 10_001), "malformed"),
])
def test_malformed_derivations_are_refused(edit, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureFormatError, match=words):
        parse_provenance(parse_statement(_mutated(edit)))


def test_foreign_framework_uri_is_kept_verbatim() -> None:
    def edit(o: dict) -> None:  # type: ignore[type-arg]
        o["predicate"]["buildDefinition"]["resolvedDependencies"].append(
            {"name": "weird", "uri": "https://example.com/weird.whl",
             "annotations": {"modelsign.role": "framework"}})
    v = parse_provenance(parse_statement(_mutated(edit)))
    weird = next(f for f in v.frameworks if f.name == "weird")
    assert weird.version is None and weird.uri == "https://example.com/weird.whl"


def test_any_in_toto_reader_parses_it_strictly() -> None:
    """The payload parses into the in-toto Statement and SLSA Provenance v1 protobuf messages
    with unknown fields refused: nothing in it is outside the standard shapes."""
    from google.protobuf.json_format import Parse, ParseDict
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement as PbStatement

    st = _full()
    msg = Parse(st.raw.decode(), statement_pb2.Statement(), ignore_unknown_fields=False)
    PbStatement.copy_from_pb(msg).validate()
    prov = ParseDict(json.loads(st.raw)["predicate"], provenance_pb2.Provenance(),
                     ignore_unknown_fields=False)
    assert prov.build_definition.build_type == DERIVATION_BUILD_TYPE
    assert len(prov.build_definition.resolved_dependencies) == 6
    assert prov.run_details.metadata.invocation_id == "run-42"
