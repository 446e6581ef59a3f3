"""Fuzz target: policy files (``policy.parse_policy``, what ``load_policy`` and ``lint_policy``
run on a file's bytes), as random text, as random YAML documents of the policy's keys, and as
mutations of the example policies shipped in ``examples/policies``.

Every input parses into a :class:`~modelsign.policy.Policy` or raises ``PolicyFileError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from modelsign.errors import PolicyFileError
from modelsign.policy import Policy, parse_policy

from ._strategies import json_values, mutated_json, parses_or_refuses
from .conftest import budget

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
POLICY_KEYS = ["apiVersion", "kind", "metadata", "name", "signers", "issuer", "identity",
               "identityRegex", "publicKey", "certificateChain", "requireClaims",
               "predicateType", "conditions", "expr", "message", "minCount", "datasets",
               "allow", "deny", "requireSigned", "lineage", "maxDepth", "requireSignedParents",
               "allowedRelations", "parents", "match", "frameworks", "maxAge", "serialization",
               "pickle", "trustRoot", "file", "sourceRepository", "workflowRef"]
POLICY_VALUES = ["modelsign/v1", "ModelPolicy", "30d", "365d", "1h", "-1d", "0d", "deny",
                 "warn", "allow", ">=2.6", "~=", "keys/publisher.pub", "../../etc/passwd",
                 "https://accounts.google.com", "^https://github\\.com/acme/", "(a+)+$",
                 "true", "1 / 0 == 1", "signature.subject.name.startsWith('a')",
                 "[1,2].map(x, x * x).size() > 0", "has(predicate.x)", "production", "*"]


def _parse(text: str | bytes) -> Policy:
    return parse_policy(text, source="fuzz.yaml", base_dir=EXAMPLES)


def _refused_or_policy(text: str | bytes) -> None:
    try:
        result = parses_or_refuses(_parse, text)
    except RecursionError:
        recursion = True  # re-raised below, without thousands of frames to format
    else:
        recursion = False
        assert isinstance(result, (Policy, PolicyFileError)), type(result)
    if recursion:
        raise AssertionError("RecursionError escaped parse_policy")


policy_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(POLICY_VALUES)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(POLICY_KEYS), c,
                                                        max_size=5),
    max_leaves=30)

_CHARS = st.characters(blacklist_categories=("Cs",))


@budget(150, 3000)
@given(st.text(alphabet=_CHARS, max_size=400) | st.binary(max_size=400))
@example("")
@example("---\n---\n")
@example("apiVersion: modelsign/v1\nkind: ModelPolicy\nsigners: []\n")
@example("\ufeffapiVersion: modelsign/v1")
def test_parse_policy_text(text: str | bytes) -> None:
    _refused_or_policy(text)


@budget(120, 3000)
@given(st.dictionaries(st.sampled_from(POLICY_KEYS), policy_docs, max_size=8))
def test_parse_policy_documents(doc: dict[str, Any]) -> None:
    doc = {"apiVersion": "modelsign/v1", "kind": "ModelPolicy", **doc}
    _refused_or_policy(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
@budget(40, 3000)
@given(data=st.data())
def test_parse_policy_mutated_examples(name: str, data: st.DataObject) -> None:
    original = yaml.safe_load((EXAMPLES / name).read_text())
    doc = data.draw(mutated_json(original, max_mutations=3))
    _refused_or_policy(yaml.safe_dump(doc, sort_keys=False))
    if data.draw(st.booleans()):
        _refused_or_policy(yaml.safe_dump(data.draw(json_values)))


@budget(50, 2000)
@given(st.sampled_from(["!foo", "!!python/name:os.system", "!!python/object:x.Y", "!<tag:x>",
                        "!!str", "!!int", "!!binary", "!!set", "!!omap"]),
       st.sampled_from(["bar", "30d", "1", "aGk=", "{a: 1}", "[1]"]))
@example("!foo", "bar")
def test_parse_policy_tags(tag: str, value: str) -> None:
    _refused_or_policy(f"apiVersion: modelsign/v1\nkind: ModelPolicy\n"
                       f"signers: [{{publicKey: keys/publisher.pub}}]\nmaxAge: {tag} {value}\n")


@budget(5, 10_000)
@given(st.integers(min_value=2000, max_value=4000), st.sampled_from(["[", "{", "[{"]))
@example(2000, "[")
@example(0, "a: &a [*a]")
def test_parse_policy_deep_nesting(depth: int, opener: str) -> None:
    _refused_or_policy(opener * (depth // len(opener)) if depth else opener)
