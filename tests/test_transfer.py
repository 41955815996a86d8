"""Transfer learning: blocks of a ge_nas network, the backbone layer, freezing, blr, adapters, identity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import BACKBONE, save_network

from ge_nas import load_model
from ge_nas.arch import parse_arch
from ge_nas.arch.blocks import blocks, expand_backbone
from ge_nas.cli import main
from ge_nas.config import RunConfig
from ge_nas.data import load_splits
from ge_nas.errors import ArchError, ConfigError
from ge_nas.export import load_backbone
from ge_nas.fidelity import backbone_digest, fidelity_key
from ge_nas.metrics import FAILED, INVALID
from ge_nas.network.build import TransferNet, build_model, measure
from ge_nas.train import make_optimizer, train_model
from ge_nas.worker import EvalTask, train_phenotype

TINY = ["--population", "2", "--generations", "1", "--epochs", "1", "--train-subset", "0.2",
        "--final-epochs", "1", "--finalists", "1", "--workers", "1"]  # fmt: skip
DIGITS = (1, 8, 8)


def transfer(text: str, backbone_dir: Path, shape: tuple[int, int, int] = DIGITS) -> TransferNet:
    net = build_model(parse_arch(text), shape, 10, load_backbone(str(backbone_dir)))
    assert isinstance(net, TransferNet)
    return net


# --- blocks and the language ------------------------------------------------------------------------


def test_blocks_are_weighted_layers_with_the_layers_after_them() -> None:
    spec = parse_arch("bn conv(4) relu pool(max,2) res(8) sepconv(8) gap dense(3) dropout(0.2)")
    found = blocks(spec)
    assert [b.text() for b in found] == [
        "bn conv(4,3,1) relu pool(max,2)",  # layers before the first weighted one join block 1
        "res(8,3,1)",
        "sepconv(8,3,1) gap",
        "dense(3) dropout(0.2)",
    ]
    assert [(b.index, b.start, b.stop) for b in found] == [
        (1, 0, 4),
        (2, 4, 5),
        (3, 5, 7),
        (4, 7, 9),
    ]
    assert blocks(parse_arch("relu dropout(0.1)")) == ()


def test_backbone_must_be_the_first_layer() -> None:
    with pytest.raises(ArchError, match="layer 2 'backbone.*must be the first layer") as info:
        parse_arch("relu backbone(keep=2)")
    assert info.value.reason == "backbone must be the first layer"


def test_backbone_cannot_freeze_more_than_it_keeps() -> None:
    with pytest.raises(
        ArchError, match=r"backbone\(keep=2, freeze=3\): freeze must be at most keep"
    ):
        parse_arch("backbone(keep=2, freeze=3) dense(8)")


def test_blr_is_left_out_of_the_text_at_its_default() -> None:
    """Adding blr changed no phenotype's canonical text, hash or archive key."""
    plain = parse_arch("conv(8) relu | lr=0.01")
    assert "blr" not in plain.canonical() and "blr" not in plain.to_json()
    assert plain.hparam_map()["blr"] == 1.0
    assert parse_arch("conv(8) relu | lr=0.01 blr=1").hash() == plain.hash()
    tuned = parse_arch("backbone(3, 1) | blr=0.5")
    assert tuned.canonical().endswith("blr=0.5") and parse_arch(tuned.canonical()) == tuned


def test_expanding_puts_the_kept_blocks_and_an_adapter_in_place_of_the_backbone() -> None:
    source = parse_arch(BACKBONE)
    plan = expand_backbone(parse_arch("backbone(keep=2, freeze=1) dense(8)"), source, 1, 3)
    texts = [layer.text() for layer in plan.spec.layers]
    assert texts == [
        "conv(1,1,1)",  # the adapter: 3 channels -> the backbone's 1
        *("conv(8,3,1)", "bn", "relu"),  # block 1, frozen
        *("conv(8,3,1)", "relu", "pool(max,2)"),  # block 2
        "dense(8)",
    ]
    assert (
        plan.adapter and plan.backbone_layers == range(1, 7) and plan.frozen_layers == range(1, 4)
    )
    assert expand_backbone(parse_arch("backbone(1)"), source, 1, 1).backbone_layers == range(0, 3)


