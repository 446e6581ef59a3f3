"""Reading a policy file: bounded YAML with line numbers, then the strict model.

Every problem is a :class:`~modelsign.errors.PolicyFileError` (exit 2) whose message starts with
``FILE:LINE:`` and names the key path (``requireClaims[0].conditions[1]``), so an editor or CI log
can jump to it. :func:`lint_policy` collects every problem instead of stopping at the first.

YAML is read with PyYAML's safe loader, composed into nodes first so each value keeps its line.
Duplicate keys are an error (PyYAML would silently keep the last one, which could hide a rule),
keys must be strings, non-JSON scalars (dates, binary) and unknown tags (``!foo``,
``!!python/...``) are refused, aliases are expanded under a node budget (no "billion laughs")
and refused when they refer to a collection that contains them, and nesting is bounded
(:data:`_MAX_DEPTH`) both in the text, by a pass over the parser's events *before* PyYAML's
recursive composer runs, and after alias expansion: hostile YAML is a
:class:`~modelsign.errors.PolicyFileError`, never a ``RecursionError``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from modelsign.errors import PolicyFileError
from modelsign.policy._model import (
    ClaimRequirement,
    DatasetRules,
    LineageRules,
    ParentRule,
    PolicyDocument,
    SignerRule,
    TrustRootFile,
)

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.verify import Trust

__all__ = [
    "MAX_POLICY_BYTES",
    "LintProblem",
    "Policy",
    "lint_policy",
    "load_policy",
    "parse_policy",
]

#: Largest policy file read.
MAX_POLICY_BYTES = 1024 * 1024
_MAX_NODES = 100_000
#: Deepest nesting of maps and lists (a real policy nests about 6 levels).
_MAX_DEPTH = 64
_YAML = "tag:yaml.org,2002:"
#: Scalar tags the safe constructor builds; the non-JSON ones (timestamp, binary) are then
#: refused with what they read as. Any other tag is refused before construction.
_SCALAR_TAGS = frozenset(_YAML + t for t in ("null", "bool", "int", "float", "timestamp",
                                               "binary"))
_MAX_KEY_FILE = 1024 * 1024

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LintProblem:
    """One problem of a policy file: where (file, line, key path) and what."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded, validated policy: the document plus what was read beside it.

    ``key_ids`` maps each ``publicKey`` path as written to ``sha256:<hex>`` of the key's
    SubjectPublicKeyInfo PEM (the OMS key hint, what the verifier reports as a key signer's
    identity). ``anchors`` maps each ``certificateChain`` path to the subjects (RFC 4514) and
    SHA-256 fingerprints of the certificates in it. ``sha256`` is the digest of the file's bytes,
    recorded in every report so an audit knows exactly which policy admitted a model.
    """

    document: PolicyDocument
    source: str
    base_dir: Path
    sha256: str
    key_ids: Mapping[str, str] = field(default_factory=dict)
    anchors: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    lines: Mapping[Loc, int] = field(default_factory=dict, repr=False, compare=False)

    def resolve(self, relative: str) -> Path:
        """A path written in the policy, relative to the policy file's directory."""
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p

    def line_of(self, loc: Loc) -> int | None:
        """The line of the key path ``loc`` (or of its nearest parent that has one)."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    # What ``modelsign verify --policy`` hands the verifier -------------------------------
    def all_signers(self) -> tuple[SignerRule, ...]:
        """Every signer rule of the policy (model, claims, parents), de-duplicated in order."""
        doc = self.document
        rules: list[SignerRule] = list(doc.signers)
        for req in doc.require_claims:
            rules.extend(req.signers or ())
        if doc.lineage:
            for parent in doc.lineage.parents:
                rules.extend(parent.signers)
        out: list[SignerRule] = []
        for r in rules:
            if r not in out:
                out.append(r)
        return tuple(out)

    def public_key_paths(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys(self.resolve(r.public_key) for r in self.all_signers()
                                   if r.public_key is not None))

    def certificate_chain_paths(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys(self.resolve(r.certificate_chain) for r in self.all_signers()
                                   if r.certificate_chain is not None))

    def trust_root_path(self) -> Path | None:
        tr = self.document.trust_root
        return self.resolve(tr.file) if isinstance(tr, TrustRootFile) else None

    def trust(self) -> Trust:
        """The Sigstore root of trust ``trustRoot`` names, for keyless verification."""
        from modelsign.verify import Trust

        tr = self.document.trust_root
        if tr == "production":
            return Trust.production()
        if tr == "staging":
            return Trust.staging()
        kind, path = self.anchors["trustRoot"][0]
        return Trust.from_trust_config(path) if kind == "trust_config" \
            else Trust.from_trusted_root(path)


# ------------------------------------------------------------------------------------ YAML
class _Stop(Exception):
    """A problem that ends reading (bad YAML, duplicate key): carries its :class:`LintProblem`."""

    def __init__(self, problem: LintProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Reader:
    """Turns composed YAML nodes into plain JSON data, recording the line of every key path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.nodes = 0
        self.path: set[int] = set()  # ids of the collections being expanded, root to here
        self.constructor = yaml.SafeLoader("")

    def stop(self, node: yaml.Node, loc: Loc, message: str) -> _Stop:
        return _Stop(LintProblem(self.file, node.start_mark.line + 1, _render(loc), message))

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag == _YAML + "str":
            return str(node.value)
        if node.tag not in _SCALAR_TAGS:
            raise self.stop(node, loc, f"{node.value[:80]!r} has the YAML tag {node.tag!r}; "
                            "policies take no tags, only strings, numbers, booleans, lists and "
                            "maps (remove the tag, or quote the whole value)")
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, OverflowError) as e:
            raise self.stop(node, loc, f"{node.value[:80]!r} is not a valid YAML "
                            f"{node.tag.removeprefix(_YAML)} ({type(e).__name__})") from None
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise self.stop(node, loc, f"{node.value!r} reads as a YAML {type(value).__name__}; "
                        "policies take only strings, numbers, booleans, lists and maps "
                        "(quote the value)")

    def data(self, node: yaml.Node, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise self.stop(node, loc, f"the policy expands to more than {_MAX_NODES} YAML "
                            "nodes (aliases?)")
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.CollectionNode):
            # Aliases share nodes: one that is already being expanded on this path refers to
            # a collection that contains it (``x: &a [*a]``), which would expand for ever.
            if id(node) in self.path:
                raise self.stop(node, loc, "a YAML alias refers to a collection that contains "
                                "it (a recursive alias); write the values out")
            if len(self.path) >= _MAX_DEPTH:
                raise self.stop(node, loc, f"the policy nests deeper than {_MAX_DEPTH} levels "
                                "once its aliases are expanded")
            self.path.add(id(node))
            try:
                return self.collection(node, loc)
            finally:
                self.path.discard(id(node))
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node, loc)

    def collection(self, node: yaml.CollectionNode, loc: Loc) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.stop(key_node, loc, "YAML merge keys (<<) are not supported in "
                                    "policies; write the keys out")
                if not isinstance(key_node, yaml.ScalarNode) \
                        or key_node.tag != "tag:yaml.org,2002:str":
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                    what = f"key {shown!r} is not a string" if shown is not None \
                        else "a key is a list or a map, not a string"
                    raise self.stop(key_node, loc, f"{what} (quote it)")
                key = str(key_node.value)
                if key in out:
                    first = self.lines.get((*loc, key), "?")
                    raise self.stop(key_node, (*loc, key),
                                    f"duplicate key (first at line {first}); YAML would silently "
                                    "keep only the last one")
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                out[key] = self.data(value_node, (*loc, key))
            return out
        assert isinstance(node, yaml.SequenceNode)
        return [self.data(item, (*loc, i)) for i, item in enumerate(node.value)]


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise PolicyFileError("policy is not a regular file", path=path)
            data = f.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError as e:
        raise PolicyFileError("policy file not found", path=path,
                              hint="check the policy file path") from e
    except IsADirectoryError as e:
        raise PolicyFileError("policy path is a directory, not a file", path=path) from e
    except OSError as e:
        raise PolicyFileError(f"cannot read the policy file: {e.strerror or e}",
                              path=path) from e
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyFileError("policy file is too large", path=path,
                              expected=f"<= {MAX_POLICY_BYTES} bytes",
                              actual=f"> {MAX_POLICY_BYTES} bytes")
    return data


