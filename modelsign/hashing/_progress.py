"""Progress reporting: a rich bar (bytes, rate, ETA) on a terminal, nothing when piped.

``progress`` as accepted by :func:`modelsign.hashing.hash_tree`:

* ``None`` -- a bar when stderr is a terminal, else nothing;
* ``True`` / ``False`` -- always / never a bar;
* a callable -- called with the number of bytes just hashed (from worker threads), no bar.

rich is imported only when a bar is shown.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["Progress", "ProgressArg"]

ProgressArg = bool | None | Callable[[int], None]

#: Below this many bytes a bar would only flicker.
_MIN_BYTES_FOR_BAR = 64 << 20


class Progress:
    """Context manager; :meth:`advance` is thread-safe and cheap when nothing is shown."""

    def __init__(self, progress: ProgressArg, total_bytes: int, *, label: str = "hashing") -> None:
        self._callback: Callable[[int], None] | None = None
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()
        if callable(progress) and not isinstance(progress, bool):
            self._callback = progress
            return
        show = progress if progress is not None else (
            total_bytes >= _MIN_BYTES_FOR_BAR and _stderr_is_tty())
        if show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(label, total=total_bytes)

    @property
    def active(self) -> bool:
        return self._callback is not None or self._bar is not None

    def advance(self, n: int) -> None:
        if self._callback is not None:
            self._callback(n)
        elif self._bar is not None:
            with self._lock:
                self._bar.advance(self._task, n)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
