"""kitchen-sink: compiled from examples/everything.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

from tfspec.runtime import backup, data, distribute, export, script, seeds, training, verify

# Paths in the spec are relative to the spec's folder (run by hand: --spec-dir DIR).
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: the training data's order and augmentation follow it.
EPOCH = seeds.Epoch()

# Params: `tfspec run --set NAME=VALUE` overrides them.
LR = 0.002
EPOCHS = 3
DROPOUT = 0.2

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"image": ((8, 8, 1), "float32")}
OUTPUTS = ["digit"]

# The loss of each output, for checking the data before training.
LOSSES = {"digit": "sparse_categorical_crossentropy"}


def build_model():
    """`Kitchen`: a functional keras.Model (examples/everything.tfspec:23)."""
    image = keras.Input(shape=(8, 8, 1), dtype="float32", name="image")
    features = keras.layers.Conv2D(
        8,
        3,
        padding="same",
        activation="relu",
        kernel_initializer="he_normal",
        name="features_conv2d",
    )(image)
    features = keras.layers.AveragePooling2D(
        pool_size=2,
        name="features_average_pooling2d",
    )(features)
    features = keras.layers.Flatten(name="features_flatten")(features)
    features = keras.layers.Dropout(DROPOUT, name="features")(features)
    digit = keras.layers.Dense(10, activation="softmax", name="digit", dtype="float32")(features)
    return keras.Model(inputs=image, outputs=digit, name="Kitchen")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/everything.tfspec:10)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return data.split_arrays(features, labels, validation=0.15, test=0.15, seed=11)


def augment_layers():
    """The layers that augment the training batches, made for each pipeline."""
    return keras.Sequential([
        keras.layers.RandomTranslation(0.1, 0.1),
        keras.layers.RandomZoom(0.1),
    ], name="augment")


def pipelines():
    """How `data { … }` batches each split: its settings."""
    return data.Pipeline(
        batch=32,
        drop_remainder=True,
        shuffle=1024,
        seed=11,
        cache=SPEC_DIR / "runs/everything/cache",
        cache_key="8778f514",
        parallel=2,
        augment=augment_layers,
        epoch=EPOCH,
    )


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs/everything/backup")


def experiment():
    """What this run is: a killed run resumes only from the backup of the same spec,
    params and data files (their sizes and times)."""
    return backup.Experiment(
        {"data": "3b7328ed", "model": "8f99eb5f", "train": "d29c993a", "distribute": "bb77b8f1"},
        params={"lr": LR, "epochs": EPOCHS, "dropout": DROPOUT},
        data=[SPEC_DIR / "data/digits.npz"],
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(
        learning_rate=keras.optimizers.schedules.ExponentialDecay(
            LR,
            decay_steps=100,
            decay_rate=0.9,
        ),
        beta_1=0.9,
        global_clipnorm=1.0,
    )


def compile_model(model):
    """`model.compile` with the loss, metrics and options of `train`."""
    model.compile(
        optimizer=make_optimizer(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=3)],
        jit_compile=False,
        steps_per_execution=4,
    )


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, mode="min"),
        keras.callbacks.ModelCheckpoint(
            training.spec_path(SPEC_DIR, "runs/everything/best.keras"),
            save_best_only=True,
        ),
        # BackupAndRestore: the custom loop checkpoints itself (CHECKPOINT_DIR)
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1),
        keras.callbacks.CSVLogger(training.spec_path(SPEC_DIR, "runs/everything/log.csv")),
        keras.callbacks.TerminateOnNaN(),
        seeds.DataEpoch(EPOCH),  # the data's order and augmentation
    ]


def make_metrics():
    """(output, metric) pairs ("accuracy" as `model.compile` resolves it)."""
    return [
        (None, keras.metrics.SparseCategoricalAccuracy(name="accuracy")),
        (None, keras.metrics.SparseTopKCategoricalAccuracy(k=3)),
    ]


def loss_functions():
    """Each output's loss, per example (the loop averages over the global batch), and weight."""
    return {
        "digit": (keras.losses.sparse_categorical_crossentropy, 1.0),
    }


