"""The file walk: which files make up an artifact, under which names, and refusing unsafe ones.

One ``os.scandir`` pass over the tree (no ``pathlib`` on the hot path), one ``stat`` per file. What
it refuses, each with a :class:`~modelsign.errors.PathError` naming the path:

* symbolic links, unless ``allow_symlinks``; even then a link resolving outside the artifact, a
  broken link and a link loop (a directory link pointing at one of its own ancestors);
* names that are not valid UTF-8 (they cannot be written into a manifest), names with a backslash
  (a path separator elsewhere; :func:`modelsign.manifest.check_resource_name` refuses them when
  reading), and sibling names that are equal after Unicode NFC normalization (the same name on
  another file system);
* anything that is neither a regular file nor a directory (FIFOs, sockets, devices).

Ignored paths are relative to the artifact root and match whole components: ``logs`` leaves out
the file ``logs`` or the whole directory ``logs/``, never ``logs2`` or ``sub/logs``.
"""

from __future__ import annotations

import os
import stat as st_mod
import unicodedata
from typing import NamedTuple

from modelsign.errors import PathError, SymlinkError
from modelsign.hashing._spec import HashSpec

__all__ = ["FileEntry", "Tree", "display", "name_key", "walk"]


class FileEntry(NamedTuple):
    """One regular file of the artifact, with the ``stat`` taken when it was found."""

    rel: str  #: POSIX path relative to the artifact root: the resource name
    path: str  #: the path to open (absolute)
    size: int
    dev: int
    ino: int
    mtime_ns: int
    ctime_ns: int
    follow: bool  #: reached through a symbolic link (open without O_NOFOLLOW)


class Tree(NamedTuple):
    name: str  #: the artifact name: the directory's final component, or the file name
    root: str  #: absolute path of the root as given (not resolved)
    entries: list[FileEntry]
    single_file: bool


def display(name: str) -> str:
    """A printable form of a path that may hold undecodable bytes (``\\xff`` escapes)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check_name(name: str, shown: str) -> None:
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise PathError("file name is not valid UTF-8", path=display(shown),
                            hint="rename the file with a UTF-8 name (e.g. with convmv)") from None
    if "\\" in name:
        raise PathError("file name contains a backslash, a path separator on Windows",
                        path=shown, hint="rename the file")


def name_key(path: str) -> str:
    """The key under which two paths name one file on a case-insensitive or normalizing file
    system (macOS, Windows): NFC, case-folded (over-inclusive: ``ß`` folds to ``ss``).

    The walk does not refuse case-only twins (``A/`` beside ``a/`` is a legitimate Linux tree,
    and ``model_signing`` hashes it); verification does, where it would otherwise *tolerate* an
    unsigned twin of a signed file (``--ignore-unsigned-files``).
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def _check_collisions(names: list[str], dir_shown: str) -> None:
    """Refuse sibling names equal after NFC normalization (e.g. 'é' and 'e' + U+0301). Case-only
    twins are judged at verification (:func:`name_key`)."""
    if all(n.isascii() or unicodedata.is_normalized("NFC", n) for n in names):
        return  # distinct NFC names stay distinct: nothing can collide
    seen: dict[str, str] = {}
    for n in sorted(names):
        key = unicodedata.normalize("NFC", n)
        if key in seen:
            raise PathError(f"file name collides with {seen[key]!r} after Unicode NFC "
                            "normalization", path=os.path.join(dir_shown, n),
                            expected="names that differ after normalization",
                            actual=f"{seen[key]!a} and {n!a}",
                            hint="rename one of the two files")
        seen[key] = n


def _entry(rel: str, path: str, s: os.stat_result, follow: bool) -> FileEntry:
    return FileEntry(rel, path, s.st_size, s.st_dev, s.st_ino, s.st_mtime_ns, s.st_ctime_ns,
                     follow)


def _ignore_set(spec: HashSpec) -> frozenset[str]:
    out = set()
    for p in spec.all_ignores():
        parts = [c for c in p.split("/") if c not in ("", ".")]
        if parts:
            out.add("/".join(parts))
    return frozenset(out)


def _kind(mode: int) -> str:
    if st_mod.S_ISFIFO(mode):
        return "a FIFO"
    if st_mod.S_ISSOCK(mode):
        return "a socket"
    if st_mod.S_ISCHR(mode) or st_mod.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _resolve_link(path: str, shown: str, real_root: str) -> tuple[str, os.stat_result]:
    """Follow an allowed symlink; refuse broken links, loops and targets outside the artifact."""
    try:
        target = os.path.realpath(path, strict=True)
        s = os.stat(path)
    except OSError as e:
        import errno

        if e.errno == errno.ELOOP:
            raise SymlinkError("symbolic link loop", path=shown,
                               hint="remove or fix the link") from None
        raise SymlinkError(f"symbolic link cannot be followed ({e.strerror})", path=shown,
                           hint="remove or fix the broken link") from None
    if target != real_root and not target.startswith(real_root.rstrip("/") + "/"):
        raise SymlinkError("symbolic link points outside the model directory", path=shown,
                           expected=f"a target inside {real_root}", actual=display(target),
                           hint="copy the file into the model directory instead of linking it")
    return target, s


