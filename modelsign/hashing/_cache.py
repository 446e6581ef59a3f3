"""The incremental-hashing cache: digests of files that have not changed since they were hashed.

An SQLite file in the user cache directory (``platformdirs.user_cache_dir("modelsign")``;
``MODELSIGN_CACHE_DIR`` or ``cache_dir=`` override it). A row is keyed by the file's absolute path
and by how it was hashed (algorithm, method, shard size); it is used only if the file's device,
inode, size, mtime_ns and ctime_ns are still those recorded. ctime cannot be set from user space,
so a tool that rewrites a file and restores its mtime (``cp -p``, ``rsync -t``) still misses.

Any doubt is a miss: a locked or unreadable database, a row of the wrong shape, a digest of the
wrong length, shards that do not match the current plan. A corrupt database file is deleted and
created again, never read. Files whose mtime or ctime is within :data:`RACY_NS` of the start of
hashing are not stored: a write in the same timestamp tick could leave their stat unchanged.

Verification does not use the cache (a verifier must not take a local cache's word for what is
on disk): it hashes with ``HashSpec(use_cache=False)``.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterable
from pathlib import Path

from modelsign.hashing._engine import DIGEST_SIZE, shard_ranges
from modelsign.hashing._walk import FileEntry

__all__ = ["CACHE_FILE", "RACY_NS", "Cache", "CachedDigests", "default_cache_dir"]

CACHE_FILE = "hashes-v1.sqlite3"
SCHEMA_VERSION = 1
#: Files changed this recently (ns) before hashing started are not cached.
RACY_NS = 2_000_000_000
_TIMEOUT_S = 2.0
_SHARD = struct.Struct(">QQ")
_I64 = 1 << 63

#: (start, end, digest) per item; start/end are None in files mode
CachedDigests = list[tuple[int | None, int | None, bytes]]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS digests (
  path TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  method TEXT NOT NULL,
  shard_size INTEGER NOT NULL,
  dev INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (path, algorithm, method, shard_size)
) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
"""


