"""Bounded JSON for outside input, and canonical (RFC 8785) JSON for what we sign."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from modelsign.errors import SignatureFormatError

#: Caps on JSON read from outside (signatures, claims). A model.sig of a million resources is
#: about 150 MB; nothing legitimate nests deeper than a handful of levels.
MAX_JSON_BYTES = 256 * 1024 * 1024
MAX_JSON_DEPTH = 64


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON: sorted keys, no whitespace, integers stay integers."""
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise SignatureFormatError("value cannot be written as canonical JSON",
                                   actual=f"{type(e).__name__}: {e}") from e


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value (iterative; stops counting past ``limit``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(data: bytes | str, *, what: str, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside: size- and depth-bounded, strict (no NaN), errors wrapped."""
    size = len(data)
    if size > max_bytes:
        raise SignatureFormatError(f"{what} is too large", expected=f"<= {max_bytes} bytes",
                                   actual=f"{size} bytes")
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError as e:
        raise SignatureFormatError(f"{what} nests JSON too deeply",
                                   expected=f"<= {max_depth} levels", actual="more") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise SignatureFormatError(f"{what} is not valid JSON", expected="a JSON document",
                                   actual=f"{type(e).__name__}: {str(e)[:120]}") from e
    if _depth(value, max_depth) > max_depth:
        raise SignatureFormatError(f"{what} nests JSON too deeply",
                                   expected=f"<= {max_depth} levels", actual="more")
    return value
