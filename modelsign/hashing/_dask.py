"""Dask: run the hashing tasks on a cluster's workers (``--executor dask``).

:func:`dask_executor` connects to a scheduler (``tcp://HOST:PORT``) or starts a local cluster,
checks that every worker can run the tasks (modelsign of the same version importable, and the
storage backend a remote source needs), and yields a :class:`DaskExecutor`: the client's
``concurrent.futures`` executor with ``pure=False`` (tasks read data that can change, so Dask
must never reuse an earlier result for the same arguments), tasks run in the order submitted, and
arguments shipped as one opaque object. ``DaskExecutor(client)`` serves your own client too.

The probe sent to the workers is pickled *by value* (its module is ``__main__`` to cloudpickle),
so a worker without modelsign can still run it and say so, instead of failing to unpickle a task.

Nothing here imports dask before :func:`dask_executor` is called.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from functools import partial
from typing import Any, cast

from modelsign.errors import InputError

__all__ = ["DaskExecutor", "check_workers", "dask_executor"]

_SCHEDULER_RE = re.compile(r"^(tcp|tls|ws|wss|inproc|ucx)://[^/\s]+$")

# Run on each worker. Defined from source with __name__ == "__main__" so cloudpickle ships the
# code itself: the check must work on a worker that cannot import modelsign.
_PROBE_SRC = '''
def probe(modules, paths):
    import importlib, os, sys
    out = {"python": sys.version.split()[0], "missing": [], "version": None, "paths": []}
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except Exception as e:
            out["missing"].append("%s (%s: %s)" % (name, type(e).__name__, e))
            continue
        if name == "modelsign":
            out["version"] = getattr(mod, "__version__", None)
    for p in paths:
        if not os.path.exists(p):
            out["paths"].append(p)
    return out
'''


class _Call:
    """``fn(*args)`` as one opaque object. Dask walks into tuples, lists and dicts of a task's
    arguments (looking for other tasks), and a batch of 1,000 file entries as nested tuples costs
    it ~50 ms to submit; one object it does not open costs ~5 ms (measured on the 20,000-file
    dataset, docs/decisions/0011)."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Call, (self.fn, self.args))


def _run_call(call: _Call) -> Any:
    return call.fn(*call.args)


class DaskExecutor(Executor):
    """``client.get_executor(pure=False)``, with two changes that matter for hashing.

    * Tasks run in the order they are submitted (each gets a lower Dask priority than the one
      before): the plan submits the longest first, so the last tasks to finish are short. Dask
      does not promise that order for tasks of equal priority submitted together.
    * Arguments travel as one opaque object (:class:`_Call`), not as nested tuples Dask walks.

    ``pure=False``: tasks read data that can change, so Dask must never answer one from an
    earlier result with the same arguments.
    """

    def __init__(self, client: Any) -> None:
        self._inner = client.get_executor(pure=False)
        self._lock = threading.Lock()
        self._n = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._n += 1
            priority = -self._n
        call = _Call(partial(fn, **kwargs) if kwargs else fn, args)
        return cast("Future[Any]", self._inner.submit(_run_call, call, priority=priority))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait)


def _probe_function() -> Any:
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(_PROBE_SRC, "<modelsign worker probe>", "exec"), ns)  # our own source
    return ns["probe"]


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise InputError("--executor dask needs Dask's distributed package, which is not "
                         "installed", actual=str(e).splitlines()[0],
                         hint="pip install 'modelsign[dask]'") from None
    return distributed


