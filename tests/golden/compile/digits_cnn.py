"""digits-cnn: compiled from examples/digits_cnn.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import concurrent.futures
import json
import os
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

from tfspec.runtime import export, verify

# Paths in the spec are relative to the spec's folder.
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: the training data's order and augmentation
# depend on it.
# Made on first use, after the strategy (which must come before any op).
EPOCH = None

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
    x = keras.layers.Conv2D(
        16,
        3,
        padding="same",
        activation="relu",
        name="x_conv2d",
    )(x)
    x = keras.layers.Conv2D(
        32,
        3,
        padding="same",
        activation="relu",
        name="x_conv2d_2",
    )(x)
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
    return split_arrays(features, labels, validation=0.2, test=0.1, seed=7)


def pipeline(arrays, split):
    """One split of arrays in memory: shuffle the row numbers (the training set's,
    every epoch), batch them, gather each batch's rows in parallel, augment whole
    batches, and prefetch so that input overlaps training."""
    training = split == "train"  # "adapt": the training data as it is
    tensors = tf.nest.map_structure(tf.convert_to_tensor, arrays)
    count = len(tf.nest.flatten(arrays)[0])
    dataset = tf.data.Dataset.range(count)
    if training:
        # each epoch's order is a function of (seed, epoch) alone, so a
        # resumed run shuffles its epochs as an uninterrupted run does
        indices, epoch = dataset, current_epoch()
        dataset = tf.data.Dataset.from_tensors(0).flat_map(
            lambda _: indices.shuffle(2048, seed=7 + epoch, reshuffle_each_iteration=False)
        ).apply(tf.data.experimental.assert_cardinality(count))
    dataset = dataset.batch(64, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(
        lambda rows: tf.nest.map_structure(lambda t: tf.gather(t, rows), tensors),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    # a gather per batch needs no tuning, and tf.data's autotuner would take CPU
    # from training (AUTOTUNE then means fixed defaults)
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = dataset.with_options(options)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_datasets(splits=None):
    """The batched `train`, `validation` and `test` pipelines that exist."""
    splits = splits if splits is not None else load_splits()
    return {name: pipeline(split, name) for name, split in splits.items()}


def current_epoch():
    """EPOCH, made the first time it is needed."""
    global EPOCH
    if EPOCH is None:
        EPOCH = tf.Variable(0, dtype=tf.int64, trainable=False)
    return EPOCH


def adapt(model, train):
    """Fit the layers that learn from data (their vocabulary, mean…) to the
    training split, inside the model: the exported model takes raw inputs."""
    del model, train  # no layer of this model learns from data


def split_arrays(features, labels, validation, test, seed):
    """Shuffle once with `seed` and hold out the last fractions: the same every run.
    Returns the `(features, labels)` arrays of each split."""
    count = len(labels if not isinstance(labels, dict) else next(iter(labels.values())))
    order = np.random.default_rng(seed).permutation(count)
    n_test = round(count * test)
    n_validation = round(count * validation)
    n_train = count - n_validation - n_test
    parts = {
        "train": order[:n_train],
        "validation": order[n_train:n_train + n_validation],
        "test": order[n_train + n_validation:],
    }

    def take(tree, index):
        if isinstance(tree, dict):
            return {key: value[index] for key, value in tree.items()}
        return tree[index]

    return {
        name: (take(features, index), take(labels, index))
        for name, index in parts.items()
        if len(index)
    }


def check_data(model, dataset, losses):
    """Stop before training when the data cannot feed the model (names, ranks, dtypes,
    labels against each loss), naming both sides."""
    features, labels = dataset.element_spec
    if isinstance(features, dict):
        for name in INPUTS:
            if name not in features:
                raise ValueError(
                    f"the model input `{name}` has no data: the data has the features "
                    f"{sorted(features)}"
                )
        pairs = [(name, features[name]) for name in INPUTS]
    else:
        if len(INPUTS) != 1:
            raise ValueError(
                f"the data has one feature tensor but the model has {len(INPUTS)} inputs "
                f"{sorted(INPUTS)}: give the source one array per input"
            )
        pairs = [(next(iter(INPUTS)), features)]
    for name, spec in pairs:
        want, dtype = INPUTS[name]
        got = tuple(spec.shape[1:])
        if len(want) != len(got) or any(w is not None and g is not None and w != g
                                         for w, g in zip(want, got, strict=True)):
            raise ValueError(
                f"the data for model input `{name}` has shape {got} per example, "
                f"but `{name}` is declared with shape {want}"
            )
        if (spec.dtype == tf.string) != (dtype == "string"):
            raise ValueError(
                f"the data for model input `{name}` is {spec.dtype.name}, "
                f"but `{name}` is declared {dtype}"
            )
    outputs = model_outputs(model)
    label_specs = labels if isinstance(labels, dict) else {name: labels for name in outputs}
    for name, loss in losses.items():
        if name not in label_specs or name not in outputs:
            continue
        label, output = label_specs[name], outputs[name]
        units = output.shape[-1]
        sparse = "sparse" in loss
        if sparse and len(label.shape) == len(output.shape) and label.shape[-1] not in (1, None):
            raise ValueError(
                f"`{loss}` expects integer class ids for output `{name}`, "
                f"but the labels have shape {tuple(label.shape[1:])} (one-hot?): "
                f"use `categorical_crossentropy`"
            )
        if "categorical" in loss and not sparse and len(label.shape) < len(output.shape):
            raise ValueError(
                f"`{loss}` expects one-hot labels of shape {tuple(output.shape[1:])} for "
                f"output `{name}`, but the labels are class ids: use "
                f"`sparse_categorical_crossentropy`"
            )
        if sparse and units is not None and label.dtype.is_integer:
            largest = int(dataset.take(64).reduce(
                tf.constant(0, tf.int64),
                lambda top, batch, name=name: tf.maximum(top, tf.cast(tf.reduce_max(
                    batch[1] if not isinstance(batch[1], dict) else batch[1][name]), tf.int64)),
            ))
            if largest >= units:
                raise ValueError(
                    f"the labels of output `{name}` go up to {largest}, but it has "
                    f"{units} units: it needs at least {largest + 1}"
                )


def model_outputs(model):
    """The model's output tensors by output name, for every kind of model."""
    try:
        structure = model.output
    except AttributeError:  # keras.Sequential keeps its graph inside
        structure = model.outputs[0]
    return structure if isinstance(structure, dict) else {OUTPUTS[0]: structure}


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=LR)


