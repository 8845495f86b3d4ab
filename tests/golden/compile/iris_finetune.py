"""iris-finetune: compiled from examples/iris_finetune.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib
import sys

import keras

from tfspec.runtime import (
    backup,
    data,
    distribute,
    export,
    script,
    seeds,
    training,
    transfer,
    verify,
)

# Paths in the spec are relative to the spec's folder (run by hand: --spec-dir DIR).
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: the training data's order and augmentation follow it.
EPOCH = seeds.Epoch()

# Params: `tfspec run --set NAME=VALUE` overrides them.
FINE_TUNE = False
LR = 0.001

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"features": ((4,), "float32")}
OUTPUTS = ["species"]

# The loss of each output, for checking the data before training.
LOSSES = {"species": "sparse_categorical_crossentropy"}


def build_model():
    """`IrisFinetune`: a functional keras.Model (examples/iris_finetune.tfspec:15)."""
    features = keras.Input(shape=(4,), dtype="float32", name="features")
    backbone = transfer.load_keras_model(
        SPEC_DIR / "runs/iris/model.keras",
        output="dense_2",
        trainable=FINE_TUNE,
        name="backbone",
    )(features)
    species = keras.layers.Dense(3, activation="softmax", name="species")(backbone)
    return keras.Model(inputs=features, outputs=species, name="IrisFinetune")


def load_splits():
    """The columns of the CSV file, split (examples/iris_finetune.tfspec:10)."""
    columns = data.read_csv(SPEC_DIR / "data/iris.csv")
    features, labels = data.csv_arrays(columns, INPUTS, labels="species")
    return data.split_arrays(features, labels, validation=0.2, test=0.0, seed=7)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=16, seed=7, epoch=EPOCH)


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "iris-finetune" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "73c50c91", "model": "000fef27", "train": "c5f1152e"},
        params={"fine_tune": FINE_TUNE, "lr": LR},
        data=[SPEC_DIR / "data/iris.csv"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=LR)


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
    {"format": "saved_model", "path": "runs/iris_finetune/serving", "tolerance": 1e-05},
    {"format": "keras", "path": "runs/iris_finetune/model.keras", "tolerance": 1e-06},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="iris-finetune", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/iris_finetune.tfspec"
TFSPEC_LINES = (
    "30:6:19 31:7:12 38:29:10 43:16:3 44:19:14 45:19:14 46:19:14 47:19:14 48:19:14 49:19:14 "
    "50:24:20 51:15:7 54:10:12 56:10:12 57:10:12 58:11:3 61:10:12 63:10:12 66:10:12 68:10:12 "
    "71:10:12 74:10:12 77:10:12 79:10:12 96:28:15 98:28:15 101:29:10 104:29:10 105:29:10 106:29:10 "
    "107:29:10 108:29:10 109:29:10 121:27:1 131:31:12 136:34:1 137:35:3 138:36:3 139:34:1 142:34:1 "
    "144:34:1 145:34:1 148:34:1 150:34:1 157:34:1 158:34:1"
)
