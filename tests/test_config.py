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
                ("screen", "--screen"),
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
        ("individual_mutation_prob", -0.5, "--individual-mutation-prob"),
        ("representation", "bitz", "--representation"),
        ("train_subset", 0.0, "--train-subset"),
        ("train_subset", -3, "--train-subset"),
        ("eval_timeout_s", 0.0, "--eval-timeout"),
        ("eval_timeout_s", -1.0, "--eval-timeout"),
        *[("accuracy_floor", v, "--accuracy-floor") for v in (-0.1, 1.0, float("nan"), True)],
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
            "individual_mutation_prob": 0.25,
            "representation": "bits",
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
        {"classes": "0-3,7", "shots": 20, "val_shots": 5},
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


# --- data views --------------------------------------------------------------------


def test_data_view_flags_reach_the_config() -> None:
    argv = ["run", "--grammar", "g.bnf", "--classes", "5-9", "--shots", "20", "--val-shots", "4"]
    args = build_parser().parse_args(argv)
    args.command_line = "test"
    config = config_from_args(args)
    assert (config.classes, config.shots, config.val_shots) == ("5-9", 20, 4)
    assert (
        config.data_text()
        == "digits, classes 5-9, 20 shots per class, 4 validation images per class"
    )
    assert RunConfig(grammar="g.bnf").data_text() == "digits"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("5-9", "5-9"),
        ("0,2,4", "0,2,4"),
        ("9, 8,7,6 ,5", "5-9"),
        ("7,0-3", "0-3,7"),
        ("1,0", "0,1"),
    ],
)
def test_classes_are_kept_in_canonical_form(given: str, canonical: str) -> None:
    assert RunConfig(grammar="g.bnf", classes=given).classes == canonical


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (
            "",
            "--classes '': no classes given; expected a comma list of labels and ranges, e.g. 5-9",
        ),
        ("3", "--classes '3' keeps 1 class; expected at least 2"),
        ("4-4", "--classes '4-4' keeps 1 class; expected at least 2"),
        ("0-3,2", "--classes '0-3,2': label 2 is given twice; expected each label once"),
        ("1,1", "--classes '1,1': label 1 is given twice"),
        (
            "5-2",
            "--classes '5-2': the range '5-2' runs backwards; expected LOW-HIGH with LOW <= HIGH",
        ),
        ("0,,2", "--classes '0,,2': '' is neither a label nor a range LOW-HIGH; expected a comma"),
        ("-1,2", "--classes '-1,2': '-1' is neither a label nor a range"),
        ("a-c", "--classes 'a-c': 'a-c' is neither a label nor a range"),
        ("1-2-3", "--classes '1-2-3': '1-2-3' is neither a label nor a range"),
        ([0, 1], "--classes must be a string of labels and ranges, e.g. 5-9"),
    ],
)
def test_bad_classes_are_one_clear_line_naming_flag_value_and_what_is_expected(
    classes: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig(grammar="g.bnf", classes=classes)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shots": 0}, "--shots must be a positive integer, got 0"),
        ({"shots": 2.5}, "--shots must be a positive integer, got 2.5"),
        ({"shots": 5, "val_shots": -1}, "--val-shots must be a positive integer, got -1"),
        ({"val_shots": 3}, "--val-shots 3 goes with --shots K"),
        ({"shots": 5, "train_subset": 0.5}, "--train-subset 0.5 and --shots 5 conflict"),
        ({"shots": 5, "train_subset": 300}, "--train-subset 300 and --shots 5 conflict"),
    ],
)
def test_bad_shots_are_refused_before_any_data_is_loaded(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig(grammar="g.bnf", **changes)
    assert str(info.value).startswith(message)


def test_screening_needs_a_held_out_slice() -> None:
    with pytest.raises(ConfigError, match=r"--screen 6 .*--final-holdout 0"):
        RunConfig("g.bnf", finalists=2, screen=6, final_holdout=0.0)
    RunConfig(
        "g.bnf", finalists=2, screen=6, final_holdout=0.0, shots=5
    )  # shots: validation is held out
    RunConfig("g.bnf", finalists=2, screen=2, final_holdout=0.0)  # no screening


def test_usable_cores_follows_the_cpu_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from ge_nas import config

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert config.usable_cores() == 1  # pinned to one core of 64: one torch thread
    assert RunConfig(grammar="g.bnf").resolved_workers() == 1

    def refuse(pid: int) -> set[int]:
        raise OSError("not supported")

    monkeypatch.setattr(os, "sched_getaffinity", refuse)
    assert config.usable_cores() == 64
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows
    assert config.usable_cores() == 64
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert config.usable_cores() == 1
