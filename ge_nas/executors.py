"""Executors: where evaluation tasks run (this process, local worker processes, a Dask cluster).

An executor takes plain-data tasks and yields (task index, Outcome) as each
completes; the caller records each result as it arrives. Every backend sets
torch's thread count per worker so workers never oversubscribe the cores.

A worker that dies mid-evaluation (killed, out of memory) costs the task one
retry; a second death makes it `failed`, and the run goes on. Training stops
itself at `--eval-timeout` (status `timeout`); a local worker that does not
come back within twice that plus a grace period is killed.

Each worker process owns one feature cache (ge_nas.feature_cache) of
`feature_cache_mb` (0: none) and hands it to every evaluation it runs: the
serial executor in its own process, a local worker in its loop, a Dask
worker through a worker plugin.

With several GPUs, local worker i trains on GPU i mod (number of GPUs) for
tasks whose device is `auto` or `cuda`; a task naming `cuda:N` or `cpu` keeps it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

import torch

from ge_nas.config import usable_cores
from ge_nas.errors import ConfigError
from ge_nas.feature_cache import FeatureCache
from ge_nas.metrics import FAILED, TIMEOUT, Metrics
from ge_nas.worker import EvalTask, Outcome, evaluate

log = logging.getLogger(__name__)

RETRIES = 1  # a task whose worker dies is tried once more, then it fails
GRACE_S = 60.0  # beyond 2 x --eval-timeout, a silent worker is killed


class Executor(Protocol):
    """Runs evaluation tasks and yields (task index, outcome) as each completes.

    tasks is consumed lazily: the next task is taken only when a worker is free,
    so a caller may compute it from the outcomes yielded so far.
    """

    workers: int
    threads: int  # torch threads per worker

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]: ...

    def close(self) -> None: ...


def _failure(status: str, error: str) -> Outcome:
    now = time.time()
    return Outcome(Metrics(status, error=error), "", now, now)


class SerialExecutor:
    """Evaluate tasks one after another in this process."""

    def __init__(self, threads: int = 1, *, feature_cache_mb: int = 0) -> None:
        self.workers = 1
        self.threads = threads
        self.cache = FeatureCache(feature_cache_mb) if feature_cache_mb else None

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        for index, task in enumerate(tasks):
            yield index, evaluate(task, self.cache)

    def close(self) -> None:
        pass


def worker_gpu(slot: int, gpus: int) -> int | None:
    """Return the GPU a worker slot trains on when there are several (one worker per GPU, round robin), else None."""
    return slot % gpus if gpus > 1 else None


def on_gpu(task: EvalTask, gpu: int | None) -> EvalTask:
    """Return task on the worker's GPU when its device leaves the choice open (auto or cuda)."""
    return (
        replace(task, device=f"cuda:{gpu}")
        if gpu is not None and task.device in ("auto", "cuda")
        else task
    )


def _worker_main(conn: Connection, gpu: int | None, feature_cache_mb: int = 0) -> None:
    """Evaluate (index, task) messages until None arrives; the body of a worker process (each task sets its threads)."""
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # Ctrl-C is the main process's to handle: it stops the workers
    cache = FeatureCache(feature_cache_mb) if feature_cache_mb else None  # this process's
    while (message := conn.recv()) is not None:
        index, task = message
        conn.send((index, evaluate(on_gpu(task, gpu), cache)))


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process from the spawn context
    conn: Connection
    job: tuple[int, EvalTask, float] | None = None  # (index, task, start time) while busy


