"""digits-resnet: compiled from examples/resnet_blocks.tfspec by tfspec 0.1.0.

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
    digit = keras.layers.GlobalAveragePooling2D(
        name="digit_global_average_pooling2d",
    )(x)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(digit)
    return keras.Model(inputs=image, outputs=digit, name="ResNet")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/resnet_blocks.tfspec:20)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return split_arrays(features, labels, validation=0.2, test=0.0, seed=7)


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
            lambda _: indices.shuffle(count, seed=7 + epoch, reshuffle_each_iteration=False)
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


# Every epoch is checkpointed here; a killed run, started again, resumes.
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-resnet" / "checkpoints")


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


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
        BackgroundBackupAndRestore(CHECKPOINT_DIR),  # resume if killed
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
        epochs=8,
        shuffle=False,
        callbacks=make_callbacks(),
        verbose=verbose,
    )
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
TFSPEC_SPEC = "examples/resnet_blocks.tfspec"
TFSPEC_LINES = (
    "27:5:15 34:41:10 37:7:7 39:10:8 40:10:8 41:10:8 42:10:8 43:10:8 "
    "44:10:8 45:10:8 46:10:8 47:11:8 48:12:8 49:13:8 50:13:8 51:13:8 "
    "52:13:8 53:13:8 54:13:8 55:13:8 56:14:8 57:15:19 58:15:19 59:15:19 "
    "60:15:19 61:15:19 62:15:19 63:15:19 64:16:16 65:16:40 71:26:3 72:28:8 "
    "73:29:8 74:30:8 75:31:8 76:32:8 77:33:23 78:33:23 79:33:23 80:33:51 "
    "81:25:7 84:20:12 86:20:12 89:21:3 92:20:12 107:22:11 120:20:12 134:20:12 "
    "140:20:12 141:20:12 142:20:12 143:20:12 144:20:12 145:20:12 146:20:12 147:20:12 "
    "148:20:12 149:20:12 150:20:12 151:20:12 152:20:12 153:20:12 154:20:12 155:20:12 "
    "156:20:12 157:20:12 158:20:12 159:20:12 160:20:12 161:20:12 162:20:12 163:20:12 "
    "166:20:12 167:20:12 168:20:12 169:20:12 170:20:12 171:20:12 172:20:12 173:20:12 "
    "174:20:12 175:20:12 176:20:12 177:20:12 178:20:12 179:20:12 180:20:12 181:20:12 "
    "182:20:12 183:20:12 184:20:12 185:20:12 186:20:12 187:20:12 188:20:12 189:20:12 "
    "190:20:12 191:20:12 192:20:12 193:20:12 194:20:12 195:20:12 196:20:12 197:20:12 "
    "198:20:12 199:20:12 200:20:12 201:20:12 202:20:12 203:20:12 204:20:12 205:20:12 "
    "206:20:12 207:20:12 208:20:12 209:20:12 210:20:12 211:20:12 212:20:12 213:20:12 "
    "214:20:12 215:20:12 216:20:12 217:20:12 218:20:12 219:20:12 220:20:12 221:20:12 "
    "222:20:12 223:20:12 224:20:12 225:20:12 226:20:12 227:20:12 228:20:12 229:20:12 "
    "232:20:12 233:20:12 234:20:12 235:20:12 236:20:12 237:20:12 238:20:12 245:2:8 "
    "250:37:15 252:37:15 253:37:15 254:37:15 255:37:15 256:37:15 257:37:15 258:37:15 "
    "261:41:10 266:41:10 267:41:10 268:41:10 269:41:10 270:41:10 271:41:10 291:36:1 "
    "292:36:1 293:36:1 294:36:1 295:36:1 296:36:1 297:36:1 298:36:1 299:36:1 "
    "300:36:1 301:36:1 302:36:1 303:36:1 304:36:1 305:36:1 306:36:1 307:36:1 "
    "308:36:1 309:36:1 310:36:1 311:36:1 312:36:1 313:36:1 314:36:1 315:36:1 "
    "316:36:1 317:36:1 318:36:1 319:36:1 320:36:1 321:36:1 322:36:1 323:36:1 "
    "324:36:1 325:36:1 326:36:1 327:36:1 328:36:1 329:36:1 330:36:1 331:36:1 "
    "332:36:1 333:36:1 334:36:1 335:36:1 336:36:1 337:36:1 338:36:1 339:36:1 "
    "340:36:1 341:36:1 342:36:1 343:36:1 354:36:1 366:43:12 367:43:12 368:43:12 "
    "369:43:12 370:43:12 371:43:12 372:43:12 373:43:12 378:46:1 379:47:3 380:48:3 "
    "381:48:3 382:46:1 385:46:1 387:46:1 388:46:1 391:46:1 393:46:1 407:46:1 "
    "408:46:1"
)
