"""Tests for ge_nas.arch: the architecture language, canonical form, hash, round trips, errors."""

from __future__ import annotations

import json
import pickle
import re

import pytest

from ge_nas.arch import HPARAMS, LAYERS, ArchSpec, Layer, parse_arch
from ge_nas.errors import ArchError

DEFAULT_HP = "opt=adam lr=0.001 batch=64 wd=0.0 momentum=0.9 sched=cosine ls=0.0 aug=none"
EXAMPLE = (
    "conv(32, 3) bn relu pool(max, 2) dropout(0.25) dense(64) relu | opt=adam lr=0.001 batch=64"
)


@pytest.mark.parametrize(
    ("text", "layer"),
    [
        ("conv(32)", Layer("conv", (("filters", 32), ("kernel", 3), ("stride", 1)))),
        ("conv(8, 5, 2)", Layer("conv", (("filters", 8), ("kernel", 5), ("stride", 2)))),
        ("sepconv(16, 7)", Layer("sepconv", (("filters", 16), ("kernel", 7), ("stride", 1)))),
        ("res(4, stride=2)", Layer("res", (("filters", 4), ("kernel", 3), ("stride", 2)))),
        ("pool", Layer("pool", (("kind", "max"), ("size", 2)))),
        ("pool(avg, 3)", Layer("pool", (("kind", "avg"), ("size", 3)))),
        ("gap", Layer("gap")),
        ("flatten", Layer("flatten")),
        ("flatten()", Layer("flatten")),
        ("dense(10)", Layer("dense", (("units", 10),))),
        ("bn", Layer("bn")),
        ("dropout", Layer("dropout", (("p", 0.5),))),
        ("dropout(0)", Layer("dropout", (("p", 0.0),))),
        ("dropout(p=0.25)", Layer("dropout", (("p", 0.25),))),
        ("leaky", Layer("leaky")),
    ],
)
def test_parse_layer(text: str, layer: Layer) -> None:
    spec = parse_arch(text)
    assert spec.layers == (layer,)
    assert spec.hparams == parse_arch("relu").hparams


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_kind_parses_with_defaults_filled(name: str) -> None:
    kind = LAYERS[name]
    filled = [p for p in kind.params if not p.optional]  # an optional one absent is left out
    required = [p for p in filled if p.default is None]
    text = f"{name}({', '.join('4' for _ in required)})" if required else name
    (layer,) = parse_arch(text).layers
    assert [k for k, _ in layer.args] == [p.name for p in filled]
    assert all(
        v == (4 if p.default is None else p.default) for p, (_, v) in zip(filled, layer.args)
    )


def test_a_keep_mask_sets_the_width_and_round_trips() -> None:
    spec = parse_arch("conv(4,3,keep=b1011) relu dense(3, keep=b010) | opt=adam")
    assert spec.canonical().startswith("conv(4,3,1,keep=b1011) relu dense(3,keep=b010) |")
    assert parse_arch(spec.canonical()) == spec == ArchSpec.from_json(spec.to_json())
    plain = parse_arch("conv(4,3) relu dense(3) | opt=adam")
    assert "keep" not in plain.to_json() and spec.hash() != plain.hash()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dense(3,keep=b01)", "keep has 2 bits, expected one per unit: 3"),
        ("dense(3,keep=b000)", "keep masks every unit"),
        ("dense(3,keep=101)", "keep must be a mask of 0s and 1s after a 'b'"),
        ("dense(3,keep=b1x1)", "keep must be a mask of 0s and 1s after a 'b'"),
        ("sepconv(2,keep=b11)", "sepconv has no argument 'keep'"),
    ],
)
def test_bad_keep_masks(text: str, message: str) -> None:
    with pytest.raises(ArchError, match=re.escape(message)):
        parse_arch(text)


@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ("opt=sgd", "opt", "sgd"),
        ("opt=rmsprop", "opt", "rmsprop"),
        ("lr=0.1", "lr", 0.1),
        ("lr=1", "lr", 1.0),
        ("lr=1e-3", "lr", 0.001),
        ("batch=128", "batch", 128),
        ("batch=1e2", "batch", 100),
        ("wd=0.0005", "wd", 0.0005),
        ("momentum=0", "momentum", 0.0),
        ("sched=onecycle", "sched", "onecycle"),
        ("sched=none", "sched", "none"),
        ("ls=0.1", "ls", 0.1),
    ],
)
def test_parse_hparam(text: str, name: str, value: object) -> None:
    hp = parse_arch(f"relu | {text}").hparam_map()
    assert hp[name] == value and type(hp[name]) is type(value)
    assert {k: v for k, v in hp.items() if k != name} == {
        k: p.default for k, p in HPARAMS.items() if k != name
    }


