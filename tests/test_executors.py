"""Executors: one test body over every backend; results never depend on where a task ran."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch
from test_worker import scores, task

from ge_nas.executors import ProcessExecutor, SerialExecutor, make_executor, on_gpu, worker_gpu
from ge_nas.worker import evaluate


@pytest.mark.parametrize(
    "make",
    [lambda: SerialExecutor(threads=1), lambda: ProcessExecutor(2, threads=1)],
    ids=["serial", "processes"],
)
def test_executors_agree(make) -> None:
    tasks = [
        task(),
        task("sepconv(8,3) relu | opt=adam lr=0.005 batch=64"),
        task("dense(16) conv(8,3)"),
    ]
    executor = make()
    try:
        results = dict(executor.run(tasks))
    finally:
        executor.close()
    assert sorted(results) == [0, 1, 2]
    for i, t in enumerate(tasks):
        assert scores(results[i].metrics) == scores(evaluate(t).metrics)


def test_make_executor() -> None:
    assert isinstance(make_executor("auto", 1), SerialExecutor)
    ex = make_executor("auto", 2, cores=2)
    assert isinstance(ex, ProcessExecutor) and ex.threads == 1
    assert isinstance(make_executor("serial", 4), SerialExecutor)


def test_workers_are_spread_over_gpus_round_robin() -> None:
    assert [worker_gpu(slot, 2) for slot in range(5)] == [0, 1, 0, 1, 0]
    assert [worker_gpu(slot, gpus) for slot in range(3) for gpus in (0, 1)] == [
        None
    ] * 6  # one GPU or none: device as asked


@pytest.mark.parametrize(
    ("asked", "expected"),
    [("auto", "cuda:1"), ("cuda", "cuda:1"), ("cuda:0", "cuda:0"), ("cpu", "cpu")],
)
def test_a_worker_gpu_replaces_only_an_open_device_choice(asked: str, expected: str) -> None:
    assert on_gpu(task(device=asked), 1).device == expected
    assert on_gpu(task(device=asked), None).device == asked


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the assignment through CUDA's absence"
)
def test_each_process_worker_trains_on_its_own_gpu() -> None:
    executor = ProcessExecutor(2, threads=1, gpus=2)
    try:
        results = dict(executor.run([task(device="auto"), task(device="auto"), task(device="cpu")]))
    finally:
        executor.close()
    errors = sorted(results[i].metrics.error for i in (0, 1))
    assert (
        "--device cuda:0" in errors[0] and "--device cuda:1" in errors[1]
    )  # each worker asked for its own GPU
    assert results[2].metrics.status == "ok"


def kill_workers(executor: ProcessExecutor, count: int, delay_s: float) -> threading.Thread:
    """Kill the first `count` worker processes that appear, each `delay_s` after it is seen."""

    def killer() -> None:
        killed: set[int] = set()
        deadline = time.monotonic() + 120
        while len(killed) < count and time.monotonic() < deadline:
            for pid in executor.worker_pids():
                if pid not in killed:
                    time.sleep(delay_s)
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(("kills", "status"), [(1, "ok"), (2, "failed")])
def test_worker_killed_mid_evaluation_costs_one_retry(kills: int, status: str) -> None:
    executor = ProcessExecutor(1, threads=1)
    executor.start()
    first_pid = executor.worker_pids()[0]
    try:
        killer = kill_workers(executor, kills, delay_s=1.0)
        results = dict(executor.run([task(epochs=2)]))
        killer.join(5)
    finally:
        executor.close()
    outcome = results[0]
    assert outcome.metrics.status == status
    if status == "ok":
        assert str(first_pid) not in outcome.worker
    else:
        assert "died twice" in outcome.metrics.error


@pytest.mark.distributed
def test_dask_local_cluster_agrees_with_serial() -> None:
    pytest.importorskip("distributed")
    from ge_nas.executors import DaskExecutor

    tasks = [
        task(),
        task("sepconv(8,3) relu | opt=adam lr=0.005 batch=64"),
        task("dense(16) conv(8,3)"),
    ]
    executor = DaskExecutor(2, threads=1)
    try:
        results = dict(executor.run(tasks))
    finally:
        executor.close()
    assert executor.workers == 2 and sorted(results) == [0, 1, 2]
    for i, t in enumerate(tasks):
        assert scores(results[i].metrics) == scores(evaluate(t).metrics)
