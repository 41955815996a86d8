"""`ge_nas prune`: mask grammars, pruned children that inherit the trained weights, and a real tiny run."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ge_nas import load_model, rundir
from ge_nas.arch import parse_arch
from ge_nas.cli import main
from ge_nas.cli.prune import chosen_layers, mask_bits, mask_grammar
from ge_nas.config import RunConfig
from ge_nas.data import run_splits
from ge_nas.errors import ConfigError
from ge_nas.export import Meta, save_model
from ge_nas.feature_cache import FeatureCache
from ge_nas.fidelity import fidelity_key
from ge_nas.grammar import parse_grammar
from ge_nas.grammar.initialise import density_population
from ge_nas.grammar.mapper import map_genome
from ge_nas.metrics import OK, Metrics
from ge_nas.network import build_model, count_params
from ge_nas.network.prune import mask_model, mask_text, prunable_layers, split_masks
from ge_nas.train import accuracy
from ge_nas.worker import EvalTask, evaluate, initial_network, train_phenotype

BASE = "conv(6,3) bn relu pool(max,2) dense(12) relu dense(7) relu | opt=adam lr=0.01"


def saved_model(directory: Path, text: str = BASE, *, classes: int = 10) -> Path:
    """Save a network of text with seeded random weights and batch-norm statistics as a model directory."""
    splits = run_splits(RunConfig(grammar="x"))
    torch.manual_seed(0)
    spec = parse_arch(text)
    model = build_model(spec, splits.input_shape, classes)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    meta = Meta(splits.input_shape, classes, splits.standardization, None)
    save_model(directory, model.eval(), spec, Metrics(OK), meta)
    return directory


def task(model_dir: Path, phenotype: str, epochs: int = 0) -> EvalTask:
    return EvalTask(phenotype, 0, epochs=epochs, prune_base=str(model_dir), score_test=False)


def test_the_grammar_maps_to_one_bit_per_unit() -> None:
    spec = parse_arch(BASE)
    units = prunable_layers(spec)
    grammar = parse_grammar(mask_grammar(spec, units, 1, "test"), "mask.bnf")
    rng = random.Random(0)
    genome = [rng.randrange(2) for _ in range(100)]
    derivation = map_genome(grammar, genome)
    unpruned, masks = split_masks(parse_arch(derivation.phenotype or ""))
    assert unpruned.layers == spec.layers
    assert {i: len(m) for i, m in masks.items()} == units == {0: 6, 4: 12, 6: 7}
    assert derivation.codons_used == 1 + len(units) + sum(units.values())  # <net>, <keepN>, bits


def test_grouped_bits_give_whole_groups() -> None:
    spec = parse_arch(BASE)
    units = prunable_layers(spec)
    text = mask_grammar(spec, units, 4, "test")
    assert "<bit4> ::= 0000 | 1111" in text and "<bit3> ::= 000 | 111" in text
    assert "<keep5> ::= <bit4><bit4><bit4>" in text
    assert mask_bits(units, 4) == 2 + 3 + 2
    grammar = parse_grammar(text, "mask.bnf")
    genome = [0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0]  # <net>, <keep1>, 2 groups, <keep5>, 3, <keep7>, 2
    _, masks = split_masks(parse_arch(map_genome(grammar, genome).phenotype or ""))
    assert [mask_text(masks[i]) for i in (0, 4, 6)] == ["b111100", "b000011110000", "b1111000"]


def test_initial_densities_spread_over_zero_to_one() -> None:
    spec = parse_arch("dense(60) relu | opt=adam")
    grammar = parse_grammar(mask_grammar(spec, prunable_layers(spec), 1, "test"), "mask.bnf")
    genomes = density_population(grammar, random.Random(1), 30)
    shares = sorted(sum(g[2:]) / 60 for g in genomes)
    assert all(len(g) == 62 and set(g) <= {0, 1} for g in genomes)
    assert shares[0] < 0.2 and shares[-1] > 0.8 and 0.25 < shares[15] < 0.75


def test_a_mask_of_all_ones_reproduces_the_base_logits(tmp_path: Path) -> None:
    model_dir = saved_model(tmp_path / "m")
    phenotype = mask_grammar_all(BASE, "1")
    t = task(model_dir, phenotype)
    start = initial_network(t, parse_arch(phenotype), run_splits(RunConfig(grammar="x")))
    base = load_model(model_dir).network  # type: ignore[union-attr]
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(start.network.eval()(x), base(x))
    assert start.spec == parse_arch(BASE)


def mask_grammar_all(text: str, bit: str) -> str:
    spec = parse_arch(text)
    layers = list(spec.layers)
    for i, n in prunable_layers(spec).items():
        layers[i] = replace(layers[i], args=(*layers[i].args, ("keep", "b" + bit * n)))
    return replace(spec, layers=tuple(layers)).canonical()


def test_a_pruned_child_inherits_the_trained_weights(tmp_path: Path) -> None:
    model_dir = saved_model(tmp_path / "m")
    spec = parse_arch(BASE)
    rng = random.Random(3)
    masks = {i: [rng.random() < 0.5 for _ in range(n)] for i, n in prunable_layers(spec).items()}
    for mask in masks.values():
        mask[0] = True
    layers = list(spec.layers)
    for i, mask in masks.items():
        layers[i] = replace(layers[i], args=(*layers[i].args, ("keep", mask_text(mask))))
    phenotype = replace(spec, layers=tuple(layers)).canonical()
    metrics = train_phenotype(task(model_dir, phenotype, epochs=0))
    splits = run_splits(RunConfig(grammar="x"))
    base = load_model(model_dir).network  # type: ignore[union-attr]
    masked = mask_model(spec, base, splits.input_shape, splits.num_classes, masks)
    assert metrics.ok and metrics.epochs == 0
    assert metrics.val_accuracy == pytest.approx(accuracy(masked, splits.x_val, splits.y_val))
    assert metrics.params < count_params(base)


def test_keep_masks_need_a_base_model_and_its_layers(tmp_path: Path) -> None:
    model_dir = saved_model(tmp_path / "m")
    alone = train_phenotype(EvalTask("dense(4,keep=b0110) | opt=adam", 0, epochs=1))
    assert alone.status == "invalid" and "ge_nas prune" in alone.error
    other = train_phenotype(task(model_dir, "dense(4,keep=b0110) | opt=adam"))
    assert other.status == "invalid" and "base model" in other.error


def test_archive_keys_differ_by_base_model() -> None:
    config = RunConfig(grammar="x", prune_base="/m", prune_base_sha="0123456789abcdef")
    other = replace(config, prune_base_sha="fedcba9876543210")
    assert fidelity_key(config) != fidelity_key(other)
    assert fidelity_key(config) != fidelity_key(RunConfig(grammar="x"))
    assert "base" not in fidelity_key(RunConfig(grammar="x"))


TINY = ["--dataset", "digits", "--population", "4", "--generations", "1", "--epochs", "0",
        "--final-epochs", "1", "--finalists", "1", "--workers", "1", "-q"]  # fmt: skip


@pytest.fixture(scope="module")
def prune_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a finished tiny pruning run of a saved model (read it, don't change it)."""
    root = tmp_path_factory.mktemp("prune")
    model_dir = saved_model(root / "model")
    assert main(["prune", str(model_dir), *TINY, "--out", str(root / "run")]) == 0
    return root / "run"


