"""The one adapter over ``celpy`` (cel-python): compile a condition, evaluate it within bounds.

Nothing else in modelsign imports ``celpy``. What this module adds to the engine:

* **Compile-time checks.** A condition is at most :data:`MAX_SOURCE_CHARS` characters and
  :data:`MAX_NESTING` levels deep; it may name only the variables of the documented context (plus
  the variables its own macros bind) and only standard CEL macros (celpy's non-standard ``reduce``
  and ``min`` are refused, so a policy stays portable to other CEL engines).
* **A step budget and a deadline.** Evaluation walks the syntax tree; every node visited costs one
  step, including each iteration of ``map``/``filter``/``all``/``exists``. Past ``max_steps`` steps
  or ``timeout`` seconds the evaluation stops with :class:`CelError` (``kind="budget"``). A huge
  nested comprehension therefore fails cleanly in a fraction of a second instead of hanging.
* **A value-size bound.** ``+`` on strings, bytes and lists refuses results over
  :data:`MAX_VALUE_LEN` items, so repeated doubling cannot exhaust memory inside the step budget.
* **Plain errors.** A missing field, a type mismatch or a division by zero becomes a
  :class:`CelError` with a short message (``no such field 'foo'``), never a crash or a
  traceback; a result that is not a boolean is an error too.

``matches()`` is celpy's, backed by RE2 (linear time), so a regular expression cannot backtrack
for ever either.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import celpy
import celpy.celtypes as ct
import lark
from celpy.celparser import CELParseError
from celpy.evaluation import Activation, CELEvalError, Evaluator

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_TIMEOUT",
    "MAX_NESTING",
    "MAX_SOURCE_CHARS",
    "MAX_VALUE_LEN",
    "CelError",
    "CelProgram",
    "compile_condition",
    "evaluate_condition",
    "to_cel",
]

#: Longest condition accepted, in characters.
MAX_SOURCE_CHARS = 4096
#: Deepest nesting of parentheses, brackets and braces accepted in a condition.
MAX_NESTING = 32
#: Largest string, bytes or list that ``+`` may build during evaluation.
MAX_VALUE_LEN = 1_000_000
#: Syntax-tree nodes one evaluation may visit.
DEFAULT_MAX_STEPS = 100_000
#: Seconds one evaluation may run: a backstop; the step budget (deterministic) normally stops
#: a runaway condition first, so the same facts give the same report on any machine.
DEFAULT_TIMEOUT = 2.0

# Standard CEL macros; the variable each binds is in scope inside it.
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# celpy extensions that other CEL engines do not have.
_NONSTANDARD = frozenset({"reduce", "min"})
# Type names that may appear as values (``type(x) == string``).
_TYPE_NAMES = frozenset({"bool", "bytes", "double", "int", "list", "map", "null_type", "string",
                         "type", "uint", "duration", "timestamp"})
_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")
_NO_MEMBER = re.compile(r"no such member in mapping: '?([^']*)'?")


class CelError(Exception):
    """A condition that does not compile, or whose evaluation failed.

    ``kind``: ``syntax`` (does not parse), ``invalid`` (parses, but is refused: unknown name,
    non-standard macro, too long or deep), ``missing`` (names a field the facts do not have),
    ``type`` (operands of the wrong type, or a non-boolean result), ``budget`` (ran out of
    steps, time or value size), ``error`` (any other evaluation error).
    ``line``/``column`` are 1-based positions inside the condition text, when known.
    """

    def __init__(self, message: str, *, kind: Literal["syntax", "invalid", "missing", "type",
                                                      "budget", "error"],
                 line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class CelProgram:
    """A compiled condition: its source text and the parsed tree (opaque)."""

    source: str
    names: frozenset[str]
    _ast: lark.Tree[lark.Token] = field(repr=False, compare=False)


# One environment for the process; celpy raises the recursion limit when one is created, so
# create it once here rather than per condition.
_ENV: celpy.Environment | None = None


def _env() -> celpy.Environment:
    global _ENV
    if _ENV is None:
        limit = sys.getrecursionlimit()
        _ENV = celpy.Environment()
        # celpy sets 2500 unconditionally; never lower a limit the application chose.
        sys.setrecursionlimit(max(limit, sys.getrecursionlimit()))
    return _ENV


def _nesting(source: str) -> int:
    depth = best = 0
    quote: str | None = None
    escaped = False
    for ch in source:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth -= 1
    return best


def _tokens(tree: lark.Tree[lark.Token]) -> Iterable[tuple[str, lark.Token]]:
    """(node kind, token) for identifiers and called names, in source order."""
    for node in tree.iter_subtrees_topdown():  # type: ignore[no-untyped-call]
        if node.data == "ident" and node.children and isinstance(node.children[0], lark.Token):
            yield "ident", node.children[0]
        elif node.data == "ident_arg" and node.children \
                and isinstance(node.children[0], lark.Token):
            yield "call", node.children[0]
        elif node.data == "member_dot_arg" and len(node.children) >= 2 \
                and isinstance(node.children[1], lark.Token):
            yield "method", node.children[1]


def _macro_vars(tree: lark.Tree[lark.Token]) -> set[str]:
    bound: set[str] = set()
    for node in tree.find_data("member_dot_arg"):
        if len(node.children) < 3 or not isinstance(node.children[1], lark.Token):
            continue
        if node.children[1].value not in _MACROS:
            continue
        args = node.children[2]
        if isinstance(args, lark.Tree) and args.children:
            first = args.children[0]
            if isinstance(first, lark.Tree):
                for ident in first.find_data("ident"):
                    tok = ident.children[0]
                    if isinstance(tok, lark.Token):
                        bound.add(tok.value)
    return bound


def _unbalanced(source: str) -> str | None:
    """Describe the first unclosed bracket or quote (positions are 1-based columns)."""
    stack: list[tuple[str, int]] = []
    quote: tuple[str, int] | None = None
    escaped = False
    pairs = {")": "(", "]": "[", "}": "{"}
    for i, ch in enumerate(source, start=1):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote[0]:
                quote = None
            continue
        if ch in "\"'":
            quote = (ch, i)
        elif ch in "([{":
            stack.append((ch, i))
        elif ch in pairs:
            if not stack or stack[-1][0] != pairs[ch]:
                return f"{ch!r} at column {i} has no matching opening bracket"
            stack.pop()
    if quote:
        return f"the string opened at column {quote[1]} is never closed"
    if stack:
        ch, i = stack[-1]
        return f"{ch!r} at column {i} is never closed"
    return None


def _syntax_message(source: str, line: int | None, column: int | None) -> str:
    lines = source.splitlines() or [""]
    if line is None or column is None or not 1 <= line <= len(lines):
        return "CEL syntax error: the condition does not parse"
    text = lines[line - 1]
    where = f"line {line}, column {column}" if len(lines) > 1 else f"column {column}"
    unbalanced = _unbalanced(source)
    if unbalanced:
        return f"CEL syntax error: {unbalanced}"
    rest = source.split("\n", line - 1)[-1][column - 1:] if line <= len(lines) else ""
    if not rest.strip() or (line == len(lines) and column - 1 >= len(text.rstrip())):
        return (f"CEL syntax error at {where}: the condition ends too early (an unclosed "
                "bracket or quote, or a missing operand?)")
    near = text[column - 1:column + 19].strip() or rest.strip()[:20]
    return f"CEL syntax error at {where}, near `{near}`"


@lru_cache(maxsize=1024)
def compile_condition(source: str, names: frozenset[str]) -> CelProgram:
    """Parse and check ``source``; ``names`` are the context variables it may use.

    Raises :class:`CelError` (``syntax`` or ``invalid``) with the position inside ``source``.
    """
    if not isinstance(source, str) or not source.strip():
        raise CelError("the condition is empty", kind="invalid")
    if len(source) > MAX_SOURCE_CHARS:
        raise CelError(f"the condition is {len(source)} characters long; at most "
                       f"{MAX_SOURCE_CHARS} are allowed", kind="invalid")
    if _nesting(source) > MAX_NESTING:
        raise CelError(f"the condition nests brackets more than {MAX_NESTING} levels deep",
                       kind="invalid")
    try:
        ast = _env().compile(source)
    except CELParseError as e:
        raise CelError(_syntax_message(source, e.line, e.column), kind="syntax",
                       line=e.line, column=e.column) from None
    except RecursionError:
        raise CelError("the condition is nested too deeply to parse", kind="invalid") from None
    allowed = names | _macro_vars(ast) | _TYPE_NAMES
    for kind, tok in _tokens(ast):
        if kind == "method" and tok.value in _NONSTANDARD:
            raise CelError(f"{tok.value}() is a celpy extension, not standard CEL; use "
                           "all/exists/exists_one/map/filter", kind="invalid",
                           line=tok.line, column=tok.column)
        if kind == "ident" and tok.value not in allowed:
            raise CelError(f"unknown name {tok.value!r}; a condition here may use: "
                           f"{', '.join(sorted(names))}", kind="invalid",
                           line=tok.line, column=tok.column)
    return CelProgram(source, names, ast)


# ------------------------------------------------------------------------------- evaluation
class _Budget:
    __slots__ = ("deadline", "max_steps", "steps", "timeout")

    def __init__(self, max_steps: int, timeout: float) -> None:
        self.steps = 0
        self.max_steps = max_steps
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise _OutOfBudget(f"stopped after {self.max_steps} evaluation steps; simplify "
                               "the condition (large or nested comprehensions are the usual "
                               "cause)")
        if self.steps & 0x3FF == 0 and time.monotonic() > self.deadline:
            raise _OutOfBudget(f"stopped after {self.timeout:g} s; simplify the condition "
                               "(large or nested comprehensions are the usual cause)")


class _OutOfBudget(Exception):
    """Raised through celpy's evaluator to stop it (not a CELEvalError, so it is not caught)."""


