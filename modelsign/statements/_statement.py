"""in-toto Statement v1: the exact signed bytes kept beside a parsed, read-only view."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from modelsign.errors import SignatureFormatError
from modelsign.statements._json import canonical_bytes, load_json

IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_SUBJECTS = 1_000_000


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    digest: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Statement:
    """A parsed in-toto Statement v1. ``raw`` is exactly what was (or will be) signed.

    The view is never re-serialized to verify anything: signatures are checked over ``raw``.
    """

    raw: bytes
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Any

    @property
    def subject(self) -> Subject:
        """The single subject; raises when there is not exactly one."""
        if len(self.subjects) != 1:
            raise SignatureFormatError("statement must have exactly one subject",
                                       expected="1 subject", actual=f"{len(self.subjects)}")
        return self.subjects[0]


def make_statement(subject_name: str, digest: Mapping[str, str], predicate_type: str,
                   predicate: Mapping[str, Any]) -> Statement:
    """Build a statement and its canonical bytes (RFC 8785)."""
    obj = {
        "_type": IN_TOTO_STATEMENT_V1,
        "subject": [{"name": subject_name, "digest": dict(digest)}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return Statement(canonical_bytes(obj), (Subject(subject_name, MappingProxyType(dict(digest))),),
                     predicate_type, predicate)


def parse_statement(raw: bytes, *, what: str = "statement") -> Statement:
    """Parse signed payload bytes into a :class:`Statement` (outside input: strict, bounded)."""
    obj = load_json(raw, what=what)
    if not isinstance(obj, dict):
        raise SignatureFormatError(f"{what} must be a JSON object", actual=type(obj).__name__)
    if obj.get("_type") != IN_TOTO_STATEMENT_V1:
        raise SignatureFormatError(f"{what} is not an in-toto Statement v1",
                                   expected=IN_TOTO_STATEMENT_V1,
                                   actual=repr(obj.get("_type"))[:100])
    ptype = obj.get("predicateType")
    if not isinstance(ptype, str) or not ptype:
        raise SignatureFormatError(f"{what} has no predicateType", actual=repr(ptype)[:100])
    raw_subjects = obj.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise SignatureFormatError(f"{what} has no subject", expected=">= 1 subject",
                                   actual=repr(raw_subjects)[:100])
    if len(raw_subjects) > MAX_SUBJECTS:
        raise SignatureFormatError(f"{what} has too many subjects",
                                   expected=f"<= {MAX_SUBJECTS}", actual=str(len(raw_subjects)))
    subjects = []
    for s in raw_subjects:
        if not isinstance(s, dict) or not isinstance(s.get("name", ""), str) \
                or not isinstance(s.get("digest"), dict) \
                or not all(isinstance(k, str) and isinstance(v, str)
                           for k, v in s["digest"].items()):
            raise SignatureFormatError(f"{what} has a malformed subject",
                                       expected='{"name": str, "digest": {alg: hex}}',
                                       actual=repr(s)[:120])
        subjects.append(Subject(s.get("name", ""), MappingProxyType(dict(s["digest"]))))
    return Statement(raw, tuple(subjects), ptype, obj.get("predicate"))
