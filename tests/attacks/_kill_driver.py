"""Kill ``modelsign`` commands with SIGKILL at random points; snapshot what they leave behind.

Run as a script by ``test_crash_safety.py`` (never imported by pytest)::

    python _kill_driver.py '<json config>'

Config: ``argv`` (the modelsign command line), ``model`` (the directory it writes into),
``files`` (names inside ``model`` to snapshot), ``snapshots`` (a directory), ``runs``, ``seed``,
``real`` (how many of the runs use the installed ``modelsign`` executable; the others are
forked from this process, which has imported modelsign already, so a kill lands in the command's
work rather than in Python's start-up).

For each run: start the command, sleep a random delay within the time one undisturbed run takes
(biased towards its end, where the writes are), SIGKILL it, wait, copy ``files`` into
``snapshots/<i>/``, list and remove temporary files left in ``model`` (recorded), and print one
JSON line: ``{"run": i, "killed": bool, "exit": code, "delay": s, "leftovers": [...]}``.
Before the first kill, undisturbed runs measure the time a run takes (the median of three forked
runs; one of the executable); the files after those runs are copied to ``snapshots/base/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _fork_run(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # child: run the command and leave without any of the parent's clean-up
        code = 3
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            from modelsign.cli._app import run

            code = run(argv)
        finally:
            os._exit(code)
    return pid


def _real_run(exe: str, argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([exe, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _status(status: int) -> tuple[bool, int | None]:
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) == signal.SIGKILL, None
    return False, os.WEXITSTATUS(status)


def _timed_full_run(argv: list[str]) -> float:
    t = time.monotonic()
    pid = _fork_run(argv)
    _, status = os.waitpid(pid, 0)
    killed, code = _status(status)
    if killed or code != 0:
        raise SystemExit(f"an undisturbed run failed (exit {code}): {argv}")
    return time.monotonic() - t


def _leftovers(model: Path, files: list[str]) -> list[str]:
    keep = set(files)
    out = []
    for p in model.iterdir():
        if p.name not in keep and p.name.startswith(".") and p.name.endswith(".tmp"):
            out.append(p.name)
            p.unlink()
    return sorted(out)


def main() -> None:
    cfg: dict[str, Any] = json.loads(sys.argv[1])
    argv: list[str] = cfg["argv"]
    model = Path(cfg["model"])
    files: list[str] = cfg["files"]
    snaps = Path(cfg["snapshots"])
    rng = random.Random(cfg["seed"])
    exe = str(Path(sys.executable).with_name("modelsign"))

    from modelsign.cli._app import app_for

    app_for(argv)  # warm: forked children start with the command's modules imported and built

    # the median of three undisturbed runs (the first may still be filling caches)
    forked = sorted(_timed_full_run(argv) for _ in range(3))[1]
    real_time = forked
    if cfg["real"]:
        t = time.monotonic()
        if _real_run(exe, argv).wait() != 0:
            raise SystemExit("an undisturbed run of the modelsign executable failed")
        real_time = time.monotonic() - t
    base = snaps / "base"  # the files after the undisturbed runs, before any kill
    base.mkdir(parents=True)
    for name in files:
        if (model / name).exists():
            shutil.copy2(model / name, base / name)
    for i in range(cfg["runs"]):
        real = i < cfg["real"]
        span = real_time if real else forked
        # half uniform over the whole run, half in its last fifth (hashing is done; signing
        # and writing happen there)
        delay = rng.uniform(0, span) if rng.random() < 0.5 else rng.uniform(0.8 * span,
                                                                            1.05 * span)
        if real:
            proc = _real_run(exe, argv)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
            killed, code = (rc == -signal.SIGKILL), (None if rc < 0 else rc)
        else:
            pid = _fork_run(argv)
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            killed, code = _status(status)
        here = snaps / str(i)
        here.mkdir(parents=True)
        for name in files:
            if (model / name).exists():
                shutil.copy2(model / name, here / name)
        print(json.dumps({"run": i, "killed": killed, "exit": code, "delay": round(delay, 4),
                          "real": real, "leftovers": _leftovers(model, files)}), flush=True)


if __name__ == "__main__":
    main()
