"""Bounded JSON for outside input, and canonical (RFC 8785) JSON for what we sign.

Outside JSON is read strictly: a duplicate object key is an error, not "the last one wins" (as
Python's ``json`` would have it) nor "the first one wins" (as other parsers do), so one signed
document cannot mean two things to two tools. Nothing we write has duplicates (RFC 8785 writes a
dict), nor do ``model_signing``'s or Sigstore's bundles (serialized from dicts and protobufs).
"""

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


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return obj


def load_json(data: bytes | str, *, what: str, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside: size- and depth-bounded, strict (no NaN, no duplicate object
    keys), errors wrapped."""
    size = len(data)
    if size > max_bytes:
        raise SignatureFormatError(f"{what} is too large", expected=f"<= {max_bytes} bytes",
                                   actual=f"{size} bytes")
    try:
        value = json.loads(data, parse_constant=_reject_constant,
                           object_pairs_hook=_unique_object)
    except RecursionError as e:
        raise SignatureFormatError(f"{what} nests JSON too deeply",
                                   expected=f"<= {max_depth} levels", actual="more") from e
    except _DuplicateKeyError as e:
        raise SignatureFormatError(
            f"{what} has a duplicate JSON object key {e.key[:100]!r}",
            expected="each key once per object", actual="the key twice",
            hint="JSON parsers disagree on which duplicate counts (the first, the last, or an "
                 "error), so one document would mean two things; ask the producer to fix it"
        ) from e
    except (ValueError, UnicodeDecodeError) as e:
        raise SignatureFormatError(f"{what} is not valid JSON", expected="a JSON document",
                                   actual=f"{type(e).__name__}: {str(e)[:120]}",
                                   hint="get the file again (a truncated download or an HTML "
                                        "error page is not JSON), or re-create it with "
                                        "modelsign sign (a claim: modelsign attest)") from e
    if _depth(value, max_depth) > max_depth:
        raise SignatureFormatError(f"{what} nests JSON too deeply",
                                   expected=f"<= {max_depth} levels", actual="more")
    return value
