"""iris-finetune: compiled from examples/iris_finetune.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import concurrent.futures
import csv
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
FINE_TUNE = False
LR = 0.001

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"features": ((4,), "float32")}
OUTPUTS = ["species"]

# The loss of each output, for checking the data before training.
LOSSES = {"species": "sparse_categorical_crossentropy"}


def load_keras_model(filepath, *, trainable=None, output=None, name=None):
    """A saved Keras model as a layer (`load_model` in the spec).

    `output` cuts it at that layer's output, to put a new head on it;
    `trainable` freezes (False) or unfreezes (True) all of its layers.
    """
    model = keras.saving.load_model(filepath, compile=False)
    if output is not None:
        model = keras.Model(model.inputs, model.get_layer(output).output)
    if trainable is not None:
        model.trainable = trainable
    if name is not None:
        model.name = name
    return model


def build_model():
    """`IrisFinetune`: a functional keras.Model (examples/iris_finetune.tfspec:15)."""
    features = keras.Input(shape=(4,), dtype="float32", name="features")
    backbone = load_keras_model(
        SPEC_DIR / "runs/iris/model.keras",
        output="dense_2",
        trainable=FINE_TUNE,
        name="backbone",
    )(features)
    species = keras.layers.Dense(3, activation="softmax", name="species")(backbone)
    return keras.Model(inputs=features, outputs=species, name="IrisFinetune")


def load_splits():
    """The columns of the CSV file, split (examples/iris_finetune.tfspec:10)."""
    columns = read_csv(SPEC_DIR / "data/iris.csv")
    labels = columns.pop("species")
    # one model input: the feature columns side by side, as float32
    features = np.stack(list(columns.values()), axis=-1).astype("float32")
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
    dataset = dataset.batch(16, num_parallel_calls=tf.data.AUTOTUNE)
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


def read_csv(path, delimiter=",", header=True, na_value=""):
    """Columns of a CSV file as numpy arrays: numbers where every cell is one."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter=delimiter))
    names = rows.pop(0) if header else [f"column_{i}" for i in range(len(rows[0]))]
    columns = {}
    for i, name in enumerate(names):
        cells = [row[i] if row[i] != na_value else "nan" for row in rows]
        try:
            values = np.array([float(cell) for cell in cells])
        except ValueError:
            columns[name] = np.array(cells)
            continue
        whole = np.all(np.isfinite(values)) and np.all(values == np.round(values))
        columns[name] = values.astype("int64" if whole else "float32")
    return columns


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "iris-finetune" / "checkpoints")


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
        epochs=10,
        shuffle=False,
        callbacks=make_callbacks(),
        verbose=verbose,
    )
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/iris_finetune/serving", "tolerance": 1e-05},
    {"format": "keras", "path": "runs/iris_finetune/model.keras", "tolerance": 1e-06},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="iris-finetune", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/iris_finetune.tfspec"
TFSPEC_LINES = (
    "28:6:19 29:7:12 36:29:10 57:16:3 58:19:14 59:19:14 60:19:14 61:19:14 "
    "62:19:14 63:19:14 64:24:20 65:15:7 68:10:12 70:10:12 74:11:3 77:10:12 "
    "92:12:11 105:10:12 119:10:12 125:10:12 126:10:12 127:10:12 128:10:12 129:10:12 "
    "130:10:12 131:10:12 132:10:12 133:10:12 134:10:12 135:10:12 136:10:12 137:10:12 "
    "138:10:12 139:10:12 140:10:12 143:10:12 144:10:12 145:10:12 146:10:12 147:10:12 "
    "148:10:12 149:10:12 150:10:12 151:10:12 152:10:12 153:10:12 154:10:12 155:10:12 "
    "156:10:12 157:10:12 158:10:12 159:10:12 160:10:12 161:10:12 162:10:12 163:10:12 "
    "164:10:12 165:10:12 166:10:12 169:10:12 170:10:12 171:10:12 172:10:12 173:10:12 "
    "174:10:12 175:10:12 176:10:12 177:10:12 178:10:12 179:10:12 180:10:12 181:10:12 "
    "182:10:12 183:10:12 184:10:12 185:10:12 186:10:12 187:10:12 188:10:12 189:10:12 "
    "190:10:12 191:10:12 192:10:12 193:10:12 194:10:12 195:10:12 196:10:12 197:10:12 "
    "198:10:12 199:10:12 200:10:12 201:10:12 202:10:12 203:10:12 204:10:12 205:10:12 "
    "206:10:12 207:10:12 208:10:12 209:10:12 210:10:12 211:10:12 212:10:12 213:10:12 "
    "214:10:12 215:10:12 216:10:12 217:10:12 218:10:12 219:10:12 220:10:12 221:10:12 "
    "222:10:12 223:10:12 224:10:12 225:10:12 226:10:12 227:10:12 228:10:12 229:10:12 "
    "230:10:12 231:10:12 232:10:12 235:10:12 236:10:12 237:10:12 238:10:12 239:10:12 "
    "240:10:12 241:10:12 248:3:8 253:28:15 255:28:15 258:29:10 263:29:10 264:29:10 "
    "265:29:10 266:29:10 267:29:10 268:29:10 288:27:1 289:27:1 290:27:1 291:27:1 "
    "292:27:1 293:27:1 294:27:1 295:27:1 296:27:1 297:27:1 298:27:1 299:27:1 "
    "300:27:1 301:27:1 302:27:1 303:27:1 304:27:1 305:27:1 306:27:1 307:27:1 "
    "308:27:1 309:27:1 310:27:1 311:27:1 312:27:1 313:27:1 314:27:1 315:27:1 "
    "316:27:1 317:27:1 318:27:1 319:27:1 320:27:1 321:27:1 322:27:1 323:27:1 "
    "324:27:1 325:27:1 326:27:1 327:27:1 328:27:1 329:27:1 330:27:1 331:27:1 "
    "332:27:1 333:27:1 334:27:1 335:27:1 336:27:1 337:27:1 338:27:1 339:27:1 "
    "340:27:1 351:27:1 363:31:12 364:31:12 365:31:12 366:31:12 367:31:12 368:31:12 "
    "369:31:12 370:31:12 375:34:1 376:35:3 377:36:3 378:34:1 381:34:1 383:34:1 "
    "384:34:1 387:34:1 389:34:1 403:34:1 404:34:1"
)
