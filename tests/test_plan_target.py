"""`tfspec plan --target tflite|tfjs`: real conversions of tiny untrained models.

What fails here was checked on TF 2.21 / tensorflowjs 4.22: an LSTM that is not
unrolled needs TensorList ops the TFLite converter cannot lower to builtins,
MaxPooling3D needs the Select TF op MaxPool3D, and the exact GELU needs Erfc,
which TF.js lacks.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import pytest

from tfspec.cli import main
from tfspec.codegen.program import compile_text
from tfspec.inspect.convertcheck import check_targets
from tfspec.lang.diagnostics import CODES

ROOT = Path(__file__).resolve().parent.parent

# line 5: the exact GELU (Erfc: not in TF.js); line 6: an LSTM over any length (TFLite)
BOTH_FAIL = """tfspec 1
model Seq functional {
  input seq: float32[None, 8]
  h = seq
    |> Dense(8, activation = "gelu")
    |> LSTM(4)
  output y = Dense(2)(h)
}
"""

# what the E505 hint suggests: a fixed length, and the loop unrolled
UNROLLED = """tfspec 1
model Seq functional {
  input seq: float32[5, 8]
  output y = seq |> LSTM(4, unroll = true) |> Dense(2)
}
"""

BLOCKS = """tfspec 1
block Pool() {
  input x
  output y = x |> MaxPooling3D(pool_size = 1) |> Dense(2)
}
model Vol functional {
  input vol: float32[4, 4, 4, 2]
  a = vol |> Pool()
  b = a |> Pool()
  output out = b |> Flatten() |> Dense(2)
}
"""

# TensorFlow makes name scopes unique: layer `dense` runs in scope `dense_1`, the
# scope a guess from names would give to the layer named `dense_1`
LOOKALIKES = """tfspec 1
model M functional {
  input x: float32[4]
  dense = x |> Dense(4, activation = "gelu")
  output dense_1 = Dense(2)(dense)
}
"""


@pytest.fixture(scope="module", autouse=True)
def tensorflow():
    """Import TensorFlow before the tests capture output: its start-up logs are not ours."""
    from tfspec.jobs.build import quiet_tensorflow

    quiet_tensorflow()


def _write(tmp_path: Path, text: str, name: str = "model.tfspec") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_codes_are_registered():
    assert {"E505", "E506"} <= set(CODES)


def test_an_example_converts_for_both_targets(capfd, monkeypatch):
    monkeypatch.chdir(ROOT)
    status = main(["plan", "--target", "tflite", "--target", "tfjs", "examples/iris_mlp.tfspec"])
    out, err = capfd.readouterr()
    assert status == 0, err
    assert err == ""  # the converters' logs and prints are swallowed
    lines = out.rstrip("\n").splitlines()
    assert lines[0] == 'examples/iris_mlp.tfspec: Model: "Iris" (sequential, Sequential)'
    assert re.fullmatch(r"tflite: converts \(builtin ops\), \d+\.\d\d KiB", lines[-2]), lines[-2]
    assert re.fullmatch(r"tfjs: converts, \d+ ops, \d+\.\d\d KiB", lines[-1]), lines[-1]


def test_json_plan_carries_the_targets(capfd, monkeypatch):
    monkeypatch.chdir(ROOT)
    status = main(["plan", "--format", "json", "--target", "tflite", "--target", "tflite",
                   "examples/digits_cnn.tfspec"])
    out, err = capfd.readouterr()
    assert status == 0 and err == ""
    result = json.loads(out)
    assert result["model"] == "Net" and result["totals"]["params"] == 9930
    [tflite] = result["targets"]  # a target given twice is checked once
    assert tflite["target"] == "tflite" and tflite["converts"] is True
    assert tflite["bytes"] > 9930 * 4  # the float32 weights are in the flatbuffer


def test_failures_are_located_at_the_layers(tmp_path, capfd):
    path = _write(tmp_path, BOTH_FAIL)
    status = main(["plan", "--target", "tflite", "--target", "tfjs", path])
    out, err = capfd.readouterr()
    assert status == 1
    assert "Traceback" not in err
    assert out.endswith("tflite: does not convert (1 error)\ntfjs: does not convert (1 error)\n\n")
    assert "h (LSTM)" in out  # the plan itself is still printed
    tfjs, tflite = err.strip().split("\n\n")  # in spec order: line 5, then line 6
    assert tfjs.splitlines() == [
        f"{path}:5:8: error[E506]: layer `h_dense` (Dense) will not convert to "
        "TensorFlow.js: needs Erfc",
        "  |",
        '5 |     |> Dense(8, activation = "gelu")',
        "  |        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        '  = hint: TF.js has no erf/erfc, which the exact "gelu" needs: use another '
        'activation (e.g. "relu" or "silu")',
    ]
    first, *rest = tflite.splitlines()
    assert first == (f"{path}:6:8: error[E505]: layer `h` (LSTM) will not convert to "
                     "TensorFlow Lite with builtin ops: needs TensorListReserve, "
                     "TensorListSetItem, TensorListStack")
    assert rest[:3] == ["  |", "6 |     |> LSTM(4)", "  |        ^^^^^^^"]
    assert rest[3].startswith("  = hint: give the input a fixed sequence length (its "
                              "timesteps are None) and use `LSTM(..., unroll = true)`")


def test_failures_as_json(tmp_path, capfd):
    path = _write(tmp_path, BOTH_FAIL)
    status = main(["plan", "--format", "json", "--target", "tfjs", "--target", "tflite", path])
    out, err = capfd.readouterr()
    assert status == 1 and err == ""
    diagnostics = json.loads(out)  # the array `validate --format json` prints
    assert [(d["code"], d["line"], d["col"], d["end_col"]) for d in diagnostics] == [
        ("E506", 5, 8, 37), ("E505", 6, 8, 15)]
    assert all(d["file"] == path and d["severity"] == "error" and d["hint"]
               for d in diagnostics)
    assert "needs TensorListReserve" in diagnostics[1]["message"]


def test_the_hint_fixes_it(tmp_path, capfd):
    """A fixed length and `unroll = true`: the LSTM converts to builtin ops."""
    status = main(["plan", "--target", "tflite", _write(tmp_path, UNROLLED)])
    out, err = capfd.readouterr()
    assert status == 0 and err == ""
    assert re.search(r"^tflite: converts \(builtin ops\), ", out, re.M)


def test_select_ops_in_block_uses_name_each_use():
    report = check_targets(compile_text(BLOCKS, "vol.tfspec"), ["tflite"])
    assert not report.ok and report.results[0].line() == "tflite: does not convert (2 errors)"
    messages = [(d.code, d.span.line, d.span.col, d.message) for d in report.error().diagnostics]
    assert messages == [
        ("E505", 4, 19, "layer `a_y_max_pooling3d` (MaxPooling3D) of Pool `a` (line 8) will "
                        "not convert to TensorFlow Lite with builtin ops: needs MaxPool3D"),
        ("E505", 4, 19, "layer `b_y_max_pooling3d` (MaxPooling3D) of Pool `b` (line 9) will "
                        "not convert to TensorFlow Lite with builtin ops: needs MaxPool3D"),
    ]
    assert "Select TF ops" in report.diagnostics.items[0].hint


def test_ops_are_traced_to_the_layer_not_to_a_lookalike_name(tmp_path, monkeypatch):
    compiled = compile_text(LOOKALIKES, "m.tfspec")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    report = check_targets(compiled, ["tfjs", "tflite"])
    [diag] = report.diagnostics
    assert diag.code == "E506" and (diag.span.line, diag.span.col) == (4, 16)
    assert diag.message == ("layer `dense` (Dense) will not convert to TensorFlow.js: "
                            "needs Erfc")
    assert [r.line().split(",")[0] for r in report.results] == [
        "tfjs: does not convert (1 error)", "tflite: converts (builtin ops)"]
    # the SavedModel and the conversions are gone (AutoGraph's generated modules stay
    # until TensorFlow removes them when the process exits)
    left = [p.name for p in scratch.iterdir()
            if not p.name.startswith("__autograph_generated_file")]
    assert left == []


def test_an_adapted_vocabulary_table_does_not_freeze_for_tfjs():
    """A lookup layer the program adapts on the data is checked with a filled table."""
    spec = 'tfspec 1\nmodel L functional {\n  input word: string[1]\n' \
           '  output w = word |> StringLookup(ARGS)\n}\n'
    report = check_targets(compile_text(spec.replace("ARGS", ""), "l.tfspec"),
                           ["tfjs", "tflite"])
    [diag] = report.diagnostics
    assert (diag.code, diag.span.line, diag.span.col) == ("E506", 4, 22)
    assert diag.message.startswith("layer `w` (StringLookup) will not convert to "
                                   "TensorFlow.js: the TF.js converter cannot freeze its "
                                   "vocabulary table (")
    assert "`vocabulary = [...]`" in diag.hint
    assert report.results[1].converts  # TFLite has builtin string tables
    given = spec.replace("ARGS", 'vocabulary = ["a", "b"]')
    assert check_targets(compile_text(given, "l.tfspec"), ["tfjs"]).ok


def test_without_recorded_scopes_layers_are_found_by_name(monkeypatch):
    """Should Keras move its name_scope, the names still lead to the layer."""
    import contextlib

    from tfspec.inspect import convertcheck

    monkeypatch.setattr(convertcheck, "_recording", lambda places: contextlib.nullcontext([]))
    report = check_targets(compile_text(BOTH_FAIL, "seq.tfspec"), ["tfjs"])
    [diag] = report.diagnostics
    assert diag.message.startswith("layer `h_dense` (Dense)") and diag.span.line == 5


def test_export_failure_is_a_located_e500(tmp_path, capfd):
    spec = "tfspec 1\nmodel U functional {\n  input seq: float32[None, 8]\n" \
           "  output y = seq |> LSTM(4, unroll = true)\n}\n"
    status = main(["plan", "--target", "tflite", _write(tmp_path, spec)])
    out, err = capfd.readouterr()
    assert status == 1
    assert out.endswith("tflite: not checked (Keras cannot export the model)\n\n")
    assert ":4:21: error[E500]: Keras cannot run `y` in a traced graph (to export it): " \
           "Cannot unroll a RNN if the time dimension is undefined." in err
    assert "Traceback" not in err


def test_missing_tfjs_converter(tmp_path, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflowjs.converters", None)  # as if not installed
    status = main(["plan", "--target", "tfjs", _write(tmp_path, UNROLLED)])
    out, err = capfd.readouterr()
    assert status == 1
    assert out.endswith("tfjs: not checked (the TF.js converter is not installed)\n\n")
    assert ":2:7: error[E503]: cannot check `--target tfjs`: the TensorFlow.js converter " \
           "is not installed (no module named `tensorflowjs.converters`)" in err
    assert "= hint: run `tools/install-tfjs` from the tfspec repository" in err


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="unknown target 'coreml'"):
        check_targets(compile_text(UNROLLED, "u.tfspec"), ["coreml"])
    with pytest.raises(SystemExit) as exited:
        main(["plan", "--target", "coreml", "x.tfspec"])
    assert exited.value.code == 2  # argparse: "invalid choice"


def test_onnx_target_flags_the_exact_gelu_at_its_layer(tmp_path, capfd):
    """tf2onnx has no Erfc: it writes an ONNX graph onnxruntime refuses to load."""
    status = main(["plan", "--target", "onnx", _write(tmp_path, BOTH_FAIL)])
    out, err = capfd.readouterr()
    assert status == 1
    assert out.endswith("onnx: does not convert (1 error)\n\n")
    assert ":5:8: error[E507]: layer `h_dense` (Dense) will not convert to ONNX: needs " \
           "Erfc" in err, err
    assert 'tf2onnx has no Erfc, which the exact "gelu" needs' in err
    assert "Traceback" not in err
    assert CODES["E507"].endswith("(plan --target onnx)")


def test_onnx_target_converts_and_says_its_size(tmp_path, capfd):
    status = main(["plan", "--target", "onnx", _write(tmp_path, UNROLLED)])
    out, err = capfd.readouterr()
    assert status == 0, err
    last = out.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(r"onnx: converts, \d+ nodes, \d+\.\d\d KiB", last), last