def _check_depth(text: str, file: str) -> None:
    """Refuse nesting deeper than :data:`_MAX_DEPTH` from the parser's events (the parser is a
    state machine with its own stack, so this pass cannot overflow Python's)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > _MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else None
                raise _Stop(LintProblem(file, line, "", f"the YAML nests deeper than "
                                        f"{_MAX_DEPTH} levels (maps and lists)"))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _compose(text: bytes, file: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise _Stop(LintProblem(file, None, "", "the policy is not UTF-8 text")) from None
    try:
        _check_depth(decoded, file)  # PyYAML's composer recurses once per level: bound it first
        nodes = [n for n in yaml.compose_all(decoded, Loader=yaml.SafeLoader) if n is not None]
    except RecursionError:  # defence in depth: a caller already deep in its own stack
        raise _Stop(LintProblem(file, None, "", "the YAML nests too deeply to read")) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise _Stop(LintProblem(file, mark.line + 1 if mark is not None else None, "",
                                f"not valid YAML: {e.problem or e.context}")) from None
    except yaml.YAMLError as e:
        raise _Stop(LintProblem(file, None, "", f"not valid YAML: {e}")) from None
    if len(nodes) != 1:
        raise _Stop(LintProblem(file, None, "", "a policy file holds exactly one YAML "
                                f"document, found {len(nodes)}"))
    reader = _Reader(file)
    try:
        data = reader.data(nodes[0], ())
    except RecursionError:  # defence in depth, as above
        raise _Stop(LintProblem(file, None, "", "the YAML nests too deeply to read")) from None
    if not isinstance(data, dict):
        raise _Stop(LintProblem(file, 1, "", "the policy must be a map with apiVersion, kind, "
                                f"signers, ...; found a {type(data).__name__}"))
    return data, reader.lines


# ------------------------------------------------------------------------------- validation
def _render(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _data_loc(raw: tuple[Any, ...], data: Any) -> Loc:
    """Pydantic's error location minus its union tags, following the actual data."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(raw):
        if isinstance(cur, dict) and isinstance(part, str):
            if part in cur:
                out.append(part)
                cur = cur[part]
            elif i == len(raw) - 1:  # a missing key
                out.append(part)
            # else: a union tag ('spec', 'TrustRootFile', ...): skip it
        elif isinstance(cur, list) and isinstance(part, int):
            out.append(part)
            cur = cur[part] if 0 <= part < len(cur) else None
        # else: a tag such as 'expr', 'spec', 'str', 'function-after[...]': skip it
    return tuple(out)


