"""digits-autoencoder: compiled from examples/autoencoder.tfspec by tfspec 0.1.0.

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
CODE = 8

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"pixels": ((64,), "float32")}
OUTPUTS = ["reconstruction"]

# The loss of each output, for checking the data before training.
LOSSES = {"reconstruction": "mse"}


def build_model():
    """`AutoEncoder`: a functional keras.Model (examples/autoencoder.tfspec:13)."""
    pixels = keras.Input(shape=(64,), dtype="float32", name="pixels")
    code_vec = keras.layers.Rescaling(1 / 16, name="code_vec_rescaling")(pixels)
    code_vec = keras.layers.Dense(
        32,
        activation="relu",
        name="code_vec_dense",
    )(code_vec)
    code_vec = keras.layers.Dense(CODE, activation="relu", name="code")(code_vec)
    reconstruction = keras.layers.Dense(
        32,
        activation="relu",
        name="reconstruction_dense",
    )(code_vec)
    reconstruction = keras.layers.Dense(
        64,
        activation="sigmoid",
        name="reconstruction_dense_2",
    )(reconstruction)
    reconstruction = keras.layers.Rescaling(16, name="reconstruction")(reconstruction)
    return keras.Model(inputs=pixels, outputs=reconstruction, name="AutoEncoder")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/autoencoder.tfspec:8)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["flat"]
        labels = archive["flat"]
    return split_arrays(features, labels, validation=0.1, test=0.0, seed=3)


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
            lambda _: indices.shuffle(count, seed=3 + epoch, reshuffle_each_iteration=False)
        ).apply(tf.data.experimental.assert_cardinality(count))
    dataset = dataset.batch(128, num_parallel_calls=tf.data.AUTOTUNE)
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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-autoencoder" / "checkpoints")


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
        loss="mse",
        metrics=["mae"],
        jit_compile=xla_pays_off(batches * 10),
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
    {"format": "saved_model", "path": "runs/autoencoder/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="digits-autoencoder", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/autoencoder.tfspec"
TFSPEC_LINES = (
    "27:5:14 34:27:10 39:14:3 40:16:8 41:17:8 42:17:8 43:17:8 44:17:8 "
    "45:17:8 46:18:8 47:20:8 48:20:8 49:20:8 50:20:8 51:20:8 52:21:8 "
    "53:21:8 54:21:8 55:21:8 56:21:8 57:22:8 58:13:7 61:8:12 63:8:12 "
    "66:9:3 69:8:12 84:10:11 97:8:12 111:8:12 117:8:12 118:8:12 119:8:12 "
    "120:8:12 121:8:12 122:8:12 123:8:12 124:8:12 125:8:12 126:8:12 127:8:12 "
    "128:8:12 129:8:12 130:8:12 131:8:12 132:8:12 133:8:12 134:8:12 135:8:12 "
    "136:8:12 137:8:12 138:8:12 139:8:12 140:8:12 143:8:12 144:8:12 145:8:12 "
    "146:8:12 147:8:12 148:8:12 149:8:12 150:8:12 151:8:12 152:8:12 153:8:12 "
    "154:8:12 155:8:12 156:8:12 157:8:12 158:8:12 159:8:12 160:8:12 161:8:12 "
    "162:8:12 163:8:12 164:8:12 165:8:12 166:8:12 167:8:12 168:8:12 169:8:12 "
    "170:8:12 171:8:12 172:8:12 173:8:12 174:8:12 175:8:12 176:8:12 177:8:12 "
    "178:8:12 179:8:12 180:8:12 181:8:12 182:8:12 183:8:12 184:8:12 185:8:12 "
    "186:8:12 187:8:12 188:8:12 189:8:12 190:8:12 191:8:12 192:8:12 193:8:12 "
    "194:8:12 195:8:12 196:8:12 197:8:12 198:8:12 199:8:12 200:8:12 201:8:12 "
    "202:8:12 203:8:12 204:8:12 205:8:12 206:8:12 209:8:12 210:8:12 211:8:12 "
    "212:8:12 213:8:12 214:8:12 215:8:12 222:2:8 227:26:15 229:26:15 242:27:10 "
    "247:27:10 248:27:10 249:27:10 250:27:10 251:27:10 252:27:10 253:27:10 273:25:1 "
    "274:25:1 275:25:1 276:25:1 277:25:1 278:25:1 279:25:1 280:25:1 281:25:1 "
    "282:25:1 283:25:1 284:25:1 285:25:1 286:25:1 287:25:1 288:25:1 289:25:1 "
    "290:25:1 291:25:1 292:25:1 293:25:1 294:25:1 295:25:1 296:25:1 297:25:1 "
    "298:25:1 299:25:1 300:25:1 301:25:1 302:25:1 303:25:1 304:25:1 305:25:1 "
    "306:25:1 307:25:1 308:25:1 309:25:1 310:25:1 311:25:1 312:25:1 313:25:1 "
    "314:25:1 315:25:1 316:25:1 317:25:1 318:25:1 319:25:1 320:25:1 321:25:1 "
    "322:25:1 323:25:1 324:25:1 325:25:1 336:25:1 348:29:12 349:29:12 350:29:12 "
    "351:29:12 352:29:12 353:29:12 354:29:12 355:29:12 360:32:1 361:33:3 362:32:1 "
    "365:32:1 367:32:1 368:32:1 371:32:1 373:32:1 387:32:1 388:32:1"
)
