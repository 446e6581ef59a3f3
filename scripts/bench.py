#!/usr/bin/env python3
"""Side-by-side hashing/signing benchmark: modelsign vs model_signing vs openssl vs the hardware.

Run it from the project venv (it finds ``modelsign`` and ``model_signing`` next to
``sys.executable``)::

    python scripts/bench.py                      # full size: 4 x 1 GiB model, 4 GiB file, 20k files
    python scripts/bench.py --size smoke --repeat 1 --json /tmp/b.json   # what CI runs
    python scripts/bench.py --only model,startup # a subset (row names, globs, or tags)

Every measurement is one *row*. Rows are independent: a row whose tool fails (a command that does
not exist yet, an import error, a non-zero exit) reports ``status: error`` with the message, and the
run goes on. Numbers are medians of ``--repeat`` repetitions; a model_signing row and the
modelsign rows compared with it run their repetitions interleaved, in rotation (A B C, B C A,
...), so a load that drifts on a shared machine weighs on all of them alike. GB/s means 10^9
bytes per second (as ``openssl speed`` counts); peak RSS is the child's ``ru_maxrss`` (MiB) read
with ``os.wait4``.

Cold runs evict the data files with ``posix_fadvise(POSIX_FADV_DONTNEED)`` per file (after a
``sync``) and then measure, with ``mincore``, how much of the data really left the page cache: the
``resident`` column says how honest a "cold" number is. Interpreters, libraries and directory
metadata stay cached.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime as _dt
import fnmatch
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "modelsign-bench/1"

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
GB = 1e9

SIZES: dict[str, dict[str, int]] = {
    "full": {
        "shard": 1 * GiB, "n_shards": 4,       # the model: 4 x 1 GiB + small files
        "single": 4 * GiB,                     # one 4 GiB file, hashed in shards mode
        "n_data": 20_000, "data_file": 4 * KiB,  # the dataset: 20,000 x 4 KiB
        "sign_shards": 2,                      # the signing model: 2 of the shards (2 GiB)
        "verify_weights": 90_000_000,          # issue 7: the 90 MB model
        "tokenizer": 2 * MiB,
        "speed_seconds": 3,
        "timeout": 900,
    },
    "smoke": {
        "shard": 4 * MiB, "n_shards": 4,
        "single": 16 * MiB,
        "n_data": 200, "data_file": 4 * KiB,
        "sign_shards": 2,
        "verify_weights": 2 * MiB,
        "tokenizer": 64 * KiB,
        "speed_seconds": 1,
        "timeout": 120,
    },
}

# ------------------------------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


class NotAvailable(Exception):
    """The thing to measure does not exist (yet): the row reports n/a, not an error."""


class BenchError(Exception):
    """A measurement failed; the message goes into the row."""


def find_exe(name: str) -> str | None:
    """The console script installed beside this interpreter (the venv's), else on PATH."""
    cand = Path(sys.executable).parent / name  # not resolved: a venv's python is a symlink
    if cand.exists():
        return str(cand)
    return shutil.which(name)


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


# The one way the benchmark changes a "small file": same size, new bytes, new mtime/ctime.
# Shared (as source) with the API child processes.
TOUCH_SRC = r'''
def bench_touch(path):
    import os, secrets
    marker = b'"bench_nonce": "'
    with open(path, "r+b") as f:
        head = f.read(4096)
        i = head.find(marker)
        if i < 0:
            raise RuntimeError("no bench_nonce marker in %s" % path)
        f.seek(i + len(marker))
        f.write(secrets.token_hex(8).encode())
        f.flush()
        os.fsync(f.fileno())
'''
_ns: dict[str, Any] = {}
exec(TOUCH_SRC, _ns)  # noqa: S102 - our own constant source
bench_touch: Callable[[str], None] = _ns["bench_touch"]


# ------------------------------------------------------------------------------------------------
# child processes: wall time, exit status and peak RSS (os.wait4) of exactly that child


_BOX = "\u2500\u2502\u256d\u256e\u256f\u2570\u250c\u2510\u2514\u2518"


@dataclass
class Proc:
    rc: int
    elapsed: float
    maxrss_kb: int
    stdout: str
    stderr: str

    def fail_message(self) -> str:
        # the last line that says something (rich/typer draw boxes around usage errors)
        lines = [ln.strip(" \t" + _BOX) for ln in (self.stderr or self.stdout).splitlines()]
        lines = [ln for ln in lines if any(c.isalnum() for c in ln)]
        last = lines[-1] if lines else "(no output)"
        return f"exit {self.rc}: {last[:400]}"


def run_proc(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 900,
             cwd: str | None = None) -> Proc:
    """Run ``argv`` with output to temp files, timed from just before fork to reaping."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 env=env, cwd=cwd)
        except OSError as e:
            raise BenchError(f"cannot start {argv[0]}: {e}") from e
        killed = threading.Event()

        def _kill() -> None:
            killed.set()
            try:
                p.kill()
            except OSError:
                pass

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - t0
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = Proc(rc, elapsed, int(ru.ru_maxrss), out.read().decode("utf-8", "replace"),
                   err.read().decode("utf-8", "replace"))
    if killed.is_set():
        raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(argv[:3])} ...")
    return res


# ------------------------------------------------------------------------------------------------
# page cache: eviction (posix_fadvise) and residency (mincore)


def evict(paths: list[str]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def prime(paths: list[str]) -> None:
    """Read every byte once so that a warm run finds the data in the page cache."""
    buf = bytearray(8 * MiB)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


class _Mincore:
    def __init__(self) -> None:
        self.ok = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            self.mmap = libc.mmap
            self.mmap.restype = ctypes.c_void_p
            self.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_long]
            self.munmap = libc.munmap
            self.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            self.mincore = libc.mincore
            self.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
            self.page = os.sysconf("SC_PAGE_SIZE")
            self.ok = True
        except (OSError, AttributeError, ValueError):
            pass

    def resident_bytes(self, path: str) -> tuple[int, int]:
        """(resident bytes, size) of one file, without touching its pages."""
        size = os.path.getsize(path)
        if size == 0:
            return 0, 0
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = self.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
            if addr is None or addr == ctypes.c_void_p(-1).value:
                raise OSError(ctypes.get_errno(), "mmap failed")
            try:
                npages = (size + self.page - 1) // self.page
                vec = (ctypes.c_ubyte * npages)()
                if self.mincore(addr, size, vec) != 0:
                    raise OSError(ctypes.get_errno(), "mincore failed")
                resident = npages - bytes(vec).count(0)
            finally:
                self.munmap(addr, size)
        finally:
            os.close(fd)
        return min(resident * self.page, size), size


_MINCORE = _Mincore()


def residency(paths: list[str]) -> float | None:
    """Fraction of the bytes of ``paths`` in the page cache; None if mincore is unavailable."""
    if not _MINCORE.ok or not paths:
        return None
    res = tot = 0
    try:
        for p in paths:
            r, s = _MINCORE.resident_bytes(p)
            res += r
            tot += s
    except OSError:
        return None
    return res / tot if tot else None


# ------------------------------------------------------------------------------------------------
# synthetic data


@dataclass
class Data:
    name: str
    target: Path          # what the tools are pointed at (a directory, or the single file)
    files: list[str]      # every data file (absolute), for priming and eviction
    nbytes: int
    sample: list[str] = field(default_factory=list)  # files whose residency we check

    @property
    def nfiles(self) -> int:
        return len(self.files)


_BLOCK: bytearray | None = None


def _block() -> bytearray:
    global _BLOCK
    if _BLOCK is None:
        _BLOCK = bytearray(os.urandom(8 * MiB))
    return _BLOCK


def write_random(path: Path, size: int, seed: int) -> None:
    """``size`` bytes of incompressible, non-repeating data (a random block, stamped per chunk)."""
    block = _block()
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        off, i = 0, 0
        while off < size:
            struct.pack_into("<QQ", block, 0, seed, i)
            n = min(len(block), size - off)
            f.write(memoryview(block)[:n])
            off += n
            i += 1
    os.replace(tmp, path)


def small_file_bytes(name: str, size: int) -> bytes:
    """A JSON-ish text file of exactly ``size`` bytes with a ``bench_nonce`` marker near the top."""
    head = f'{{"bench_nonce": "{0:016x}", "file": "{name}", "pad": "'.encode()
    tail = b'"}\n'
    pad = max(0, size - len(head) - len(tail))
    body = (b"modelsign-bench " * (pad // 16 + 1))[:pad]
    return head + body + tail


def _ensure_file(path: Path, size: int, make: Callable[[Path], None]) -> None:
    if path.is_file() and not path.is_symlink() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    make(path)


def _ensure_link(path: Path, src: Path) -> None:
    """A hard link to ``src`` (same bytes, no extra disk), or a copy where links are refused."""
    size = src.stat().st_size
    if path.is_file() and not path.is_symlink() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    try:
        os.link(src, path)
    except OSError:
        shutil.copyfile(src, path)


def _prune(root: Path, keep: set[Path]) -> None:
    """Remove files a previous run (of another size) left behind."""
    if not root.is_dir():
        return
    for dirpath, _dirs, files in os.walk(root):
        for fn in files:
            p = Path(dirpath) / fn
            if p not in keep:
                p.unlink()


def build_data(workdir: Path, sz: dict[str, int], wanted: set[str]) -> dict[str, Data]:
    """Create (or reuse, when sizes match) the data sets in ``wanted`` and their dependencies."""
    deps = {"incr": {"model"}, "sign2g": {"model"}, "verify_ms": {"verify"},
            "verify_peer": {"verify"}}
    need = set(wanted)
    for w in wanted:
        need |= deps.get(w, set())
    out: dict[str, Data] = {}
    small = {
        "config.json": 1 * KiB, "generation_config.json": 256, "tokenizer.json": sz["tokenizer"],
        "tokenizer_config.json": 2 * KiB, "special_tokens_map.json": 512,
        "model.safetensors.index.json": 24 * KiB, "README.md": 4 * KiB,
    }

    def _smalls(d: Path, keep: set[Path]) -> list[Path]:
        paths = []
        for name, size in small.items():
            p = d / name
            _ensure_file(p, size, lambda q, n=name, s=size: q.write_bytes(small_file_bytes(n, s)))
            keep.add(p)
            paths.append(p)
        return paths

    def _data(name: str, target: Path, paths: list[Path], sample: list[Path] | None = None) -> Data:
        files = sorted(str(p) for p in paths)
        nbytes = sum(os.path.getsize(f) for f in files)
        smp = [str(p) for p in sample] if sample is not None else files
        return Data(name, target, files, nbytes, smp)

    n = sz["n_shards"]
    shards = [workdir / "model" / f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    if need & {"model", "incr", "sign2g"}:
        log(f"data: model ({n} x {sz['shard'] / MiB:.0f} MiB + small files)")
        keep: set[Path] = set()
        for i, p in enumerate(shards):
            _ensure_file(p, sz["shard"], lambda q, i=i: write_random(q, sz["shard"], 1000 + i))
            keep.add(p)
        sm = _smalls(workdir / "model", keep)
        _prune(workdir / "model", keep)
        out["model"] = _data("model", workdir / "model", shards + sm)
    if "incr" in need:
        d = workdir / "incr"
        keep = set()
        links = []
        for p in shards:
            _ensure_link(d / p.name, p)
            keep.add(d / p.name)
            links.append(d / p.name)
        sm = _smalls(d, keep)
        _prune(d, keep)
        out["incr"] = _data("incr", d, links + sm)
    if "sign2g" in need:
        d = workdir / "sign2g"
        keep = set()
        links = []
        for p in shards[: sz["sign_shards"]]:
            _ensure_link(d / p.name, p)
            keep.add(d / p.name)
            links.append(d / p.name)
        sm = _smalls(d, keep)
        _prune(d, keep)
        out["sign2g"] = _data("sign2g", d, links + sm)
    if "single" in need:
        log(f"data: single file ({sz['single'] / MiB:.0f} MiB)")
        p = workdir / "single" / "model.bin"
        _ensure_file(p, sz["single"], lambda q: write_random(q, sz["single"], 2000))
        _prune(workdir / "single", {p})
        out["single"] = _data("single", p, [p])
    if "dataset" in need:
        log(f"data: dataset ({sz['n_data']} x {sz['data_file'] / KiB:.0f} KiB)")
        d = workdir / "dataset"
        keep = set()
        paths = []
        for i in range(sz["n_data"]):
            p = d / f"part-{i // 1000:03d}" / f"sample-{i:06d}.bin"
            _ensure_file(p, sz["data_file"], lambda q: q.write_bytes(os.urandom(sz["data_file"])))
            keep.add(p)
            paths.append(p)
        _prune(d, keep)
        step = max(1, len(paths) // 1000)
        out["dataset"] = _data("dataset", d, paths, paths[::step])
    if need & {"verify_ms", "verify_peer"}:
        log(f"data: verification model ({sz['verify_weights'] / 1e6:.0f} MB)")
        w = workdir / "verify-src" / "model.safetensors"
        _ensure_file(w, sz["verify_weights"], lambda q: write_random(q, sz["verify_weights"], 3000))
        _prune(workdir / "verify-src", {w})
        for name in ("verify_ms", "verify_peer"):
            d = workdir / name.replace("_", "-")
            keep = {d / "model.safetensors"}
            _ensure_link(d / "model.safetensors", w)
            sm = _smalls(d, keep)
            _prune(d, keep)  # also drops an old model.sig: the row's setup signs again
            out[name] = _data(name, d, [d / "model.safetensors"] + sm)
    os.sync()  # dirty pages cannot be evicted: write everything back before any cold run
    return out


def make_keys(d: Path) -> tuple[Path, Path]:
    """An EC P-256 key pair (PEM, unencrypted) for both tools' key signing."""
    priv, pub = d / "signing-key.pem", d / "signing-pub.pem"
    if priv.is_file() and pub.is_file():
        return priv, pub
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


# ------------------------------------------------------------------------------------------------
# the code the API rows run in their own interpreter (so RSS and imports are the tool's own)

MODELSIGN_API = TOUCH_SRC + r'''
import json, os, sys, time
p = json.loads(sys.argv[1])
from modelsign import HashSpec, hash_model
kw = {}
if p.get("executor") == "dask":  # cluster started (and checked) before the clock starts
    import atexit
    from modelsign.hashing._dask import dask_executor
    _cluster = dask_executor()
    kw["executor"] = _cluster.__enter__()
    atexit.register(_cluster.__exit__, None, None, None)  # an open cluster hangs the exit
elif p.get("executor") not in (None, "threads"):
    raise SystemExit("unknown --executor %r" % p["executor"])
def once(use_cache):
    spec = HashSpec(method=p["method"], use_cache=use_cache)
    t = time.perf_counter()
    m = hash_model(p["path"], spec, **kw)
    return time.perf_counter() - t, m.root_hex, len(m.resources)
out = {}
if p["mode"] == "plain":
    out["elapsed"], out["root"], out["resources"] = once(False)
else:  # incremental: full hash into an empty cache, change one small file, hash again
    out["full"], out["root_full"], _ = once(True)
    bench_touch(p["touch"])
    out["elapsed"], out["root"], out["resources"] = once(True)
    if p.get("check"):
        _, out["root_nocache"], _ = once(False)
print(json.dumps(out))
'''

MODEL_SIGNING_API = r'''
import hashlib, json, sys, time
p = json.loads(sys.argv[1])
from model_signing import hashing
cfg = hashing.Config()
cfg = cfg.use_shard_serialization() if p["method"] == "shards" else cfg.use_file_serialization()
t = time.perf_counter()
m = cfg.hash(p["path"])
dt = time.perf_counter() - t
h = hashlib.sha256()
n = 0
for d in m.resource_descriptors():
    h.update(d.digest.digest_value)
    n += 1
print(json.dumps({"elapsed": dt, "root": h.hexdigest(), "resources": n}))
'''


# Issue 7's "what verification adds to a load": in a process that is already running (the one
# that loads the model), the import of the verifier plus one full verification (no cache).
MODELSIGN_API_VERIFY = r"""
import json, sys, time
p = json.loads(sys.argv[1])
t = time.perf_counter()
from modelsign.verify import verify_model
t1 = time.perf_counter()
r = verify_model(p["path"], key=p["key"])
t2 = time.perf_counter()
print(json.dumps({"elapsed": t2 - t, "import_s": t1 - t, "verify_s": t2 - t1,
                  "root": r.root_digest, "resources": len(r.files)}))
"""

MODEL_SIGNING_API_VERIFY = r"""
import json, sys, time
p = json.loads(sys.argv[1])
t = time.perf_counter()
import model_signing
t1 = time.perf_counter()
model_signing.verifying.Config().use_elliptic_key_verifier(
    public_key=p["key"]).verify(p["path"], p["signature"])
t2 = time.perf_counter()
print(json.dumps({"elapsed": t2 - t, "import_s": t1 - t, "verify_s": t2 - t1}))
"""


# ------------------------------------------------------------------------------------------------
# rows


@dataclass
class Sample:
    elapsed: float
    maxrss_kb: int | None = None
    digest: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Spec:
    name: str
    group: str            # model | single | incremental | startup | dataset | sign | verify
    tool: str             # openssl | model_signing | modelsign
    interface: str        # api | cli | dgst
    cache: str            # warm | cold | -
    unit: str             # GB/s | files/s | runs/s
    data: str | None
    run: Callable[[Ctx, int, int], Sample]
    desc: str
    peer: str | None = None
    setup: Callable[[Ctx], None] | None = None
    reps: int | None = None
    method: str = "files"

    def tags(self) -> set[str]:
        return {self.group, self.tool, self.interface, self.cache, self.name}


@dataclass
class Ctx:
    args: argparse.Namespace
    sz: dict[str, int]
    workdir: Path
    cores: int
    data: dict[str, Data] = field(default_factory=dict)
    key: Path | None = None
    pub: Path | None = None
    modelsign: str | None = None
    model_signing: str | None = None
    seq: int = 0

    @property
    def timeout(self) -> float:
        return float(self.sz["timeout"])

    def env(self, cache_dir: Path | None = None) -> dict[str, str]:
        """The children's environment: never the user's modelsign cache, never a TTY UI."""
        env = dict(os.environ)
        if cache_dir is None:
            self.seq += 1
            cache_dir = self.workdir / "cache" / f"run-{os.getpid()}-{self.seq}"
        env["MODELSIGN_CACHE_DIR"] = str(cache_dir)
        env["NO_COLOR"] = "1"
        env.pop("MODELSIGN_DEBUG", None)
        # Both tools run as installed: model_signing's bytecode was compiled by pip; let Python
        # cache modelsign's too (an editable checkout would otherwise recompile it every run).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def fresh_cache(self) -> Path:
        self.seq += 1
        d = self.workdir / "cache" / f"run-{os.getpid()}-{self.seq}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def exe(self, which: str) -> str:
        path = getattr(self, which)
        if not path:
            raise BenchError(f"{which.replace('_', '-')} executable not found beside "
                             f"{sys.executable} or on PATH")
        return str(path)

    def out(self, name: str) -> Path:
        d = self.workdir / "out"
        d.mkdir(parents=True, exist_ok=True)
        return d / name


def _api(ctx: Ctx, code: str, params: dict[str, Any], env: dict[str, str] | None = None
         ) -> tuple[Proc, dict[str, Any]]:
    proc = run_proc([sys.executable, "-c", code, json.dumps(params)], env=env or ctx.env(),
                    timeout=ctx.timeout)
    if proc.rc != 0:
        raise BenchError(proc.fail_message())
    try:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise BenchError(f"unreadable child output: {proc.stdout[-200:]!r}") from e
    return proc, res


def _ms_hash_argv(ctx: Ctx, path: Path, *, method: str, cache: bool) -> list[str]:
    argv = [ctx.exe("modelsign"), "hash", str(path)]
    if method != "files":
        argv += ["--method", method]
    if not cache:
        argv.append("--no-cache")
    if ctx.args.executor:
        argv += ["--executor", ctx.args.executor]
    return argv


_ROOT_RE = re.compile(r"sha256:([0-9a-f]{64})")


def _cli_digest(proc: Proc) -> str | None:
    m = _ROOT_RE.search(proc.stdout)
    return m.group(1) if m else None


# --- row runners (one timed repetition each) ----------------------------------------------------


def openssl_dgst(data: str) -> Callable[[Ctx, int, int], Sample]:
    """``openssl dgst -sha256`` over every file, one process per core at a time (like xargs -P)."""
    def run(ctx: Ctx, rep: int, reps: int) -> Sample:
        d = ctx.data[data]
        files = sorted(d.files, key=os.path.getsize, reverse=True)
        target = max(1, d.nbytes // (ctx.cores * 4))
        batches: list[list[str]] = []
        cur: list[str] = []
        cur_bytes = 0
        for f in files:
            s = os.path.getsize(f)
            cur.append(f)
            cur_bytes += s
            if cur_bytes >= target or len(cur) >= 500:
                batches.append(cur)
                cur, cur_bytes = [], 0
        if cur:
            batches.append(cur)
        openssl = shutil.which("openssl")
        if not openssl:
            raise BenchError("openssl not found on PATH")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=ctx.cores) as pool:
            procs = list(pool.map(
                lambda b: run_proc([openssl, "dgst", "-sha256", *b], timeout=ctx.timeout),
                batches))
        elapsed = time.perf_counter() - t0
        for p in procs:
            if p.rc != 0:
                raise BenchError(p.fail_message())
        return Sample(elapsed, max(p.maxrss_kb for p in procs),
                      extra={"processes": len(procs)})
    return run


def model_signing_api(data: str, method: str) -> Callable[[Ctx, int, int], Sample]:
    def run(ctx: Ctx, rep: int, reps: int) -> Sample:
        proc, res = _api(ctx, MODEL_SIGNING_API,
                         {"path": str(ctx.data[data].target), "method": method})
        return Sample(res["elapsed"], proc.maxrss_kb, res.get("root"))
    return run


def modelsign_api(data: str, method: str, *, sha256: str | None = None
                  ) -> Callable[[Ctx, int, int], Sample]:
    """``hash_model``; ``sha256="hashlib"`` turns the two-lane SHA-256 off (decision 0012)."""
    def run(ctx: Ctx, rep: int, reps: int) -> Sample:
        env = ctx.env()
        if sha256 is not None:
            env["MODELSIGN_SHA256"] = sha256
        proc, res = _api(ctx, MODELSIGN_API, {
            "path": str(ctx.data[data].target), "method": method, "mode": "plain",
            "executor": ctx.args.executor}, env=env)
        return Sample(res["elapsed"], proc.maxrss_kb, res.get("root"))
    return run


def modelsign_cli_hash(data: str, method: str) -> Callable[[Ctx, int, int], Sample]:
    def run(ctx: Ctx, rep: int, reps: int) -> Sample:
        proc = run_proc(_ms_hash_argv(ctx, ctx.data[data].target, method=method, cache=False),
                        env=ctx.env(), timeout=ctx.timeout)
        if proc.rc != 0:
            raise BenchError(proc.fail_message())
        digest = _cli_digest(proc)
        if digest is None:
            raise BenchError(f"no 'sha256:<digest>' in the output: {proc.stdout[:200]!r}")
        return Sample(proc.elapsed, proc.maxrss_kb, digest)
    return run


def model_signing_cli_sign(data: str) -> Callable[[Ctx, int, int], Sample]:
    """``model_signing sign key``: its CLI has no hash-only command, so this is its end to end."""
    def run(ctx: Ctx, rep: int, reps: int) -> Sample:
        sig = ctx.out(f"model_signing-{data}.sig")
        sig.unlink(missing_ok=True)
        proc = run_proc([ctx.exe("model_signing"), "sign", "key", str(ctx.data[data].target),
                         "--signature", str(sig), "--private_key", str(ctx.key)],
                        env=ctx.env(), timeout=ctx.timeout)
        if proc.rc != 0:
            raise BenchError(proc.fail_message())
        if not sig.is_file():
            raise BenchError(f"model_signing exited 0 but wrote no {sig}")
        return Sample(proc.elapsed, proc.maxrss_kb)
    return run


def modelsign_cli_sign(data: str) -> Callable[[Ctx, int, int], Sample]:
    """``modelsign sign --key``, first signature of this tree (empty cache, as a fresh user)."""
    def run(ctx: Ctx, rep: int, reps: int) -> Sample:
        sig = ctx.out(f"modelsign-{data}.sig")
        sig.unlink(missing_ok=True)
        proc = run_proc([ctx.exe("modelsign"), "sign", str(ctx.data[data].target),
                         "--key", str(ctx.key), "--output", str(sig)],
                        env=ctx.env(ctx.fresh_cache()), timeout=ctx.timeout)
        if proc.rc != 0:
            raise BenchError(proc.fail_message())
        if not sig.is_file():
            raise BenchError(f"modelsign sign exited 0 but wrote no {sig}")
        return Sample(proc.elapsed, proc.maxrss_kb)
    return run


def modelsign_api_incremental(ctx: Ctx, rep: int, reps: int) -> Sample:
    d = ctx.data["incr"]
    proc, res = _api(ctx, MODELSIGN_API, {
        "path": str(d.target), "method": "files", "mode": "incremental",
        "touch": str(d.target / "config.json"), "check": rep == reps - 1,
        "executor": ctx.args.executor}, env=ctx.env(ctx.fresh_cache()))
    if res.get("root") == res.get("root_full"):
        raise BenchError("the root digest did not change after a file changed (stale cache?)")
    if "root_nocache" in res and res["root_nocache"] != res["root"]:
        raise BenchError(f"incremental digest {res['root'][:16]} != full re-hash "
                         f"{res['root_nocache'][:16]}: the cache served stale digests")
    return Sample(res["elapsed"], proc.maxrss_kb, res.get("root"), {"full_s": res["full"]})


def modelsign_cli_incremental(ctx: Ctx, rep: int, reps: int) -> Sample:
    d = ctx.data["incr"]
    env = ctx.env(ctx.fresh_cache())
    full = run_proc(_ms_hash_argv(ctx, d.target, method="files", cache=True), env=env,
                    timeout=ctx.timeout)
    if full.rc != 0:
        raise BenchError(full.fail_message())
    bench_touch(str(d.target / "config.json"))
    inc = run_proc(_ms_hash_argv(ctx, d.target, method="files", cache=True), env=env,
                   timeout=ctx.timeout)
    if inc.rc != 0:
        raise BenchError(inc.fail_message())
    d_full, d_inc = _cli_digest(full), _cli_digest(inc)
    if d_inc is None:
        raise BenchError(f"no 'sha256:<digest>' in the output: {inc.stdout[:200]!r}")
    if d_full == d_inc:
        raise BenchError("the root digest did not change after a file changed (stale cache?)")
    if rep == reps - 1:
        check = run_proc(_ms_hash_argv(ctx, d.target, method="files", cache=False),
                         env=ctx.env(), timeout=ctx.timeout)
        if check.rc == 0 and _cli_digest(check) != d_inc:
            raise BenchError("incremental digest != a --no-cache re-hash: the cache served "
                             "stale digests")
    return Sample(inc.elapsed, max(full.maxrss_kb, inc.maxrss_kb), d_inc,
                  {"full_s": full.elapsed})


def startup(which: str, argv_tail: list[str]) -> Callable[[Ctx, int, int], Sample]:
    def run(ctx: Ctx, rep: int, reps: int) -> Sample:
        proc = run_proc([ctx.exe(which), *argv_tail], env=ctx.env(), timeout=ctx.timeout)
        if proc.rc != 0:
            raise BenchError(proc.fail_message())
        return Sample(proc.elapsed, proc.maxrss_kb)
    return run


def _has_command(ctx: Ctx, command: str) -> bool:
    proc = run_proc([ctx.exe("modelsign"), command, "--help"], env=ctx.env(), timeout=60)
    return proc.rc == 0


def setup_verify_modelsign(ctx: Ctx) -> None:
    if not _has_command(ctx, "verify"):
        raise NotAvailable("n/a: `modelsign verify` does not exist yet")
    d = ctx.data["verify_ms"].target
    sig = d / "model.sig"
    sig.unlink(missing_ok=True)
    proc = run_proc([ctx.exe("modelsign"), "sign", str(d), "--key", str(ctx.key),
                     "--output", str(sig)], env=ctx.env(), timeout=ctx.timeout)
    if proc.rc != 0 or not sig.is_file():
        raise BenchError(f"setup (modelsign sign --key) failed: {proc.fail_message()}")


def setup_verify_peer(ctx: Ctx) -> None:
    d = ctx.data["verify_peer"].target
    sig = ctx.out("model_signing-verify.sig")
    sig.unlink(missing_ok=True)
    proc = run_proc([ctx.exe("model_signing"), "sign", "key", str(d), "--signature", str(sig),
                     "--private_key", str(ctx.key)], env=ctx.env(), timeout=ctx.timeout)
    if proc.rc != 0 or not sig.is_file():
        raise BenchError(f"setup (model_signing sign key) failed: {proc.fail_message()}")


def modelsign_cli_verify(ctx: Ctx, rep: int, reps: int) -> Sample:
    d = ctx.data["verify_ms"].target
    proc = run_proc([ctx.exe("modelsign"), "verify", str(d), "--key", str(ctx.pub)],
                    env=ctx.env(), timeout=ctx.timeout)
    if proc.rc != 0:
        raise BenchError(proc.fail_message())
    return Sample(proc.elapsed, proc.maxrss_kb)


def modelsign_api_verify(ctx: Ctx, rep: int, reps: int) -> Sample:
    proc, res = _api(ctx, MODELSIGN_API_VERIFY, {
        "path": str(ctx.data["verify_ms"].target), "key": str(ctx.pub)})
    return Sample(res["elapsed"], proc.maxrss_kb, res.get("root"),
                  {"import_s": res["import_s"], "verify_s": res["verify_s"]})


def model_signing_api_verify(ctx: Ctx, rep: int, reps: int) -> Sample:
    proc, res = _api(ctx, MODEL_SIGNING_API_VERIFY, {
        "path": str(ctx.data["verify_peer"].target), "key": str(ctx.pub),
        "signature": str(ctx.out("model_signing-verify.sig"))})
    return Sample(res["elapsed"], proc.maxrss_kb, None,
                  {"import_s": res["import_s"], "verify_s": res["verify_s"]})


def model_signing_cli_verify(ctx: Ctx, rep: int, reps: int) -> Sample:
    d = ctx.data["verify_peer"].target
    proc = run_proc([ctx.exe("model_signing"), "verify", "key", str(d), "--signature",
                     str(ctx.out("model_signing-verify.sig")), "--public_key", str(ctx.pub)],
                    env=ctx.env(), timeout=ctx.timeout)
    if proc.rc != 0:
        raise BenchError(proc.fail_message())
    return Sample(proc.elapsed, proc.maxrss_kb)


def all_specs(startup_reps: int) -> list[Spec]:
    S: list[Spec] = []
    for cache in ("warm", "cold"):
        S += [
            Spec(f"openssl.dgst.model.{cache}", "model", "openssl", "dgst", cache, "GB/s", "model",
                 openssl_dgst("model"),
                 "openssl dgst -sha256, one process per core, over the model's files"),
            Spec(f"model_signing.api.model.{cache}", "model", "model_signing", "api", cache,
                 "GB/s", "model", model_signing_api("model", "files"),
                 "model_signing.hashing.Config().use_file_serialization().hash(model)"),
            Spec(f"model_signing.cli.model.{cache}", "model", "model_signing", "cli", cache,
                 "GB/s", "model", model_signing_cli_sign("model"),
                 "model_signing sign key MODEL, process start to exit"),
            Spec(f"modelsign.api.model.{cache}", "model", "modelsign", "api", cache, "GB/s",
                 "model", modelsign_api("model", "files"),
                 "hash_model(model, HashSpec(use_cache=False))",
                 peer=f"model_signing.api.model.{cache}"),
            Spec(f"modelsign.cli.model.{cache}", "model", "modelsign", "cli", cache, "GB/s",
                 "model", modelsign_cli_hash("model", "files"),
                 "modelsign hash MODEL --no-cache, process start to exit",
                 peer=f"model_signing.cli.model.{cache}"),
        ]
        if cache == "warm":
            S.append(Spec("modelsign.api.model.warm.hashlib", "model", "modelsign", "api", cache,
                          "GB/s", "model", modelsign_api("model", "files", sha256="hashlib"),
                          "hash_model(model) with MODELSIGN_SHA256=hashlib (one lane per core)",
                          peer="model_signing.api.model.warm"))
    S.append(Spec("openssl.dgst.single.warm", "single", "openssl", "dgst", "warm", "GB/s",
                  "single", openssl_dgst("single"),
                  "openssl dgst -sha256 of the one file (a single process: one core)",
                  method="shards"))
    for cache in ("warm", "cold"):
        S += [
            Spec(f"model_signing.api.single.{cache}", "single", "model_signing", "api", cache,
                 "GB/s", "single", model_signing_api("single", "shards"),
                 "model_signing Config().use_shard_serialization().hash(file)", method="shards"),
            Spec(f"modelsign.api.single.{cache}", "single", "modelsign", "api", cache, "GB/s",
                 "single", modelsign_api("single", "shards"),
                 "hash_model(file, HashSpec(method='shards', use_cache=False))",
                 peer=f"model_signing.api.single.{cache}", method="shards"),
            Spec(f"modelsign.cli.single.{cache}", "single", "modelsign", "cli", cache, "GB/s",
                 "single", modelsign_cli_hash("single", "shards"),
                 "modelsign hash FILE --method shards --no-cache, process start to exit",
                 peer=f"model_signing.api.single.{cache}", method="shards"),
        ]
        if cache == "warm":
            S.append(Spec("modelsign.api.single.warm.hashlib", "single", "modelsign", "api",
                          cache, "GB/s", "single",
                          modelsign_api("single", "shards", sha256="hashlib"),
                          "hash_model(file, shards) with MODELSIGN_SHA256=hashlib",
                          peer="model_signing.api.single.warm", method="shards"))
    S += [
        Spec("modelsign.api.incremental", "incremental", "modelsign", "api", "warm", "GB/s",
             "incr", modelsign_api_incremental,
             "hash_model with the cache: full hash (empty cache) vs after one small file changed"),
        Spec("modelsign.cli.incremental", "incremental", "modelsign", "cli", "warm", "GB/s",
             "incr", modelsign_cli_incremental,
             "modelsign hash with the cache: full vs after one small file changed"),
        Spec("model_signing.cli.startup", "startup", "model_signing", "cli", "-", "runs/s", None,
             startup("model_signing", ["--help"]), "model_signing --help (it has no --version)",
             reps=startup_reps),
        Spec("modelsign.cli.startup", "startup", "modelsign", "cli", "-", "runs/s", None,
             startup("modelsign", ["--version"]), "modelsign --version",
             peer="model_signing.cli.startup", reps=startup_reps),
        Spec("openssl.dgst.dataset.warm", "dataset", "openssl", "dgst", "warm", "files/s",
             "dataset", openssl_dgst("dataset"),
             "openssl dgst -sha256, batches of files, one process per core"),
    ]
    for cache in ("warm", "cold"):
        S += [
            Spec(f"model_signing.api.dataset.{cache}", "dataset", "model_signing", "api", cache,
                 "files/s", "dataset", model_signing_api("dataset", "files"),
                 "model_signing hashing API over the dataset"),
            Spec(f"modelsign.api.dataset.{cache}", "dataset", "modelsign", "api", cache,
                 "files/s", "dataset", modelsign_api("dataset", "files"),
                 "hash_model(dataset, HashSpec(use_cache=False))",
                 peer=f"model_signing.api.dataset.{cache}"),
        ]
    S += [
        Spec("model_signing.cli.dataset.warm", "dataset", "model_signing", "cli", "warm",
             "files/s", "dataset", model_signing_cli_sign("dataset"),
             "model_signing sign key DATASET, process start to exit"),
        Spec("modelsign.cli.dataset.warm", "dataset", "modelsign", "cli", "warm", "files/s",
             "dataset", modelsign_cli_hash("dataset", "files"),
             "modelsign hash DATASET --no-cache, process start to exit",
             peer="model_signing.cli.dataset.warm"),
        Spec("model_signing.cli.sign.warm", "sign", "model_signing", "cli", "warm", "GB/s",
             "sign2g", model_signing_cli_sign("sign2g"),
             "model_signing sign key on the 2 GiB model, process start to exit"),
        Spec("modelsign.cli.sign.warm", "sign", "modelsign", "cli", "warm", "GB/s", "sign2g",
             modelsign_cli_sign("sign2g"),
             "modelsign sign --key on the 2 GiB model (empty cache), process start to exit",
             peer="model_signing.cli.sign.warm"),
        Spec("model_signing.cli.verify.warm", "verify", "model_signing", "cli", "warm", "GB/s",
             "verify_peer", model_signing_cli_verify,
             "model_signing verify key on the 90 MB model, process start to exit",
             setup=setup_verify_peer),
        Spec("modelsign.cli.verify.warm", "verify", "modelsign", "cli", "warm", "GB/s",
             "verify_ms", modelsign_cli_verify,
             "modelsign verify --key on the 90 MB model, process start to exit",
             peer="model_signing.cli.verify.warm", setup=setup_verify_modelsign),
        Spec("model_signing.api.verify.warm", "verify", "model_signing", "api", "warm", "GB/s",
             "verify_peer", model_signing_api_verify,
             "model_signing's verifying.Config().verify in a running interpreter: its import "
             "plus one verification of the 90 MB model",
             setup=setup_verify_peer),
        Spec("modelsign.api.verify.warm", "verify", "modelsign", "api", "warm", "GB/s",
             "verify_ms", modelsign_api_verify,
             "modelsign.verify.verify_model in a running interpreter: its import plus one "
             "full verification (no digest cache) of the 90 MB model",
             peer="model_signing.api.verify.warm", setup=setup_verify_modelsign),
    ]
    return S


def select(specs: list[Spec], only: str | None) -> list[Spec]:
    if not only:
        return specs
    toks = [t.strip() for t in only.split(",") if t.strip()]
    chosen = [s for s in specs
              if any(fnmatch.fnmatchcase(s.name, t) or t in s.tags() for t in toks)]
    if not chosen:
        names = ", ".join(s.name for s in specs)
        raise SystemExit(f"bench.py: --only {only!r} matches no row; rows: {names}")
    return chosen


# ------------------------------------------------------------------------------------------------
# the ceiling


_SPEED_RE = re.compile(r"^\s*sha-?256\s+([0-9.]+)k\s*$", re.M | re.I)


def parse_openssl_speed(text: str) -> float:
    """Bytes per second from ``openssl speed -evp sha256 -bytes 1048576`` (in 1000s of B/s)."""
    m = _SPEED_RE.findall(text)
    if not m:
        raise BenchError(f"cannot parse openssl speed output: {text.strip()[-200:]!r}")
    return float(m[-1]) * 1000.0


def openssl_speed(ctx: Ctx, processes: int = 1) -> float:
    """Bytes/s of `openssl speed -evp sha256 -bytes 1048576` (summed over `-multi` processes)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise BenchError("openssl not found on PATH")
    argv = [openssl, "speed", "-evp", "sha256", "-bytes", "1048576"]
    if processes > 1:
        argv += ["-multi", str(processes)]
    argv += ["-seconds", str(ctx.sz["speed_seconds"])]
    proc = run_proc(argv, timeout=120)
    if proc.rc != 0 and "seconds" in proc.stderr:  # very old openssl: no -seconds
        proc = run_proc(argv[:-2], timeout=120)
    if proc.rc != 0:
        raise BenchError(proc.fail_message())
    return parse_openssl_speed(proc.stdout + "\n" + proc.stderr)


def available_now(ctx: Ctx) -> float | None:
    """What all cores give *right now* (``openssl speed -multi``): other work on the machine
    shows up here, while the ceiling (one core x cores) does not notice it."""
    try:
        return openssl_speed(ctx, ctx.cores) / GB
    except Exception:  # noqa: BLE001 - informative only
        return None


def measure_ceiling(ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "ceiling", "group": "ceiling", "tool": "openssl", "interface": "speed",
        "cache": "-", "unit": "GB/s", "cores": ctx.cores,
        "desc": "cores x one-core rate of `openssl speed -evp sha256 -bytes 1048576`",
        "status": "ok", "error": None, "throughput": None, "one_core_GBps": None, "runs_GBps": [],
    }
    try:
        rates = [openssl_speed(ctx) for _ in range(ctx.args.repeat)]
        one = median(rates)
        out["runs_GBps"] = [r / GB for r in rates]
        out["one_core_GBps"] = one / GB
        out["throughput"] = one * ctx.cores / GB
    except Exception as e:  # noqa: BLE001 - a row reports, never kills the run
        out["status"], out["error"] = "error", f"error: {e}"
    out["available_start_GBps"] = available_now(ctx)
    return out


# ------------------------------------------------------------------------------------------------
# running a row


class RowRun:
    """One row being measured: its setup, its repetitions (which may be interleaved with another
    row's, see :func:`run_group`), and the summary of its samples."""

    def __init__(self, ctx: Ctx, spec: Spec) -> None:
        self.ctx, self.spec = ctx, spec
        self.d = d = ctx.data.get(spec.data) if spec.data else None
        self.row: dict[str, Any] = {
            "name": spec.name, "group": spec.group, "tool": spec.tool,
            "interface": spec.interface, "cache": spec.cache, "unit": spec.unit,
            "desc": spec.desc, "peer": spec.peer, "method": spec.method, "dataset": spec.data,
            "bytes": d.nbytes if d else None, "files": d.nfiles if d else None,
            "status": "ok", "error": None, "times_s": [], "median_s": None, "throughput": None,
            "pct_of_ceiling": None, "ratio_vs_peer": None, "peak_rss_mb": None,
            "resident_fraction": [], "digest": None, "digest_matches_peer": None,
        }
        self.row["loadavg_1min"] = os.getloadavg()[0]  # other work on the machine skews numbers
        self.samples: list[Sample] = []
        self.reps = spec.reps or ctx.args.repeat
        self.wall = 0.0

    def _guard(self, fn: Callable[[], None]) -> None:
        if self.row["status"] != "ok":
            return
        t = time.perf_counter()
        try:
            fn()
        except NotAvailable as e:
            self.row["status"], self.row["error"] = "n/a", str(e)
        except Exception as e:  # noqa: BLE001 - a row reports, never kills the run
            msg = str(e) or type(e).__name__
            if not isinstance(e, BenchError):
                msg = f"{type(e).__name__}: {msg}"
            self.row["status"], self.row["error"] = "error", f"error: {msg}"
        finally:
            self.wall += time.perf_counter() - t

    def setup(self) -> None:
        if self.spec.setup:
            setup = self.spec.setup
            self._guard(lambda: setup(self.ctx))

    def rep(self, rep: int) -> None:
        if rep >= self.reps:
            return

        def once() -> None:
            d, spec = self.d, self.spec
            if d is not None and spec.cache == "cold":
                evict(d.files)
            elif d is not None and spec.cache == "warm" and rep == 0:
                prime(d.files)
            if d is not None:
                self.row["resident_fraction"].append(residency(d.sample))
            s = spec.run(self.ctx, rep, self.reps)
            self.samples.append(s)
            self.row["times_s"].append(s.elapsed)
        self._guard(once)

    def finish(self) -> dict[str, Any]:
        row, spec, d, samples = self.row, self.spec, self.d, self.samples
        if row["status"] == "ok" and samples:
            med = median([s.elapsed for s in samples])
            row["median_s"] = med
            if spec.group == "incremental":
                full = median([s.extra["full_s"] for s in samples])
                row["full_times_s"] = [s.extra["full_s"] for s in samples]
                row["full_median_s"] = full
                row["incremental_median_s"] = med
                row["incremental_speedup"] = full / med if med > 0 else None
                row["throughput"] = (d.nbytes / full / GB) if d and full > 0 else None
            elif med <= 0:
                row["status"], row["error"] = "error", "error: measured a zero duration"
            elif spec.unit == "GB/s":
                row["throughput"] = d.nbytes / med / GB if d else None
            elif spec.unit == "files/s":
                row["throughput"] = d.nfiles / med if d else None
            elif spec.unit == "runs/s":
                row["throughput"] = 1.0 / med
            rss = [s.maxrss_kb for s in samples if s.maxrss_kb is not None]
            row["peak_rss_mb"] = max(rss) / 1024.0 if rss else None
            digests = {s.digest for s in samples if s.digest}
            if len(digests) > 1 and spec.group != "incremental":
                row["status"] = "error"
                row["error"] = "error: the root digest differed between repetitions"
            row["digest"] = next(iter(digests)) if len(digests) == 1 else None
            extra = [s.extra for s in samples if s.extra and spec.group != "incremental"]
            if extra:
                row["extra"] = extra[-1]
            if spec.group == "verify" and spec.interface == "api":
                row["import_median_s"] = median([s.extra["import_s"] for s in samples])
                row["verify_median_s"] = median([s.extra["verify_s"] for s in samples])
        if row["status"] != "ok":
            row["throughput"] = None
        row["wall_s"] = self.wall
        return row


def run_group(ctx: Ctx, specs: list[Spec]) -> list[dict[str, Any]]:
    """Measure rows whose ratio is reported (modelsign's and model_signing's on the same data)
    with their repetitions interleaved, in rotation (A B C, B C A, ...): on a shared machine
    whose load drifts, the tools then run under the same conditions."""
    runs = [RowRun(ctx, s) for s in specs]
    for r in runs:
        r.setup()
    for rep in range(max(r.reps for r in runs)):
        k = rep % len(runs)
        for r in runs[k:] + runs[:k]:
            r.rep(rep)
    return [r.finish() for r in runs]


def groups(specs: list[Spec]) -> list[list[Spec]]:
    """The selected rows in run order: each model_signing row with the selected modelsign rows
    measured against it (run interleaved), every other row alone."""
    by_name = {s.name: s for s in specs}
    out: list[list[Spec]] = []
    placed: set[str] = set()
    for s in specs:
        if s.name in placed:
            continue
        lead = by_name.get(s.peer) if s.peer else None
        lead = lead or s
        group = [g for g in [lead] + [f for f in specs if f.peer == lead.name]
                 if g.name not in placed]
        placed.update(g.name for g in group)
        out.append(group)
    return out


def derive(rows: list[dict[str, Any]], ceiling: dict[str, Any]) -> None:
    """Ratios, computed from the numbers in the rows (nothing is typed in)."""
    by_name = {r["name"]: r for r in rows}
    ceil = ceiling.get("throughput")
    # reference digests: what model_signing computed for the same data and method
    ref: dict[tuple[str, str], str] = {}
    for r in rows:
        if r["tool"] == "model_signing" and r.get("digest"):
            ref[(r["dataset"], r["method"])] = r["digest"]
    for r in rows:
        if r["status"] != "ok" or r["throughput"] is None:
            continue
        if r["unit"] == "GB/s" and ceil:
            r["pct_of_ceiling"] = 100.0 * r["throughput"] / ceil
        peer = by_name.get(r["peer"]) if r["peer"] else None
        if peer and peer["status"] == "ok" and peer["throughput"]:
            r["ratio_vs_peer"] = r["throughput"] / peer["throughput"]
        if r["tool"] == "modelsign" and r.get("digest") and (r["dataset"], r["method"]) in ref:
            r["digest_matches_peer"] = r["digest"] == ref[(r["dataset"], r["method"])]


# The speed targets of issues 2, 3 and 7, judged from the rows (full size only: smoke data is
# too small for start-up-dominated numbers to mean anything).
TARGETS: list[tuple[str, str, str, str, float, str]] = [
    # (issue, description, row, field, threshold, "min" | "max")
    ("#2", "API hashing of the model, warm, % of ceiling", "modelsign.api.model.warm",
     "pct_of_ceiling", 92.0, "min"),
    ("#2", "`modelsign hash` end to end, warm, % of ceiling", "modelsign.cli.model.warm",
     "pct_of_ceiling", 85.0, "min"),
    ("#2", "single 4 GiB file, shards mode (API), warm, % of ceiling", "modelsign.api.single.warm",
     "pct_of_ceiling", 90.0, "min"),
    ("#2", "single 4 GiB file, shards mode (CLI), warm, % of ceiling", "modelsign.cli.single.warm",
     "pct_of_ceiling", 90.0, "min"),
    ("#2", "re-hash after one small file changed (API): full / incremental",
     "modelsign.api.incremental", "incremental_speedup", 20.0, "min"),
    ("#2", "re-hash after one small file changed (CLI): full / incremental",
     "modelsign.cli.incremental", "incremental_speedup", 20.0, "min"),
    ("#2", "`modelsign --version` start-up, s", "modelsign.cli.startup", "median_s", 0.2, "max"),
    ("#2", "peak RSS hashing the 4 GiB file (CLI), MiB", "modelsign.cli.single.warm",
     "peak_rss_mb", 150.0, "max"),
    ("#2", "dataset files/s vs model_signing (API), warm", "modelsign.api.dataset.warm",
     "ratio_vs_peer", 2.0, "min"),
    ("#3", "`modelsign sign --key` vs `model_signing sign key`, 2 GiB, speed-up",
     "modelsign.cli.sign.warm", "ratio_vs_peer", 1.3, "min"),
    ("#7", "verification of the 90 MB model in a running process (import + verify_model), s",
     "modelsign.api.verify.warm", "median_s", 0.15, "max"),
]


def busy(result: dict[str, Any]) -> str | None:
    """A warning when other work on the machine took CPU from the benchmark, else None."""
    c = result["ceiling"]
    cores = c["cores"]
    why = []
    avail = [a for a in (c.get("available_start_GBps"), c.get("available_end_GBps"))
             if a is not None]
    if c.get("throughput") and avail and min(avail) < 0.8 * c["throughput"]:
        why.append(f"all {cores} cores gave only {min(avail):.2f} GB/s of SHA-256 at one point "
                   f"(ceiling {c['throughput']:.2f})")
    loads = [r["loadavg_1min"] for r in result["rows"] if r.get("loadavg_1min") is not None]
    if loads and max(loads) > cores:
        why.append(f"1-min load average up to {max(loads):.1f} on {cores} cores")
    if not why:
        return None
    return ("the machine was busy: " + "; ".join(why)
            + ". Absolute numbers and % of ceiling understate what the tools can do; "
              "side-by-side ratios are less affected but still noisy")


def judge(rows: list[dict[str, Any]], size: str) -> list[dict[str, Any]]:
    by_name = {r["name"]: r for r in rows}
    out = []
    for issue, desc, name, fld, thr, kind in TARGETS:
        r = by_name.get(name)
        val = r.get(fld) if r and r["status"] == "ok" else None
        if r is None:
            verdict = "not run"
        elif val is None:
            verdict = "n/a" if r["status"] == "n/a" else "no number"
        elif size != "full":
            verdict = "not judged"  # smoke data is too small to mean anything
        else:
            verdict = "PASS" if (val >= thr if kind == "min" else val < thr) else "FAIL"
        out.append({"issue": issue, "target": desc, "row": name, "field": fld,
                    "threshold": thr, "kind": kind, "value": val, "verdict": verdict})
    return out


# ------------------------------------------------------------------------------------------------
# machine info and output


def _fs_type(path: Path) -> str | None:
    try:
        best, fstype = "", None
        target = str(path.resolve())
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    mnt = parts[1].replace("\\040", " ")
                    if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) \
                            and len(mnt) >= len(best):
                        best, fstype = mnt, parts[2]
        return fstype
    except OSError:
        return None


def _version_of(dist: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001
        return None


def machine_info(ctx: Ctx) -> dict[str, Any]:
    cpu_model, sha_ni = None, None
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu_model = m.group(1).strip() if m else None
        fl = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        sha_ni = ("sha_ni" in fl.group(1).split()) if fl else None
    except OSError:
        pass
    try:
        ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        ossl = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    except (ValueError, OSError):
        mem = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "cores_used": ctx.cores,
        "cpu_model": cpu_model,
        "sha_ni": sha_ni,
        "memory_GiB": round(mem, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "openssl": ossl,
        "modelsign": _version_of("modelsign"),
        "model_signing": _version_of("model-signing"),
        "modelsign_commit": commit,
        "modelsign_sha256": _sha256_backend(),
        "workdir_fs": _fs_type(ctx.workdir),
        "loadavg_start": list(os.getloadavg()),
    }


def _sha256_backend() -> str:
    """Which SHA-256 modelsign's rows use: ``two-lane`` (decision 0012) or ``hashlib``."""
    code = ("from modelsign.hashing._fastsha import backend; "
            "print('two-lane' if backend() else 'hashlib')")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _fmt_tp(r: dict[str, Any]) -> str:
    v = r.get("throughput")
    if v is None:
        return "-"
    if r["unit"] == "GB/s":
        return f"{v:.2f} GB/s"
    if r["unit"] == "files/s":
        return f"{v:,.0f} files/s"
    return f"{v:.1f} runs/s"


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def table(result: dict[str, Any]) -> str:
    ceiling = result["ceiling"]
    rows = [ceiling] + result["rows"]
    head = ["row", "cache", "throughput", "% ceil", "vs m_s", "RSS MB", "median s", "resident",
            "notes"]
    lines = []
    for r in rows:
        notes = ""
        if r["status"] != "ok":
            notes = r["error"] or r["status"]
        elif r["name"] == "ceiling":
            notes = f"{r['cores']} x {r['one_core_GBps']:.2f} GB/s (one core)"
            av = [r.get("available_start_GBps"), r.get("available_end_GBps")]
            if any(a is not None for a in av):
                notes += ("; all cores now (openssl speed -multi): " + " -> ".join(
                    "?" if a is None else f"{a:.2f}" for a in av) + " GB/s (start -> end)")
        elif r["group"] == "incremental":
            sp = r.get("incremental_speedup")
            notes = (f"full {r['full_median_s']:.3f} s / incremental "
                     f"{r['incremental_median_s']:.3f} s = {sp:.1f}x")
        elif r.get("import_median_s") is not None:
            notes = (f"import {r['import_median_s']:.3f} s + verify "
                     f"{r['verify_median_s']:.3f} s")
        if r.get("digest_matches_peer") is False:
            notes = (notes + "; " if notes else "") + "ROOT DIGEST DIFFERS FROM model_signing"
        res = [x for x in r.get("resident_fraction") or [] if x is not None]
        lines.append([
            r["name"], r["cache"], _fmt_tp(r),
            f"{r['pct_of_ceiling']:.0f}%" if r.get("pct_of_ceiling") is not None
            else ("100%" if r["name"] == "ceiling" and r["status"] == "ok" else "-"),
            f"{r['ratio_vs_peer']:.2f}x" if r.get("ratio_vs_peer") is not None else "-",
            f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "-",
            _fmt_s(r.get("median_s")),
            f"{max(res) * 100:.0f}%" if res else "-",
            notes,
        ])
    widths = [max(len(head[i]), *(len(ln[i]) for ln in lines)) for i in range(len(head) - 1)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)) + "  notes",
           "  ".join("-" * w for w in widths) + "  -----"]
    for ln in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(ln, widths, strict=False)) + "  " + ln[-1])
    if result.get("busy"):
        out.append("")
        out.append("WARNING: " + result["busy"])
    if result.get("targets"):
        out.append("")
        out.append("targets (issues 2, 3, 7)" + (":" if result["config"]["size"] == "full"
                                                  else ", not judged at this size:"))
        for t in result["targets"]:
            if t["verdict"] == "not run":
                continue
            op = ">=" if t["kind"] == "min" else "<"
            val = "-" if t["value"] is None else f"{t['value']:.3g}"
            out.append(f"  {t['verdict']:<10} {t['issue']} {t['target']}: {val} "
                       f"(want {op} {t['threshold']:g})")
    m = result["machine"]
    cfg = result["config"]
    out.append("")
    out.append(f"{m['cpu_count']} CPUs ({m['cpu_model']}, sha_ni={m['sha_ni']}), "
               f"modelsign SHA-256: {m.get('modelsign_sha256', 'unknown')}, "
               f"{m['openssl']}, Python {m['python']}, {m['date']}, "
               f"load {m['loadavg_start'][0]:.2f} -> {m.get('loadavg_end', [0])[0]:.2f}, "
               f"workdir fs {m['workdir_fs']}")
    out.append(f"size={cfg['size']} repeat={cfg['repeat']} (medians); GB/s = 1e9 B/s; "
               "vs m_s = throughput / model_signing's for the same data (>1: modelsign faster); "
               "resident = share of the data in the page cache just before the run "
               "(cold rows: after posix_fadvise DONTNEED)")
    return "\n".join(out)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Hashing/signing benchmark: modelsign vs model_signing vs openssl vs the "
                    "hardware ceiling, warm and cold page cache.")
    ap.add_argument("--size", choices=sorted(SIZES), default="full",
                    help="full: 4 x 1 GiB model, 4 GiB file, 20,000 x 4 KiB dataset; "
                         "smoke: tiny sizes for CI (default: full)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions per row (median; default 3)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the synthetic data lives (reused when sizes match; default "
                         f"{tempfile.gettempdir()}/modelsign-bench-SIZE)")
    ap.add_argument("--json", type=Path, default=REPO / "bench-results" / "bench.json",
                    help="result file (default: bench-results/bench.json in the repo)")
    ap.add_argument("--only", default=None,
                    help="comma-separated row names, globs (modelsign.*) or tags (model, single, "
                         "incremental, startup, dataset, sign, verify, warm, cold, api, cli, "
                         "openssl, modelsign, model_signing)")
    ap.add_argument("--executor", default=None,
                    help="passed through to `modelsign hash --executor` and hash_model(executor=)")
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    ap.add_argument("--prepare-only", action="store_true",
                    help="build (or check) the synthetic data for the selected rows and exit")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sz = SIZES[args.size]
    startup_reps = args.repeat if args.size == "smoke" else max(args.repeat, 5)
    specs = select(all_specs(startup_reps), args.only)
    if args.list:
        for s in specs:
            print(f"{s.name:34s} {s.desc}")
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    workdir = (args.workdir or Path(tempfile.gettempdir()) / f"modelsign-bench-{args.size}")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(args, sz, workdir, cores, modelsign=find_exe("modelsign"),
              model_signing=find_exe("model_signing"))
    shutil.rmtree(workdir / "cache", ignore_errors=True)

    result: dict[str, Any] = {
        "schema": SCHEMA,
        "config": {"size": args.size, "repeat": args.repeat, "workdir": str(workdir),
                   "only": args.only, "executor": args.executor, "sizes": sz,
                   "modelsign_exe": ctx.modelsign, "model_signing_exe": ctx.model_signing,
                   "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])},
        "machine": machine_info(ctx),
    }
    t0 = time.perf_counter()
    wanted = {s.data for s in specs if s.data}
    try:
        ctx.data = build_data(workdir, sz, wanted)
    except OSError as e:
        log(f"cannot build the data in {workdir}: {e}")
        return 2
    result["data"] = {k: {"path": str(v.target), "bytes": v.nbytes, "files": v.nfiles}
                      for k, v in ctx.data.items()}
    result["data_build_s"] = time.perf_counter() - t0
    if args.prepare_only:
        for k, v in ctx.data.items():
            print(f"{k:12s} {v.nfiles:6d} files {v.nbytes / GiB:8.3f} GiB  {v.target}")
        return 0
    ctx.key, ctx.pub = make_keys(workdir / "keys")

    log("ceiling: openssl speed -evp sha256 -bytes 1048576")
    result["ceiling"] = measure_ceiling(ctx)
    result["rows"] = rows = []
    done: dict[str, dict[str, Any]] = {}
    for group in groups(specs):
        log(" + ".join(s.name for s in group) + (" (interleaved)" if len(group) > 1 else "")
            + " ...")
        for row in run_group(ctx, group):
            done[row["name"]] = row
            tp = _fmt_tp(row) if row["status"] == "ok" else row["error"]
            log(f"{row['name']}: {tp} ({row['wall_s']:.1f} s)")
        rows[:] = [done[s.name] for s in specs if s.name in done]  # the table keeps spec order
        derive(rows, result["ceiling"])
        write_json(args.json, result)  # partial results survive an interrupted run
    derive(rows, result["ceiling"])
    result["ceiling"]["available_end_GBps"] = available_now(ctx)
    result["busy"] = busy(result)
    result["targets"] = judge(rows, args.size)
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    result["total_s"] = time.perf_counter() - t0
    write_json(args.json, result)
    print(table(result))
    print(f"\nJSON: {args.json}")
    shutil.rmtree(workdir / "cache", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