# --- building ---------------------------------------------------------------------------------------


def test_too_many_blocks_kept_is_invalid_with_a_reason(backbone_dir: Path) -> None:
    spec = parse_arch("backbone(keep=7) dense(8)")
    with pytest.raises(ArchError, match=r"keep=7\): the backbone has 6 block\(s\); keep at most 6"):
        measure(spec, DIGITS, 10, load_backbone(str(backbone_dir)))


def test_backbone_layer_without_a_backbone_is_an_invalid_phenotype() -> None:
    metrics = train_phenotype(EvalTask("backbone(2) dense(8)", seed=0, epochs=1, train_subset=0.1))
    assert metrics.status == INVALID
    assert "no backbone network" in metrics.error and "--backbone" in metrics.error


def test_keep_all_blocks_reproduces_the_source_features(backbone_dir: Path) -> None:
    backbone = load_backbone(str(backbone_dir))
    net = transfer("backbone(keep=6) | lr=0.01", backbone_dir).eval()
    x = torch.randn(5, *DIGITS)
    with torch.no_grad():
        ours, theirs = net[:-1](x), backbone.network[:-1](x)  # everything before the head
    assert ours.shape == theirs.shape == (5, 32)
    assert torch.equal(ours, theirs)


def test_frozen_blocks_stay_put_and_the_others_train(backbone_dir: Path) -> None:
    net = transfer("backbone(keep=4, freeze=2) dense(8) relu | lr=0.01 batch=32", backbone_dir)
    frozen = {k: v.clone() for k, v in net[: net.frozen_modules.stop].state_dict().items()}
    assert "1.running_mean" in frozen  # block 1's batch norm
    trained = [net[i] for i in net.backbone_modules if i >= net.frozen_modules.stop]
    before = [p.clone() for m in trained for p in m.parameters()]
    splits = load_splits("digits", None, 0.2, 0, 64)
    status, _, _ = train_model(
        net, parse_arch("relu | lr=0.01 batch=32").hparam_map(), splits.x_train,
        splits.y_train, epochs=1, seed=0,
    )  # fmt: skip
    assert status == "ok"
    after = net[: net.frozen_modules.stop].state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # weights and BN statistics
    assert all(not p.requires_grad for p in net[: net.frozen_modules.stop].parameters())
    changed = [
        not torch.equal(b, p) for b, p in zip(before, (p for m in trained for p in m.parameters()))
    ]
    assert any(changed)
    net.train()
    assert not any(net[i].training for i in net.frozen_modules)
    assert net[net.frozen_modules.stop].training
    source = load_backbone(str(backbone_dir)).network  # the cached backbone is never trained
    assert torch.equal(source[0].weight, frozen["0.weight"])


def test_blr_scales_the_unfrozen_backbone_blocks_learning_rate(backbone_dir: Path) -> None:
    for opt in ("adam", "sgd", "adamw", "rmsprop"):
        spec = parse_arch(f"backbone(keep=3, freeze=1) dense(8) | opt={opt} lr=0.01 blr=0.25")
        net = transfer(spec.canonical(), backbone_dir)
        optimizer = make_optimizer(net, spec.hparam_map())
        own, backbone = optimizer.param_groups
        assert own["lr"] == 0.01 and backbone["lr"] == pytest.approx(0.0025)
        unfrozen = [p for i in net.backbone_modules for p in net[i].parameters() if p.requires_grad]
        assert {id(p) for p in backbone["params"]} == {id(p) for p in unfrozen}
        grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert not any(id(p) in grouped for i in net.frozen_modules for p in net[i].parameters())
    onecycle = parse_arch("backbone(keep=3) | lr=0.01 blr=0.5 sched=onecycle batch=32")
    net = transfer(onecycle.canonical(), backbone_dir)
    splits = load_splits("digits", None, 0.2, 0, 64)
    status, _, _ = train_model(
        net, onecycle.hparam_map(), splits.x_train, splits.y_train, epochs=1, seed=0
    )
    assert status == "ok"


