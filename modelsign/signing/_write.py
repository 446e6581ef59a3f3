"""Atomic file writes: a crash or an error never leaves a half-written signature behind.

The temporary file lives beside the destination (``os.replace`` needs the same file system), so
for ``model.sig`` it is inside the model. A process killed between creating and renaming it
leaves ``.model.sig.<8 random>.tmp`` there; :func:`remove_stale_temps` removes exactly those,
and only when no live writer holds them (each writer keeps an ``flock`` on its temporary file
until it is renamed), and ``sign_model`` calls it before hashing so a leftover is never signed.
See docs/decisions/0005-signing.md, "Atomic writes".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import tempfile
from pathlib import Path

from modelsign.errors import PathError

__all__ = ["check_writable", "remove_stale_temps", "write_atomic"]

_TEMP_SUFFIX = ".tmp"
#: The random part of a :func:`tempfile.mkstemp` name (``tempfile._RandomNameSequence``).
_TEMP_RANDOM = re.compile(r"[a-z0-9_]{8}")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _is_temp_of(name: str, path: Path) -> bool:
    prefix = _temp_prefix(path)
    return (name.startswith(prefix) and name.endswith(_TEMP_SUFFIX)
            and _TEMP_RANDOM.fullmatch(name[len(prefix):-len(_TEMP_SUFFIX)]) is not None)


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
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=_temp_prefix(p), suffix=_TEMP_SUFFIX)
    except OSError as e:
        raise PathError(f"cannot create a temporary file beside the signature: "
                        f"{e.strerror or e}", path=p.parent) from e
    try:
        with os.fdopen(fd, "wb") as f:
            # Held until the rename: remove_stale_temps leaves a live writer's file alone.
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
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


def remove_stale_temps(path: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Remove the temporary files that killed :func:`write_atomic` calls for ``path`` left
    beside it (``.<name>.<8 random>.tmp``, regular files only, never through a link); return
    what was removed.

    A temporary file whose writer is still alive (it holds an ``flock`` on it) is not touched:
    that is another process writing ``path`` right now, a :class:`PathError`.
    """
    p = Path(os.path.abspath(path))
    try:
        names = sorted(n for n in os.listdir(p.parent) if _is_temp_of(n, p))
    except OSError:
        return ()
    removed: list[Path] = []
    for name in names:
        candidate = p.parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
                         | os.O_NOFOLLOW)
        except OSError:
            continue  # gone, a symbolic link, unreadable: not a leftover of ours
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise PathError("another process is writing this signature right now",
                                    path=p, actual=f"{name} is locked by its writer",
                                    hint="wait until it has finished, then run again") from e
                continue
            held, now = os.fstat(fd), None
            with contextlib.suppress(OSError):
                now = os.lstat(candidate)
            if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                continue  # renamed into place by its writer meanwhile
            try:
                os.unlink(candidate)
            except OSError as e:
                raise PathError(f"cannot remove a temporary file left by an interrupted write: "
                                f"{e.strerror or e}", path=candidate,
                                hint="remove it by hand, then run again") from e
            removed.append(candidate)
        finally:
            os.close(fd)
    return tuple(removed)


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
