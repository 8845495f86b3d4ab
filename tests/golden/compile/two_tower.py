"""two-tower: compiled from examples/two_tower.tfspec by tfspec 0.1.0.

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

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"query": ((16,), "float32"), "item": ((16,), "float32")}
OUTPUTS = ["score", "category"]

# The loss of each output, for checking the data before training.
LOSSES = {"score": "binary_crossentropy", "category": "sparse_categorical_crossentropy"}


def build_model():
    """`TwoTower`: a functional keras.Model (examples/two_tower.tfspec:10)."""
    query = keras.Input(shape=(16,), dtype="float32", name="query")
    item = keras.Input(shape=(16,), dtype="float32", name="item")
    encoder = keras.layers.Dense(32, activation="relu", name="encoder")
    q = encoder(query)
    i = encoder(item)
    i = keras.layers.Dropout(0.1, name="i")(i)
    joint = keras.layers.Concatenate(name="joint")([q, i])
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(joint)
    category = keras.layers.Dense(16, activation="relu", name="category_dense")(joint)
    category = keras.layers.Dense(5, activation="softmax", name="category")(category)
    return keras.Model(
        inputs={"query": query, "item": item},
        outputs={"score": score, "category": category},
        name="TwoTower",
    )


def load_splits():
    """Random tensors shaped like the model's inputs and outputs
    (examples/two_tower.tfspec:6)."""
    rng = np.random.default_rng(0)
    features = {}
    for name, (shape, dtype) in INPUTS.items():
        shape = (512, *(d or 1 for d in shape))
        if dtype == "string":
            values = rng.choice(["red", "green", "blue", "grey"], size=shape)
        elif "int" in dtype:
            values = rng.integers(0, 5 or 10, size=shape)
        else:
            values = rng.normal(size=shape).astype("float32")
        features[name] = values
    labels = {}
    for name, tensor in model_outputs(build_model()).items():
        units = tensor.shape[-1] or 1
        if "sparse" in LOSSES.get(name, "") or (5 and units > 1):
            labels[name] = rng.integers(0, min(5 or units, units), size=(512, *tensor.shape[1:-1]))
        elif units == 1:
            labels[name] = rng.integers(0, 2, size=(512, 1)).astype("float32")
        else:
            labels[name] = rng.normal(size=(512, *tensor.shape[1:])).astype("float32")
    if len(features) == 1:
        (features,) = features.values()
    if len(labels) == 1:
        (labels,) = labels.values()
    return split_arrays(features, labels, validation=0.0, test=0.0, seed=0)


def pipeline(arrays, split):
    """One split of arrays in memory: shuffle the row numbers (the training set's,
    every epoch), batch them, gather each batch's rows in parallel, augment whole
    batches, and prefetch so that input overlaps training."""
    training = split == "train"  # "adapt": the training data as it is
    tensors = tf.nest.map_structure(tf.convert_to_tensor, arrays)
    count = len(tf.nest.flatten(arrays)[0])
    dataset = tf.data.Dataset.range(count)
    if training:
        dataset = dataset.shuffle(count)
    dataset = dataset.batch(32, num_parallel_calls=tf.data.AUTOTUNE)
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


def adapt(model, train):
    """Fit the layers that learn from data (their vocabulary, mean…) to the
    training split, inside the model: the exported model takes raw inputs."""
    del model, train  # no layer of this model learns from data


def model_outputs(model):
    """The model's output tensors by output name, for every kind of model."""
    try:
        structure = model.output
    except AttributeError:  # keras.Sequential keeps its graph inside
        structure = model.outputs[0]
    return structure if isinstance(structure, dict) else {OUTPUTS[0]: structure}


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


# Every epoch is checkpointed here; a killed run, started again, resumes.
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "two-tower" / "checkpoints")


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=0.003)


