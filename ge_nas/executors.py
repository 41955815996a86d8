"""Executors: where evaluation tasks run (this process, local worker processes).

An executor takes plain-data tasks and yields (task index, Outcome) as each
completes; the caller records results in completion order. Every backend sets
torch's thread count per worker so workers never oversubscribe the cores.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Protocol

import torch

from ge_nas.evaluate import EvalTask, Outcome, evaluate
from ge_nas.metrics import FAILED, Metrics


class Executor(Protocol):
    """Runs evaluation tasks and yields (task index, outcome) as each completes."""

    workers: int
    threads: int  # torch threads per worker

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[tuple[int, Outcome]]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Evaluate tasks one after another in this process."""

    def __init__(self, threads: int = 1) -> None:
        self.workers = 1
        self.threads = threads

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        for index, task in enumerate(tasks):
            yield index, evaluate(task)

    def close(self) -> None:
        pass


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


class ProcessExecutor:
    """Evaluate tasks in a pool of worker processes, one torch thread group each."""

    def __init__(self, workers: int, threads: int) -> None:
        self.workers = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker, initargs=(self.threads,))
        return self._pool

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        pool = self._ensure_pool()
        futures: dict[Future[Outcome], int] = {pool.submit(evaluate, task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            yield futures[future], self._result(future)

    def _result(self, future: Future[Outcome]) -> Outcome:
        try:
            return future.result()
        except Exception as exc:  # the worker died (killed, out of memory): this task fails, the run goes on
            self.close()
            now = time.time()
            return Outcome(Metrics(FAILED, error=f"worker crashed: {type(exc).__name__}: {exc}"), "", now, now)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(kind: str, workers: int, cores: int | None = None) -> Executor:
    """Return the executor for kind ('auto', 'serial', 'processes')."""
    cores = cores or os.cpu_count() or 1
    if kind == "serial" or (kind == "auto" and workers <= 1):
        return SerialExecutor(threads=cores)
    return ProcessExecutor(workers, threads=max(1, cores // workers))
