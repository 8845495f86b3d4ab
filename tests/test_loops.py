"""The three training loops train the same model on the same data to the same place.

`fit`, the generated `tf.function` loop and `train_on_batch` see identical batches
(no shuffle), start from identical weights (the same seed) and apply the same
optimizer, so their trained weights agree to within TOLERANCE (float32 summation
order differs between the loops, nothing else does), and so does the loss of the
trained models on the training data. (The losses the loops *log* per epoch are
averaged differently: `fit` weights each batch by its size, the custom loop does
not, and `train_on_batch` reports its last batch.) The loops run 5 steps per
execution, so the last execution of an epoch (23 batches) is a short one.

Then: `steps_per_execution` where the spec leaves it to tfspec, and a
LearningRateScheduler given a schedule object, in the three loops.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tfspec.cli
from tfspec.codegen.program import compile_file
from tfspec.jobs.build import load_program

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4  # absolute difference of trained weights and of final losses

SPEC = """tfspec 1
name "loops"

data {{
  source = npz("data/digits.npz", x = "flat", y = "labels")
  split {{ validation = 0.2, seed = 3 }}
  batch = 64
  shuffle = false
}}

model MLP functional {{
  input pixels: float32[64]
  output digit = pixels
    |> Rescaling(1 / 16)
    |> Dense(32, activation = "relu")
    |> Dense(10, activation = "softmax")
}}