def compile_model(model, batches=-1):
    """`model.compile` with the loss, metrics and options of `train`; `batches` is
    the number of training batches in an epoch (negative: unknown)."""
    # 32 steps per call into TensorFlow (fewer round trips from Python), but
    # not more than an epoch has
    model.compile(
        optimizer=make_optimizer(),
        loss={"score": "binary_crossentropy", "category": "sparse_categorical_crossentropy"},
        loss_weights={"score": 1.0, "category": 0.5},
        metrics={"score": ["accuracy", keras.metrics.AUC()], "category": ["accuracy"]},
        steps_per_execution=min(32, batches) if batches > 0 else 32,
    )


def spec_path(relative):
    """A path in the spec's folder for a callback to write; its folder is made."""
    path = SPEC_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


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
        epochs=5,
        shuffle=False,
        callbacks=make_callbacks(),
        verbose=verbose,
    )
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/two_tower/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="two-tower", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/two_tower.tfspec"
TFSPEC_LINES = (
    "26:26:3 31:11:3 32:12:3 33:14:19 34:15:7 35:16:15 36:16:26 37:17:11 "
    "38:18:18 39:20:8 40:21:8 41:10:7 42:10:7 43:10:7 44:10:7 45:10:7 "
    "48:6:12 51:6:12 75:5:1 78:6:12 88:7:11 101:6:12 107:6:12 113:6:12 "
    "114:6:12 115:6:12 116:6:12 117:6:12 118:6:12 119:6:12 122:6:12 123:6:12 "
    "124:6:12 125:6:12 126:6:12 127:6:12 128:6:12 129:6:12 130:6:12 131:6:12 "
    "132:6:12 133:6:12 134:6:12 135:6:12 136:6:12 137:6:12 138:6:12 139:6:12 "
    "140:6:12 141:6:12 142:6:12 143:6:12 144:6:12 145:6:12 148:6:12 149:6:12 "
    "150:6:12 151:6:12 152:6:12 153:6:12 154:6:12 155:6:12 156:6:12 157:6:12 "
    "158:6:12 159:6:12 160:6:12 161:6:12 162:6:12 163:6:12 164:6:12 165:6:12 "
    "166:6:12 167:6:12 168:6:12 169:6:12 170:6:12 171:6:12 172:6:12 173:6:12 "
    "174:6:12 175:6:12 176:6:12 177:6:12 178:6:12 179:6:12 180:6:12 181:6:12 "
    "182:6:12 183:6:12 184:6:12 185:6:12 186:6:12 187:6:12 188:6:12 189:6:12 "
    "190:6:12 191:6:12 192:6:12 193:6:12 194:6:12 195:6:12 196:6:12 197:6:12 "
    "198:6:12 199:6:12 200:6:12 201:6:12 202:6:12 203:6:12 204:6:12 205:6:12 "
    "206:6:12 207:6:12 208:6:12 209:6:12 210:6:12 211:6:12 218:2:8 223:25:15 "
    "225:25:15 228:26:3 233:26:3 234:26:3 235:26:3 236:26:3 237:26:3 238:26:3 "
    "239:26:3 249:24:1 250:24:1 251:24:1 252:24:1 253:24:1 254:24:1 255:24:1 "
    "256:24:1 257:24:1 258:24:1 259:24:1 260:24:1 261:24:1 262:24:1 263:24:1 "
    "264:24:1 265:24:1 266:24:1 267:24:1 268:24:1 269:24:1 270:24:1 271:24:1 "
    "272:24:1 273:24:1 274:24:1 275:24:1 276:24:1 277:24:1 278:24:1 279:24:1 "
    "280:24:1 281:24:1 282:24:1 283:24:1 284:24:1 285:24:1 286:24:1 287:24:1 "
    "288:24:1 289:24:1 290:24:1 291:24:1 292:24:1 293:24:1 294:24:1 295:24:1 "
    "296:24:1 297:24:1 298:24:1 299:24:1 300:24:1 301:24:1 311:24:1 323:32:12 "
    "324:32:12 325:32:12 326:32:12 327:32:12 328:32:12 329:32:12 330:32:12 335:35:1 "
    "336:36:3 337:35:1 340:35:1 342:35:1 343:35:1 346:35:1 348:35:1 362:35:1 "
    "363:35:1"
)
