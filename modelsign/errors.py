"""One exception tree for everything modelsign raises.

Every error carries the exit code the CLI maps it to (see README, "Exit codes"):

* 1 -- verification or policy failed (integrity, signature, identity, claims, lineage)
* 2 -- bad input or usage (a path that does not exist, a malformed signature file, ...)
* 3 -- internal error (a bug in modelsign; please report it)

Foreign exceptions are wrapped at the boundary they cross (``raise X(...) from e``), so callers
only ever need to catch :class:`ModelsignError`.

Messages follow one shape: what is wrong with which file, what was expected, what was found, and
the next step. Build them with :func:`describe` so they stay uniform.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "ModelsignError",
    "InputError",
    "PathError",
    "SymlinkError",
    "FileChangedError",
    "SignatureFormatError",
    "KeyMaterialError",
    "PolicyFileError",
    "VerificationError",
    "IntegrityError",
    "SignatureError",
    "IdentityError",
    "ClaimError",
    "LineageError",
    "PolicyViolation",
    "InternalError",
    "describe",
]


def describe(
    problem: str,
    *,
    path: str | PathLike[str] | None = None,
    expected: str | None = None,
    actual: str | None = None,
    hint: str | None = None,
) -> str:
    """Render the one-line message format shared by every modelsign error."""
    parts = []
    head = f"{path}: {problem}" if path is not None else problem
    parts.append(head)
    if expected is not None or actual is not None:
        parts.append(f"expected {expected if expected is not None else '-'}, "
                     f"found {actual if actual is not None else '-'}")
    msg = " (".join(parts) + (")" if len(parts) > 1 else "")
    if hint:
        msg += f"; next: {hint}"
    return msg


class ModelsignError(Exception):
    """Base class of every error modelsign raises on purpose."""

    exit_code: int = 3

    def __init__(
        self,
        problem: str,
        *,
        path: str | PathLike[str] | None = None,
        expected: str | None = None,
        actual: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.expected = expected
        self.actual = actual
        self.hint = hint
        super().__init__(
            describe(problem, path=path, expected=expected, actual=actual, hint=hint)
        )


# --------------------------------------------------------------------------- bad input: exit 2
class InputError(ModelsignError):
    """The user gave us something we cannot work with (exit code 2)."""

    exit_code = 2


class PathError(InputError):
    """A path is missing, unreadable, unsafe, or not a valid model."""


class SymlinkError(PathError):
    """A symbolic link where none is allowed, or one that escapes the model directory."""


class FileChangedError(InputError):
    """A file changed while it was being hashed; its digest would mix old and new bytes."""


class SignatureFormatError(InputError):
    """A signature or claim file is not a well-formed bundle / statement of the expected shape."""


class KeyMaterialError(InputError):
    """A key or certificate cannot be loaded or is of an unsupported kind."""


class PolicyFileError(InputError):
    """A policy file is not valid YAML, does not match the schema, or has a bad expression."""


# ------------------------------------------------------------------ verification failed: exit 1
class VerificationError(ModelsignError):
    """Verification failed: the artifact must not be trusted (exit code 1)."""

    exit_code = 1


class IntegrityError(VerificationError):
    """The bytes on disk differ from the signed manifest (missing, extra or changed files)."""


class SignatureError(VerificationError):
    """The signature does not verify (bad signature, wrong key, foreign trust root, ...)."""


class IdentityError(VerificationError):
    """The signature is valid but made by an identity the verifier does not allow."""


class ClaimError(VerificationError):
    """A claim (a line of claims.jsonl) does not verify or does not belong to this artifact."""


class LineageError(VerificationError):
    """A link of the provenance chain does not verify."""


class PolicyViolation(VerificationError):
    """A verified artifact does not satisfy the policy."""


# --------------------------------------------------------------------------- our bug: exit 3
class InternalError(ModelsignError):
    """Something that should not happen happened; a bug in modelsign."""

    exit_code = 3