# Allowed keys per section, for "did you mean" on unknown keys.
_SECTIONS: dict[str, type] = {
    "": PolicyDocument, "signers": SignerRule, "requireClaims": ClaimRequirement,
    "datasets": DatasetRules, "lineage": LineageRules, "parents": ParentRule,
}


def _allowed_keys(loc: Loc) -> list[str]:
    names = [p for p in loc[:-1] if isinstance(p, str)]
    owner = names[-1] if names else ""
    model = _SECTIONS.get(owner)
    if model is None:
        return []
    return sorted(f.alias or n for n, f in model.model_fields.items())  # type: ignore[attr-defined]


def _message(err: Mapping[str, Any], loc: Loc) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(key, allowed, n=1)
        tip = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {key!r}{tip}" + (f" (allowed here: {', '.join(allowed)})"
                                             if allowed else "")
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"{msg}, found {err.get('input')!r}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        value = err.get("input")
        shown = "null" if value is None else repr(value)
        if isinstance(value, dict):
            shown = "a map"
        elif isinstance(value, list):
            shown = "a list"
        tip = " (quote it in YAML)" if isinstance(value, (int, float)) and kind == "string_type" \
            else ""
        return f"{msg}, found {shown}{tip}"
    return msg.removeprefix("Value error, ")


