"""digits-autoencoder: compiled from examples/autoencoder.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib
import sys

import keras
import numpy as np

from tfspec.runtime import backup, data, distribute, export, script, seeds, training, verify

# Paths in the spec are relative to the spec's folder (run by hand: --spec-dir DIR).
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: the training data's order and augmentation follow it.
EPOCH = seeds.Epoch()

# Params: `tfspec run --set NAME=VALUE` overrides them.
CODE = 8

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"pixels": ((64,), "float32")}
OUTPUTS = ["reconstruction"]

# The loss of each output, for checking the data before training.
LOSSES = {"reconstruction": "mse"}


def build_model():
    """`AutoEncoder`: a functional keras.Model (examples/autoencoder.tfspec:13)."""
    pixels = keras.Input(shape=(64,), dtype="float32", name="pixels")
    code_vec = keras.layers.Rescaling(1 / 16, name="code_vec_rescaling")(pixels)
    code_vec = keras.layers.Dense(32, activation="relu", name="code_vec_dense")(code_vec)
    code_vec = keras.layers.Dense(CODE, activation="relu", name="code")(code_vec)
    reconstruction = keras.layers.Dense(
        32,
        activation="relu",
        name="reconstruction_dense",
    )(code_vec)
    reconstruction = keras.layers.Dense(
        64,
        activation="sigmoid",
        name="reconstruction_dense_2",
    )(reconstruction)
    reconstruction = keras.layers.Rescaling(16, name="reconstruction")(reconstruction)
    return keras.Model(inputs=pixels, outputs=reconstruction, name="AutoEncoder")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/autoencoder.tfspec:8)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["flat"]
        labels = archive["flat"]
    return data.split_arrays(features, labels, validation=0.1, test=0.0, seed=3)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=128, seed=3, epoch=EPOCH)


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-autoencoder" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "d1bcea6f", "model": "5e440bf4", "train": "782ea16b"},
        params={"code": CODE},
        data=[SPEC_DIR / "data/digits.npz"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam()


def compile_model(model, batches=-1):
    """`model.compile` as `train` says; `batches`: the training batches of an epoch."""
    # 32 steps per call into TensorFlow (fewer round trips), at most an epoch's
    model.compile(
        optimizer=make_optimizer(),
        loss="mse",
        metrics=["mae"],
        jit_compile=training.xla_pays_off(batches * 10),
        steps_per_execution=min(32, batches) if batches > 0 else 32,
    )


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        # a killed run of the same experiment resumes from it
        backup.BackgroundBackupAndRestore(CHECKPOINT_DIR, experiment=experiment()),
        seeds.DataEpoch(EPOCH),  # the data's order and augmentation
    ]


def train(verbose="auto"):
    """Train as `train { … }` says; returns the model, its history and data."""
    strategy = distribute.default()
    splits = load_splits()
    datasets = make_datasets(splits)
    with strategy.scope():  # variables are created where the strategy wants
        model = build_model()
        check_data(model, datasets["train"], LOSSES)
        # the optimizer and metrics, in the scope too (told the batches of an epoch)
        compile_model(model, int(datasets["train"].cardinality()))
    history = training.fit(model, datasets, make_callbacks(), verbose, epochs=10)
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/autoencoder/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="digits-autoencoder", spec_dir=SPEC_DIR)


def verify_exports(run_dir):
    """Run each export in its own runtime and compare it with the Keras model."""
    return verify.verify_exports(run_dir, OUTPUTS)


def main(run_dir=".", verbose="auto"):
    """Train, save the model and metrics, evaluate on the test split; export, verify."""
    model, history, datasets = train(verbose)
    training.save_run(run_dir, model, history, datasets)
    export_all(model, run_dir, datasets)
    verify_exports(run_dir)
    return model


if __name__ == "__main__":
    # python <this file> [RUN_DIR] [--spec-dir DIR]: errors in one line, exit status 1
    run_dir, SPEC_DIR = script.arguments(SPEC_DIR)
    sys.exit(script.run(main, run_dir, SPEC_DIR))


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/autoencoder.tfspec"
TFSPEC_LINES = (
    "21:5:14 28:27:10 33:14:3 34:16:8 35:17:8 36:18:8 37:20:8 38:20:8 39:20:8 40:20:8 41:20:8 "
    "42:21:8 43:21:8 44:21:8 45:21:8 46:21:8 47:22:8 48:13:7 51:8:12 53:8:12 56:9:3 59:8:12 "
    "61:8:12 64:8:12 66:8:12 69:8:12 72:8:12 75:8:12 77:8:12 94:26:15 96:26:15 99:27:10 102:27:10 "
    "103:27:10 104:27:10 105:27:10 106:27:10 107:27:10 108:27:10 120:25:1 130:29:12 135:32:1 "
    "136:33:3 137:32:1 140:32:1 142:32:1 143:32:1 146:32:1 148:32:1 155:32:1 156:32:1"
)
