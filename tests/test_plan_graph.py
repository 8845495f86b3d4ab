"""`tfspec plan` and `tfspec graph`: real Keras models, real Graphviz.

Each example is compiled and analysed (built) once per module; the only thing
simulated is a machine without the `dot` program.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from transfer_fixtures import buildable

import tfspec.inspect.graph
from tfspec.codegen.program import compile_file, compile_text
from tfspec.inspect.graph import GraphvizMissing, dot_from, to_dot, write_graph
from tfspec.inspect.plan import analyze, plan, plan_from, render_text
from tfspec.lang.diagnostics import SpecError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.tfspec"))

TINY_DENSE = """tfspec 1
model Tiny functional {
  input x: float32[64]
  output y = Dense(10)(x)
}
"""

ZOO = """tfspec 1
model Zoo functional {
  input seq: float32[6, 8]
  input img: float32[8, 8, 3]
  att = MultiHeadAttention(num_heads = 2, key_dim = 4)(seq, seq)
  r = att
    |> LayerNormalization()
    |> SimpleRNN(5, return_sequences = true)
    |> GRU(4, return_sequences = true)
    |> LSTM(3, return_sequences = true)
    |> TimeDistributed(Dense(2))
  c1 = r |> Conv1D(4, 3) |> GlobalMaxPooling1D()
  im = img
    |> DepthwiseConv2D(3, padding = "same")
    |> SeparableConv2D(4, 3)
    |> Conv2DTranspose(2, 3, strides = 2)
    |> AveragePooling2D(2)
    |> Flatten()
  output out = Concatenate()([c1, im]) |> Dense(3) |> Softmax()
}
"""


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """name -> (compiled, analysis, plan) for every example, each built once (a model
    that loads another example's export is built beside that export)."""
    out = {}
    for name in EXAMPLES:
        compiled = compile_file(buildable(ROOT / "examples" / name, tmp_path_factory))
        analysis = analyze(compiled)
        out[name] = (compiled, analysis, plan_from(analysis))
    return out


@pytest.fixture(scope="module")
def zoo():
    return plan(compile_text(ZOO, "zoo.tfspec"))


def _spec_names(compiled, kind):
    return [s[kind] for s in compiled.ir["model"]["body"] if kind in s]


# -- plan ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_total_params_equal_count_params(examples, name):
    from tfspec.jobs.build import build_model

    compiled, analysis, result = examples[name]
    fresh = build_model(compiled)  # an independent build of the same program
    totals = result["totals"]
    assert totals["params"] == fresh.count_params() == analysis.model.count_params()
    assert totals["trainable_params"] + totals["non_trainable_params"] == totals["params"]
    assert sum(e["params"] for e in result["layers"]) == totals["params"]
    assert sum(e["trainable_params"] for e in result["layers"]) == totals["trainable_params"]
    assert totals["flops"] == sum(e["flops"] for e in result["layers"])
    # Normalization keeps an int64 `count`: bytes follow each weight's own dtype
    expected = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in fresh.weights)
    assert totals["weight_bytes"] == expected


@pytest.mark.parametrize("name", EXAMPLES)
def test_plan_is_json(examples, name):
    result = examples[name][2]
    assert json.loads(json.dumps(result, indent=2)) == result