train {{
  loop = "{loop}"
  optimizer = SGD(learning_rate = 0.1)
  loss = "sparse_categorical_crossentropy"
  metrics = ["accuracy"]
  epochs = 3
  seed = 7
  deterministic = true
  steps_per_execution = 5
}}
"""


def final_loss(folder: Path, loop: str, capsys) -> list[float]:
    (folder / "data").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", folder / "data")
    spec = folder / "loops.tfspec"
    spec.write_text(SPEC.format(loop=loop))
    assert tfspec.cli.main(["run", str(spec)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    (run_dir,) = (folder / "runs" / "loops").iterdir()
    history = json.loads((run_dir / "metrics.json").read_text())["history"]["loss"]
    return history, run_dir / "model.keras"


@pytest.fixture(scope="module")
def losses(tmp_path_factory):
    return {}


@pytest.mark.parametrize("loop", ["fit", "custom", "on_batch"])
def test_each_loop_learns(loop, tmp_path, capsys, losses):
    history, model = final_loss(tmp_path, loop, capsys)
    assert len(history) == 3
    assert history[-1] < history[0]  # it trains
    losses[loop] = model


def test_the_custom_loop_learns_under_xla(tmp_path, capsys):
    # one replica: XLA compiles the whole step (passes, update, metrics); without
    # op determinism, under which Keras turns XLA off (and warns)
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data")
    spec = tmp_path / "loops.tfspec"
    spec.write_text(SPEC.format(loop="custom").replace("  deterministic = true\n",
                                                      "  jit_compile = true\n"))
    assert 'xla="step"' in compile_file(spec).source  # training.custom compiles the step
    assert tfspec.cli.main(["run", str(spec)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    (run_dir,) = (tmp_path / "runs" / "loops").iterdir()
    history = json.loads((run_dir / "metrics.json").read_text())["history"]["loss"]
    assert len(history) == 3 and history[-1] < history[0]


def test_the_loops_agree(losses):
    import keras

    assert set(losses) == {"fit", "custom", "on_batch"}, "run the three loops first"
    data = np.load(ROOT / "examples" / "data" / "digits.npz")
    x, y = data["flat"], data["labels"]
    models = {loop: keras.models.load_model(path) for loop, path in losses.items()}
    reference = models.pop("fit")
    expected = float(keras.losses.sparse_categorical_crossentropy(y, reference(x)).numpy().mean())
    for loop, model in models.items():
        for a, b in zip(reference.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=TOLERANCE, err_msg=loop)
        got = float(keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy().mean())
        assert abs(got - expected) <= TOLERANCE, (loop, got, expected)


# -- steps_per_execution left to tfspec --------------------------------------------------------

CAPPED = "steps_per_execution=min(32, batches) if batches > 0 else 32"


def compile_call(source: str) -> str:
    start = source.index("def compile_model(")
    return source[source.index("model.compile(", start):source.index("\n\n\n", start)]


@pytest.mark.parametrize("train, expected", [
    ("", CAPPED),  # 32, or fewer when an epoch has fewer batches
    ('steps_per_execution = "auto"', CAPPED),
    ("steps_per_execution = 4", "steps_per_execution=4"),  # the spec's, as it is
    ("steps_per_execution = 1", None),
    ('callbacks = [CSVLogger("log.csv"), EarlyStopping()]', CAPPED),  # epoch callbacks
    ("callbacks = [TerminateOnNaN()]", None),  # checks every batch
    ('callbacks = [ModelCheckpoint("m.keras", save_freq = 5)]', None),
    ('callbacks = [TensorBoard("logs", update_freq = "batch")]', None),
    # fit runs whole executions: a divisor of the steps it is told
    ("steps_per_epoch = 48", "steps_per_execution=24"),
    ("steps_per_epoch = 20\n  validation_steps = 5", "steps_per_execution=5"),
    ("steps_per_epoch = 37", None),
])
def test_default_steps_per_execution(train, expected, tmp_path):
    spec = tmp_path / "loops.tfspec"
    spec.write_text(SPEC.format(loop="fit").replace("  steps_per_execution = 5\n",
                                                    f"  {train}\n"))
    compiled = compile_file(spec)
    call = compile_call(compiled.source)
    if expected is None:
        assert "steps_per_execution" not in call
    else:
        assert expected in call
    capped = expected == CAPPED
    assert ('compile_model(model, int(datasets["train"].cardinality()))' in
            compiled.source) == capped
    # and what Keras is given, for an epoch of 7 batches and of 100
    namespace = load_program(compiled)
    fixed = 1 if expected is None else None if capped else int(expected.split("=")[1])
    for batches, want in ((7, fixed or 7), (100, fixed or 32)):
        model = namespace["build_model"]()
        if capped:
            namespace["compile_model"](model, batches)
        else:
            namespace["compile_model"](model)
        assert model.steps_per_execution == want, (train, batches)


def test_fit_under_mirrored_strategy_runs_one_step_per_execution(tmp_path):
    # Keras 3.15's fit fails with more on several replicas (keras-team/keras#19246);
    # the custom loop runs several
    for loop, expected in (("fit", None), ("custom", CAPPED)):
        spec = tmp_path / f"{loop}.tfspec"
        spec.write_text(SPEC.format(loop=loop).replace("  steps_per_execution = 5\n", "")
                        + '\ndistribute { strategy = "mirrored" }\n')
        call = compile_call(compile_file(spec).source)
        if expected is None:
            assert "steps_per_execution" not in call, loop  # Keras's default: 1
        else:
            assert expected in call, loop


# -- LearningRateScheduler with a schedule object ---------------------------------------------


@pytest.mark.parametrize("loop", ["fit", "custom", "on_batch"])
def test_learning_rate_scheduler_takes_a_schedule(loop, tmp_path, capsys):
    import keras

    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data")
    spec = tmp_path / "loops.tfspec"
    spec.write_text(SPEC.format(loop=loop).replace("  steps_per_execution = 5\n", """\
  callbacks = [
    LearningRateScheduler(ExponentialDecay(0.1, decay_steps = 1, decay_rate = 0.5)),
  ]
"""))
    assert tfspec.cli.main(["run", str(spec)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    (run_dir,) = (tmp_path / "runs" / "loops").iterdir()
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    # the epoch's learning rate: 0.1 * 0.5 ** epoch
    np.testing.assert_allclose(history["learning_rate"], [0.1, 0.05, 0.025], rtol=1e-6)
    model = keras.models.load_model(run_dir / "model.keras")
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.025, rtol=1e-6)
