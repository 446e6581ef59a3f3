"""Small pieces of the evaluator: URI globs and printable reasons."""

from __future__ import annotations

import pytest

from modelsign.policy._evaluate import _glob, _printable


@pytest.mark.parametrize(("uri", "pattern", "expected"), [
    ("hf://acme/base@" + "1" * 40, "hf://acme/*", True),
    ("hf://datasets/acme/chat@" + "2" * 40, "hf://datasets/acme/*", True),
    ("hf://datasets/acme/scraped-web@x", "hf://datasets/acme/scraped-*", True),
    ("hf://Acme/base", "hf://acme/*", False),             # case-sensitive
    ("hf://acme/../evil/base", "hf://acme/*", False),     # dot segments never match
    ("hf://acme/./base", "hf://acme/*", False),
    ("hf://acme/..@" + "1" * 40, "hf://acme/*", False),
    ("hf://acme/base x", "hf://acme/*", False),           # whitespace never matches
    ("hf://acme/base", "hf://acme/base", True),
])
def test_glob(uri: str, pattern: str, expected: bool) -> None:
    assert _glob(uri, pattern) is expected


def test_reasons_carry_no_control_characters() -> None:
    assert _printable("signed by a\x1b[31mb\nc") == "signed by a\\x1b[31mb\\x0ac"
    assert _printable("plain ascii and ünïcode") == "plain ascii and ünïcode"
