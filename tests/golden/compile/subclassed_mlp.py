"""digits-subclassed: compiled from examples/subclassed_mlp.tfspec by tfspec 0.1.0.

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

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"image": ((8, 8, 1), "float32")}
OUTPUTS = ["digit"]

# The loss of each output, for checking the data before training.
LOSSES = {"digit": "sparse_categorical_crossentropy"}


@keras.saving.register_keras_serializable(package="tfspec")
class DigitsMLP(keras.Model):
    """`DigitsMLP`: a subclassed keras.Model (examples/subclassed_mlp.tfspec:11)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden_rescaling = keras.layers.Rescaling(1 / 16, name="hidden_rescaling")
        self.hidden_flatten = keras.layers.Flatten(name="hidden_flatten")
        self.hidden_dense = keras.layers.Dense(
            64,
            activation="relu",
            kernel_regularizer=keras.regularizers.L2(0.0001),
            name="hidden_dense",
        )
        self.hidden = keras.layers.Dropout(0.2, name="hidden")
        self.digit = keras.layers.Dense(10, activation="softmax", name="digit")

    def call(self, inputs, training=None):
        image = inputs
        hidden = self.hidden_rescaling(image)
        hidden = self.hidden_flatten(hidden)
        hidden = self.hidden_dense(hidden)
        hidden = self.hidden(hidden)
        digit = self.digit(hidden)
        return digit


def build_model():
    """Create `DigitsMLP` and build its weights on symbolic inputs."""
    model = DigitsMLP(name="DigitsMLP")
    model(keras.Input(shape=(8, 8, 1), dtype="float32", name="image"))
    return model


def load_splits():
    """The arrays of the `.npz` archive, split (examples/subclassed_mlp.tfspec:6)."""
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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-subclassed" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "2447b0b9", "model": "4a49ef6d", "train": "b7c5f164"},
        data=[SPEC_DIR / "data/digits.npz"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)


def compile_model(model, batches=-1):
    """`model.compile` as `train` says; `batches`: the training batches of an epoch."""
    # 32 steps per call into TensorFlow (fewer round trips), at most an epoch's
    model.compile(
        optimizer=make_optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=training.xla_pays_off(batches * 5),
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
        "digit": (keras.losses.SparseCategoricalCrossentropy(reduction=None), 1.0),
    }


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
    history = training.custom(
        model,
        datasets,
        strategy,
        loss_functions(),
        make_metrics,
        make_callbacks(),
        verbose,
        epochs=5,
        outputs=OUTPUTS,
        checkpoint_dir=CHECKPOINT_DIR,
        experiment=experiment(),
        xla="step",
    )
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "keras", "path": "runs/digits_subclassed/model.keras", "tolerance": 1e-06},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="digits-subclassed", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/subclassed_mlp.tfspec"
TFSPEC_LINES = (
    "25:24:10 29:11:7 34:14:8 35:15:8 36:16:8 37:16:8 38:16:8 39:16:8 40:16:8 41:16:8 42:17:8 "
    "43:18:18 47:14:8 48:15:8 49:16:8 50:17:8 51:18:18 62:6:12 64:6:12 67:7:3 70:6:12 72:6:12 "
    "75:6:12 77:6:12 80:6:12 83:6:12 86:6:12 88:6:12 104:23:15 106:23:15 109:24:10 112:24:10 "
    "113:24:10 114:24:10 115:24:10 116:24:10 117:24:10 118:24:10 128:25:13 131:25:14 135:24:10 "
    "138:24:10 142:21:1 152:22:10 153:22:10 154:22:10 155:22:10 156:22:10 157:22:10 158:22:10 "
    "159:22:10 160:22:10 161:22:10 162:22:10 163:22:10 164:22:10 165:22:10 170:29:1 171:30:3 "
    "172:29:1 175:29:1 177:29:1 178:29:1 181:29:1 183:29:1 190:29:1 191:29:1"
)
