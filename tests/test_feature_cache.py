"""The frozen-feature cache: cached training equals uncached, frozen weights stay put, the cap holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ge_nas.arch import parse_arch
from ge_nas.cli import main
from ge_nas.executors import ProcessExecutor, SerialExecutor
from ge_nas.export import load_backbone
from ge_nas.feature_cache import MB, CacheNote, CacheTally, FeatureCache, FeatureKey, frozen_stop
from ge_nas.fidelity import backbone_digest
from ge_nas.metrics import Metrics
from ge_nas.network.build import build_model
from ge_nas.worker import EvalTask, evaluate

# Frozen blocks 1-3 (8 modules, bn included), then a trained block, dropout and shuffled batches.
HEAD = "dense(16) relu dropout(0.3) | opt=adam lr=0.01 batch=32"
FROZEN = f"backbone(keep=4, freeze=3) {HEAD}"


def task(backbone_dir: Path, phenotype: str = FROZEN, **kw: object) -> EvalTask:
    options = {"seed": 5, "epochs": 2, "train_subset": 0.5, "threads": 1}
    options.update(kw)
    digest = backbone_digest(str(backbone_dir))
    return EvalTask(phenotype, backbone=str(backbone_dir), backbone_digest=digest, **options)  # type: ignore[arg-type]


def scores(m: Metrics) -> tuple[object, ...]:
    return (m.status, m.val_accuracy, m.test_accuracy, m.epochs)


def key(part: str, network: str = "net") -> FeatureKey:
    return FeatureKey(network, "data", part, "cpu")


def tensor_mb(mb: float) -> torch.Tensor:
    return torch.zeros(int(mb * MB) // 4)  # float32


# --- the same network with and without the cache ---------------------------------------------------


def test_cached_and_uncached_training_give_the_same_metrics(
    backbone_dir: Path, one_thread: None
) -> None:
    t = task(backbone_dir)
    uncached = evaluate(t)
    cache = FeatureCache(64)
    first, second = evaluate(t, cache), evaluate(t, cache)
    assert uncached.cache is None and first.cache is not None and second.cache is not None
    assert [text.rsplit(" | ", 1)[1] for text, _ in first.cache.made] == [
        "train (cpu)", "val (cpu)", "test (cpu)",
    ]  # fmt: skip
    assert second.cache.hits == 3 and not second.cache.made
    for outcome in (first, second):
        assert scores(outcome.metrics) == scores(uncached.metrics)
        assert outcome.metrics.val_loss == pytest.approx(uncached.metrics.val_loss, rel=1e-6)


def test_blr_groups_and_sgd_train_alike_with_the_cache(
    backbone_dir: Path, one_thread: None
) -> None:
    """Unfrozen backbone blocks after the cached ones keep their lr x blr group."""
    t = task(backbone_dir, "backbone(keep=5, freeze=2) bn dropout(0.2) | opt=sgd lr=0.01 blr=0.3")
    uncached, cached = evaluate(t), evaluate(t, FeatureCache(64))
    assert cached.cache is not None and cached.cache.made
    assert scores(cached.metrics) == scores(uncached.metrics)
    assert cached.metrics.val_loss == pytest.approx(uncached.metrics.val_loss, rel=1e-6)


def test_frozen_weights_are_bit_identical_and_the_rest_trains_alike(
    backbone_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    saved = {}
    for name, cache in (("uncached", None), ("cached", FeatureCache(64))):
        t = task(backbone_dir, final=True, save_dir=str(tmp_path / name))
        assert evaluate(t, cache).metrics.ok
        saved[name] = torch.load(tmp_path / name / "model.pt", weights_only=True)
    source = load_backbone(str(backbone_dir)).network.state_dict()
    frozen = [k for k in source if int(k.split(".")[0]) < 8]  # blocks 1-3: 8 modules
    assert "1.running_mean" in frozen
    for name in saved:
        assert all(torch.equal(saved[name][k], source[k]) for k in frozen)
    for k, value in saved["uncached"].items():
        assert torch.allclose(saved["cached"][k], value, atol=1e-6), k


def test_features_reach_the_next_evaluation_with_the_same_frozen_prefix(
    backbone_dir: Path,
) -> None:
    cache = FeatureCache(64)
    evaluate(task(backbone_dir), cache)
    other = evaluate(task(backbone_dir, f"backbone(keep=5, freeze=3) {HEAD}"), cache)
    assert other.cache is not None and other.cache.hits == 3  # same blocks frozen: same features
    deeper = evaluate(task(backbone_dir, f"backbone(keep=5, freeze=4) {HEAD}"), cache)
    assert deeper.cache is not None and len(deeper.cache.made) == 3 and not deeper.cache.hits


# --- when the cache is off -------------------------------------------------------------------------


def test_augmentation_turns_the_cache_off(backbone_dir: Path) -> None:
    cache = FeatureCache(64)
    outcome = evaluate(task(backbone_dir, FROZEN + " aug=flip"), cache)
    assert outcome.metrics.ok and outcome.cache is not None
    assert not outcome.cache.used and outcome.cache.held_bytes == 0
    assert "augmentation (aug=flip) reaches the frozen modules" in outcome.cache.bypass


def test_an_adapter_in_front_of_the_frozen_blocks_turns_the_cache_off(backbone_dir: Path) -> None:
    net = build_model(parse_arch(FROZEN), (3, 8, 8), 10, load_backbone(str(backbone_dir)))
    assert frozen_stop(net, "none") == (0, "a trainable adapter is in front of the frozen modules")
    same = build_model(parse_arch(FROZEN), (1, 8, 8), 10, load_backbone(str(backbone_dir)))
    assert frozen_stop(same, "none") == (8, "")


def test_nothing_frozen_nothing_cached(backbone_dir: Path) -> None:
    outcome = evaluate(task(backbone_dir, f"backbone(keep=3, freeze=0) {HEAD}"), FeatureCache(64))
    assert outcome.cache == CacheNote(cap_bytes=64 * MB)


# --- the cap ---------------------------------------------------------------------------------------


def test_the_least_recently_used_entry_goes_first_and_the_cap_holds() -> None:
    cache = FeatureCache(1)
    for part in ("train", "val"):
        cache.fetch(key(part), lambda: tensor_mb(0.4), lambda: int(0.4 * MB))
    cache.fetch(key("train"), lambda: tensor_mb(0.4), lambda: 0)  # a hit: train is now newest
    cache.fetch(key("test"), lambda: tensor_mb(0.4), lambda: int(0.4 * MB))
    note = cache.take_note()
    assert note.hits == 1 and len(note.made) == 3 and note.evicted == 1
    assert cache.held_bytes <= cache.cap_bytes and note.held_bytes == cache.held_bytes
    assert cache.fetch(key("val"), lambda: tensor_mb(0.4), lambda: int(0.4 * MB)) is not None
    assert cache.take_note().made  # val was the one evicted: computed again


def test_an_entry_over_the_cap_is_refused_and_never_computed() -> None:
    cache = FeatureCache(1)
    computed = []
    found = cache.fetch(key("train"), lambda: computed.append(1) or tensor_mb(2), lambda: 2 * MB)
    assert found is None and not computed and cache.held_bytes == 0
    assert cache.take_note().refused == ((key("train").text(), 2 * MB),)


def test_a_refused_part_runs_uncached_and_the_metrics_stay(
    backbone_dir: Path, one_thread: None
) -> None:
    t = task(backbone_dir)
    sizes = dict(evaluate(t, FeatureCache(64)).cache.made)  # type: ignore[union-attr]
    train = next(n for text, n in sizes.items() if "| train" in text)
    val = next(n for text, n in sizes.items() if "| val" in text)
    assert val < train  # a cap between them keeps val and test, refuses train
    cache = FeatureCache((val + train) / 2 / MB)
    outcome = evaluate(t, cache)
    assert outcome.cache is not None and len(outcome.cache.refused) == 1
    assert "| train" in outcome.cache.refused[0][0]
    assert cache.held_bytes <= cache.cap_bytes
    assert scores(outcome.metrics) == scores(evaluate(t).metrics)


def test_a_zero_cap_is_no_cache(backbone_dir: Path) -> None:
    outcome = evaluate(task(backbone_dir), FeatureCache(0))
    assert outcome.cache is not None and not outcome.cache.used and not outcome.cache.refused


# --- workers and the run's output ------------------------------------------------------------------


def test_each_worker_process_keeps_its_cache_between_tasks(backbone_dir: Path) -> None:
    tasks = [task(backbone_dir), task(backbone_dir, seed=6)]
    executor = ProcessExecutor(1, threads=1, feature_cache_mb=16)
    try:
        notes = [o.cache for _, o in sorted(executor.run(tasks), key=lambda pair: pair[0])]
    finally:
        executor.close()
    assert notes[0] is not None and notes[1] is not None
    assert len(notes[0].made) == 3 and notes[1].hits == 3
    assert SerialExecutor(feature_cache_mb=0).cache is None


def test_the_tally_prints_new_entries_and_a_summary() -> None:
    tally = CacheTally()
    made = CacheNote(made=(("k1", 3 * MB),), held_bytes=3 * MB, cap_bytes=256 * MB)
    assert tally.add("w:1", made) == ["feature cache [w:1]: + k1: 3.0 MB (3.0 of 256.0 MB held)"]
    assert tally.add("w:1", CacheNote(hits=2, held_bytes=3 * MB)) == []
    tally.add("w:2", CacheNote(bypass="augmentation (aug=flip) reaches the frozen modules"))
    assert tally.summary() == (
        "feature cache: 2 evaluation(s) used it, 2 hit(s), 1 entry made (3.0 MB), 0 evicted, "
        "0 refused; held at the end 3.0 MB over 2 worker(s); not used by 1 evaluation(s): "
        "augmentation (aug=flip) reaches the frozen modules"
    )
    assert CacheTally().summary() is None


def test_a_transfer_run_says_what_it_cached(
    backbone_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grammar = tmp_path / "frozen.bnf"
    grammar.write_text('<net> ::= backbone(keep=4, freeze=3) dropout(<p>) " | lr=0.01"\n'
                       "<p> ::= 0.1 | 0.3 | 0.5 | 0.7\n")  # fmt: skip
    argv = ["run", "--grammar", str(grammar), "--backbone", str(backbone_dir),
            "--population", "4", "--generations", "1", "--epochs", "1", "--train-subset", "0.2",
            "--finalists", "0", "--workers", "1", "--seed", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "feature cache [" in out and "| train (cpu)" in out
    assert "feature cache: " in out and "hit(s)" in out
    assert main([*argv[:-1], str(tmp_path / "off"), "--feature-cache-mb", "0"]) == 0
    assert "feature cache" not in capsys.readouterr().out


@pytest.mark.distributed
def test_a_dask_worker_keeps_its_cache_between_tasks(backbone_dir: Path) -> None:
    pytest.importorskip("distributed")
    from ge_nas.executors import DaskExecutor

    executor = DaskExecutor(1, threads=1, feature_cache_mb=16)
    try:  # one worker takes one task at a time: the second finds the first's features
        notes = [o.cache for _, o in executor.run([task(backbone_dir), task(backbone_dir)])]
    finally:
        executor.close()
    assert notes[0] is not None and notes[1] is not None
    assert len(notes[0].made) == 3 and notes[1].hits == 3
