"""Atomic file writes: a crash or an error never leaves a half-written signature behind."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from modelsign.errors import PathError

__all__ = ["check_writable", "write_atomic"]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work is done, a destination we could not replace atomically.

    Returns the absolute destination path.
    """
    p = Path(os.path.abspath(path))
    if p.is_dir():
        raise PathError("the signature output is a directory", path=p,
                        expected="a file path", actual="a directory",
                        hint=f"pass a file name, e.g. --output {p / 'model.sig'}")
    if p.exists() and not (p.is_file() or p.is_symlink()):
        raise PathError("the signature output exists and is not a regular file", path=p,
                        hint="choose another --output path")
    parent = p.parent
    if not parent.exists():
        raise PathError("the signature output's directory does not exist", path=parent,
                        hint="create it first, or choose another --output path")
    if not parent.is_dir():
        raise PathError("the signature output's parent is not a directory", path=parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError("cannot write the signature: the directory is not writable", path=parent,
                        hint="choose a writable --output path")
    return p


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, rename.

    Readers see either the old file or the complete new one, never a mix; on any error the old
    file is left as it was and the temp file removed. A symlink at ``path`` is replaced by the new
    file (its target is not written through). The new file keeps the old file's permission bits,
    or gets ``0o644`` (a signature is public).
    """
    p = check_writable(path)
    mode = 0o644
    with contextlib.suppress(OSError):
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            mode = stat.S_IMODE(st.st_mode)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise PathError(f"cannot create a temporary file beside the signature: "
                        f"{e.strerror or e}", path=p.parent) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise PathError(f"cannot write the signature: {e.strerror or e}", path=p) from e
        raise
    _fsync_dir(p.parent)
    return p


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); best effort where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