def check_workers(client: Any, *, modules: Sequence[str] = ("modelsign",),
                  paths: Sequence[str] = (), timeout: float = 30.0) -> int:
    """Refuse workers that cannot run the tasks; return how many workers there are.

    ``modules`` must import on every worker (``modelsign`` at the version running here, the
    storage backend of a remote source); ``paths`` (local sources) must exist on every worker.
    """
    from modelsign import __version__

    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        raise InputError("the Dask cluster has no worker", path=str(client.scheduler.address),
                         expected=">= 1 worker", actual="0 after waiting",
                         hint="start workers with `dask worker SCHEDULER_ADDRESS`") from None
    try:
        answers = client.run(_probe_function(), list(modules), list(paths), on_error="return")
    except Exception as e:
        raise InputError(f"cannot run the worker check on the Dask cluster "
                         f"({type(e).__name__}: {e})",
                         hint="check that the workers run the same Python and Dask versions"
                         ) from None
    for worker, ans in sorted(answers.items()):
        if isinstance(ans, BaseException):
            raise InputError(f"the worker check failed on {worker} "
                             f"({type(ans).__name__}: {ans})",
                             hint="check the worker's Python and Dask versions") from None
        if ans["missing"]:
            raise InputError(f"Dask worker {worker} cannot import what hashing needs: "
                             + "; ".join(ans["missing"]),
                             hint=f"install modelsign=={__version__} on every worker (with the "
                                  "extra of the storage, e.g. pip install 'modelsign[dask,s3]')")
        if "modelsign" in modules and ans["version"] != __version__:
            raise InputError(f"Dask worker {worker} runs another modelsign version",
                             expected=__version__, actual=str(ans["version"]),
                             hint=f"install modelsign=={__version__} on every worker")
        if ans["paths"]:
            raise InputError(f"Dask worker {worker} cannot see the local path",
                             path=ans["paths"][0],
                             hint="a local path must be mounted at the same place on every "
                                  "worker (shared file system); or hash from object storage "
                                  "(s3://, gs://, hf://)")
    return len(answers)


@contextmanager
def dask_executor(
    scheduler: str | None = None,
    *,
    modules: Sequence[str] = ("modelsign",),
    paths: Sequence[str] = (),
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    processes: bool = True,
    connect_timeout: str | float | None = None,
) -> Iterator[Executor]:
    """An executor whose tasks run on Dask workers; checked before use, closed after.

    ``scheduler``: ``tcp://HOST:PORT`` of a running scheduler, or None for a ``LocalCluster``
    on this machine (``n_workers`` processes of ``threads_per_worker`` threads; by default one
    worker per core, one thread each). ``connect_timeout`` defaults to Dask's
    ``distributed.comm.timeouts.connect`` (set ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT``).
    See :func:`check_workers` for ``modules`` and ``paths``.
    """
    distributed = _import_distributed()
    cluster = None
    if scheduler is not None:
        if not _SCHEDULER_RE.match(scheduler):
            raise InputError("--scheduler is not a Dask scheduler address", actual=scheduler,
                             expected="tcp://HOST:PORT (or tls://HOST:PORT)")
        try:
            kw = {} if connect_timeout is None else {"timeout": connect_timeout}
            client = distributed.Client(scheduler, set_as_default=False, **kw)
        except (OSError, TimeoutError) as e:
            raise InputError("cannot reach the Dask scheduler", path=scheduler,
                             actual=str(e).splitlines()[0] if str(e) else type(e).__name__,
                             hint="check the address and that `dask scheduler` runs there "
                                  "(and is reachable through firewalls); "
                                  "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT sets how long "
                                  "to wait") from None
        except Exception as e:
            raise InputError(f"cannot connect to the Dask scheduler ({type(e).__name__}: {e})",
                             path=scheduler, hint="check the address and the Dask versions"
                             ) from None
    else:
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
        workers = n_workers or max(1, cores)
        try:
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=threads_per_worker or 1,
                processes=processes, dashboard_address=":0", silence_logs=40)
            client = distributed.Client(cluster, set_as_default=False)
        except Exception as e:
            if cluster is not None:
                cluster.close()
            raise InputError(f"cannot start a local Dask cluster ({type(e).__name__}: {e})",
                             hint="check that dask[distributed] is installed and works") from None
    try:
        check_workers(client, modules=modules, paths=paths)
        with DaskExecutor(client) as ex:
            yield ex
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