@pytest.mark.parametrize("name", EXAMPLES)
def test_signature_names_match_the_spec(examples, name):
    compiled, analysis, result = examples[name]
    sig = result["signature"]
    assert [s["name"] for s in sig["inputs"]] == _spec_names(compiled, "input")
    outputs = _spec_names(compiled, "output")
    if compiled.ir["model"]["kind"] == "sequential":
        outputs = [analysis.model.layers[-1].name]  # a Sequential names no outputs
    assert [s["name"] for s in sig["outputs"]] == outputs
    for s in sig["inputs"] + sig["outputs"]:
        assert s["shape"][0] is None and s["dtype"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_layer_has_a_spec_location(examples, name):
    compiled, _, result = examples[name]
    lines = compiled.spec_source.splitlines()
    for e in result["layers"]:
        assert e["location"], e["name"]
        line, col = map(int, e["location"].split(":"))
        assert 1 <= line <= len(lines) and 1 <= col <= len(lines[line - 1]) + 1


def test_layer_rows_of_the_digits_cnn(examples):
    result = examples["digits_cnn.tfspec"][2]
    rows = {e["name"]: e for e in result["layers"]}
    assert list(rows) == ["image", "x_rescaling", "x_conv2d", "x_conv2d_2", "x_max_pooling2d",
                          "x_flatten", "x", "digit"]
    conv = rows["x_conv2d"]
    assert conv["class"] == "Conv2D" and conv["output_shape"] == [None, 8, 8, 16]
    assert conv["output_dtype"] == "float32" and conv["params"] == 3 * 3 * 1 * 16 + 16
    # 8x8x16 outputs, each 3x3x1 multiply-adds, plus bias and ReLU per output
    assert conv["flops"] == 8 * 8 * 16 * (2 * 9 + 2)
    assert conv["location"] == "20:8"
    assert rows["digit"]["location"] == "25:18"
    assert rows["digit"]["flops"] == 2 * 512 * 10 + 10 + 10  # bias + softmax


def test_dense_flops_follow_the_formula():
    result = plan(compile_text(TINY_DENSE, "tiny.tfspec"))
    dense = next(e for e in result["layers"] if e["class"] == "Dense")
    assert dense["flops"] == 2 * 64 * 10 + 10  # multiply-adds x 2, plus one per bias
    assert dense["params"] == 64 * 10 + 10
    assert result["totals"]["flops"] == 2 * 64 * 10 + 10


def test_flops_of_other_layer_types(zoo):
    rows = {e["class"]: e for e in zoo["layers"]}
    assert all(e["flops_estimated"] for e in zoo["layers"])
    assert zoo["totals"]["flops_not_estimated"] == []
    lstm = rows["LSTM"]  # 6 steps of 4 gates over [input 4 + state 3], + elementwise work
    assert lstm["flops"] == 6 * (4 * 3 * 2 * (4 + 3) + 4 * 3 * 2 + 5 * 3)
    # query/key/value/output projections (+ biases), then the attention itself
    mha = rows["MultiHeadAttention"]
    assert mha["flops"] == 4 * 2 * 6 * 8 * 2 * 4 + 4 * 6 * 8 + (
        6 * 8 + 2 * 36 * 2 * 4 + 2 * 36 + 2 * 36 * 2 * 4)
    transpose = rows["Conv2DTranspose"]  # every input element meets the whole kernel
    assert transpose["output_shape"] == [None, 13, 13, 2]
    assert transpose["flops"] == 2 * (6 * 6 * 4) * 9 * 2 + 13 * 13 * 2
    assert rows["TimeDistributed"]["flops"] == 6 * (2 * 3 * 2 + 2)
    assert rows["Concatenate"]["flops"] == 0 and rows["Flatten"]["flops"] == 0


def test_layers_without_a_rule_are_marked(examples):
    result = examples["text_lstm.tfspec"][2]
    rows = {e["name"]: e for e in result["layers"]}
    assert not rows["tokens"]["flops_estimated"] and rows["tokens"]["flops"] == 0
    assert result["totals"]["flops_not_estimated"] == ["tokens"]
    assert rows["tokens"]["output_dtype"] == "int64"
    assert rows["h_embedding"]["flops"] == 0 and rows["h_embedding"]["flops_estimated"]
    assert rows["h_bidirectional"]["flops"] == 2 * 64 * (4 * 32 * 2 * (32 + 32) + 13 * 32)


def test_shared_layer_counts_every_call(examples):
    rows = {e["name"]: e for e in examples["two_tower.tfspec"][2]["layers"]}
    assert rows["encoder"]["calls"] == 2
    assert rows["encoder"]["flops"] == 2 * (2 * 16 * 32 + 32 + 32)
    assert rows["encoder"]["params"] == 16 * 32 + 32


def test_block_layers_carry_their_use(examples):
    result = examples["resnet_blocks.tfspec"][2]
    rows = {e["name"]: e for e in result["layers"]}
    conv = rows["x_residual_2_y_conv2d"]
    assert conv["block"] == "x_residual_2" and conv["location"] == "10:8"
    assert conv["block_chain"] == [{"use": "x_residual_2", "block": "Residual",
                                    "location": "30:8"}]
    assert rows["x"]["class"] == "ReLU" and rows["x"]["block"] == "x"  # the block's output
    assert rows["x_rescaling"]["block"] is None and rows["x_rescaling"]["block_chain"] == []
    assert result["totals"]["non_trainable_params"] == 2 * (4 * 16 + 4 * 32)  # BN statistics


def test_subclassed_model_totals_come_from_the_real_model():
    from tfspec.jobs.build import build_model

    text = (ROOT / "examples" / "resnet_blocks.tfspec").read_text()
    compiled = compile_text(text.replace("model ResNet functional", "model ResNet subclass"),
                            "resnet_subclass.tfspec")
    analysis = analyze(compiled)
    result = plan_from(analysis)
    assert result["kind"] == "subclass" and result["layers_from"] == "functional twin"
    real = build_model(compiled)
    assert type(real).__name__ == "ResNet"
    assert result["totals"]["params"] == real.count_params() == 42_314
    assert sum(e["params"] for e in result["layers"]) == result["totals"]["params"]
    rows = {e["name"]: e for e in result["layers"]}
    assert rows["x_residual_3_y_conv2d"]["location"] == "10:8"
    assert rows["x_residual_3_y_conv2d"]["block"] == "x_residual_3"
    dot = dot_from(analysis, result)
    assert 'subgraph "cluster_x_residual_3"' in dot
    # `--set` reaches the functional twin too
    narrow = compile_text(text.replace("model ResNet functional", "model ResNet subclass"),
                          "resnet_subclass.tfspec", overrides={"width": 8})
    result = plan(narrow)
    assert result["totals"]["params"] == build_model(narrow).count_params() == 10_922
    assert sum(e["params"] for e in result["layers"]) == 10_922


def test_render_text(examples):
    text = render_text(examples["digits_cnn.tfspec"][2])
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("Layer (type)"))
    assert "Output shape" in header and "Param #" in header and "Spec" in header
    conv = next(line for line in lines if line.startswith("x_conv2d (Conv2D)"))
    assert "(None, 8, 8, 16)" in conv and "20,480" in conv and conv.endswith("20:8")
    assert "Total params:         9,930 (38.79 KiB)" in lines
    assert "FLOPs per example:    ~626,836 (a multiply-add counts 2)" in lines
    assert "  image  (None, 8, 8, 1)  float32" in lines
    # columns line up: every row of the table is as wide as its rule or narrower
    rule = next(line for line in lines if set(line) == {"="})
    table = lines[lines.index(header) + 2:]
    assert all(len(row) <= len(rule) for row in table[:8])
    text = render_text(examples["resnet_blocks.tfspec"][2])
    assert "10:8 in Residual `x_residual_2` (30:8)" in text
    assert "Non-trainable params: 384" in text


