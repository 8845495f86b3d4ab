"""text-lstm: compiled from examples/text_lstm.tfspec by tfspec 0.1.0.

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
VOCAB = 2000
SEQ_LEN = 64

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"text": ((), "string")}
OUTPUTS = ["positive"]

# The loss of each output, for checking the data before training.
LOSSES = {"positive": "binary_crossentropy"}


def build_model():
    """`Sentiment`: a functional keras.Model (examples/text_lstm.tfspec:14)."""
    text = keras.Input(shape=(), dtype="string", name="text")
    tokens = keras.layers.TextVectorization(
        max_tokens=VOCAB,
        output_sequence_length=SEQ_LEN,
        name="tokens",
    )(text)
    h = keras.layers.Embedding(VOCAB, 32, mask_zero=True, name="h_embedding")(tokens)
    h = keras.layers.Bidirectional(keras.layers.LSTM(32), name="h_bidirectional")(h)
    h = keras.layers.Dropout(0.3, name="h")(h)
    positive = keras.layers.Dense(1, activation="sigmoid", name="positive")(h)
    return keras.Model(inputs=text, outputs=positive, name="Sentiment")


def load_splits():
    """Texts from class folders (keras.utils.text_dataset_from_directory)
    (examples/text_lstm.tfspec:9)."""
    dataset = keras.utils.text_dataset_from_directory(
        SPEC_DIR / "data/reviews",
        label_mode="binary",
        batch_size=None,
        shuffle=False,
    )
    return data.split_dataset(dataset, validation=0.2, test=0.0, seed=1)


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(batch=32, seed=1, epoch=EPOCH)


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
    data.adapt(model, train, "tokens")


# Every epoch is checkpointed here; a killed run, started again, resumes.
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "text-lstm" / "checkpoints")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "b88c8008", "model": "667b81f2", "train": "893ccba9"},
        params={"vocab": VOCAB, "seq_len": SEQ_LEN},
        data=[SPEC_DIR / "data/reviews"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=0.002, clipnorm=1.0)


def compile_model(model, batches=-1):
    """`model.compile` as `train` says; `batches`: the training batches of an epoch."""
    # 32 steps per call into TensorFlow (fewer round trips), at most an epoch's
    model.compile(
        optimizer=make_optimizer(),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.Precision(), keras.metrics.Recall()],
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
    history = training.fit(model, datasets, make_callbacks(), verbose, epochs=4)
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/text/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS, name="text-lstm",
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
TFSPEC_SPEC = "examples/text_lstm.tfspec"
TFSPEC_LINES = (
    "20:5:15 21:6:17 28:27:10 33:15:3 34:17:8 35:17:8 36:17:8 37:17:8 38:17:8 39:19:8 40:20:8 "
    "41:21:8 42:22:21 43:14:7 46:9:12 49:9:12 50:9:12 51:9:12 52:9:12 53:9:12 54:9:12 55:10:3 "
    "58:9:12 60:9:12 63:9:12 65:9:12 68:9:12 71:9:12 74:9:12 76:9:12 79:9:12 82:17:8 99:26:15 "
    "101:26:15 104:27:10 107:27:10 108:27:10 109:27:10 110:27:10 111:27:10 112:27:10 124:25:1 "
    "136:29:12 141:32:1 142:33:3 143:32:1 146:32:1 148:32:1 149:32:1 152:32:1 154:32:1 161:32:1 "
    "162:32:1"
)
