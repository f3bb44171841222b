"""Where a study's tasks run: the threaded scheduler of this process (the default), a new LocalCluster of worker
processes ('local') or an existing Dask cluster (its scheduler address), checked before a client connects; and
how many torch threads each task gets (``task_threads``)."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from ..errors import OnnxAttrError, first_line


def task_threads(threads: int | None, scheduler: str | None, tasks: int) -> int | None:
    """Threads for each task: ``threads`` when given; on this machine's threads or LocalCluster (one task per
    core at once) the cores shared among the tasks that run side by side, cores // min(tasks, cores) (1 for a
    study of several cells: two threads per task on two cores spin at every op boundary, benchmarks/README.md,
    "Threads"); a remote cluster's workers keep their own setting (None)."""
    if threads is not None or scheduler not in (None, "threads", "local"):
        return threads
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(tasks, cores)))


Done = Callable[[int, Any], None]  # called in this thread with (job index, result) as each job finishes


def _run_threads(fn: Callable, jobs: list[dict[str, Any]], done: Done) -> list[Any]:
    import dask
    from dask.callbacks import Callback

    tasks = [dask.delayed(fn, pure=False)(**kw) for kw in jobs]
    index = {t.key: i for i, t in enumerate(tasks)}

    class _Done(Callback):
        def _posttask(self, key, result, dsk, state, id):  # noqa: A002  (dask's signature)
            if key in index:
                done(index[key], result)

    with _Done():
        return list(dask.compute(*tasks, scheduler="threads"))


def _run_distributed(fn: Callable, jobs: list[dict[str, Any]], done: Done, client: Any) -> list[Any]:
    from distributed import as_completed

    futures = [client.submit(fn, pure=False, **kw) for kw in jobs]
    index = {f.key: i for i, f in enumerate(futures)}
    for future in as_completed(futures):
        done(index[future.key], future.result())
    return client.gather(futures)


def _check_address(address: str) -> None:
    """ValueError unless ``address`` is a Dask scheduler address: [scheme://]host:port, scheme one of Dask's."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    scheme, location = parse_address(address)
    if scheme not in backends:
        raise ValueError(f"unknown address scheme {scheme!r}; Dask's are {', '.join(sorted(backends))}")
    if scheme in ("tcp", "tls", "ws", "wss"):
        parse_host_port(location)


SCHEDULER_PROBE_S = 10.0  # seconds a Dask scheduler has to answer the connection handshake
WORKER_WAIT_S = 30.0  # seconds a scheduler without workers has to get one


def _probe_scheduler(address: str) -> None:
    """TimeoutError or OSError unless a Dask scheduler completes distributed's connection handshake at ``address``
    within ``SCHEDULER_PROBE_S`` seconds. Client() itself waits for ever on a port that accepts and stays silent,
    and reads an HTTP server's reply (a dashboard port) as a 3 EiB message. The probe runs its own event loop in
    a thread, so it works where one already runs (Jupyter)."""
    import asyncio

    from distributed.comm import connect

    seconds = SCHEDULER_PROBE_S

    async def probe() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=seconds), seconds)
        await comm.close()

    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(probe())
        except BaseException as err:  # noqa: BLE001  (reported below, whatever it is)
            failed.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds + 5)
    if thread.is_alive() or (failed and isinstance(failed[0], (TimeoutError, asyncio.TimeoutError))):
        raise TimeoutError(f"it does not answer as a Dask scheduler within {seconds:g} s")
    if failed:
        raise OSError(first_line(failed[0]) or f"{type(failed[0]).__name__} during the handshake")


class Runner:
    """Runs lists of tasks on the threaded scheduler (``None``/'threads'), a new LocalCluster of worker
    processes ('local') or an existing Dask cluster (its scheduler address, e.g. 'tcp://host:8786')."""

    def __init__(self, scheduler: str | None) -> None:
        self.scheduler = scheduler
        self.client = self.cluster = None
        if scheduler in (None, "threads"):
            return
        from distributed import Client, LocalCluster

        if scheduler == "local":
            self.cluster = LocalCluster(threads_per_worker=1, processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            try:
                _check_address(scheduler)  # before a client starts its event loop (a failed one breaks the next)
                _probe_scheduler(scheduler)  # a port that accepts but never answers hangs Client() for good
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as err:
                raise OnnxAttrError(
                    f"cannot reach the Dask scheduler {scheduler!r} ({first_line(err)}); pass 'threads', 'local' or the "
                    "scheduler's address, e.g. tcp://host:8786"
                ) from err
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                self.close()
                raise OnnxAttrError(
                    f"the Dask scheduler {scheduler!r} has no workers (waited {WORKER_WAIT_S:g} s); start some "
                    f"(dask worker {scheduler}) or pass --scheduler local"
                ) from None

    def run(self, fn: Callable, jobs: list[dict[str, Any]], done: Done | None = None) -> list[Any]:
        """Results of ``fn(**job)`` in job order; ``done`` sees each as it finishes."""
        if not jobs:
            return []
        done = done or (lambda i, r: None)
        if self.client is None:
            return _run_threads(fn, jobs, done)
        return _run_distributed(fn, jobs, done, self.client)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