def test_plan_reports_keras_errors_at_the_spec():
    bad = "tfspec 1\nmodel Bad functional {\n  input x: float32[4]\n" \
          "  output y = Conv2D(4, 3)(x)\n}\n"
    with pytest.raises(SpecError) as info:
        plan(compile_text(bad, "bad.tfspec"))
    assert "E500" in str(info.value) and "bad.tfspec:4" in str(info.value)
    shapeless = "tfspec 1\nmodel S sequential {\n  Dense(4)\n}\n"  # built only by data
    with pytest.raises(SpecError) as info:
        plan(compile_text(shapeless, "shapeless.tfspec"))
    assert "shapeless.tfspec:2:7: error[E500]" in str(info.value)


SEQUENTIAL_SHAPES = """tfspec 1
model M sequential {
  input x: float32[4]
  Dense(8)
  Conv2D(8, 3)
  Flatten()
}
"""


def plan_cli(tmp_path, capsys, text: str, *args: str) -> tuple[int, str, str, Path]:
    import tfspec.cli

    spec = tmp_path / "shapes.tfspec"
    spec.write_text(text)
    status = tfspec.cli.main(["plan", str(spec), *args])
    out, err = capsys.readouterr()
    return status, out, err, spec


def test_plan_lists_the_layers_built_before_a_keras_error(tmp_path, capsys):
    """The table of a plan for the layers Keras built, then E500 at the next one."""
    status, out, err, spec = plan_cli(tmp_path, capsys, SEQUENTIAL_SHAPES)
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == (f'{spec}: Model: "M" (sequential): the layers Keras built before '
                        "the error")
    assert lines[2].split() == ["Layer", "(type)", "Output", "shape", "Param", "#", "FLOPs",
                                "Spec"]
    assert [line.split() for line in lines[4:-1]] == [
        ["dense", "(Dense)", "(None,", "8)", "40", "72", "4:3"]]
    assert "Total params" not in out  # not a plan of the model: only what was built
    assert err.startswith(f"{spec}:5:3: error[E500]: Keras cannot build `conv2d`: Input 0 of "
                          "layer 'conv2d' is incompatible with the layer: expected min_ndim=4")
    assert "5 |   Conv2D(8, 3)\n  |   ^^^^^^^^^^^^\n" in err
    assert "hint: the layers Keras built before this one are listed with their output " \
           "shapes" in err