class _BoundedEvaluator(Evaluator):
    """celpy's tree-walking evaluator, charged one step per node visited."""

    def __init__(self, ast: lark.Tree[lark.Token], activation: Activation,
                 budget: _Budget) -> None:
        super().__init__(ast, activation)
        self._budget = budget

    def _visit_tree(self, tree: lark.Tree[lark.Token]) -> Any:  # lark's per-node entry point
        self._budget.tick()
        return super()._visit_tree(tree)

    def sub_evaluator(self, ast: lark.Tree[lark.Token]) -> Evaluator:
        return _BoundedEvaluator(ast, self.activation, self._budget)


def _bounded_add(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes, list)) and isinstance(right, (str, bytes, list)) \
            and len(left) + len(right) > MAX_VALUE_LEN:
        raise _OutOfBudget(f"a value grew past {MAX_VALUE_LEN} items; simplify the condition")
    return left + right


_FUNCTIONS: dict[str, Any] = {"_+_": _bounded_add}


def _clean(e: CELEvalError) -> CelError:
    text = str(e.args[0]) if e.args else "evaluation error"
    cause = e.args[1] if len(e.args) > 1 else None
    if m := _NO_MEMBER.search(text):
        return CelError(f"no such field {m.group(1)!r} in the facts (guard it with has(...) "
                        "if it is optional)", kind="missing", line=e.line, column=e.column)
    if text == "no such key" and cause is KeyError:
        detail = e.args[2] if len(e.args) > 2 and isinstance(e.args[2], tuple) else ()
        key = str(detail[0]) if detail else "?"
        return CelError(f"no such field {key!r} in the facts (guard it with has(...) or "
                        "`'key' in map` if it is optional)", kind="missing",
                        line=e.line, column=e.column)
    if m := _UNDECLARED.search(text):
        return CelError(f"unknown name {m.group(1)!r}", kind="missing",
                        line=e.line, column=e.column)
    if "no matching overload" in text or cause is TypeError:
        short = re.sub(r"Token\('RULE', '([^']*)'\)", r"\1", text)
        short = re.sub(r"<class 'celpy\.celtypes\.(\w+)Type'>", r"\1", short)
        return CelError(f"type error: {short[:200]}", kind="type", line=e.line, column=e.column)
    if cause is IndexError:
        return CelError("list index out of range", kind="missing", line=e.line,
                        column=e.column)
    return CelError(text[:200], kind="error", line=e.line, column=e.column)


