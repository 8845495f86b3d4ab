"""two-tower: compiled from examples/two_tower.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib
import sys

import keras

from tfspec.runtime import backup, data, distribute, export, script, training, verify

# Paths in the spec are relative to the spec's folder (run by hand: --spec-dir DIR).
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"query": ((16,), "float32"), "item": ((16,), "float32")}
OUTPUTS = ["score", "category"]

# The loss of each output, for checking the data before training.
LOSSES = {"score": "binary_crossentropy", "category": "sparse_categorical_crossentropy"}


def build_model():
    """`TwoTower`: a functional keras.Model (examples/two_tower.tfspec:10)."""
    query = keras.Input(shape=(16,), dtype="float32", name="query")
    item = keras.Input(shape=(16,), dtype="float32", name="item")
    encoder = keras.layers.Dense(32, activation="relu", name="encoder")
    q = encoder(query)
    i = encoder(item)
    i = keras.layers.Dropout(0.1, name="i")(i)
    joint = keras.layers.Concatenate(name="joint")([q, i])
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(joint)
    category = keras.layers.Dense(16, activation="relu", name="category_dense")(joint)
    category = keras.layers.Dense(5, activation="softmax", name="category")(category)
    return keras.Model(
        inputs={"query": query, "item": item},
        outputs={"score": score, "category": category},
        name="TwoTower",
    )


def load_splits():
    """Random tensors shaped like the model's inputs and outputs (examples/two_tower.tfspec:6)."""
    features, labels = data.synthetic(
        build_model(),
        INPUTS,
        OUTPUTS,
        LOSSES,
        samples=512,
        classes=5,
    )
    return data.split_arrays(features, labels, validation=0.0, test=0.0, seed=0)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=32)


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "two-tower" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment({"data": "662de11d", "model": "4007352b", "train": "f722e379"})


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=0.003)


def compile_model(model, batches=-1):
    """`model.compile` as `train` says; `batches`: the training batches of an epoch."""
    # 32 steps per call into TensorFlow (fewer round trips), at most an epoch's
    model.compile(
        optimizer=make_optimizer(),
        loss={"score": "binary_crossentropy", "category": "sparse_categorical_crossentropy"},
        loss_weights={"score": 1.0, "category": 0.5},
        metrics={"score": ["accuracy", keras.metrics.AUC()], "category": ["accuracy"]},
        steps_per_execution=min(32, batches) if batches > 0 else 32,
    )


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        # a killed run of the same experiment resumes from it
        backup.BackgroundBackupAndRestore(CHECKPOINT_DIR, experiment=experiment()),
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
    history = training.fit(model, datasets, make_callbacks(), verbose, epochs=5)
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/two_tower/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS, name="two-tower",
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
TFSPEC_SPEC = "examples/two_tower.tfspec"
TFSPEC_LINES = (
    "21:26:3 26:11:3 27:12:3 28:14:19 29:15:7 30:16:15 31:16:26 32:17:11 33:18:18 34:20:8 35:21:8 "
    "36:10:7 37:10:7 38:10:7 39:10:7 40:10:7 43:6:12 45:6:12 46:6:12 47:6:12 48:6:12 49:6:12 "
    "50:6:12 51:6:12 52:6:12 53:5:1 56:6:12 58:6:12 61:6:12 63:6:12 66:6:12 69:6:12 72:6:12 "
    "74:6:12 87:25:15 89:25:15 92:26:3 95:26:3 96:26:3 97:26:3 98:26:3 99:26:3 100:26:3 101:26:3 "
    "112:24:1 122:32:12 127:35:1 128:36:3 129:35:1 132:35:1 134:35:1 135:35:1 138:35:1 140:35:1 "
    "147:35:1 148:35:1"
)
