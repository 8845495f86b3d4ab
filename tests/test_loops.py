"""The three training loops train the same model on the same data to the same place.

`fit`, the generated `tf.function` loop and `train_on_batch` see identical batches
(no shuffle), start from identical weights (the same seed) and apply the same
optimizer, so their trained weights agree to within TOLERANCE (float32 summation
order differs between the loops, nothing else does), and so does the loss of the
trained models on the training data. (The losses the loops *log* per epoch are
averaged differently: `fit` weights each batch by its size, the custom loop does
not, and `train_on_batch` reports its last batch.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import tfspec.cli

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


def test_the_loops_agree(losses):
    import keras
    import numpy as np

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