def test_prune_run_saves_ordinary_specs_with_the_reported_params(
    prune_run: Path, tmp_path: Path
) -> None:
    row = rundir.front_row(prune_run, 1)
    assert "keep" not in (prune_run / "front" / "1" / "spec.json").read_text()
    spec = parse_arch(row["phenotype"])
    assert split_masks(spec)[1]  # the front's phenotypes carry the masks
    model = load_model(prune_run / "front" / "1")
    assert int(row["params"]) == count_params(model)
    origin = json.loads((prune_run / "front" / "1" / "pruned_from.json").read_text())
    assert origin["phenotype"] == row["phenotype"]
    assert main(["export", str(prune_run), "--rank", "1", "--format", "torch",
                 "--out", str(tmp_path / "t")]) == 0  # fmt: skip
    assert count_params(load_model(tmp_path / "t")) == int(row["params"])
    config = rundir.load_run_config(prune_run)
    assert config.prune_base == str((prune_run / "base").resolve()) and config.epochs == 0
    assert (config.init, config.crossover, config.codon_size) == ("density", "uniform", 2)


def test_resume_a_finished_or_killed_prune_run(prune_run: Path, tmp_path: Path) -> None:
    finished = tmp_path / "finished"
    shutil.copytree(prune_run, finished)
    assert main(["resume", str(finished), "-q"]) == 0
    killed = tmp_path / "killed"
    shutil.copytree(prune_run, killed)
    for name in ("checkpoint.json", "generations.jsonl", "pareto.csv"):
        (killed / name).unlink()
    shutil.rmtree(killed / "best")
    assert main(["resume", str(killed), "-q"]) == 0
    assert (
        rundir.read_pareto(killed)[0]["phenotype"] == rundir.read_pareto(prune_run)[0]["phenotype"]
    )