def compile_model(model, batches=-1):
    """`model.compile` with the loss, metrics and options of `train`; `batches` is
    the number of training batches in an epoch (negative: unknown)."""
    # 32 steps per call into TensorFlow (fewer round trips from Python), but
    # not more than an epoch has
    model.compile(
        optimizer=make_optimizer(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=min(32, batches) if batches > 0 else 32,
    )


def spec_path(relative):
    """A path in the spec's folder for a callback to write; its folder is made."""
    path = SPEC_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


class DataEpoch(keras.callbacks.Callback):
    """Tells the data pipeline which epoch it is (see EPOCH)."""

    def on_epoch_begin(self, epoch, logs=None):
        current_epoch().assign(epoch)

    def on_epoch_end(self, epoch, logs=None):
        current_epoch().assign(epoch + 1)  # Keras may open the next epoch's data now


class BackgroundBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, written in the background. When an epoch ends (or
    every `save_freq` batches) the variables of the model (seed generators included)
    and of the optimizer are copied, and a thread writes the copy to `backup.npz` while
    training goes on; the file is replaced whole, so a kill leaves the last backup."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__(backup_dir, save_freq, double_checkpoint, delete_checkpoint)
        self.path = pathlib.Path(backup_dir) / "backup.npz"
        self.writer = self.writing = None

    def state(self):
        return self.model.variables + self.model.optimizer.variables

    def on_train_begin(self, logs=None):
        self.writer = concurrent.futures.ThreadPoolExecutor(1)  # its thread, until the end
        if not self.path.exists():
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        with np.load(self.path) as saved:
            values = [saved[f"v{i}"] for i in range(len(saved.files) - 1)]
            epoch = int(saved["epoch"])
        variables = self.state()
        if [v.shape for v in values] != [tuple(v.shape) for v in variables]:
            raise ValueError(f"{self.path} is the backup of another model: delete it to "
                             "train this one from the start")
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        self.model._initial_epoch = epoch  # where fit starts, as Keras's callback does
        self._current_epoch = epoch  # what a backup within the first epoch records

    def _save_model(self):  # Keras calls it when a backup is due
        values = [variable.numpy() for variable in self.state()]  # a copy, now
        self.wait()  # one write at a time
        self.writing = self.writer.submit(self.write, values, self._current_epoch)

    def write(self, values, epoch):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        with open(scratch, "wb") as file:
            np.savez(file, epoch=epoch, **{f"v{i}": value for i, value in enumerate(values)})
        os.replace(scratch, self.path)

    def wait(self):
        if self.writing is not None:
            self.writing.result()  # raises what the write raised

    def on_train_end(self, logs=None):
        self.writer.shutdown()  # the last write is done
        self.wait()
        super().on_train_end(logs)  # deletes the backup if delete_checkpoint


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=0.5,
            patience=2,
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=5,
            restore_best_weights=True,
        ),
        BackgroundBackupAndRestore(spec_path("runs/digits/backup")),
        DataEpoch(),
    ]