def evaluate_condition(program: CelProgram, context: Mapping[str, Any], *,
                       max_steps: int = DEFAULT_MAX_STEPS,
                       timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Evaluate ``program`` over ``context`` (values from :func:`to_cel`) and return its boolean.

    Raises :class:`CelError` when the evaluation fails, runs out of budget, or is not boolean.
    """
    unknown = set(context) - program.names
    if unknown:  # our bug, not the user's: the caller must declare what it binds
        raise ValueError(f"context names not declared at compile time: {sorted(unknown)}")
    env = _env()
    runner = env.program(program._ast, functions=_FUNCTIONS)
    budget = _Budget(max_steps, timeout)
    evaluator = _BoundedEvaluator(program._ast, runner.new_activation(), budget)
    try:
        value = evaluator.evaluate(dict(context))
    except _OutOfBudget as e:
        raise CelError(str(e), kind="budget") from None
    except CELEvalError as e:
        raise _clean(e) from None
    except RecursionError:
        raise CelError("the condition recursed too deeply", kind="budget") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError,
            ArithmeticError, OverflowError) as e:  # celpy lets a few through unwrapped
        raise CelError(f"evaluation error: {type(e).__name__}: {str(e)[:200]}",
                       kind="error") from None
    if isinstance(value, CELEvalError):  # pragma: no cover - celpy raises these itself
        raise _clean(value)
    if not isinstance(value, (bool, ct.BoolType)):
        raise CelError(f"the condition gave {type(value).__name__.removesuffix('Type').lower()}"
                       f" {str(value)[:80]!r}, not a boolean (true or false)", kind="type")
    return bool(value)


def to_cel(value: Any) -> Any:
    """Convert plain Python data (dicts, lists, str, int, float, bool, None, datetime,
    timedelta) into celpy values. Mappings must have string keys."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ct.BoolType(value)
    if isinstance(value, int):
        return ct.IntType(value)
    if isinstance(value, float):
        return ct.DoubleType(value)
    if isinstance(value, str):
        return ct.StringType(value)
    if isinstance(value, bytes):
        return ct.BytesType(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in CEL facts")
        return ct.TimestampType(value.astimezone(UTC))
    if isinstance(value, timedelta):
        return ct.DurationType(seconds=int(value.total_seconds()))
    if isinstance(value, Mapping):
        return ct.MapType({ct.StringType(str(k)): to_cel(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return ct.ListType([to_cel(v) for v in value])
    raise TypeError(f"cannot pass {type(value).__name__} to CEL")
