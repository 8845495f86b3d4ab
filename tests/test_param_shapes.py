"""Params in input shapes: `param seq_len = 128` then `input tokens: int32[seq_len]`.

The checker resolves the dimension (E305 at the use when it is not a positive
integer), the program uses the param's constant (`shape=(SEQ_LEN,)`) so `--set`
changes the model and everything the program derives from its inputs (the data
check, synthetic data, exports), and `fmt`/`convert` keep the name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from run_processes import subprocess_env

from tfspec.cli import main
from tfspec.codegen.program import compile_text
from tfspec.lang.validate import validate_text

ROOT = Path(__file__).resolve().parents[1]

MODEL = {
    "sequential": """\
model Tokens sequential {
  input tokens: int32[seq_len]
  Embedding(vocab, 8)
  Reshape([seq_len * 8])
  Dense(3, activation = "softmax")
}
""",
    "functional": """\
model Tokens functional {
  input tokens: int32[seq_len]
  input weights: float32[None, seq_len]
  e = tokens |> Embedding(vocab, 8)
  p = GlobalAveragePooling1D()(weights)
  w = Reshape([seq_len, 1])(p)
  m = Multiply()([e, w])
  output label = m |> Flatten() |> Dense(3, activation = "softmax")
}
""",
}
MODEL["subclass"] = MODEL["functional"].replace("functional", "subclass")

HEAD = 'tfspec 1\nname "param-shapes"\n\nparam seq_len = 12\nparam vocab = 50\n\n'
TAIL = '\ntrain { optimizer = "adam", loss = "sparse_categorical_crossentropy", epochs = 1 }\n'
DATA = "\ndata {\n  source = synthetic(samples = 32, classes = 3)\n  batch = 16\n}\n"
# int32 inputs: the SavedModel's signature takes int32 while the synthetic data is int64
EXPORT = ('\nexport {\n  saved_model "runs/serving"\n'
          '  tflite "runs/model.tflite"\n}\n')


def spec(kind: str, head: str = HEAD, data: str = DATA, export: str = "") -> str:
    return head + MODEL[kind] + data + TAIL + export


def diagnostics(text: str, **overrides) -> list[tuple]:
    result = validate_text(text, "p.tfspec", overrides)
    return [(d.code, d.span.line if d.span else None, d.span.col if d.span else None,
             d.message, d.hint) for d in result.diagnostics]


# -- checking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MODEL))
def test_a_param_dimension_checks_clean(kind):
    # no W401 either: a param used only in a shape is used
    text = HEAD.replace("param vocab = 50", "param vocab = 50\nparam unused_but_shape = 4")
    text += MODEL[kind].replace("int32[seq_len]", "int32[seq_len, unused_but_shape]")
    assert diagnostics(text) == []


@pytest.mark.parametrize(("value", "shown"), [
    ("0", "0"), ("-1", "-1"), ("2.5", "2.5"), ("128.0", "128.0"), ('"long"', '"long"'),
    ("true", "true"), ("null", "null"),
])
def test_a_dimension_that_is_not_a_positive_integer_is_e305_at_the_use(value, shown):
    text = HEAD.replace("param seq_len = 12", f"param seq_len = {value}") + MODEL["functional"]
    found = diagnostics(text)
    # both uses in input shapes are reported where they are written; the Reshape argument
    # is the catalog's business (Keras would reject it there too)
    assert [d[:4] for d in found if d[0] == "E305" and "dimension" in d[3]] == [
        ("E305", 8, 23, f"a dimension of input `tokens` must be a positive integer. "
                        f"Received: seq_len={shown}"),
        ("E305", 9, 32, f"a dimension of input `weights` must be a positive integer. "
                        f"Received: seq_len={shown}"),
    ]
    assert all(d[4] == "`seq_len` is declared at line 4" for d in found
               if d[0] == "E305" and "dimension" in d[3])


def test_set_to_a_non_positive_integer_is_e305_at_the_use():
    found = diagnostics(HEAD + MODEL["sequential"], seq_len=0)
    assert found[0] == ("E305", 8, 23, "a dimension of input `tokens` must be a positive "
                        "integer. Received: seq_len=0",
                        "`--set seq_len=0` replaces the declared 12")


def test_set_of_another_type_is_e407_as_for_every_param():
    [found] = diagnostics(HEAD + MODEL["sequential"], seq_len=2.5)
    assert found[:4] == ("E407", 4, 17, "--set seq_len=2.5: expected an integer. Received: 2.5")


def test_set_changes_the_dimension_without_errors():
    assert diagnostics(HEAD + MODEL["functional"], seq_len=256) == []


def test_an_undefined_dimension_is_e400():
    text = HEAD + MODEL["sequential"].replace("int32[seq_len]", "int32[seqlen]")
    assert diagnostics(text)[0] == ("E400", 8, 23, "undefined name `seqlen`",
                                    "did you mean `seq_len`?")
    text = HEAD + MODEL["sequential"].replace("int32[seq_len]", "int32[width]")
    assert diagnostics(text)[0][:4] == ("E400", 8, 23, "undefined name `width`")
    assert "param width = …" in diagnostics(text)[0][4]


def test_a_tensor_is_not_a_dimension():
    text = HEAD + MODEL["functional"].replace("float32[None, seq_len]", "float32[tokens]")
    assert ("E406", 9, 26, "`tokens` is a model input, not a value") in [
        d[:4] for d in diagnostics(text)]


def test_none_and_numbers_still_work_beside_a_param():
    text = HEAD + MODEL["functional"].replace("float32[None, seq_len]", "float32[?, seq_len]")
    assert diagnostics(text) == []
    ir = validate_text(text, "p.tfspec").ir
    assert ir["model"]["body"][1]["shape"] == [None, {"ref": "seq_len"}]


# -- the program ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MODEL))
def test_the_program_uses_the_params_constant(kind):
    source = compile_text(spec(kind), "p.tfspec", {"seq_len": 256}).source
    assert "SEQ_LEN = 256\n" in source
    assert 'keras.Input(shape=(SEQ_LEN,), dtype="int32", name="tokens")' in source
    if kind == "sequential":
        assert 'INPUTS = {"tokens": ((SEQ_LEN,), "int32")}' in source
    else:
        assert ('INPUTS = {"tokens": ((SEQ_LEN,), "int32"), '
                '"weights": ((None, SEQ_LEN), "float32")}') in source
        assert 'keras.Input(shape=(None, SEQ_LEN), dtype="float32", name="weights")' in source


def test_the_program_is_ruff_clean(tmp_path):
    for kind in MODEL:
        (tmp_path / f"{kind}.py").write_text(compile_text(spec(kind), "p.tfspec").source)
    # the rules of tests/test_compile.py
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
                          "--select", "E,F,W,I,B,UP", "--line-length", "100", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("kind", list(MODEL))
def test_compile_check_builds_the_model_with_the_set_value(kind, tmp_path, capsys):
    from tfspec.jobs.build import build_model

    path = tmp_path / "p.tfspec"
    path.write_text(spec(kind))
    for argv in (["compile", "--check", str(path)],
                 ["compile", "--check", "--set", "seq_len=7", str(path)]):
        assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    for value in (12, 7):
        model = build_model(compile_text(spec(kind), str(path), {"seq_len": value}))
        if kind == "subclass":  # no symbolic inputs: the Reshape only fits the right length
            batch = {"tokens": np.zeros((2, value), "int32"),
                     "weights": np.ones((2, 5, value), "float32")}
            assert tuple(model(batch).shape) == (2, 3)
            continue
        assert (None, value) in [tuple(t.shape) for t in model.inputs]


# -- fmt and convert ----------------------------------------------------------------------------


def test_fmt_and_convert_keep_the_name(tmp_path, capsys):
    dsl, js, back = tmp_path / "p.tfspec", tmp_path / "p.tfspec.json", tmp_path / "q.tfspec"
    dsl.write_text(spec("functional"))
    assert main(["fmt", "--check", str(dsl)]) == 0
    assert main(["convert", str(dsl), "-o", str(js)]) == 0
    body = json.loads(js.read_text())["model"]["body"]
    assert body[0]["shape"] == [{"ref": "seq_len"}]
    assert body[1]["shape"] == [None, {"ref": "seq_len"}]
    assert main(["fmt", "--check", str(js)]) == 0
    assert main(["convert", str(js), "-o", str(back)]) == 0
    assert back.read_text() == dsl.read_text()
    capsys.readouterr()


# -- running ------------------------------------------------------------------------------------


def tfspec(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfspec", *argv], cwd=cwd,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("overrides", [[], ["--set", "seq_len=7"]], ids=["declared", "set"])
def test_dry_run_with_a_param_dimension(tmp_path, overrides):
    # the Reshape and the inputs agree only if both follow `--set`; the synthetic data,
    # the data check and the exports' input specs come from the program's INPUTS
    path = tmp_path / "p.tfspec"
    path.write_text(spec("functional", export=EXPORT))
    run = tfspec("run", "--dry-run", *overrides, str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert "dry run passed" in out
    assert "verify: tflite runs/model.tflite answers like the Keras model" in out


def test_the_data_check_compares_with_the_set_value(tmp_path):
    path = tmp_path / "p.tfspec"
    np.savez(tmp_path / "tokens.npz", x=np.zeros((32, 12), "int32"),
             y=np.zeros(32, "int32"))
    path.write_text(spec("sequential", data='\ndata {\n  source = npz("tokens.npz")\n'
                                             "  batch = 16\n}\n"))
    assert tfspec("compile", "--check", str(path), cwd=tmp_path).returncode == 0
    run = tfspec("run", "--set", "seq_len=16", str(path), cwd=tmp_path)
    assert run.returncode == 1
    assert "error[E501]" in run.stderr
    assert "has shape (12,) per example, but `tokens` is declared with shape (16,)" in run.stderr
    assert "Traceback" not in run.stderr
