"""SECURITY.md stays true: every test it names exists, every attack and fuzz target is named in
it, and every strict xfail (an attack that currently succeeds) is listed under Open findings."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECURITY = REPO / "SECURITY.md"
NAMED = re.compile(r"(tests/(?:attacks|fuzz)/test_\w+\.py)?::(test_\w+)")
NOT_ATTACKS = {"test_loader_sanity"}  # checks the test harness itself


def _tests(folder: str) -> dict[str, dict[str, bool]]:
    """{file: {test name: is a strict xfail}} of the test functions under ``folder``."""
    out: dict[str, dict[str, bool]] = {}
    for path in sorted((REPO / folder).glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        names: dict[str, bool] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names[node.name] = any("xfail" in ast.unparse(d) and "strict=True" in ast.unparse(d)
                                       for d in node.decorator_list)
        out[path.relative_to(REPO).as_posix()] = names
    return out


def _named() -> set[tuple[str, str]]:
    """(file, test) pairs SECURITY.md names; ``::test_x`` after a full name inherits its file."""
    out: set[tuple[str, str]] = set()
    for line in SECURITY.read_text().splitlines():
        current = None
        for m in NAMED.finditer(line):
            current = m.group(1) or current
            if current is not None:
                out.add((current, m.group(2)))
    return out


def test_every_named_test_exists() -> None:
    existing = {(f, t) for folder in ("tests/attacks", "tests/fuzz")
                for f, names in _tests(folder).items() for t in names}
    missing = sorted(_named() - existing)
    assert missing == [], f"SECURITY.md names tests that do not exist: {missing}"


def test_every_attack_and_fuzz_target_is_in_security_md() -> None:
    named = _named()
    unnamed = sorted((f, t) for folder in ("tests/attacks", "tests/fuzz")
                     for f, names in _tests(folder).items() for t in names
                     if (f, t) not in named and t not in NOT_ATTACKS)
    assert unnamed == [], f"tests SECURITY.md does not mention: {unnamed}"


def test_every_open_finding_is_listed() -> None:
    text = SECURITY.read_text()
    findings = text[text.index("## Open findings"):text.index("## Fuzz targets")]
    xfails = sorted(f"{f}::{t}" for folder in ("tests/attacks", "tests/fuzz")
                    for f, names in _tests(folder).items() for t, x in names.items() if x)
    missing = [x for x in xfails if x.split("::")[1] not in findings]
    assert missing == [], f"strict xfails not listed under Open findings: {missing}"