def test_a_killed_prune_run_resumes_without_training_anything_twice(tmp_path: Path) -> None:
    from test_resume import check_kill_and_resume

    model_dir = saved_model(tmp_path / "model")
    run = ["prune", str(model_dir), "--dataset", "digits", "--population", "6",
           "--generations", "2", "--epochs", "1", "--train-subset", "200", "--seed", "3",
           "--final-epochs", "1", "--finalists", "1", "--workers", "1"]  # fmt: skip
    check_kill_and_resume(run, tmp_path, after_rows=4)


def test_prune_of_a_run_directory_checks_the_rank(
    prune_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["prune", str(prune_run), "--rank", "9", *TINY, "--out", str(out)]) == 2
    assert "no rank 9 on the front" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no weights", "no model.pt"),
        ("nothing prunable", "nothing to prune"),
        ("classes", "takes (1, 8, 8) with 5 classes"),
        ("group", "--group must be a positive"),
    ],
)
def test_bad_input_is_one_clear_error_before_anything_is_written(
    setup: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra: list[str] = []
    if setup == "no weights":
        model_dir = saved_model(tmp_path / "m")
        (model_dir / "model.pt").unlink()
    elif setup == "nothing prunable":
        model_dir = saved_model(tmp_path / "m", "conv(4,3) relu res(4,3) | opt=adam")
    elif setup == "classes":
        model_dir = saved_model(tmp_path / "m", classes=5)
    else:
        model_dir, extra = saved_model(tmp_path / "m"), ["--group", "0"]
    out = tmp_path / "out"
    assert main(["prune", str(model_dir), *TINY, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_help_states_prunes_own_init_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default density: each mask keeps a share of units ~ U(0, 1))" in text
    assert "ramped half-and-half" not in text  # run's default (sensible), not prune's


# --- the trunk: frozen during the fine-tune, its features cached ------------------------------------

# BASE with masks on its dense layers only: the trunk is conv, bn, relu, pool and the global pool.
DENSE_MASKED = (
    "conv(6,3) bn relu pool(max,2) dense(12,keep=b101101110111) relu dense(7,keep=b1101011) relu "
    "| opt=adam lr=0.01 batch=32"
)


def trunk_task(model_dir: Path, **kw: object) -> EvalTask:
    options = {"epochs": 2, "train_subset": 0.5, "threads": 1, "prune_base": str(model_dir)}
    options.update(kw)
    return EvalTask(DENSE_MASKED, 4, **options)  # type: ignore[arg-type]


def test_a_frozen_trunk_keeps_the_base_weights_and_caches_its_features(
    tmp_path: Path, one_thread: None
) -> None:
    model_dir = saved_model(tmp_path / "m")
    base = torch.load(model_dir / "model.pt", weights_only=True)
    saved = {}
    for name, freeze, cache in (
        ("all", False, None), ("frozen", True, None), ("cached", True, FeatureCache(16)),
    ):  # fmt: skip
        t = trunk_task(model_dir, freeze_trunk=freeze, save_dir=str(tmp_path / name))
        outcome = evaluate(t, cache)
        assert outcome.metrics.ok
        saved[name] = (outcome, torch.load(tmp_path / name / "model.pt", weights_only=True))
    trunk = [k for k in base if k.split(".")[0] in ("0", "1")]  # the conv and its batch norm
    assert all(torch.equal(saved["frozen"][1][k], base[k]) for k in trunk)
    assert all(torch.equal(saved["cached"][1][k], base[k]) for k in trunk)
    assert not torch.equal(saved["all"][1]["0.weight"], base["0.weight"])  # it trains the trunk
    note = saved["cached"][0].cache
    assert note is not None and len(note.made) == 3 and "modules 1-5" in note.made[0][0]
    frozen, cached = saved["frozen"][0].metrics, saved["cached"][0].metrics
    assert (frozen.val_accuracy, frozen.test_accuracy) == (
        cached.val_accuracy,
        cached.test_accuracy,
    )
    assert cached.val_loss == pytest.approx(frozen.val_loss, rel=1e-6)


def test_without_a_fine_tune_the_trunk_is_cached_for_scoring(tmp_path: Path) -> None:
    model_dir = saved_model(tmp_path / "m")
    t = trunk_task(model_dir, epochs=0)
    cache = FeatureCache(16)
    uncached, cached = evaluate(t), evaluate(t, cache)
    assert cached.cache is not None and [text[-9:] for text, _ in cached.cache.made] == [
        "val (cpu)", "est (cpu)",
    ]  # fmt: skip
    assert cached.metrics.val_accuracy == uncached.metrics.val_accuracy
    assert cached.metrics.test_accuracy == uncached.metrics.test_accuracy


def test_a_mask_on_the_first_layer_leaves_no_trunk(tmp_path: Path) -> None:
    model_dir = saved_model(tmp_path / "m")
    phenotype = DENSE_MASKED.replace("conv(6,3)", "conv(6,3,keep=b111011)")
    outcome = evaluate(replace(trunk_task(model_dir, freeze_trunk=True), phenotype=phenotype),
                       FeatureCache(16))  # fmt: skip
    assert outcome.metrics.ok and outcome.cache is not None and not outcome.cache.used


def test_freezing_the_trunk_is_part_of_the_archive_key() -> None:
    config = RunConfig(grammar="x", prune_base="/m", prune_base_sha="0123456789abcdef")
    frozen = replace(config, freeze_trunk=True)
    assert fidelity_key(frozen) == fidelity_key(config) + "|trunk=frozen"
    with pytest.raises(ConfigError, match="freeze_trunk goes with `ge_nas prune`"):
        RunConfig(grammar="x", freeze_trunk=True)


@pytest.mark.parametrize(
    ("choice", "chosen"),
    [
        (None, {0: 6, 4: 12, 6: 7}),
        ("dense", {4: 12, 6: 7}),
        ("5", {4: 12}),
        ("7, conv", {0: 6, 6: 7}),
    ],
)
def test_layers_chooses_which_layers_get_masks(choice: str | None, chosen: dict[int, int]) -> None:
    spec = parse_arch(BASE)
    assert chosen_layers(spec, prunable_layers(spec), choice) == chosen


def test_layers_names_the_prunable_layers_when_it_names_another() -> None:
    spec = parse_arch(BASE)
    with pytest.raises(ConfigError, match=r"'2' is neither .* are 1 \(conv\(6,3,1\)\), 5 \(dense"):
        chosen_layers(spec, prunable_layers(spec), "2")


def test_a_prune_run_with_layers_and_a_frozen_trunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = saved_model(tmp_path / "m")
    argv = ["prune", str(model_dir), *TINY, "--epochs", "1", "--layers", "dense",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main([a for a in argv if a not in ("-q",)]) == 0
    assert "<keep1>" not in (tmp_path / "run" / "grammar.bnf").read_text()
    config = rundir.load_run_config(tmp_path / "run")
    assert config.freeze_trunk and fidelity_key(config).endswith("|trunk=frozen")
    out = capsys.readouterr().out
    assert "feature cache [" in out and "modules 1-5" in out and "feature cache: " in out
    assert main([*argv[:-1], str(tmp_path / "all"), "--no-freeze-trunk"]) == 0
    assert not rundir.load_run_config(tmp_path / "all").freeze_trunk


def test_the_ood_images_features_are_cached_too(tmp_path: Path) -> None:
    model_dir = saved_model(tmp_path / "m", classes=8)
    t = trunk_task(model_dir, epochs=0, classes="0-7", ood="digits:classes=8,9")
    cache = FeatureCache(16)
    uncached, cached = evaluate(t), evaluate(t, cache)
    assert cached.cache is not None
    assert any("| ood digits:classes=8,9 (train part)" in text for text, _ in cached.cache.made)
    assert uncached.metrics.ood_auroc is not None
    assert cached.metrics.ood_auroc == pytest.approx(uncached.metrics.ood_auroc, abs=1e-9)
    assert evaluate(t, cache).cache.hits == 3  # type: ignore[union-attr]  # val, test, ood
