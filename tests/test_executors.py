"""Executors: one test body over every backend; results never depend on where a task ran."""

from __future__ import annotations

import pytest

from ge_nas.evaluate import evaluate
from ge_nas.executors import ProcessExecutor, SerialExecutor, make_executor
from test_evaluate import scores, task


@pytest.mark.parametrize("make", [lambda: SerialExecutor(threads=1), lambda: ProcessExecutor(2, threads=1)], ids=["serial", "processes"])
def test_executors_agree(make) -> None:
    tasks = [task(), task("sepconv(8,3) relu | opt=adam lr=0.005 batch=64"), task("dense(16) conv(8,3)")]
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