def train(verbose=2):
    """Train as `train { … }` says; returns the model, its history and data."""
    keras.utils.set_random_seed(1234)
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    strategy = distribute.mirrored(["/cpu:0", "/cpu:1"], communication="ring")
    splits = load_splits()
    datasets = make_datasets(splits)
    with strategy.scope():  # variables are created where the strategy wants
        model = build_model()
        check_data(model, datasets["train"], LOSSES)
        compile_model(model)  # the optimizer and metrics, in the scope too
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
        steps_per_epoch=20,
        validation_steps=5,
        accumulate=2,
    )
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/everything/serving", "version": 3,
     "signature": "serving_default", "tolerance": 0.02},
    {"format": "keras", "path": "runs/everything/model.keras", "tolerance": 0.02},
    {"format": "tflite", "path": "runs/everything/model_int8.tflite", "quantize": "int8",
     "integer_io": True, "representative_samples": 64, "tolerance": 0.35},
    {"format": "tflite", "path": "runs/everything/model_fp16.tflite", "quantize": "float16",
     "tolerance": 0.02},
    {"format": "tfjs", "path": "runs/everything/tfjs", "quantize": "float16", "tolerance": 0.02},
    {"format": "onnx", "path": "runs/everything/model.onnx", "opset": 17, "tolerance": 0.02,
     "verify": True},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="kitchen-sink", spec_dir=SPEC_DIR, rebuild=build_model)


def verify_exports(run_dir):
    """Run each export in its own runtime and compare it with the Keras model."""
    return verify.verify_exports(run_dir, OUTPUTS)


def main(run_dir=".", verbose=2):
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
TFSPEC_SPEC = "examples/everything.tfspec"
TFSPEC_LINES = (
    "22:5:12 23:6:16 24:7:17 31:51:10 36:24:3 37:26:8 38:26:8 39:26:8 40:26:8 41:26:8 42:26:8 "
    "43:26:8 44:26:8 45:33:8 46:33:8 47:33:8 48:33:8 49:34:8 50:35:8 51:37:18 52:23:7 55:10:12 "
    "57:10:12 60:11:3 63:20:13 65:20:13 66:20:14 67:20:43 71:10:12 73:10:12 74:12:11 75:13:20 "
    "76:14:13 77:15:10 78:16:11 79:16:11 80:18:14 81:20:13 86:10:12 88:10:12 91:10:12 94:10:12 "
    "97:10:12 99:10:12 103:59:5 116:47:15 118:47:15 119:47:15 120:47:15 121:47:15 122:47:15 "
    "123:47:15 124:47:15 125:47:15 126:47:15 129:51:10 131:51:10 132:51:10 133:51:10 134:51:10 "
    "135:51:10 136:51:10 137:51:10 140:56:15 143:57:5 144:58:5 145:58:5 146:58:5 147:58:5 148:59:5 "
    "149:60:5 150:61:5 151:62:5 156:52:13 159:52:14 160:52:26 164:51:10 167:51:10 171:45:1 "
    "173:67:10 174:68:19 175:64:21 176:76:13 177:45:1 183:46:10 184:46:10 185:46:10 186:46:10 "
    "187:46:10 188:46:10 189:46:10 190:46:10 191:46:10 192:46:10 193:46:10 194:46:10 195:46:10 "
    "196:46:10 197:46:10 198:46:10 203:80:1 204:81:3 205:81:3 206:82:3 207:83:3 208:83:3 209:91:3 "
    "210:91:3 211:92:3 212:93:3 213:93:3 214:80:1 217:80:1 219:80:1 220:80:1 223:80:1 225:80:1 "
    "232:80:1 233:80:1"
)