def test_hparams_default_in_table_order() -> None:
    spec = parse_arch("relu")
    assert spec.hparams == tuple((k, p.default) for k, p in HPARAMS.items())
    assert parse_arch("relu |").hparams == spec.hparams


def test_canonical_text() -> None:
    spec = parse_arch(EXAMPLE)
    assert (
        spec.canonical()
        == f"conv(32,3,1) bn relu pool(max,2) dropout(0.25) dense(64) relu | {DEFAULT_HP}"
    )
    assert parse_arch("dense(4) | lr=0.5 opt=sgd").canonical() == (
        "dense(4) | opt=sgd lr=0.5 batch=64 wd=0.0 momentum=0.9 sched=cosine ls=0.0 aug=none"
    )


@pytest.mark.parametrize(
    "other",
    [
        "conv(32,3)",
        "conv(32, 3, 1)",
        "conv(filters=32)",
        "conv(32, kernel=3)",
        "conv(stride=1, kernel=3, filters=32)",
        "conv(32.0)",
        "conv(+32)",
        "  conv ( 32 )  ",
        "\n\tconv(\n32\n)\n",
        "conv(32)|",
        "conv(32) | opt=adam",
        "conv(32) | ls=0 wd=0 lr=1e-3 batch=64",
        f"conv(32) | {DEFAULT_HP}",
    ],
)
def test_equivalent_texts_have_one_hash(other: str) -> None:
    a, b = parse_arch("conv(32)"), parse_arch(other)
    assert a == b
    assert a.canonical() == b.canonical()
    assert a.hash() == b.hash()


def test_multiline_example_equals_one_line() -> None:
    text = EXAMPLE.replace(" ", "\n   ").replace("|", "\n|\n")
    assert parse_arch(text).hash() == parse_arch(EXAMPLE).hash()


@pytest.mark.parametrize(
    "other",
    [
        "conv(33)",
        "conv(32, 5)",
        "conv(32, stride=2)",
        "sepconv(32)",
        "conv(32) relu",
        "relu conv(32)",
        "conv(32) | lr=0.01",
        "conv(32) | opt=adamw",
        "conv(32) | batch=32",
        "conv(32) | sched=none",
    ],
)
def test_different_specs_have_different_hashes(other: str) -> None:
    assert parse_arch("conv(32)").hash() != parse_arch(other).hash()


def test_hash_is_short_hex_and_stable() -> None:
    h = parse_arch("conv(32)").hash()
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert h == parse_arch("conv(32)").hash()


def test_layer_order_matters() -> None:
    assert parse_arch("relu bn").hash() != parse_arch("bn relu").hash()


@pytest.mark.parametrize(
    "text", [EXAMPLE, "res(8, 5, 2) gap dense(3) | opt=sgd lr=1e-05 ls=0.5", "flatten"]
)
def test_canonical_text_parses_back_to_an_equal_spec(text: str) -> None:
    spec = parse_arch(text)
    assert parse_arch(spec.canonical()) == spec


@pytest.mark.parametrize(
    "text", [EXAMPLE, "res(8, 5, 2) gap dense(3) | opt=sgd lr=1e-05 momentum=0", "leaky"]
)
def test_json_round_trip(text: str) -> None:
    spec = parse_arch(text)
    doc = json.loads(spec.to_json())
    assert doc["version"] == 1
    assert doc["layers"][0]["kind"] == spec.layers[0].kind
    back = ArchSpec.from_json(spec.to_json())
    assert back == spec and back.hash() == spec.hash()


