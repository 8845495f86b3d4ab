"""digits-resnet: compiled from examples/resnet_blocks.tfspec by tfspec 0.1.0.

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
WIDTH = 16

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"image": ((8, 8, 1), "float32")}
OUTPUTS = ["digit"]

# The loss of each output, for checking the data before training.
LOSSES = {"digit": "sparse_categorical_crossentropy"}


def residual_block(x, filters, stride=1, *, name):
    """Block `Residual` (examples/resnet_blocks.tfspec:7): its layers are named `<name>_…`."""
    y = keras.layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        name=f"{name}_y_conv2d",
    )(x)
    y = keras.layers.BatchNormalization(name=f"{name}_y_batch_normalization")(y)
    y = keras.layers.ReLU(name=f"{name}_y_re_lu")(y)
    y = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        name=f"{name}_y_conv2d_2",
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_y")(y)
    shortcut = keras.layers.Conv2D(
        filters,
        1,
        strides=stride,
        padding="same",
        name=f"{name}_shortcut",
    )(x)
    out = keras.layers.Add(name=f"{name}_out_add")([y, shortcut])
    out = keras.layers.ReLU(name=name)(out)
    return out


def build_model():
    """`ResNet`: a functional keras.Model (examples/resnet_blocks.tfspec:25)."""
    image = keras.Input(shape=(8, 8, 1), dtype="float32", name="image")
    x = keras.layers.Rescaling(1 / 16, name="x_rescaling")(image)
    x = residual_block(x, WIDTH, name="x_residual")
    x = residual_block(x, WIDTH, name="x_residual_2")
    x = residual_block(x, WIDTH * 2, stride=2, name="x_residual_3")
    x = residual_block(x, WIDTH * 2, name="x")
    digit = keras.layers.GlobalAveragePooling2D(name="digit_global_average_pooling2d")(x)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(digit)
    return keras.Model(inputs=image, outputs=digit, name="ResNet")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/resnet_blocks.tfspec:20)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return data.split_arrays(features, labels, validation=0.2, test=0.0, seed=7)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=64, seed=7, epoch=EPOCH)


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-resnet" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "2447b0b9", "model": "b81a0de2", "blocks": "776abb96", "train": "dcefb164"},
        params={"width": WIDTH},
        data=[SPEC_DIR / "data/digits.npz"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.AdamW(
        learning_rate=keras.optimizers.schedules.CosineDecay(
            0.003,
            decay_steps=1000,
        ),
        weight_decay=0.0001,
    )


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
    history = training.fit(model, datasets, make_callbacks(), verbose, epochs=8)
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/resnet/serving", "tolerance": 1e-05},
    {"format": "tflite", "path": "runs/resnet/model.tflite", "quantize": "float16",
     "tolerance": 0.01},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="digits-resnet", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/resnet_blocks.tfspec"
TFSPEC_LINES = (
    "21:5:15 28:41:10 31:7:7 33:10:8 34:10:8 35:10:8 36:10:8 37:10:8 38:10:8 39:10:8 40:10:8 "
    "41:11:8 42:12:8 43:13:8 44:13:8 45:13:8 46:13:8 47:13:8 48:13:8 49:13:8 50:14:8 51:15:19 "
    "52:15:19 53:15:19 54:15:19 55:15:19 56:15:19 57:15:19 58:16:16 59:16:40 65:26:3 66:28:8 "
    "67:29:8 68:30:8 69:31:8 70:32:8 71:33:23 72:33:51 73:25:7 76:20:12 78:20:12 81:21:3 84:20:12 "
    "86:20:12 89:20:12 91:20:12 94:20:12 97:20:12 100:20:12 102:20:12 119:37:15 121:37:15 "
    "122:37:15 123:37:15 124:37:15 125:37:15 126:37:15 127:37:15 130:41:10 133:41:10 134:41:10 "
    "135:41:10 136:41:10 137:41:10 138:41:10 150:36:1 160:43:12 165:46:1 166:47:3 167:48:3 "
    "168:48:3 169:46:1 172:46:1 174:46:1 175:46:1 178:46:1 180:46:1 187:46:1 188:46:1"
)