def _problems(e: ValidationError, data: Any, lines: Mapping[Loc, int],
              file: str) -> list[LintProblem]:
    out: list[LintProblem] = []
    seen: set[tuple[Loc, str]] = set()
    errors = e.errors(include_url=False)
    locs = [_data_loc(tuple(err.get("loc", ())), data) for err in errors]
    for err, loc in zip(errors, locs, strict=True):
        if err.get("type") == "too_short" and any(
                len(other) > len(loc) and other[:len(loc)] == loc for other in locs):
            continue  # "too short" only because an item was invalid: that item says why
        msg = _message(err, loc)
        if (loc, msg) in seen:
            continue
        seen.add((loc, msg))
        line = None
        probe = loc
        while probe:
            if probe in lines:
                line = lines[probe]
                break
            probe = probe[:-1]
        out.append(LintProblem(file, line if line is not None else lines.get(()), _render(loc),
                               msg))
    out.sort(key=lambda p: (p.line or 0, p.path))
    return out


def _validate(data: dict[str, Any], lines: Mapping[Loc, int],
              file: str) -> tuple[PolicyDocument | None, list[LintProblem]]:
    try:
        # JSON mode: strict, yet arrays become tuples; the data is plain JSON by construction.
        doc = PolicyDocument.model_validate_json(json.dumps(data))
    except ValidationError as e:
        return None, _problems(e, data, lines, file)
    return doc, []


# ------------------------------------------------------------------ files named by the policy
def _read_small(path: Path, limit: int = _MAX_KEY_FILE) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


def _key_id(path: Path) -> str:
    from modelsign.statements._bundle import public_key_hint

    data = _read_small(path)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        # A certificate is accepted in place of a bare public key.
        key = x509.load_pem_x509_certificate(data).public_key()
    return "sha256:" + public_key_hint(key)


def _anchors(path: Path) -> tuple[tuple[str, str], ...]:
    from cryptography.hazmat.primitives.hashes import SHA256

    certs = x509.load_pem_x509_certificates(_read_small(path))
    return tuple((c.subject.rfc4514_string(), c.fingerprint(SHA256()).hex()) for c in certs)


