"""Tests for ge_nas.config: validation of every option, TOML round trip, TOML errors."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from ge_nas.cli import build_parser
from ge_nas.cli.run import config_from_args
from ge_nas.config import RunConfig, default_out, load_toml, make_config
from ge_nas.errors import ConfigError


def test_defaults_are_valid() -> None:
    config = RunConfig(grammar="g.bnf")
    assert config.population == 12 and config.objectives == ("val_accuracy", "params")
    assert not config.single_objective
    assert RunConfig(grammar="g.bnf", objectives=("val_accuracy",)).single_objective


@pytest.mark.parametrize(
    ("name", "value", "flag"),
    [
        *[
            (n, v, f)
            for n, f in [
                ("population", "--population"),
                ("generations", "--generations"),
                ("epochs", "--epochs"),
                ("final_epochs", "--final-epochs"),
                ("max_depth", "--max-depth"),
                ("codon_size", "--codon-size"),
                ("tournament_size", "--tournament-size"),
            ]
            for v in (0, -1, 2.0, True)
        ],
        *[
            (n, v, f)
            for n, f in [
                ("seed", "--seed"),
                ("split_seed", "--split-seed"),
                ("finalists", "--finalists"),
                ("workers", "--workers"),
                ("max_wraps", "--max-wraps"),
                ("elites", "--elites"),
            ]
            for v in (-1, 0.5, False)
        ],
        *[
            (n, v, f)
            for n, f in [("max_params", "--max-params"), ("max_flops", "--max-flops")]
            for v in (-5, 1.5)
        ],
        *[("init_max_depth", v, "--init-max-depth") for v in (0, -5)],
        *[
            (n, v, f)
            for n, f in [
                ("noise_sigma", "--noise-sigma"),
                ("eval_timeout_s", "--eval-timeout"),
                ("train_subset", "--train-subset"),
                ("val_fraction", "--val-fraction"),
            ]
            for v in (float("nan"), float("inf"))
        ],
        ("executor", "spark", "--executor"),
        ("init", "grow", "--init"),
        ("val_fraction", 0.0, "--val-fraction"),
        ("val_fraction", 1.0, "--val-fraction"),
        ("crossover_prob", -0.1, "--crossover-prob"),
        ("crossover_prob", 1.1, "--crossover-prob"),
        ("mutation_prob", 1.5, "--mutation-prob"),
        ("train_subset", 0.0, "--train-subset"),
        ("train_subset", -3, "--train-subset"),
        ("eval_timeout_s", 0.0, "--eval-timeout"),
        ("eval_timeout_s", -1.0, "--eval-timeout"),
    ],
)
def test_invalid_value_names_the_flag(name: str, value: Any, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig(grammar="g.bnf", **{name: value})
    assert str(info.value).startswith(flag)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        ((), "--objectives needs at least one of val_accuracy, params, flops"),
        (("val_accuracy", "parms"), "--objectives: unknown value 'parms' (did you mean 'params'?)"),
        (("params",), "--objectives must include val_accuracy or val_loss"),
        (("val_accuracy", "params", "params"), "--objectives lists a name twice"),
    ],
)
def test_invalid_objectives(objectives: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig(grammar="g.bnf", objectives=objectives)
    assert str(info.value).startswith(message)


def test_executor_did_you_mean() -> None:
    with pytest.raises(
        ConfigError, match=r"--executor: unknown value 'serail' \(did you mean 'serial'\?\)"
    ):
        RunConfig(grammar="g.bnf", executor="serail")


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {
            "max_params": 1000,
            "max_flops": 10**9,
            "train_subset": 0.5,
            "eval_timeout_s": 1e-05,
            "mutation_prob": 0.01,
            "objectives": ("val_accuracy", "params", "flops"),
            "data_dir": "/data/x",
            "init_max_depth": 9,
        },
        {
            "grammar": 'we"ird\\path\n\tü.bnf',
            "out": "runs/α β",
            "command": "ge-nas run --grammar 'x'",
            "train_subset": 500,
        },
        {
            "objectives": ("val_accuracy",),
            "executor": "processes",
            "init": "pi_grow",
            "workers": 3,
            "seed": 2**40,
        },
    ],
)
def test_toml_round_trip(tmp_path: Path, changes: dict[str, Any]) -> None:
    config = replace(RunConfig(grammar="grammars/cnn_small.bnf", dataset="fashion"), **changes)
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    doc = load_toml(path)
    assert {k for k, v in doc.items()} == {
        f.name for f in fields(RunConfig) if getattr(config, f.name) is not None
    }
    back = make_config(doc, {})
    assert back == config
    assert back.command == config.command  # not part of equality, still kept
    assert all(
        type(getattr(back, f.name)) is type(getattr(config, f.name)) for f in fields(RunConfig)
    )


def test_to_toml_comments_unset_options() -> None:
    text = RunConfig(grammar="g.bnf").to_toml()
    assert "# eval_timeout_s = (unset)\n" in text
    assert "max_params = 5000000\n" in text  # budgets have defaults a 2-core machine can train
    assert 'grammar = "g.bnf"\n' in text
    assert 'objectives = ["val_accuracy", "params"]\n' in text


def test_overrides_win_and_none_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('grammar = "a.bnf"\npopulation = 20\nepochs = 3\n', encoding="utf-8")
    config = make_config(load_toml(path), {"population": 5, "epochs": None, "grammar": None})
    assert (config.grammar, config.population, config.epochs) == ("a.bnf", 5, 3)


def test_grammar_is_required() -> None:
    with pytest.raises(ConfigError, match="--grammar is required"):
        make_config({}, {"population": 3})


def test_bad_type_from_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--population must be a positive integer, got '12'"):
        make_config({"grammar": "g", "population": "12"}, {})


@pytest.mark.parametrize(
    ("name", "flag"), [("val_fraction", "--val-fraction"), ("eval_timeout_s", "--eval-timeout")]
)
def test_string_for_float_option_names_the_flag(name: str, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        make_config({"grammar": "g", name: "0.5"}, {})


def test_unknown_toml_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('grammar = "g.bnf"\npopulaton = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert str(info.value) == f"{path}: unknown option 'populaton' (did you mean 'population'?)"


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('grammar = "g.bnf\npopulation = = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert str(info.value).startswith(f"{path}: not valid TOML: ")
    assert "line 1" in str(info.value)


def test_missing_toml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_toml(tmp_path / "nope.toml")


def test_resolved_workers() -> None:
    assert RunConfig(grammar="g", workers=3).resolved_workers() == 3
    assert RunConfig(grammar="g").resolved_workers() >= 1


def test_default_out() -> None:
    config = RunConfig(grammar="grammars/cnn_small.bnf", dataset="npz:data/x.npz")
    assert default_out(config, "20240101-120000") == Path(
        "runs/cnn_small-npz-data-x.npz-20240101-120000"
    )


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        RunConfig(grammar="g").seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "flag"),
    [
        ("device", "gpu", "--device"),
        ("device", "cuda:", "--device"),
        ("bf16", "yes", "--bf16"),
        ("test_in_search", 1, "test_in_search"),
        ("noise_sigma", -0.1, "--noise-sigma"),
        ("noise_sigma", "big", "--noise-sigma"),
    ],
)
def test_invalid_training_option_names_the_flag(name: str, value: Any, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig(grammar="g.bnf", **{name: value})
    assert str(info.value).startswith(flag)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_device_names_are_checked_without_a_gpu(device: str) -> None:
    assert (
        RunConfig(grammar="g.bnf", device=device).device == device
    )  # availability is checked when a run starts


def test_every_objective_is_accepted(tmp_path: Path) -> None:
    config = RunConfig(
        grammar="g.bnf",
        objectives=("val_accuracy", "params", "flops", "latency", "robustness"),
        bf16=True,
    )
    (tmp_path / "c.toml").write_text(config.to_toml())
    assert make_config(load_toml(tmp_path / "c.toml"), {}) == config


@pytest.mark.parametrize(("flags", "expected"), [([], True), (["--no-test-in-search"], False)])
def test_no_switch_turns_an_option_off(flags: list[str], expected: bool) -> None:
    args = build_parser().parse_args(["run", "--grammar", "g.bnf", *flags])
    args.command_line = "test"
    assert config_from_args(args).test_in_search is expected


def test_train_subset_count_from_the_command_line_is_a_count() -> None:
    args = build_parser().parse_args(["run", "--grammar", "g.bnf", "--train-subset", "300"])
    args.command_line = "test"
    subset = config_from_args(args).train_subset
    assert subset == 300 and isinstance(subset, int)
    assert (
        RunConfig(grammar="g.bnf", train_subset=1.0).train_subset == 1.0
    )  # 1 or below: a fraction
    with pytest.raises(ConfigError, match="must be whole"):
        RunConfig(grammar="g.bnf", train_subset=300.5)
