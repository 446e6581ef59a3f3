"""The CEL adapter: compile-time checks, clear errors, and bounded evaluation."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import pytest

from modelsign.policy._cel import (
    MAX_NESTING,
    MAX_SOURCE_CHARS,
    MAX_VALUE_LEN,
    CelError,
    compile_condition,
    evaluate_condition,
    to_cel,
)

NAMES = frozenset({"predicate", "lineage", "signature"})
CTX = {
    "predicate": to_cel({"buildDefinition": {"externalParameters": {"relation": "finetune"}},
                         "l": list(range(10))}),
    "lineage": to_cel({"depth": 2, "nodes": [{"uri": "hf://acme/base", "state": "verified"},
                                             {"uri": "hf://x/y", "state": "unsigned"}]}),
    "signature": to_cel({"time": datetime(2025, 1, 1, tzinfo=UTC), "identity": "a@b"}),
}


def ok(source: str, **kw: object) -> bool:
    return evaluate_condition(compile_condition(source, NAMES), CTX, **kw)  # type: ignore[arg-type]


def err(source: str, **kw: object) -> CelError:
    with pytest.raises(CelError) as e:
        ok(source, **kw)
    return e.value


def test_conditions_over_a_predicate_and_over_lineage() -> None:
    assert ok("predicate.buildDefinition.externalParameters.relation in ['finetune', 'adapter']")
    assert not ok("predicate.buildDefinition.externalParameters.relation == 'merge'")
    assert ok("lineage.depth <= 8 && lineage.nodes.exists(n, n.uri.startsWith('hf://acme/'))")
    assert not ok("lineage.nodes.all(n, n.state == 'verified')")
    assert ok("signature.time < timestamp('2026-01-01T00:00:00Z')")
    assert ok("signature.identity.matches('^a@')")  # RE2: linear time
    assert ok("has(predicate.buildDefinition) && !has(predicate.nope)")


@pytest.mark.parametrize(("source", "words"), [
    ("predicate.relation in ['finetune', 'adapter'", "'[' at column 23 is never closed"),
    ("predicate.x == 'a", "the string opened at column 16 is never closed"),
    ("predicate.x == 1)", "')' at column 17 has no matching opening bracket"),
    ("predicate.x === 1", "CEL syntax error at column 15, near `= 1`"),
    ("predicate.x 1", "CEL syntax error at column 13, near `1`"),
])
def test_syntax_errors_say_where(source: str, words: str) -> None:
    with pytest.raises(CelError) as e:
        compile_condition(source, NAMES)
    assert e.value.kind == "syntax"
    assert words in e.value.message


@pytest.mark.parametrize(("source", "words"), [
    ("predicat.x == 1", "unknown name 'predicat'; a condition here may use: lineage, predicate,"
                        " signature"),
    ("predicate.l.reduce(r, i, 0, r + i) > 0", "reduce() is a celpy extension"),
    ("predicate.l.min() == 0", "min() is a celpy extension"),
    ("   ", "the condition is empty"),
    ("1 == 1 && " * 500 + "true", f"at most {MAX_SOURCE_CHARS} are allowed"),
    ("(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1) + " == 1",
     f"more than {MAX_NESTING} levels deep"),
])
def test_refused_at_compile_time(source: str, words: str) -> None:
    with pytest.raises(CelError) as e:
        compile_condition(source, NAMES)
    assert e.value.kind == "invalid"
    assert words in e.value.message


def test_macro_variables_and_type_names_are_not_unknown_names() -> None:
    assert ok("lineage.nodes.all(node, type(node.uri) == string)")
    assert ok("predicate.l.map(x, x * 2).filter(y, y > 10).size() == 4")


def test_a_missing_field_is_a_clear_failure_not_a_crash() -> None:
    e = err("predicate.buildDefinition.externalParameters.method == 'lora'")
    assert e.kind == "missing"
    assert e.message.startswith("no such field 'method' in the facts (guard it with has(")
    e = err("predicate.l[20] == 1")
    assert (e.kind, e.message) == ("missing", "list index out of range")
    e = err("lineage.nodes[0]['state2'] == 'x'")
    assert e.kind == "missing" and "no such field 'state2'" in e.message


def test_type_errors_and_non_boolean_results() -> None:
    e = err("predicate.buildDefinition.externalParameters.relation > 1")
    assert e.kind == "type" and "no matching overload" in e.message
    e = err("predicate.buildDefinition.externalParameters.relation")
    assert e.kind == "type"
    assert e.message == "the condition gave string 'finetune', not a boolean (true or false)"
    e = err("1 / 0 == 1")
    assert e.kind == "error" and "divide by zero" in e.message


def test_a_huge_comprehension_is_stopped_by_the_step_budget() -> None:
    ten = "[" + ",".join(str(i) for i in range(10)) + "]"
    source = (f"{ten}.map(a, {ten}.map(b, {ten}.map(c, {ten}.map(d, {ten}.map(e, "
              "a + b + c + d + e))))).size() > 0")  # 100,000 inner evaluations
    t = time.monotonic()
    e = err(source, max_steps=20_000)
    assert time.monotonic() - t < 2
    assert e.kind == "budget"
    assert e.message.startswith("stopped after 20000 evaluation steps")


def test_the_deadline_stops_a_slow_condition() -> None:
    ten = "[" + ",".join(str(i) for i in range(10)) + "]"
    source = f"{ten}.map(a, {ten}.map(b, {ten}.map(c, {ten}.map(d, a + b + c + d)))).size() > 0"
    t = time.monotonic()
    e = err(source, max_steps=10**9, timeout=0.2)
    assert time.monotonic() - t < 1.5
    assert e.kind == "budget" and e.message.startswith("stopped after 0.2 s")


def test_values_cannot_grow_without_bound() -> None:
    # a flat chain (nesting depth 1, few steps): each map doubles the string, 2**40 characters
    # if nothing stopped it
    source = "['x']" + ".map(s, s + s)" * 40 + ".size() > 0"
    e = err(source)
    assert e.kind == "budget"
    assert f"a value grew past {MAX_VALUE_LEN} items" in e.message


def test_the_recursion_limit_is_never_lowered() -> None:
    before = sys.getrecursionlimit()
    compile_condition("true", frozenset())
    assert sys.getrecursionlimit() >= before


def test_the_context_must_be_declared() -> None:
    program = compile_condition("true", frozenset({"a"}))
    with pytest.raises(ValueError, match="not declared"):
        evaluate_condition(program, {"b": to_cel(1)})
