"""digits-multi-worker: compiled from examples/multi_worker.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib
import sys

import keras
import numpy as np

from tfspec.runtime import backup, data, distribute, script, seeds, training

# Paths in the spec are relative to the spec's folder (run by hand: --spec-dir DIR).
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: the training data's order and augmentation follow it.
EPOCH = seeds.Epoch()

# Params: `tfspec run --set NAME=VALUE` overrides them.
EPOCHS = 3

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"pixels": ((64,), "float32")}
OUTPUTS = ["digit"]

# The loss of each output, for checking the data before training.
LOSSES = {"digit": "sparse_categorical_crossentropy"}


def build_model():
    """`DigitsMLP`: a functional keras.Model (examples/multi_worker.tfspec:13)."""
    pixels = keras.Input(shape=(64,), dtype="float32", name="pixels")
    digit = keras.layers.Rescaling(1 / 16, name="digit_rescaling")(pixels)
    digit = keras.layers.Dense(64, activation="relu", name="digit_dense")(digit)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(digit)
    return keras.Model(inputs=pixels, outputs=digit, name="DigitsMLP")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/multi_worker.tfspec:8)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["flat"]
        labels = archive["labels"]
    return data.split_arrays(features, labels, validation=0.2, test=0.0, seed=1)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=64, seed=1, epoch=EPOCH)


def pipeline(split, name):
    """One split batched as `data { … }` says ("adapt": the training data as it is)."""
    return pipelines()(split, name)


def make_datasets(splits=None):
    """The batched `train`, `validation` and `test` pipelines that exist, and the
    training data epoch after epoch for the loop (a data.Datasets)."""
    return pipelines().datasets(load_splits() if splits is None else splits)


def check_data(model, dataset, losses):
    """Stop before training when the data cannot feed the model."""
    data.check_data(model, dataset, INPUTS, OUTPUTS, losses)


# Every epoch is checkpointed here; a killed run, started again, resumes.
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-multi-worker" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "fa4bc1ca", "model": "91bc960a", "train": "21d10714", "distribute": "75c8d710"},
        params={"epochs": EPOCHS},
        data=[SPEC_DIR / "data/digits.npz"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=0.005)


def compile_model(model, batches=-1):
    """`model.compile` as `train` says; `batches`: the training batches of an epoch."""
    # 32 steps per call into TensorFlow (fewer round trips), at most an epoch's
    model.compile(
        optimizer=make_optimizer(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=min(32, batches) if batches > 0 else 32,
    )


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        seeds.DataEpoch(EPOCH),  # the data's order and augmentation
    ]


def make_metrics():
    """(output, metric) pairs ("accuracy" as `model.compile` resolves it)."""
    return [
        (None, keras.metrics.SparseCategoricalAccuracy(name="accuracy")),
    ]


def loss_functions():
    """Each output's loss, per example (the loop averages over the global batch), and weight."""
    return {
        "digit": (keras.losses.sparse_categorical_crossentropy, 1.0),
    }


def train(verbose="auto"):
    """Train as `train { … }` says; returns the model, its history and data."""
    keras.utils.set_random_seed(1)
    strategy = distribute.multi_worker_mirrored()
    splits = load_splits()
    datasets = make_datasets(splits)
    with strategy.scope():  # variables are created where the strategy wants
        model = build_model()
        check_data(model, datasets["train"], LOSSES)
        # the optimizer and metrics, in the scope too (told the batches of an epoch)
        compile_model(model, int(datasets["train"].cardinality()))
    history = training.custom(
        model,
        datasets,
        strategy,
        loss_functions(),
        make_metrics,
        make_callbacks(),
        verbose,
        epochs=EPOCHS,
        outputs=OUTPUTS,
        checkpoint_dir=CHECKPOINT_DIR,
        experiment=experiment(),
    )
    return model, history, datasets


def main(run_dir=".", verbose="auto"):
    """Train, save the model and metrics, evaluate on the test split."""
    chief = distribute.is_chief()  # only the chief writes the run directory
    model, history, datasets = train(verbose if chief else 0)
    with distribute.output_dir(run_dir) as where:  # the others: scratch
        training.save_run(where, model, history, datasets)
    return model


if __name__ == "__main__":
    # python <this file> [RUN_DIR] [--spec-dir DIR]: errors in one line, exit status 1
    run_dir, SPEC_DIR = script.arguments(SPEC_DIR)
    sys.exit(script.run(main, run_dir, SPEC_DIR))


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/multi_worker.tfspec"
TFSPEC_LINES = (
    "21:5:16 28:23:10 33:14:3 34:16:8 35:17:8 36:18:8 37:13:7 40:8:12 42:8:12 45:9:3 48:8:12 "
    "50:8:12 53:8:12 55:8:12 58:8:12 61:8:12 64:8:12 66:8:12 83:22:15 85:22:15 88:23:10 91:23:10 "
    "92:23:10 93:23:10 94:23:10 95:23:10 96:23:10 106:24:13 109:24:14 113:23:10 116:23:10 120:21:1 "
    "122:26:10 123:29:25 124:21:1 131:21:1 132:21:1 133:21:1 134:21:1 135:21:1 136:21:1 137:21:1 "
    "138:21:1 139:21:1 140:21:1 141:21:1 142:21:1 143:21:1"
)
