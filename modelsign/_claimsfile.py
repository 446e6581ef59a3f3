"""The claims file, read side: where it is, its lines, with caps (no statement parsing).

Split out of :mod:`modelsign.claims` (which re-exports all of it) so that verifying a model
whose claims file is absent or empty imports neither pydantic nor the in-toto protobufs: that
was ~0.17 s of every `modelsign verify` run's start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from modelsign._io import open_regular
from modelsign.errors import PathError
from modelsign.hashing._spec import CLAIMS_FILE

__all__ = [
    "MAX_CLAIMS_FILE_BYTES",
    "MAX_CLAIM_LINES",
    "MAX_CLAIM_LINE_BYTES",
    "ClaimLine",
    "ClaimsFile",
    "claims_path",
    "read_claims",
]

#: Caps on what we read: one bundle line (a keyless bundle is ~10 KB; a claim listing thousands
#: of dependencies stays well under this), the whole file, and the number of lines.
MAX_CLAIM_LINE_BYTES = 16 * 1024 * 1024
MAX_CLAIMS_FILE_BYTES = 1024 * 1024 * 1024
MAX_CLAIM_LINES = 100_000


def claims_path(artifact: str | os.PathLike[str]) -> Path:
    """Where an artifact's claims live: ``DIR/claims.jsonl``, or ``FILE.claims.jsonl`` beside a
    single-file artifact (as ``FILE.sig`` is its signature)."""
    p = Path(artifact)
    if p.is_dir():
        return p / CLAIMS_FILE
    return p.with_name(f"{p.name}.{CLAIMS_FILE}")


# ------------------------------------------------------------------------------------ the file
@dataclass(frozen=True, slots=True)
class ClaimLine:
    """One non-blank line of a claims file, as read (not verified, not even parsed).

    ``complete`` is false for a last line without its newline (an interrupted append);
    ``problem`` is set when the line could not be read whole (over the size cap).
    """

    number: int
    raw: bytes
    complete: bool = True
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimsFile:
    """The lines of a claims file. ``problems`` are about the file (e.g. too many lines)."""

    path: Path
    lines: tuple[ClaimLine, ...]
    problems: tuple[str, ...] = ()
    exists: bool = True


def _open_for_read(path: Path) -> BinaryIO:
    """Open the claims file for reading; never a blocking open (a FIFO named claims.jsonl
    would hang every verification that reads claims)."""
    try:
        return open_regular(path, what="the claims file")
    except FileNotFoundError:
        raise
    except PermissionError as e:
        raise PathError("the claims file is not readable (permission denied)", path=path) from e
    except OSError as e:
        raise PathError(f"cannot read the claims file: {e.strerror or e}", path=path) from e


def read_claims(
    path: str | os.PathLike[str],
    *,
    max_line_bytes: int = MAX_CLAIM_LINE_BYTES,
    max_file_bytes: int = MAX_CLAIMS_FILE_BYTES,
    max_lines: int = MAX_CLAIM_LINES,
) -> ClaimsFile:
    """Read a claims file (the file itself, or a directory whose ``claims.jsonl`` it is; for a
    single-file artifact pass :func:`claims_path` of it).

    A missing file is an empty :class:`ClaimsFile` with ``exists=False``. Blank lines are skipped
    (line numbers still count them). An over-long line is reported as a problem of that line; a
    last line without a newline is returned with ``complete=False``. Lines past ``max_lines`` or
    past ``max_file_bytes`` are not read, and that is reported in ``problems``.
    """
    p = Path(path)
    if p.is_dir():
        p = claims_path(p)
    try:
        f = _open_for_read(p)
    except FileNotFoundError:
        return ClaimsFile(p, (), (), exists=False)
    with f:
        return _read_lines(p, f, max_line_bytes, max_file_bytes, max_lines)


def _read_lines(p: Path, f: Any, max_line: int, max_file: int, max_lines: int) -> ClaimsFile:
    lines: list[ClaimLine] = []
    problems: list[str] = []
    number = 0
    total = 0
    while True:
        chunk: bytes = f.readline(max_line + 1)
        if not chunk:
            break
        number += 1
        total += len(chunk)
        if total > max_file:
            problems.append(f"the claims file is larger than {max_file} bytes; lines from "
                            f"{number} on were not read")
            break
        if number > max_lines:
            problems.append(f"the claims file has more than {max_lines} lines; lines from "
                            f"{number} on were not read")
            break
        if len(chunk) > max_line and not chunk.endswith(b"\n"):
            # Over the cap: skip the rest of this line without holding it in memory.
            skipped = len(chunk)
            while chunk and not chunk.endswith(b"\n"):
                chunk = f.readline(1024 * 1024)
                skipped += len(chunk)
                total += len(chunk)
            lines.append(ClaimLine(number, b"", True,
                                   f"line is longer than {max_line} bytes ({skipped} bytes)"))
            continue
        complete = chunk.endswith(b"\n")
        body = chunk[:-1] if complete else chunk
        if not body.strip():
            continue
        lines.append(ClaimLine(number, body, complete))
    return ClaimsFile(p, tuple(lines), tuple(problems))