class ProcessExecutor:
    """Evaluate tasks in N worker processes, each with its share of torch threads."""

    def __init__(
        self,
        workers: int,
        threads: int,
        *,
        grace_s: float = GRACE_S,
        gpus: int = 0,
        feature_cache_mb: int = 0,
    ) -> None:
        self.workers = workers
        self.threads = threads
        self.grace_s = grace_s
        self.feature_cache_mb = feature_cache_mb
        self.gpus = gpus  # GPUs to spread the workers over (0 or 1: no assignment)
        # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []

    def _start(self, slot: int) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, worker_gpu(slot, self.gpus), self.feature_cache_mb),
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def worker_pids(self) -> list[int]:
        """Return the process ids of the live workers."""
        return [w.process.pid for w in self._pool]

    def start(self) -> None:
        """Start the worker processes now rather than at the first task."""
        while len(self._pool) < self.workers:
            self._pool.append(self._start(len(self._pool)))

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        self.start()
        feed = enumerate(
            tasks
        )  # pulled only when a worker is free: a steady-state search breeds lazily
        queue: collections.deque[tuple[int, EvalTask]] = collections.deque()  # retries go first
        deaths: collections.Counter[int] = collections.Counter()
        while True:
            for worker in self._pool:
                if worker.job is None and (job := queue.popleft() if queue else next(feed, None)):
                    index, task = job
                    worker.conn.send((index, task))
                    worker.job = (index, task, time.monotonic())
            if not any(w.job for w in self._pool):
                return
            wait(
                [w.conn for w in self._pool if w.job]
                + [w.process.sentinel for w in self._pool if w.job],
                timeout=1.0,
            )
            for slot, worker in enumerate(self._pool):
                yield from self._check(slot, worker, queue, deaths)

    def _check(
        self,
        slot: int,
        worker: _Worker,
        queue: collections.deque[tuple[int, EvalTask]],
        deaths: collections.Counter[int],
    ) -> Iterator[tuple[int, Outcome]]:
        if worker.job is None:
            return
        index, task, started = worker.job
        if worker.conn.poll():
            try:
                done, outcome = worker.conn.recv()
            except (EOFError, OSError):
                pass  # the worker died while sending; handled as a death below
            else:
                worker.job = None
                yield done, outcome
                return
        if not worker.process.is_alive():
            yield from self._replace_dead(slot, worker, queue, deaths)
        elif (
            task.timeout_s is not None
            and time.monotonic() - started > 2 * task.timeout_s + self.grace_s
        ):
            self._kill(slot)
            yield (
                index,
                _failure(
                    TIMEOUT,
                    f"worker killed: no result {2 * task.timeout_s + self.grace_s:g} s after start",
                ),
            )

    def _replace_dead(
        self,
        slot: int,
        worker: _Worker,
        queue: collections.deque[tuple[int, EvalTask]],
        deaths: collections.Counter[int],
    ) -> Iterator[tuple[int, Outcome]]:
        index, task, _ = worker.job or (0, None, 0.0)
        code = worker.process.exitcode
        self._kill(slot)
        deaths[index] += 1
        if deaths[index] <= RETRIES:
            log.warning("worker died (exit code %s) evaluating task %d; retrying it", code, index)
            queue.appendleft((index, task))  # type: ignore[arg-type]
        else:
            yield index, _failure(FAILED, f"worker died twice (exit code {code})")

    def _kill(self, slot: int) -> None:
        old = self._pool[slot]
        if old.process.is_alive():
            old.process.kill()
        old.process.join(5)
        old.conn.close()
        self._pool[slot] = self._start(slot)

    def close(self) -> None:
        for worker in self._pool:
            if worker.job is None and worker.process.is_alive():
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            else:
                worker.process.kill()
        for worker in self._pool:
            worker.process.join(10)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        self._pool = []


class DaskExecutor:
    """Evaluate tasks on a Dask distributed cluster: an existing scheduler, or a local one."""

    def __init__(
        self,
        workers: int,
        threads: int,
        *,
        scheduler: str | None = None,
        feature_cache_mb: int = 0,
    ) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster

            from ge_nas.dask_cache import FeatureCachePlugin
        except ImportError:
            raise ConfigError(
                "--executor dask needs dask.distributed: pip install 'ge_nas[dask]'"
            ) from None
        self.threads = threads
        self._cluster = None
        dask.config.set({"distributed.scheduler.allowed-failures": RETRIES})
        if scheduler:
            try:
                self._client = Client(scheduler, timeout=30)
            except OSError as exc:
                raise ConfigError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
        else:
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            self._client = Client(self._cluster)
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})) or workers)
        if feature_cache_mb:
            self._client.register_plugin(FeatureCachePlugin(feature_cache_mb))

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        from distributed import as_completed

        feed = enumerate(tasks)  # pulled as workers free up, as the process pool does
        futures = {}
        for index, task in itertools.islice(feed, self.workers):
            futures[self._submit(task)] = index
        pending = as_completed(list(futures))
        for future in pending:
            try:
                outcome = future.result()
            except Exception as exc:  # KilledWorker and the like: this task fails, the run goes on
                outcome = _failure(FAILED, f"dask worker failed: {type(exc).__name__}: {exc}")
            yield futures.pop(future), outcome
            for index, task in itertools.islice(feed, 1):
                new = self._submit(task)
                futures[new] = index
                pending.add(new)

    def _submit(self, task: EvalTask) -> Any:
        from ge_nas.dask_cache import evaluate_on_worker

        return self._client.submit(evaluate_on_worker, task, pure=False, retries=RETRIES)

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


class Observed:
    """An executor that shows each outcome to on_outcome as it passes (e.g. to report cache notes)."""

    def __init__(self, executor: Executor, on_outcome: Callable[[Outcome], None]) -> None:
        self.executor = executor
        self.on_outcome = on_outcome
        self.workers = executor.workers
        self.threads = executor.threads

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        for index, outcome in self.executor.run(tasks):
            self.on_outcome(outcome)
            yield index, outcome

    def close(self) -> None:
        self.executor.close()


def make_executor(
    kind: str,
    workers: int,
    *,
    scheduler: str | None = None,
    cores: int | None = None,
    feature_cache_mb: int = 0,
) -> Executor:
    """Return the executor for kind ('auto', 'serial', 'processes', 'dask'), each worker with a
    feature cache of feature_cache_mb (0: none; a run passes its --feature-cache-mb)."""
    cores = cores or usable_cores()
    threads = max(1, cores // max(1, workers))
    mb = feature_cache_mb
    if kind == "dask":
        threads = 1 if scheduler else threads
        return DaskExecutor(workers, threads, scheduler=scheduler, feature_cache_mb=mb)
    if kind == "serial" or (kind == "auto" and workers <= 1):
        return SerialExecutor(threads=cores, feature_cache_mb=mb)
    gpus = torch.cuda.device_count()
    return ProcessExecutor(workers, threads=threads, gpus=gpus, feature_cache_mb=mb)