def _materials(doc: PolicyDocument, base_dir: Path, lines: Mapping[Loc, int],
               file: str) -> tuple[dict[str, str], dict[str, tuple[tuple[str, str], ...]],
                                   list[LintProblem]]:
    problems: list[LintProblem] = []
    key_ids: dict[str, str] = {}
    anchors: dict[str, tuple[tuple[str, str], ...]] = {}

    def where(loc: Loc) -> int | None:
        while loc:
            if loc in lines:
                return lines[loc]
            loc = loc[:-1]
        return None

    def signer_sets() -> list[tuple[Loc, tuple[SignerRule, ...]]]:
        sets: list[tuple[Loc, tuple[SignerRule, ...]]] = [(("signers",), doc.signers)]
        for i, req in enumerate(doc.require_claims):
            if req.signers:
                sets.append((("requireClaims", i, "signers"), req.signers))
        if doc.lineage:
            for i, parent in enumerate(doc.lineage.parents):
                sets.append((("lineage", "parents", i, "signers"), parent.signers))
        return sets

    for base, rules in signer_sets():
        for i, rule in enumerate(rules):
            for attr, key in (("public_key", "publicKey"), ("certificate_chain",
                                                            "certificateChain")):
                rel = getattr(rule, attr)
                if rel is None:
                    continue
                loc = (*base, i, key)
                p = Path(rel) if Path(rel).is_absolute() else base_dir / rel
                try:
                    if attr == "public_key":
                        key_ids[rel] = _key_id(p)
                    else:
                        anchors[rel] = _anchors(p)
                        if not anchors[rel]:
                            raise ValueError("no certificate in the file")
                except FileNotFoundError:
                    problems.append(LintProblem(file, where(loc), _render(loc),
                                                f"file not found: {p}"))
                except (OSError, ValueError) as e:
                    what = "a PEM public key" if attr == "public_key" else "PEM certificates"
                    problems.append(LintProblem(file, where(loc), _render(loc),
                                                f"{p} is not {what}: {str(e)[:120]}"))
    tr = doc.trust_root
    if isinstance(tr, TrustRootFile):
        p = Path(tr.file) if Path(tr.file).is_absolute() else base_dir / tr.file
        loc = ("trustRoot", "file")
        try:
            media = json.loads(_read_small(p, 16 * 1024 * 1024)).get("mediaType", "")
        except FileNotFoundError:
            problems.append(LintProblem(file, where(loc), _render(loc), f"file not found: {p}"))
        except (OSError, ValueError, AttributeError) as e:
            problems.append(LintProblem(file, where(loc), _render(loc),
                                        f"{p} is not a Sigstore trust root (JSON): "
                                        f"{str(e)[:120]}"))
        else:
            if "clienttrustconfig" in str(media):
                anchors["trustRoot"] = (("trust_config", str(p)),)
            elif "trustedroot" in str(media):
                anchors["trustRoot"] = (("trusted_root", str(p)),)
            else:
                problems.append(LintProblem(
                    file, where(loc), _render(loc),
                    f"{p} is neither a Sigstore trusted_root.json nor a client trust config "
                    f"(mediaType {str(media)[:80]!r})"))
    return key_ids, anchors, problems


# ---------------------------------------------------------------------------------- public
def _parse(text: bytes, file: str, base_dir: Path) -> tuple[Policy | None, list[LintProblem]]:
    try:
        data, lines = _compose(text, file)
    except _Stop as e:
        return None, [e.problem]
    doc, problems = _validate(data, lines, file)
    if doc is None:
        return None, problems
    key_ids, anchors, problems = _materials(doc, base_dir, lines, file)
    if problems:
        return None, problems
    return Policy(doc, file, base_dir, hashlib.sha256(text).hexdigest(), key_ids, anchors,
                  lines), []


def _fail(problems: list[LintProblem]) -> PolicyFileError:
    first = str(problems[0])
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return PolicyFileError(first + more, hint="run `modelsign policy lint FILE` to see all")


def parse_policy(text: str | bytes, *, source: str = "<policy>",
                 base_dir: str | os.PathLike[str] = ".") -> Policy:
    """Parse policy text (YAML or JSON); relative paths in it resolve against ``base_dir``."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyFileError("policy is too large", path=source,
                              expected=f"<= {MAX_POLICY_BYTES} bytes", actual=f"{len(raw)} bytes")
    policy, problems = _parse(raw, source, Path(base_dir))
    if policy is None:
        raise _fail(problems)
    return policy


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy file; :class:`PolicyFileError` (exit 2) on any problem.

    The message starts with ``FILE:LINE:`` and names the key path. Key and certificate files
    the policy names are read (relative to the policy file) and must be valid.
    """
    p = Path(path)
    return parse_policy(_read(p), source=str(p), base_dir=p.resolve().parent)


def lint_policy(path: str | os.PathLike[str]) -> list[LintProblem]:
    """Every problem of a policy file (empty when it is clean). Unreadable files and YAML that
    does not parse give one problem; schema, CEL and file errors are all listed."""
    p = Path(path)
    try:
        text = _read(p)
    except PolicyFileError as e:
        return [LintProblem(str(p), None, "", str(e).removeprefix(f"{p}: "))]
    return _parse(text, str(p), p.resolve().parent)[1]

