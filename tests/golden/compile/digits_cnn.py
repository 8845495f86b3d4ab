"""digits-cnn: compiled from examples/digits_cnn.tfspec by tfspec 0.1.0.

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
LR = 0.01
EPOCHS = 20

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"image": ((8, 8, 1), "float32")}
OUTPUTS = ["digit"]

# The loss of each output, for checking the data before training.
LOSSES = {"digit": "sparse_categorical_crossentropy"}


def build_model():
    """`Net`: a functional keras.Model (examples/digits_cnn.tfspec:16)."""
    image = keras.Input(shape=(8, 8, 1), dtype="float32", name="image")
    x = keras.layers.Rescaling(1 / 16, name="x_rescaling")(image)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="x_conv2d")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="x_conv2d_2")(x)
    x = keras.layers.MaxPooling2D(name="x_max_pooling2d")(x)
    x = keras.layers.Flatten(name="x_flatten")(x)
    x = keras.layers.Dropout(0.25, name="x")(x)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    return keras.Model(inputs=image, outputs=digit, name="Net")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/digits_cnn.tfspec:9)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return data.split_arrays(features, labels, validation=0.2, test=0.1, seed=7)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=64, shuffle=2048, seed=7, epoch=EPOCH)


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


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "eacdabe3", "model": "7da40990", "train": "257c408d", "distribute": "00883027"},
        params={"lr": LR, "epochs": EPOCHS},
        data=[SPEC_DIR / "data/digits.npz"],
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
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
        backup.BackgroundBackupAndRestore(
            training.spec_path(SPEC_DIR, "runs/digits/backup"),
            experiment=experiment(),
        ),
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
    history = training.fit(model, datasets, make_callbacks(), verbose, epochs=EPOCHS)
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/digits/serving", "version": 1, "tolerance": 1e-05},
    {"format": "tflite", "path": "runs/digits/model.tflite", "quantize": "dynamic",
     "tolerance": 0.05},
    {"format": "tfjs", "path": "runs/digits/tfjs", "tolerance": 0.0001},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS, name="digits-cnn",
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
TFSPEC_SPEC = "examples/digits_cnn.tfspec"
TFSPEC_LINES = (
    "21:5:12 22:6:16 29:31:10 34:17:3 35:19:8 36:20:8 37:21:8 38:22:8 39:23:8 40:24:8 41:25:18 "
    "42:16:7 45:9:12 47:9:12 50:10:3 53:9:12 55:9:12 58:9:12 60:9:12 63:9:12 66:9:12 69:9:12 "
    "71:9:12 84:30:15 86:30:15 89:31:10 92:31:10 93:31:10 94:31:10 95:31:10 96:31:10 97:31:10 "
    "100:34:15 103:37:5 104:38:5 105:39:5 106:39:5 107:39:5 108:39:5 113:28:1 115:43:25 116:28:1 "
    "123:33:12 128:45:1 129:46:3 130:47:3 131:47:3 132:48:3 133:45:1 136:45:1 138:45:1 139:45:1 "
    "142:45:1 144:45:1 151:45:1 152:45:1"
)
