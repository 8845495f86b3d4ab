"""iris-mlp: compiled from examples/iris_mlp.tfspec by tfspec 0.1.0.

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
HIDDEN = 32

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"features": ((4,), "float32")}
OUTPUTS = ["dense_3"]

# The loss of each output, for checking the data before training.
LOSSES = {"dense_3": "sparse_categorical_crossentropy"}


def build_model():
    """`Iris`: a keras.Sequential model (examples/iris_mlp.tfspec:14)."""
    layers = [
        keras.Input(shape=(4,), dtype="float32", name="features"),
        keras.layers.Normalization(name="features_normalization"),
        keras.layers.Dense(HIDDEN, activation="relu", name="dense"),
        keras.layers.Dropout(0.1, name="dropout"),
        keras.layers.Dense(HIDDEN, activation="relu", name="dense_2"),
        keras.layers.Dense(3, activation="softmax", name="dense_3"),
    ]
    return keras.Sequential(layers, name="Iris")


def load_splits():
    """The columns of the CSV file, split (examples/iris_mlp.tfspec:8)."""
    columns = read_csv(SPEC_DIR / "data/iris.csv")
    labels = columns.pop("species")
    # one model input: the feature columns side by side, as float32
    features = np.stack(list(columns.values()), axis=-1).astype("float32")
    return split_arrays(features, labels, validation=0.2, test=0.0, seed=42)


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
            lambda _: indices.shuffle(count, seed=42 + epoch, reshuffle_each_iteration=False)
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
    features = train.map(lambda x, y: x)
    layer = model.get_layer("features_normalization")
    # the tensors that reach the layer, computed from the raw features
    reach = keras.Model(model.inputs, layer.input)
    layer.adapt(features.map(reach))


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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "iris-mlp" / "checkpoints")


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam()


def xla_pays_off(steps):
    """`jit_compile = "auto"` for this model of dense layers. Keras's "auto" means no XLA
    on a CPU-only machine, where XLA makes convolutions slower; on dense layers it
    measured 1.0-2x the examples/s of `fit`, for 1-2 s of compiling. So on a CPU,
    XLA when the run has 2,000 steps or more; elsewhere Keras's "auto"."""
    if any(device.device_type != "CPU" for device in tf.config.list_physical_devices()):
        return "auto"  # XLA where the model supports it
    return steps >= 2000


def compile_model(model, batches=-1):
    """`model.compile` with the loss, metrics and options of `train`; `batches` is
    the number of training batches in an epoch (negative: unknown)."""
    # 32 steps per call into TensorFlow (fewer round trips from Python), but
    # not more than an epoch has
    model.compile(
        optimizer=make_optimizer(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=xla_pays_off(batches * 30),
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
        epochs=30,
        shuffle=False,
        callbacks=make_callbacks(),
        verbose=verbose,
    )
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "keras", "path": "runs/iris/model.keras", "tolerance": 1e-06},
    {"format": "saved_model", "path": "runs/iris/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="iris-mlp", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/iris_mlp.tfspec"
TFSPEC_LINES = (
    "28:5:16 35:24:10 41:15:3 42:11:17 43:16:3 44:17:3 45:18:3 46:19:3 "
    "48:14:7 51:8:12 53:8:12 57:9:3 60:8:12 75:10:11 88:8:12 102:8:12 "
    "106:11:17 112:8:12 113:8:12 114:8:12 115:8:12 116:8:12 117:8:12 118:8:12 "
    "119:8:12 120:8:12 121:8:12 122:8:12 123:8:12 124:8:12 125:8:12 126:8:12 "
    "127:8:12 130:8:12 131:8:12 132:8:12 133:8:12 134:8:12 135:8:12 136:8:12 "
    "137:8:12 138:8:12 139:8:12 140:8:12 141:8:12 142:8:12 143:8:12 144:8:12 "
    "145:8:12 146:8:12 147:8:12 148:8:12 149:8:12 150:8:12 151:8:12 152:8:12 "
    "153:8:12 156:8:12 157:8:12 158:8:12 159:8:12 160:8:12 161:8:12 162:8:12 "
    "163:8:12 164:8:12 165:8:12 166:8:12 167:8:12 168:8:12 169:8:12 170:8:12 "
    "171:8:12 172:8:12 173:8:12 174:8:12 175:8:12 176:8:12 177:8:12 178:8:12 "
    "179:8:12 180:8:12 181:8:12 182:8:12 183:8:12 184:8:12 185:8:12 186:8:12 "
    "187:8:12 188:8:12 189:8:12 190:8:12 191:8:12 192:8:12 193:8:12 194:8:12 "
    "195:8:12 196:8:12 197:8:12 198:8:12 199:8:12 200:8:12 201:8:12 202:8:12 "
    "203:8:12 204:8:12 205:8:12 206:8:12 207:8:12 208:8:12 209:8:12 210:8:12 "
    "211:8:12 212:8:12 213:8:12 214:8:12 215:8:12 216:8:12 217:8:12 218:8:12 "
    "219:8:12 222:8:12 223:8:12 224:8:12 225:8:12 226:8:12 227:8:12 228:8:12 "
    "235:2:8 240:23:15 242:23:15 255:24:10 260:24:10 261:24:10 262:24:10 263:24:10 "
    "264:24:10 265:24:10 266:24:10 286:22:1 287:22:1 288:22:1 289:22:1 290:22:1 "
    "291:22:1 292:22:1 293:22:1 294:22:1 295:22:1 296:22:1 297:22:1 298:22:1 "
    "299:22:1 300:22:1 301:22:1 302:22:1 303:22:1 304:22:1 305:22:1 306:22:1 "
    "307:22:1 308:22:1 309:22:1 310:22:1 311:22:1 312:22:1 313:22:1 314:22:1 "
    "315:22:1 316:22:1 317:22:1 318:22:1 319:22:1 320:22:1 321:22:1 322:22:1 "
    "323:22:1 324:22:1 325:22:1 326:22:1 327:22:1 328:22:1 329:22:1 330:22:1 "
    "331:22:1 332:22:1 333:22:1 334:22:1 335:22:1 336:22:1 337:22:1 338:22:1 "
    "349:22:1 361:26:12 362:26:12 363:26:12 364:26:12 365:26:12 366:26:12 367:26:12 "
    "368:26:12 373:29:1 374:30:3 375:31:3 376:29:1 379:29:1 381:29:1 382:29:1 "
    "385:29:1 387:29:1 401:29:1 402:29:1"
)