def test_json_with_missing_defaults_is_filled() -> None:
    doc = {"layers": [{"kind": "conv", "args": {"filters": 8}}], "hparams": {"lr": 0.1}}
    assert ArchSpec.from_json(json.dumps(doc)) == parse_arch("conv(8) | lr=0.1")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("not json", "spec JSON is malformed"),
        ("[]", "spec JSON is malformed"),
        ('{"layers": 3, "hparams": {}}', "spec JSON is malformed"),
        ('{"hparams": {}}', "spec JSON is malformed"),
        (
            '{"layers": [{"kind": "cnv", "args": {}}], "hparams": {}}',
            "spec JSON: unknown layer 'cnv' (did you mean 'conv'?)",
        ),
        (
            '{"layers": [{"kind": "conv", "args": {"filters": 0}}], "hparams": {}}',
            "spec JSON: conv: filters must be in [1, 4096], got 0",
        ),
        (
            '{"layers": [{"kind": "conv", "args": {"filterz": 2}}], "hparams": {}}',
            "spec JSON: conv has no argument 'filterz'",
        ),
        (
            '{"layers": [{"kind": "relu", "args": {}}], "hparams": {"lrr": 1}}',
            "spec JSON: unknown hyperparameter 'lrr' (did you mean 'lr'?)",
        ),
        (
            '{"layers": [{"kind": "relu", "args": {}}], "hparams": {"lr": "x"}}',
            "spec JSON: lr: lr must be a number",
        ),
    ],
)
def test_json_errors(doc: str, message: str) -> None:
    with pytest.raises(ArchError) as info:
        ArchSpec.from_json(doc)
    assert message in str(info.value)


def test_json_without_layers_is_an_error() -> None:
    with pytest.raises(ArchError):
        ArchSpec.from_json('{"version": 1, "layers": [], "hparams": {}}')


def test_pickle_round_trip() -> None:
    spec = parse_arch(EXAMPLE)
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.hash() == spec.hash()
    assert hash(back) == hash(spec)  # frozen: usable as a dict key


def test_spec_is_frozen() -> None:
    spec = parse_arch("relu")
    with pytest.raises(AttributeError):
        spec.layers = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "cnv(32)",
            "phenotype 1:1: unknown layer 'cnv' (did you mean 'conv'?); known: conv, sepconv",
        ),
        ("conv(32)\n  denes(4)", "phenotype 2:3: unknown layer 'denes' (did you mean 'dense'?)"),
        ("conv(32) bogus", "phenotype 1:10: unknown layer 'bogus'; known: conv"),
        ("conv(a)", "phenotype 1:1: conv: filters must be a number, got 'a'"),
        ("conv(32.5)", "phenotype 1:1: conv: filters must be an integer, got 32.5"),
        ("pool(min)", "phenotype 1:1: pool: kind must be one of max, avg, got 'min'"),
        ("pool(2)", "phenotype 1:1: pool: kind must be one of max, avg, got 2"),
        ("conv(0)", "phenotype 1:1: conv: filters must be in [1, 4096], got 0"),
        ("conv(-3)", "phenotype 1:1: conv: filters must be in [1, 4096], got -3"),
        ("relu conv(8, 16)", "phenotype 1:6: conv: kernel must be in [1, 15], got 16"),
        ("dropout(0.96)", "phenotype 1:1: dropout: p must be in [0, 0.95], got 0.96"),
        (
            "conv(1, 2, 3, 4)",
            "phenotype 1:1: conv takes at most 3 argument(s) (conv(filters, kernel, stride)), got 4",
        ),
        ("relu(3)", "phenotype 1:1: relu takes at most 0 argument(s) (relu()), got 1"),
        (
            "conv(32, size=3)",
            "phenotype 1:1: conv has no argument 'size'; expected conv(filters, kernel, stride)",
        ),
        ("conv(32, filters=3)", "phenotype 1:1: conv: argument 'filters' is given twice"),
        ("conv", "phenotype 1:1: conv needs argument 'filters'"),
        ("relu dense()", "phenotype 1:6: dense needs argument 'units'"),
        ("conv(32) | lr=0.1 lr=0.2", "phenotype 1:19: hyperparameter 'lr' is given twice"),
        (
            "conv(32) | lrr=0.1",
            "phenotype 1:12: unknown hyperparameter 'lrr' (did you mean 'lr'?); known: opt, lr",
        ),
        (
            "conv(32) | opt=sgdd",
            "phenotype 1:12: opt must be one of adam, adamw, sgd, rmsprop, got 'sgdd'",
        ),
        ("conv(32) | batch=64.5", "phenotype 1:12: batch must be an integer, got 64.5"),
        ("conv(32) | lr=adam", "phenotype 1:12: lr must be a number, got 'adam'"),
        ("relu |\n lr=100", "phenotype 2:2: lr must be in [1e-06, 10], got 100.0"),
        ("relu | lr=1e400", "phenotype 1:8: lr must be a finite number, got inf"),
    ],
)
def test_semantic_errors_name_the_position(text: str, message: str) -> None:
    with pytest.raises(ArchError) as info:
        parse_arch(text)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message", "caret_line"),
    [
        (
            "conv(32,,3)",
            "phenotype 1:9: unexpected ',', expected a name or a number",
            "            ^",
        ),
        ("conv(32) $", "phenotype 1:10: unexpected character '$'", "             ^"),
        (
            "conv(32)\nrelu )",
            "phenotype 2:6: unexpected ')', expected '(' or '|' or a name",
            "         ^",
        ),
        ("| lr=0.1", "phenotype 1:1: unexpected '|', expected a name", "    ^"),
        ("__import__('os')", 'phenotype 1:12: unexpected character "\'"', "               ^"),
        ("relu | lr 0.1", "phenotype 1:11: unexpected '0.1', expected '='", "              ^"),
    ],
)
def test_syntax_errors_have_position_and_caret(text: str, message: str, caret_line: str) -> None:
    with pytest.raises(ArchError) as info:
        parse_arch(text)
    head, source, caret = str(info.value).split("\n")
    assert head == message
    line = int(message.split()[1].split(":")[0])
    assert source == "    " + text.splitlines()[line - 1]
    assert caret == caret_line


