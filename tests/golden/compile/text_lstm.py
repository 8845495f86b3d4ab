"""text-lstm: compiled from examples/text_lstm.tfspec by tfspec 0.1.0.

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
    return split_dataset(dataset, validation=0.2, test=0.0, seed=1)


def pipeline(dataset, split):
    """One split, tuned as TensorFlow's tf.data guide recommends: cache what is
    loaded, shuffle the training set every epoch, batch, augment whole batches
    in parallel, and prefetch so that input overlaps training."""
    training = split == "train"  # "adapt": the training data as it is
    if split != "adapt":  # one pass only: nothing to cache
        dataset = dataset.cache()
    if training:
        size = int(dataset.cardinality())
        # the whole split when it is known and small, else 10,000
        buffer = size if 0 < size <= 10_000 else 10_000
        # each epoch's order is a function of (seed, epoch) alone, so a
        # resumed run shuffles its epochs as an uninterrupted run does
        base, size, epoch = dataset, dataset.cardinality(), current_epoch()
        dataset = tf.data.Dataset.from_tensors(0).flat_map(
            lambda _: base.shuffle(buffer, seed=1 + epoch, reshuffle_each_iteration=False)
        )
        if size >= 0:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(size))
    dataset = dataset.batch(32, num_parallel_calls=tf.data.AUTOTUNE)
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
    layer = model.get_layer("tokens")
    # the tensors that reach the layer, computed from the raw features
    reach = keras.Model(model.inputs, layer.input)
    layer.adapt(features.map(reach))


def split_dataset(dataset, validation, test, seed):
    """Fractions of a dataset: one seeded shuffle (the same every run), then take/skip."""
    count = int(dataset.cardinality())
    if count < 0:  # unknown (files, generators): count once
        count = int(dataset.reduce(0, lambda n, _: n + 1))
    dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=False)
    n_test = round(count * test)
    n_validation = round(count * validation)
    n_train = count - n_validation - n_test
    parts = {
        "train": dataset.take(n_train),
        "validation": dataset.skip(n_train).take(n_validation),
        "test": dataset.skip(n_train + n_validation),
    }
    sizes = {"train": n_train, "validation": n_validation, "test": n_test}
    # tell tf.data (and Keras's progress and epoch ends) how long each split is
    return {
        name: part.apply(tf.data.experimental.assert_cardinality(sizes[name]))
        for name, part in parts.items()
        if sizes[name]
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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "text-lstm" / "checkpoints")


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=0.002, clipnorm=1.0)


def compile_model(model, batches=-1):
    """`model.compile` with the loss, metrics and options of `train`; `batches` is
    the number of training batches in an epoch (negative: unknown)."""
    # 32 steps per call into TensorFlow (fewer round trips from Python), but
    # not more than an epoch has
    model.compile(
        optimizer=make_optimizer(),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.Precision(), keras.metrics.Recall()],
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
        epochs=4,
        shuffle=False,
        callbacks=make_callbacks(),
        verbose=verbose,
    )
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/text/serving", "tolerance": 1e-05},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="text-lstm", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/text_lstm.tfspec"
TFSPEC_LINES = (
    "27:5:15 28:6:17 35:27:10 40:15:3 41:17:8 42:17:8 43:17:8 44:17:8 "
    "45:17:8 46:19:8 47:20:8 48:21:8 49:22:21 50:14:7 53:9:12 56:9:12 "
    "57:9:12 58:9:12 59:9:12 60:9:12 61:9:12 62:10:3 65:9:12 84:11:11 "
    "88:9:12 102:9:12 106:17:8 112:9:12 113:9:12 114:9:12 115:9:12 116:9:12 "
    "117:9:12 118:9:12 119:9:12 120:9:12 121:9:12 122:9:12 123:9:12 124:9:12 "
    "125:9:12 126:9:12 127:9:12 128:9:12 129:9:12 130:9:12 131:9:12 132:9:12 "
    "135:9:12 136:9:12 137:9:12 138:9:12 139:9:12 140:9:12 141:9:12 142:9:12 "
    "143:9:12 144:9:12 145:9:12 146:9:12 147:9:12 148:9:12 149:9:12 150:9:12 "
    "151:9:12 152:9:12 153:9:12 154:9:12 155:9:12 156:9:12 157:9:12 158:9:12 "
    "159:9:12 160:9:12 161:9:12 162:9:12 163:9:12 164:9:12 165:9:12 166:9:12 "
    "167:9:12 168:9:12 169:9:12 170:9:12 171:9:12 172:9:12 173:9:12 174:9:12 "
    "175:9:12 176:9:12 177:9:12 178:9:12 179:9:12 180:9:12 181:9:12 182:9:12 "
    "183:9:12 184:9:12 185:9:12 186:9:12 187:9:12 188:9:12 189:9:12 190:9:12 "
    "191:9:12 192:9:12 193:9:12 194:9:12 195:9:12 196:9:12 197:9:12 198:9:12 "
    "201:9:12 202:9:12 203:9:12 204:9:12 205:9:12 206:9:12 207:9:12 214:2:8 "
    "219:26:15 221:26:15 224:27:10 229:27:10 230:27:10 231:27:10 232:27:10 233:27:10 "
    "234:27:10 254:25:1 255:25:1 256:25:1 257:25:1 258:25:1 259:25:1 260:25:1 "
    "261:25:1 262:25:1 263:25:1 264:25:1 265:25:1 266:25:1 267:25:1 268:25:1 "
    "269:25:1 270:25:1 271:25:1 272:25:1 273:25:1 274:25:1 275:25:1 276:25:1 "
    "277:25:1 278:25:1 279:25:1 280:25:1 281:25:1 282:25:1 283:25:1 284:25:1 "
    "285:25:1 286:25:1 287:25:1 288:25:1 289:25:1 290:25:1 291:25:1 292:25:1 "
    "293:25:1 294:25:1 295:25:1 296:25:1 297:25:1 298:25:1 299:25:1 300:25:1 "
    "301:25:1 302:25:1 303:25:1 304:25:1 305:25:1 306:25:1 317:25:1 329:29:12 "
    "330:29:12 331:29:12 332:29:12 333:29:12 334:29:12 335:29:12 336:29:12 341:32:1 "
    "342:33:3 343:32:1 346:32:1 348:32:1 349:32:1 352:32:1 354:32:1 368:32:1 "
    "369:32:1"
)