def test_an_adapter_maps_another_channel_count_to_the_backbones(backbone_dir: Path) -> None:
    net = transfer("backbone(keep=5, freeze=5) dense(8) | lr=0.01", backbone_dir, (3, 20, 20))
    adapter = net[0]
    assert isinstance(adapter, torch.nn.Conv2d) and adapter.weight.shape == (1, 3, 1, 1)
    assert torch.allclose(adapter.weight, torch.full_like(adapter.weight, 1 / 3))
    assert adapter.weight.requires_grad and 0 not in net.backbone_modules
    assert net(torch.randn(2, 3, 20, 20)).shape == (2, 10)
    optimizer = make_optimizer(net, parse_arch("relu").hparam_map())
    assert any(p is adapter.weight for p in optimizer.param_groups[0]["params"])


def test_a_kept_dense_layer_that_no_longer_fits_is_invalid(tmp_path: Path) -> None:
    source = save_network(tmp_path / "flat", "conv(4) relu flatten dense(8) relu | lr=0.01")
    backbone = load_backbone(str(source))
    measure(parse_arch("backbone(keep=1)"), (1, 12, 12), 10, backbone)  # conv blocks adapt
    with pytest.raises(ArchError, match="dense layer trained on 256 input features gets 576 here"):
        measure(parse_arch("backbone(keep=2)"), (1, 12, 12), 10, backbone)


def test_params_count_the_frozen_blocks_too(backbone_dir: Path) -> None:
    backbone = load_backbone(str(backbone_dir))
    frozen = measure(parse_arch("backbone(keep=3, freeze=3)"), DIGITS, 10, backbone).params
    assert frozen == measure(parse_arch("backbone(keep=3)"), DIGITS, 10, backbone).params


# --- identity and loading ---------------------------------------------------------------------------


def test_archive_keys_differ_by_backbone(backbone_dir: Path, tmp_path: Path) -> None:
    other = save_network(tmp_path / "other", BACKBONE)  # same network, other (untrained) weights
    plain = RunConfig("g.bnf")
    keys = [fidelity_key(replace(plain, backbone=b)) for b in (None, str(backbone_dir), str(other))]
    assert "backbone" not in keys[0]  # runs without a backbone keep their keys
    assert keys[1] == keys[0] + f"|backbone={backbone_digest(str(backbone_dir))}"
    assert len(set(keys)) == 3
    final = fidelity_key(replace(plain, backbone=str(other)), final=True)
    assert backbone_digest(str(other)) in final
    assert len(backbone_digest(str(other))) == 16


def test_a_changed_backbone_is_refused(backbone_dir: Path) -> None:
    with pytest.raises(ConfigError, match="changed since the run started"):
        load_backbone(str(backbone_dir), "0" * 16)
    task = EvalTask(
        "backbone(2) dense(8)",
        seed=0,
        epochs=1,
        backbone=str(backbone_dir),
        backbone_digest="0" * 16,
    )
    assert train_phenotype(task).status == FAILED