def default_cache_dir() -> Path:
    env = os.environ.get("MODELSIGN_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("modelsign"))


def _i64(v: int) -> int:
    """Device and inode numbers are unsigned 64-bit; SQLite integers are signed."""
    return v - (1 << 64) if v >= _I64 else v


def _corrupt(e: sqlite3.Error) -> bool:
    name = getattr(e, "sqlite_errorname", "")
    return name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in str(e) \
        or "not a database" in str(e)


class Cache:
    """One open cache database. Every method swallows SQLite errors: the cache is only a hint."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._stale: list[str] = []  # rows under the last looked-up tree for files now gone

    # --------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, cache_dir: str | os.PathLike[str] | None = None) -> Cache | None:
        """Open (creating or rebuilding as needed) the cache, or None when it cannot be used."""
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = directory / CACHE_FILE
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            return None
        for attempt in range(2):
            try:
                conn = cls._connect(path)
            except sqlite3.Error as e:
                if attempt == 0 and _corrupt(e):
                    cls._remove(path)
                    continue
                return None
            return cls(conn, path)
        return None

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(os.fspath(path), timeout=_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_TIMEOUT_S * 1000)}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError("not a database of this version (SQLITE_NOTADB)")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            if version == 0:
                conn.executescript(_SCHEMA)
            # a cheap read of the table proves the pages we need are well formed
            conn.execute("SELECT count(*) FROM (SELECT 1 FROM digests LIMIT 1)").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(os.fspath(path) + suffix)
            except FileNotFoundError:
                pass
            except OSError:
                return

    def _rebuild(self) -> None:
        """The database turned out corrupt: close it, delete it, start empty (or give up)."""
        self.close()
        self._remove(self.path)
        try:
            self._conn = self._connect(self.path)
        except sqlite3.Error:
            self._conn = None  # type: ignore[assignment]

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None  # type: ignore[assignment]

    # --------------------------------------------------------------------------- lookups
    def lookup(self, root: str, entries: Iterable[FileEntry], *, single_file: bool,
               algorithm: str, method: str, shard_size: int) -> dict[str, CachedDigests]:
        """Cached digests of the entries whose stat is unchanged, by relative path."""
        if self._conn is None:
            return {}
        q = ("SELECT path, dev, ino, size, mtime_ns, ctime_ns, value FROM digests "
             "WHERE algorithm = ? AND method = ? AND shard_size = ? AND ")
        key = (algorithm, method, shard_size if method == "shards" else 0)
        try:
            if single_file:
                rows = self._conn.execute(q + "path = ?", (*key, root)).fetchall()
            else:
                lo = root.rstrip("/") + "/"
                hi = root.rstrip("/") + "0"  # '0' is the character after '/'
                rows = self._conn.execute(q + "path >= ? AND path < ?", (*key, lo, hi)).fetchall()
        except sqlite3.Error as e:
            if _corrupt(e):
                self._rebuild()
            return {}
        by_path = {r[0]: r for r in rows}
        out: dict[str, CachedDigests] = {}
        seen = set()
        for entry in entries:
            seen.add(entry.path)
            row = by_path.get(entry.path)
            if row is None or tuple(row[1:6]) != (_i64(entry.dev), _i64(entry.ino), entry.size,
                                                  entry.mtime_ns, entry.ctime_ns):
                continue
            decoded = _decode(row[6], entry.size, algorithm, method, shard_size)
            if decoded is not None:
                out[entry.rel] = decoded
        self._stale = [p for p in by_path if p not in seen]
        return out

    def store(self, items: Iterable[tuple[FileEntry, CachedDigests]], *, algorithm: str,
              method: str, shard_size: int, now_ns: int) -> int:
        """Record digests of settled files (not changed within RACY_NS of ``now_ns``)."""
        if self._conn is None:
            return 0
        ss = shard_size if method == "shards" else 0
        stale = [(p, algorithm, method, ss) for p in self._stale]
        rows = []
        for e, digests in items:
            if max(e.mtime_ns, e.ctime_ns) > now_ns - RACY_NS:
                continue
            rows.append((e.path, algorithm, method, ss, _i64(e.dev), _i64(e.ino), e.size,
                         e.mtime_ns, e.ctime_ns, _encode(digests, method)))
        if not rows and not stale:
            return 0
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(  # files deleted or renamed since: drop their rows
                    "DELETE FROM digests WHERE path = ? AND algorithm = ? AND method = ? "
                    "AND shard_size = ?", stale)
                self._conn.executemany(
                    "INSERT OR REPLACE INTO digests (path, algorithm, method, shard_size, dev, "
                    "ino, size, mtime_ns, ctime_ns, value) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            if _corrupt(e):
                self._rebuild()
            return 0
        return len(rows)


def _encode(digests: CachedDigests, method: str) -> bytes:
    if method == "files":
        return digests[0][2]
    return b"".join(_SHARD.pack(s or 0, e or 0) + d for s, e, d in digests)


def _decode(value: object, size: int, algorithm: str, method: str,
            shard_size: int) -> CachedDigests | None:
    """Parse a cached value, or None unless it is exactly what the current plan expects."""
    if not isinstance(value, bytes):
        return None
    dsize = DIGEST_SIZE[algorithm]
    if method == "files":
        return [(None, None, value)] if len(value) == dsize else None
    ranges = shard_ranges(size, shard_size)
    rec = _SHARD.size + dsize
    if len(value) != rec * len(ranges) or not ranges:
        return None
    out: CachedDigests = []
    for i, (s, e) in enumerate(ranges):
        cs, ce = _SHARD.unpack_from(value, i * rec)
        if (cs, ce) != (s, e):
            return None
        off = i * rec + _SHARD.size
        out.append((s, e, value[off:off + dsize]))
    return out