def walk(root: str | os.PathLike[str], spec: HashSpec) -> Tree:
    """List the regular files of the artifact at ``root`` (a directory or a single file)."""
    given = os.fspath(root)
    try:
        s = os.lstat(given)
    except FileNotFoundError:
        raise PathError("no such file or directory", path=display(given),
                        hint="check the path") from None
    except OSError as e:
        raise PathError(f"cannot access ({e.strerror})", path=display(given)) from None
    abs_root = os.path.abspath(given)
    if st_mod.S_ISLNK(s.st_mode):
        if not spec.allow_symlinks:
            raise SymlinkError("is a symbolic link; symlinks are refused by default",
                               path=display(given),
                               hint="pass the link's target, or use --allow-symlinks")
        try:
            s = os.stat(given)
        except OSError as e:
            raise SymlinkError(f"symbolic link cannot be followed ({e.strerror})",
                               path=display(given)) from None
    name = os.path.basename(abs_root.rstrip("/")) or "/"
    if st_mod.S_ISREG(s.st_mode):
        _check_name(name, given)
        return Tree(name, abs_root, [_entry(name, abs_root, s, spec.allow_symlinks)], True)
    if not st_mod.S_ISDIR(s.st_mode):
        raise PathError(f"is {_kind(s.st_mode)}, neither a regular file nor a directory",
                        path=display(given))
    if name != display(name):
        raise PathError("directory name is not valid UTF-8", path=display(given),
                        hint="rename the directory with a UTF-8 name")

    def here_(rel: str) -> str:
        return display(os.path.join(abs_root, rel))

    ignores = _ignore_set(spec)
    real_root = os.path.realpath(abs_root) if spec.allow_symlinks else abs_root
    entries: list[FileEntry] = []
    # (absolute dir, relative prefix ending in "/" or ""), depth first
    stack: list[tuple[str, str]] = [(abs_root, "")]
    while stack:
        dir_path, prefix = stack.pop()
        try:
            with os.scandir(dir_path) as it:
                listing = list(it)
        except OSError as e:
            raise PathError(f"cannot list directory ({e.strerror})",
                            path=here_(prefix.rstrip("/")) if prefix else display(given),
                            hint="check the directory's permissions") from None
        names = [de.name for de in listing]
        for de in listing:
            base = de.name
            rel = prefix + base
            if not base.isascii() or "\\" in base:
                _check_name(base, here_(rel))
            if rel in ignores:
                continue
            path = de.path
            try:
                if de.is_file(follow_symlinks=False):
                    fs = de.stat(follow_symlinks=False)
                    if st_mod.S_ISREG(fs.st_mode):  # the common case, first
                        entries.append(FileEntry(rel, path, fs.st_size, fs.st_dev, fs.st_ino,
                                                 fs.st_mtime_ns, fs.st_ctime_ns, False))
                        continue
                elif de.is_symlink():
                    if not spec.allow_symlinks:
                        raise SymlinkError("is a symbolic link; symlinks are refused by default",
                                           path=here_(rel),
                                           hint="replace it with the file, or use "
                                                "--allow-symlinks")
                    target, ts = _resolve_link(path, here_(rel), real_root)
                    if st_mod.S_ISDIR(ts.st_mode):
                        here = os.path.realpath(dir_path)
                        if here == target or here.startswith(target.rstrip("/") + "/"):
                            raise SymlinkError("symbolic link loop: points to a directory "
                                               "that contains it", path=here_(rel),
                                               actual=display(target), hint="remove the link")
                        stack.append((path, rel + "/"))
                    elif st_mod.S_ISREG(ts.st_mode):
                        entries.append(_entry(rel, path, ts, True))
                    else:
                        raise PathError(f"symbolic link target is {_kind(ts.st_mode)}",
                                        path=here_(rel))
                    continue
                elif de.is_dir(follow_symlinks=False):
                    stack.append((path, rel + "/"))
                    continue
                fs = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                raise PathError("disappeared while the model was being listed", path=here_(rel),
                                hint="wait until nothing writes to the model, then run again"
                                ) from None
            except OSError as e:
                raise PathError(f"cannot access ({e.strerror})", path=here_(rel)) from None
            raise PathError(f"is {_kind(fs.st_mode)}, neither a regular file nor a directory",
                            path=here_(rel), hint="remove it or pass --ignore-path")
        _check_collisions(names, here_(prefix))
    return Tree(name, abs_root, entries, False)
