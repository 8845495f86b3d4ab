"""`jit_compile = "auto"` on this CPU-only machine: XLA for a model of dense layers on
a run long enough to pay back its compile time, Keras's "auto" (no XLA on a CPU)
otherwise, in `fit` and the custom loop; and never for convolutions, `deterministic`
or several replicas.

Real training runs of a small MLP on the digits shipped in examples/data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tfspec.codegen.program import compile_file
from tfspec.codegen.train import XLA_MIN_STEPS
from tfspec.jobs.build import load_program

ROOT = Path(__file__).resolve().parent.parent

SPEC = """tfspec 1
name "xla"

data {{
  source = npz("data/digits.npz", x = "{x}", y = "labels")
  split {{ validation = 0.2, seed = 3 }}
  batch = {batch}
}}

model Net sequential {{
{model}
}}

train {{
  loop = "{loop}"
  optimizer = "adam"
  loss = "sparse_categorical_crossentropy"
  epochs = {epochs}
{options}}}
"""

DENSE = """  input pixels: float32[64]
  Rescaling(1 / 16)
  Dense(32, activation = "relu")
  Dropout(0.1)
  Dense(10, activation = "softmax")"""

CONV = """  input image: float32[8, 8, 1]
  Conv2D(4, 3, activation = "relu")
  Flatten()
  Dense(10, activation = "softmax")"""

TRAIN_ROWS = 1437  # 80 % of digits' 1797


def program(tmp_path: Path, model: str = DENSE, x: str = "flat", batch: int = 1,
            epochs: int = 2, loop: str = "fit", options: str = "") -> dict:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data" / "digits.npz")
    spec = tmp_path / "xla.tfspec"
    spec.write_text(SPEC.format(model=model, x=x, batch=batch, epochs=epochs, loop=loop,
                                options=options), encoding="utf-8")
    compiled = compile_file(spec)
    return {"source": compiled.source, "namespace": load_program(compiled)}


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_a_long_run_of_a_dense_model_trains_with_xla(loop, tmp_path):
    steps = TRAIN_ROWS * 2
    assert steps >= XLA_MIN_STEPS
    made = program(tmp_path, loop=loop)
    model, history, _ = made["namespace"]["train"](verbose=0)
    assert model.jit_compile is True
    losses = history.history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[1] < losses[0]
    if loop == "custom":
        assert 'xla="step"' in made["source"]  # training.custom compiles the step


def test_a_short_run_of_the_same_model_does_without(tmp_path):
    assert TRAIN_ROWS < XLA_MIN_STEPS  # one epoch
    made = program(tmp_path, epochs=1)
    assert "jit_compile=training.xla_pays_off(batches * 1)" in made["source"]
    model, _, _ = made["namespace"]["train"](verbose=0)
    assert model.jit_compile is False


@pytest.mark.parametrize("case", [
    {"model": CONV, "x": "images"},  # XLA makes convolutions slower on a CPU
    {"options": "  seed = 1\n  deterministic = true\n"},  # Keras turns XLA off then
    {"options": "  jit_compile = false\n"},
    {"options": '  mixed_precision = "mixed_bfloat16"\n'},
])
def test_no_xla_where_it_does_not_help_or_is_not_asked(case, tmp_path):
    def jit_of_a_long_run(made: dict) -> bool:
        model = made["namespace"]["build_model"]()
        made["namespace"]["compile_model"](model, TRAIN_ROWS * 2)  # a long run, as above
        return model.jit_compile

    assert jit_of_a_long_run(program(tmp_path / "control")) is True  # the plain dense spec
    made = program(tmp_path / "case", **case)
    assert "xla_pays_off" not in made["source"]
    assert jit_of_a_long_run(made) is False


def test_the_plan_says_when_xla_is_used():
    from tfspec.inspect.plan import training
    from tfspec.lang.validate import validate_text

    text = SPEC.format(model=DENSE, x="flat", batch=1, epochs=2, loop="fit", options="")
    ir = validate_text(text, "xla.tfspec").ir
    assert "XLA when the run has 2,000 steps or more" in training(ir)["xla"]
    ir["train"]["deterministic"] = True
    assert "xla" not in training(ir)


def test_the_custom_loop_turns_xla_off_under_deterministic_as_fit_does(tmp_path):
    made = program(tmp_path, batch=64, epochs=1, loop="custom",
                   options="  jit_compile = true\n  seed = 1\n  deterministic = true\n")
    with pytest.warns(UserWarning, match="Proceeding with `jit_compile=False`"):
        model, history, _ = made["namespace"]["train"](verbose=0)
    assert model.jit_compile is False
    assert np.isfinite(history.history["loss"][0])
