"""Text the CLI prints for a person: outside names made harmless for a terminal.

File names, resource names, identities, URIs and error messages come from outside (a model
directory, a signed manifest, a certificate, a claims file). Printed raw, a terminal acts on the
control sequences in them: ``ESC [2K`` erases a line, ``\\r`` returns to its start, ``ESC [32m``
colours, a bidi override reverses what follows. A failed verification could then *look* like a
pass. :func:`safe` escapes every such character as ``\\xNN`` / ``\\uNNNN``: C0 controls (all but
``\\t``, and ``\\n`` unless it is ours), DEL, C1 controls (``\\x9b`` is CSI on 8-bit terminals),
the bidi embeddings, overrides, isolates and marks, the Unicode line and paragraph separators,
and lone surrogates (undecodable bytes of a file name, which would also crash the encoder).

The printers (:func:`out`, :func:`err`, and ``_app.error``) apply it, once, on the way out; JSON
output needs nothing (``json.dumps`` escapes control characters and, with ``ensure_ascii``,
every non-ASCII one).
"""

from __future__ import annotations

import re
import sys

__all__ = ["err", "out", "safe"]

_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_KEEP_NEWLINES = re.compile(f"[{_UNSAFE}]")
_UNSAFE_ONE_LINE = re.compile(f"[\n{_UNSAFE}]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def safe(text: str, *, newlines: bool = True) -> str:
    """``text`` with every character a terminal would act on escaped; ``newlines=False`` escapes
    ``\\n`` too (for what must stay one line)."""
    return (_UNSAFE_KEEP_NEWLINES if newlines else _UNSAFE_ONE_LINE).sub(_escape, text)


def out(text: str) -> None:
    """Write ``text`` (our lines, with outside names in them) to stdout, made safe."""
    sys.stdout.write(safe(text))


def err(line: str, *, newlines: bool = False) -> None:
    """Write one line to stderr, made safe (a newline inside is escaped too, so an outside name
    cannot forge a line), then a newline; ``newlines=True`` for a block of our own lines."""
    sys.stderr.write(safe(line, newlines=newlines) + "\n")