@pytest.mark.parametrize(
    ("text", "expected", "caret_col"),
    [
        ("", "a name", 1),
        ("   ", "a name", 4),
        ("dense(64", "')' or ','", 9),
        ("relu | lr=", "a name or a number", 11),
        ("conv(32)\n  dense(", "')' or a name or a number", 9),
    ],
)
def test_early_end_is_an_error_with_caret(text: str, expected: str, caret_col: int) -> None:
    with pytest.raises(ArchError) as info:
        parse_arch(text)
    lines = str(info.value).split("\n")
    assert lines[0].endswith(f": ended early, expected {expected}")
    assert lines[-1] == " " * (4 + caret_col - 1) + "^"


@pytest.mark.parametrize(
    ("text", "position"), [("conv(32)\n  dense(", "2:9"), ("dense(64", "1:9"), ("", "1:1")]
)
def test_early_end_message_has_line_and_column(text: str, position: str) -> None:
    with pytest.raises(ArchError, match=f"phenotype {position}"):
        parse_arch(text)


def test_duplicate_keyword_argument_is_an_error() -> None:
    with pytest.raises(ArchError, match="given twice"):
        parse_arch("conv(32, kernel=3, kernel=5)")


def test_infinite_integer_argument_is_an_arch_error() -> None:
    with pytest.raises(ArchError, match="phenotype 1:1: dense"):
        parse_arch("dense(1e400)")


def test_arch_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_arch("nonsense(")


@pytest.mark.parametrize(
    ("text", "reason", "position", "token"),
    [
        ("conv(32) bogus", "unknown layer 'bogus'", (1, 10), "bogus"),
        ("relu conv(8, 16)", "conv: kernel must be in [1, 15], got 16", (1, 14), "16"),
        ("conv(32, size=3)", "conv has no argument 'size'", (1, 10), "size"),
        ("conv(32, filters=3)", "conv: argument 'filters' is given twice", (1, 10), "filters"),
        ("conv(1, 2, 3, 4)", "conv takes at most 3 argument(s), got 4", (1, 1), "conv"),
        ("conv(32) | lrr=0.1", "unknown hyperparameter 'lrr'", (1, 12), "lrr"),
        ("relu |\n lr=100", "lr must be in [1e-06, 10], got 100.0", (2, 5), "100"),
        ("conv(32,,3)", "unexpected ',', expected a name or a number", (1, 9), ","),
        ("conv(32) $", "unexpected character '$'", (1, 10), "$"),
        ("dense(64", "ended early, expected ')' or ','", (1, 9), None),
    ],
)
def test_arch_error_says_the_reason_position_and_offending_text(
    text: str, reason: str, position: tuple[int, int], token: str | None
) -> None:
    with pytest.raises(ArchError) as info:
        parse_arch(text)
    error = info.value
    assert (error.reason, (error.line, error.column), error.token) == (reason, position, token)


def test_arch_error_fields_survive_pickling() -> None:
    with pytest.raises(ArchError) as info:
        parse_arch("conv(32) bogus")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.reason, copy.line, copy.column, copy.token) == (
        "unknown layer 'bogus'",
        1,
        10,
        "bogus",
    )
    assert str(copy) == str(info.value)
