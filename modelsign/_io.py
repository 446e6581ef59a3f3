"""Opening files that come from outside (``model.sig``, ``claims.jsonl``, weights to sniff)
without ever blocking on them.

A plain ``open()`` of a FIFO blocks until a writer appears, which an attacker who plants one
(a tar archive or a Hub mirror can carry it) never provides; opening a device can have side
effects. :func:`open_regular` therefore looks before it opens (``stat``), opens with
``O_NONBLOCK | O_NOCTTY`` (so a FIFO swapped in between cannot block either), checks with
``fstat`` that what it opened is the regular file it looked at, and only then hands back an
ordinary blocking file object. Symbolic links are followed: a Hub cache snapshot's
``model.sig`` is a link into ``blobs/`` (writes are the ones that refuse links).
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from modelsign.errors import PathError

__all__ = ["file_kind", "open_regular"]

_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: ``"a FIFO"``, ``"a directory"``, ..."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _refuse(path: str | os.PathLike[str], what: str, mode: int, hint: str | None) -> PathError:
    return PathError(f"{what} is {file_kind(mode)}, not a regular file", path=path,
                     expected="a regular file", actual=file_kind(mode), hint=hint)


def open_regular(path: str | os.PathLike[str], *, what: str,
                 hint: str | None = None) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (through symlinks), never blocking.

    Anything else (FIFO, socket, device, directory) raises :class:`PathError` naming ``what``
    and the file, with ``"not a regular file"`` in the message. ``OSError`` from ``stat`` or
    ``open`` (missing file, permission denied, ...) propagates unchanged, for the caller to
    word.
    """
    before = os.stat(path)
    if not stat.S_ISREG(before.st_mode):
        raise _refuse(path, what, before.st_mode, hint)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, what, st.st_mode, hint)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