def test_backbone_show_lists_the_blocks(
    backbone_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backbone", "show", str(backbone_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 block(s) for input 1x8x8" in out
    assert "conv(8,3,1) relu pool(max,2)" in out and "8x4x4" in out
    assert "dense(32) relu dropout(0.1)" in out and "8,432" in out  # cumulative params
    assert main(["backbone", "show", str(backbone_dir), "--input-shape", "3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "adapter conv(1,1,1)" in out and "8x16x16" in out


def test_backbone_show_of_a_missing_directory_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backbone", "show", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- the command line -------------------------------------------------------------------------------


def test_transfer_grammar_runs_end_to_end(backbone_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--grammar", "grammars/transfer.bnf", "--backbone", str(backbone_dir),
            "--dataset", "digits", *TINY, "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    model = load_model(out / "best")
    raw = torch.rand(4, *DIGITS) * 16  # digits' raw range
    assert model(raw).shape == (4, 10)
    assert f'backbone = "{backbone_dir.resolve()}"' in (out / "config.toml").read_text()
    saved = (out / "best" / "spec.json").read_text()
    assert '"backbone"' not in saved and '"res"' in saved  # the expanded network
    trained = tmp_path / "trained"  # `train --from` takes the run's backbone
    assert (
        main(["train", "--from", str(out), "--rank", "1", "--epochs", "1", "--out", str(trained)])
        == 0
    )
    assert load_model(trained)(raw).shape == (4, 10)


def test_prescreen_does_not_go_with_a_backbone() -> None:
    with pytest.raises(ConfigError, match="--prescreen does not work with --backbone"):
        RunConfig("g.bnf", mode="steady", prescreen=4, backbone="runs/source")


def _corrupt(tmp_path: Path, backbone_dir: Path) -> Path:
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for name in ("spec.json", "meta.json"):
        (bad / name).write_text((backbone_dir / name).read_text())
    (bad / "model.pt").write_bytes(b"not a weights file")
    return bad


def _mismatched(tmp_path: Path, backbone_dir: Path) -> Path:
    """A model directory whose model.pt lacks a tensor, has an extra one and one of another shape."""
    bad = tmp_path / "mismatched"
    bad.mkdir()
    for name in ("spec.json", "meta.json"):
        (bad / name).write_text((backbone_dir / name).read_text())
    state = torch.load(backbone_dir / "model.pt", weights_only=True)
    names = [k for k, v in state.items() if v.dim() > 1]
    del state[names[0]]
    state[names[1]] = torch.zeros(2, 2)
    state["network.extra.weight"] = torch.zeros(1)
    torch.save(state, bad / "model.pt")
    return bad


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, good: tmp / "missing", "does not exist"),
        (lambda tmp, good: tmp, "has no model.pt"),
        (_corrupt, "cannot load the weights"),
        (_mismatched, "state dict does not fit the spec's network: missing"),
        (lambda tmp, good: "torchvision:resnet18", "torchvision backbones are not supported"),
    ],
    ids=["missing", "no-weights", "corrupt", "mismatched", "torchvision"],
)
def test_a_bad_backbone_is_refused_before_anything_is_written(
    make: object, message: str, backbone_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    backbone = str(make(tmp_path, backbone_dir))  # type: ignore[operator]
    out = tmp_path / "run"
    argv = [
        "run",
        "--grammar",
        "grammars/transfer.bnf",
        "--backbone",
        backbone,
        *TINY,
        "--out",
        str(out),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and backbone.split(":")[-1] in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_torchvision_backbones_are_refused() -> None:
    with pytest.raises(ConfigError, match="torchvision backbones are not supported"):
        backbone_digest("torchvision:resnet18")


def test_check_arch_names_the_grammar_line_that_keeps_too_many_blocks(
    backbone_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.bnf"
    path.write_text(
        '<net> ::= <bb> dropout(0.1) " | " opt=adam\n'
        "<bb> ::= backbone(keep=2, freeze=1)\n"
        "  | backbone(keep=9, freeze=0)\n"
    )
    argv = ["grammar", "check", str(path), "--arch", "--backbone", str(backbone_dir)]
    assert main([*argv, "--input-shape", "1,8,8", "-n", "30", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "invalid; most common reasons:" in out
    assert f"({path}:3: <bb> ::= backbone(keep=9, freeze=0))" in out
    assert "(keep=2" not in out.split("most common reasons:")[1]


def test_a_killed_transfer_run_resumes_without_training_anything_twice(
    backbone_dir: Path, tmp_path: Path
) -> None:
    from test_resume import check_kill_and_resume

    run = ["run", "--grammar", "grammars/transfer.bnf", "--backbone", str(backbone_dir),
           "--dataset", "digits", "--population", "5", "--generations", "2", "--seed", "2",
           "--epochs", "1", "--train-subset", "0.25", "--final-epochs", "1", "--finalists", "1",
           "--workers", "1"]  # fmt: skip
    check_kill_and_resume(run, tmp_path, after_rows=4)