def train(verbose="auto"):
    """Train as `train { … }` says; returns the model, its history and data."""
    strategy = make_strategy()
    splits = load_splits()
    datasets = make_datasets(splits)
    with strategy.scope():  # variables are created where the strategy wants
        model = build_model()
        check_data(model, datasets["train"], LOSSES)
        # adapted on the training data as it is: not shuffled, not augmented
        adapt(model, pipeline(splits["train"], "adapt"))
        # the optimizer and metrics, in the scope too (told the batches of an epoch)
        compile_model(model, int(datasets["train"].cardinality()))
    history = model.fit(
        datasets["train"],
        validation_data=datasets.get("validation"),
        epochs=EPOCHS,
        shuffle=False,
        callbacks=make_callbacks(),
        verbose=verbose,
    )
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/digits/serving", "version": 1,
     "tolerance": 1e-05},
    {"format": "tflite", "path": "runs/digits/model.tflite", "quantize": "dynamic",
     "tolerance": 0.05},
    {"format": "tfjs", "path": "runs/digits/tfjs", "tolerance": 0.0001},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="digits-cnn", spec_dir=SPEC_DIR)


def verify_exports(run_dir):
    """Run each export in its own runtime and compare it with the Keras model."""
    return verify.verify_exports(run_dir, OUTPUTS)


def main(run_dir=".", verbose="auto"):
    """Train, evaluate on the test split, and save the model and metrics; then
    export and verify."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model, history, datasets = train(verbose)
    metrics = {"history": history.history}
    if "test" in datasets:
        metrics["test"] = model.evaluate(datasets["test"], return_dict=True, verbose=0)
    model.save(run_dir / "model.keras")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    export_all(model, run_dir, datasets)
    verify_exports(run_dir)
    return model


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/digits_cnn.tfspec"
TFSPEC_LINES = (
    "27:5:12 28:6:16 35:31:10 40:17:3 41:19:8 42:20:8 43:20:8 44:20:8 "
    "45:20:8 46:20:8 47:20:8 48:20:8 49:21:8 50:21:8 51:21:8 52:21:8 "
    "53:21:8 54:21:8 55:21:8 56:22:8 57:23:8 58:24:8 59:25:18 60:16:7 "
    "63:9:12 65:9:12 68:10:3 71:9:12 84:12:13 86:11:11 99:9:12 113:9:12 "
    "119:9:12 120:9:12 121:9:12 122:9:12 123:9:12 124:9:12 125:9:12 126:9:12 "
    "127:9:12 128:9:12 129:9:12 130:9:12 131:9:12 132:9:12 133:9:12 134:9:12 "
    "135:9:12 136:9:12 137:9:12 138:9:12 139:9:12 140:9:12 141:9:12 142:9:12 "
    "145:9:12 146:9:12 147:9:12 148:9:12 149:9:12 150:9:12 151:9:12 152:9:12 "
    "153:9:12 154:9:12 155:9:12 156:9:12 157:9:12 158:9:12 159:9:12 160:9:12 "
    "161:9:12 162:9:12 163:9:12 164:9:12 165:9:12 166:9:12 167:9:12 168:9:12 "
    "169:9:12 170:9:12 171:9:12 172:9:12 173:9:12 174:9:12 175:9:12 176:9:12 "
    "177:9:12 178:9:12 179:9:12 180:9:12 181:9:12 182:9:12 183:9:12 184:9:12 "
    "185:9:12 186:9:12 187:9:12 188:9:12 189:9:12 190:9:12 191:9:12 192:9:12 "
    "193:9:12 194:9:12 195:9:12 196:9:12 197:9:12 198:9:12 199:9:12 200:9:12 "
    "201:9:12 202:9:12 203:9:12 204:9:12 205:9:12 206:9:12 207:9:12 208:9:12 "
    "211:9:12 212:9:12 213:9:12 214:9:12 215:9:12 216:9:12 217:9:12 220:43:25 "
    "225:30:15 227:30:15 230:31:10 235:31:10 236:31:10 237:31:10 238:31:10 239:31:10 "
    "240:31:10 260:39:5 261:39:5 262:39:5 263:39:5 264:39:5 265:39:5 266:39:5 "
    "267:39:5 268:39:5 269:39:5 270:39:5 271:39:5 272:39:5 273:39:5 274:39:5 "
    "275:39:5 276:39:5 277:39:5 278:39:5 279:39:5 280:39:5 281:39:5 282:39:5 "
    "283:39:5 284:39:5 285:39:5 286:39:5 287:39:5 288:39:5 289:39:5 290:39:5 "
    "291:39:5 292:39:5 293:39:5 294:39:5 295:39:5 296:39:5 297:39:5 298:39:5 "
    "299:39:5 300:39:5 301:39:5 302:39:5 303:39:5 304:39:5 305:39:5 306:39:5 "
    "307:39:5 308:39:5 309:39:5 310:39:5 311:39:5 312:39:5 315:34:15 318:37:5 "
    "319:37:5 320:37:5 321:37:5 322:37:5 323:38:5 324:38:5 325:38:5 326:38:5 "
    "327:38:5 328:39:5 333:28:1 345:33:12 346:33:12 347:33:12 348:33:12 349:33:12 "
    "350:33:12 351:33:12 352:33:12 357:45:1 358:46:3 359:46:3 360:47:3 361:47:3 "
    "362:48:3 363:45:1 366:45:1 368:45:1 369:45:1 372:45:1 374:45:1 388:45:1 "
    "389:45:1"
)
