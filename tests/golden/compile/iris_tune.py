"""iris-tune: compiled from examples/iris_tune.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib
import sys

import keras

from tfspec.runtime import backup, data, distribute, script, seeds, training, tuning

# Paths in the spec are relative to the spec's folder (run by hand: --spec-dir DIR).
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: the training data's order and augmentation follow it.
EPOCH = seeds.Epoch()

# Params: `tfspec run --set NAME=VALUE` overrides them.
HIDDEN = 2
LR = 0.0001
DROPOUT = 0.5

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"features": ((4,), "float32")}
OUTPUTS = ["dense_2"]

# The loss of each output, for checking the data before training.
LOSSES = {"dense_2": "sparse_categorical_crossentropy"}


def build_model():
    """`Iris`: a keras.Sequential model (examples/iris_tune.tfspec:17)."""
    layers = [
        keras.Input(shape=(4,), dtype="float32", name="features"),
        keras.layers.Normalization(name="features_normalization"),
        keras.layers.Dense(HIDDEN, activation="relu", name="dense"),
        keras.layers.Dropout(DROPOUT, name="dropout"),
        keras.layers.Dense(3, activation="softmax", name="dense_2"),
    ]
    return keras.Sequential(layers, name="Iris")


def load_splits():
    """The columns of the CSV file, split (examples/iris_tune.tfspec:11)."""
    columns = data.read_csv(SPEC_DIR / "data/iris.csv")
    features, labels = data.csv_arrays(columns, INPUTS, labels="species")
    return data.split_arrays(features, labels, validation=0.3, test=0.0, seed=42)


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "iris-tune" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "b9665cd8", "model": "68682243", "train": "e57345e2"},
        params={"hidden": HIDDEN, "lr": LR, "dropout": DROPOUT},
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
    keras.utils.set_random_seed(1)
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
    history = training.fit(model, datasets, make_callbacks(), verbose, epochs=10)
    return model, history, datasets


# `tune { … }`: `tfspec tune` runs `search`, KerasTuner's RandomSearch over the params below.
class HyperModel(tuning.HyperModel):
    """The spec as a KerasTuner HyperModel: a trial sets the tuned params from `hp`, then
    builds and trains the model as `train()` does (the data is built once, in `search`)."""

    def set_params(self, hp):
        """Set the tuned params to this trial's values (the spec's are their defaults)."""
        global HIDDEN, LR, DROPOUT  # the functions above read them
        HIDDEN = hp.Int("hidden", 2, 32, step=2, default=2)
        LR = hp.Float("lr", 0.0001, 0.1, sampling="log", default=0.0001)
        DROPOUT = hp.Choice("dropout", [0.0, 0.1, 0.5], default=0.5)

    def build(self, hp):
        """A trial's model, built and compiled as `train()` does it."""
        self.set_params(hp)
        keras.utils.set_random_seed(1)  # every trial starts from this seed
        with self.strategy.scope():
            model = build_model()
            check_data(model, self.datasets["train"], LOSSES)
            # adapted on the training data as it is: not shuffled, not augmented
            adapt(model, pipeline(self.splits["train"], "adapt"))
            # the optimizer and metrics, in the scope too (told the batches of an epoch)
            compile_model(model, int(self.datasets["train"].cardinality()))
        return model

    def fit(self, hp, model, callbacks, verbose=0):
        """Train as `train()` does; `callbacks`: the tuner's, after the spec's (but its backup)."""
        callbacks = tuning.trial_callbacks(make_callbacks(), callbacks)
        return training.fit(model, self.datasets, callbacks, verbose, epochs=10)


def search(directory, max_trials=None, verbose=0):
    """Run `tune { … }` with KerasTuner's state in `directory` (a search there resumes)."""
    strategy = distribute.default()
    splits = load_splits()
    hypermodel = HyperModel(strategy, splits, make_datasets(splits))
    return tuning.search(
        hypermodel,
        directory,
        "RandomSearch",
        objective="val_accuracy",
        direction="max",
        max_trials=max_trials or 6,
        seed=7,
        verbose=verbose,
    )


def main(run_dir=".", verbose="auto"):
    """Train, save the model and metrics, evaluate on the test split."""
    model, history, datasets = train(verbose)
    training.save_run(run_dir, model, history, datasets)
    return model


if __name__ == "__main__":
    # python <this file> [RUN_DIR] [--spec-dir DIR]: errors in one line, exit status 1
    run_dir, SPEC_DIR = script.arguments(SPEC_DIR)
    sys.exit(script.run(main, run_dir, SPEC_DIR))


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/iris_tune.tfspec"
TFSPEC_LINES = (
    "20:6:16 21:7:12 22:8:17 29:26:10 35:18:3 36:14:17 37:19:3 38:20:3 39:21:3 41:17:7 44:11:12 "
    "46:11:12 47:11:12 48:12:3 51:11:12 53:11:12 56:11:12 58:11:12 61:11:12 64:11:12 67:11:12 "
    "69:11:12 72:11:12 75:14:17 92:25:15 94:25:15 97:26:10 100:26:10 101:26:10 102:26:10 103:26:10 "
    "104:26:10 105:26:10 106:26:10 118:24:1 120:29:10 131:28:12 135:32:1 136:32:1 140:37:3 "
    "143:38:14 144:39:10 145:40:15 163:28:12 166:32:1 171:32:1 172:32:1 173:32:1 174:32:1 175:32:1 "
    "176:32:1 177:32:1 178:32:1 179:32:1 180:32:1"
)