def test_plan_json_carries_the_built_layers_in_the_error(tmp_path, capsys):
    status, out, err, spec = plan_cli(tmp_path, capsys, SEQUENTIAL_SHAPES, "--format", "json")
    assert status == 1 and err == ""
    [diag] = json.loads(out)  # the diagnostics, as every command prints them
    assert (diag["code"], diag["line"], diag["col"]) == ("E500", 5, 3)
    assert [(e["name"], e["output_shape"], e["params"], e["location"], e["at"])
            for e in diag["built_layers"]] == [("dense", [None, 8], 40, "4:3",
                                                "/model/body/1/add")]


def test_plan_of_a_functional_model_lists_the_nodes_built(tmp_path, capsys):
    """Every node built before the failing one, in other branches and in the block
    the failing layer is in; the error names the layer as Keras does (`a_h`)."""
    text = """tfspec 1
block Down(filters) {
  input x
  h = x |> Conv2D(filters, 3, padding = "same") |> Dense(4) |> Conv1D(4, 3)
  output y = h
}
model B functional {
  input image: float32[8, 8, 1]
  input extra: float32[3]
  e = extra |> Dense(2)
  a = image |> Rescaling(0.5) |> Down(8)
  output out = Concatenate()([Flatten()(a), e])
}
"""
    status, out, err, spec = plan_cli(tmp_path, capsys, text)
    assert status == 1
    rows = {line.split()[0]: line for line in out.splitlines()[4:-1]}
    assert set(rows) == {"image", "extra", "e", "a_rescaling", "a_h_conv2d", "a_h_dense"}
    assert "(None, 8, 8, 4)" in rows["a_h_dense"]
    assert rows["a_h_dense"].endswith("4:52 in Down `a` (11:34)")
    assert "(None, 2)" in rows["e"]
    assert err.startswith(f"{spec}:4:64: error[E500]: Keras cannot build `a_h`: Kernel shape "
                          "must have the same length as input")


def test_plan_of_a_subclassed_model_lists_the_twins_layers(tmp_path, capsys):
    text = """tfspec 1
model S subclass {
  input x: float32[4]
  h = x |> Dense(8)
  output y = h |> Conv2D(8, 3)
}
"""
    status, out, err, spec = plan_cli(tmp_path, capsys, text)
    assert status == 1
    assert out.splitlines()[1] == "layers shown from the functional twin"
    assert [line.split()[:2] for line in out.splitlines()[5:-1]] == [
        ["x", "(InputLayer)"], ["h", "(Dense)"]]
    assert err.startswith(f"{spec}:5:19: error[E500]: Keras cannot build `y`: Input 0 of "
                          "layer 'y' is incompatible")
    assert "Warning" not in err and "Could not" not in err


def test_plan_when_the_first_layer_fails(tmp_path, capsys):
    text = SEQUENTIAL_SHAPES.replace("  Dense(8)\n", "")
    status, out, err, spec = plan_cli(tmp_path, capsys, text)
    assert (status, out) == (1, "")
    assert err.startswith(f"{spec}:4:3: error[E500]: Keras cannot build `conv2d`")
    assert "hint: Keras built no layer before this one: it takes the model's input" in err


def test_graph_of_a_model_keras_rejects_sends_the_user_to_plan(tmp_path, capsys):
    import tfspec.cli

    spec = tmp_path / "shapes.tfspec"
    spec.write_text(SEQUENTIAL_SHAPES)
    status = tfspec.cli.main(["graph", str(spec), "-o", str(tmp_path / "g.dot")])
    out, err = capsys.readouterr()
    assert (status, out) == (1, "")
    assert err.startswith(f"{spec}:5:3: error[E500]: Keras cannot build `conv2d`")
    assert "hint: check the shapes flowing into this layer with `tfspec plan`" in err


# -- graph ---------------------------------------------------------------------------------------


