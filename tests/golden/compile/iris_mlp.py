"""iris-mlp: compiled from examples/iris_mlp.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib
import sys

import keras

from tfspec.runtime import backup, data, distribute, export, script, seeds, training, verify

# Paths in the spec are relative to the spec's folder (run by hand: --spec-dir DIR).
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: the training data's order and augmentation follow it.
EPOCH = seeds.Epoch()

# Params: `tfspec run --set NAME=VALUE` overrides them.
HIDDEN = 32

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"features": ((4,), "float32")}
OUTPUTS = ["dense_3"]

# The loss of each output, for checking the data before training.
LOSSES = {"dense_3": "sparse_categorical_crossentropy"}


def build_model():
    """`Iris`: a keras.Sequential model (examples/iris_mlp.tfspec:14)."""
    layers = [
        keras.Input(shape=(4,), dtype="float32", name="features"),
        keras.layers.Normalization(name="features_normalization"),
        keras.layers.Dense(HIDDEN, activation="relu", name="dense"),
        keras.layers.Dropout(0.1, name="dropout"),
        keras.layers.Dense(HIDDEN, activation="relu", name="dense_2"),
        keras.layers.Dense(3, activation="softmax", name="dense_3"),
    ]
    return keras.Sequential(layers, name="Iris")


def load_splits():
    """The columns of the CSV file, split (examples/iris_mlp.tfspec:8)."""
    columns = data.read_csv(SPEC_DIR / "data/iris.csv")
    features, labels = data.csv_arrays(columns, INPUTS, labels="species")
    return data.split_arrays(features, labels, validation=0.2, test=0.0, seed=42)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=16, seed=42, epoch=EPOCH)


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


def adapt(model, train):
    """Fit the layers that learn from data (their vocabulary, mean…) to the
    training split, inside the model: the exported model takes raw inputs."""
    data.adapt(model, train, "features_normalization")


# Every epoch is checkpointed here; a killed run, started again, resumes.
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "iris-mlp" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "d9f7e5c4", "model": "944d0451", "train": "4e8197e1"},
        params={"hidden": HIDDEN},
        data=[SPEC_DIR / "data/iris.csv"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam()


def compile_model(model, batches=-1):
    """`model.compile` as `train` says; `batches`: the training batches of an epoch."""
    # 32 steps per call into TensorFlow (fewer round trips), at most an epoch's
    model.compile(
        optimizer=make_optimizer(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=training.xla_pays_off(batches * 30),
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
        # adapted on the training data as it is: not shuffled, not augmented
        adapt(model, pipeline(splits["train"], "adapt"))
        # the optimizer and metrics, in the scope too (told the batches of an epoch)
        compile_model(model, int(datasets["train"].cardinality()))
    history = training.fit(model, datasets, make_callbacks(), verbose, epochs=30)
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "keras", "path": "runs/iris/model.keras", "tolerance": 1e-06},
    {"format": "saved_model", "path": "runs/iris/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS, name="iris-mlp",
                             spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/iris_mlp.tfspec"
TFSPEC_LINES = (
    "20:5:16 27:24:10 33:15:3 34:11:17 35:16:3 36:17:3 37:18:3 38:19:3 40:14:7 43:8:12 45:8:12 "
    "46:8:12 47:9:3 50:8:12 52:8:12 55:8:12 57:8:12 60:8:12 63:8:12 66:8:12 68:8:12 71:8:12 "
    "74:11:17 91:23:15 93:23:15 96:24:10 99:24:10 100:24:10 101:24:10 102:24:10 103:24:10 "
    "104:24:10 105:24:10 117:22:1 129:26:12 134:29:1 135:30:3 136:31:3 137:29:1 140:29:1 142:29:1 "
    "143:29:1 146:29:1 148:29:1 155:29:1 156:29:1"
)