def test_dot_is_deterministic_and_has_a_cluster_per_block_use(examples):
    compiled, analysis, result = examples["resnet_blocks.tfspec"]
    first = to_dot(compiled)
    again = to_dot(compile_file(ROOT / "examples" / "resnet_blocks.tfspec"))
    assert first == again == dot_from(analysis, result)
    uses = [info.name for info in compiled.layers
            if info.cls == "Residual" and info.at.startswith("/model/")]
    assert uses == ["x_residual", "x_residual_2", "x_residual_3", "x"]
    for use in uses:
        assert f'subgraph "cluster_{use}" {{' in first
    # the use's layers sit inside its cluster
    start = first.index('subgraph "cluster_x_residual_2" {')
    body = first[start:first.index("  }\n", start)]
    assert '"x_residual_2_y_conv2d" [' in body and '"x_residual_3_y_conv2d" [' not in body
    assert "Residual `x_residual_2` (line 30)" in body
    # edges follow the tensors, including the residual shortcut
    assert '"x_residual" -> "x_residual_2_shortcut";' in first
    assert '"x_residual_2_out_add" -> "x_residual_2";' in first
    assert '"digit" -> "output:digit";' in first


def test_dot_of_two_inputs_two_outputs_and_a_shared_layer(examples):
    compiled, analysis, result = examples["two_tower.tfspec"]
    dot = dot_from(analysis, result)
    assert '"query" -> "encoder";' in dot and '"item" -> "encoder";' in dot
    assert '"encoder" -> "joint";' in dot and '"i" -> "joint";' in dot
    assert '"score" -> "output:score";' in dot and '"category" -> "output:category";' in dot
    assert dot.count('fillcolor="#d9f2d9"') == 2  # the two inputs stand out
    assert "<b>encoder</b>" in dot and "(None, 32)" in dot


def test_dot_of_a_sequential_model_is_a_chain_from_its_input(examples):
    compiled, analysis, result = examples["iris_mlp.tfspec"]
    dot = dot_from(analysis, result)
    chain = ["features", "features_normalization", "dense", "dropout", "dense_2", "dense_3",
             "output:dense_3"]
    for a, b in zip(chain, chain[1:], strict=False):
        assert f'"{a}" -> "{b}";' in dot
    assert dot.count(" -> ") == len(chain) - 1


def test_mask_edges_are_dashed(examples):
    compiled, analysis, result = examples["text_lstm.tfspec"]
    dot = dot_from(analysis, result)
    assert '"h_embedding" -> "h_bidirectional";' in dot
    assert '"tokens" -> "h_bidirectional" [style=dashed' in dot  # Embedding's mask


@pytest.fixture(scope="module")
def digits():
    return compile_file(ROOT / "examples" / "digits_cnn.tfspec")


def test_write_graph_svg_png_and_dot(digits, tmp_path):
    svg = tmp_path / "out" / "net.svg"
    assert write_graph(digits, svg) == [str(svg)]
    head = svg.read_text()[:200].lstrip()
    assert head.startswith("<?xml") or head.startswith("<svg")
    assert "x_conv2d" in svg.read_text()
    png = tmp_path / "net.png"
    assert write_graph(digits, png) == [str(png)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dot = tmp_path / "net.dot"
    assert write_graph(digits, dot) == [str(dot)]
    assert dot.read_text() == to_dot(digits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.dot", "net.png", "out"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["net.svg"]  # no temp files
    with pytest.raises(ValueError, match="use .dot, .svg or .png"):
        write_graph(digits, tmp_path / "net.jpg")


def test_missing_graphviz_writes_the_dot_instead(digits, tmp_path, monkeypatch):
    assert shutil.which("dot"), "the tests need Graphviz: apt-get install graphviz"
    real_which = shutil.which
    monkeypatch.setattr(tfspec.inspect.graph.shutil, "which",
                        lambda cmd, *a, **k: None if cmd == "dot" else real_which(cmd, *a, **k))
    out = tmp_path / "net.svg"
    with pytest.raises(GraphvizMissing) as info:
        write_graph(digits, out)
    message = str(info.value)
    assert message.startswith(f"Graphviz is not installed: wrote {tmp_path / 'net.dot'} instead")
    assert "apt-get install graphviz" in message
    assert not out.exists()
    assert (tmp_path / "net.dot").read_text().startswith('digraph "Net" {')
