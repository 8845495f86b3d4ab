"""digits-cnn: compiled from examples/digits_cnn.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import json
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

# Paths in the spec are relative to the spec's folder.
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# The epoch being trained: it picks the training data's shuffle order.
# Made on first use, after the strategy (which must come before any op).
EPOCH = None

# Params: `tfspec run --set NAME=VALUE` overrides them.
LR = 0.001
EPOCHS = 10

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


def pipeline(dataset, split):
    """One split, tuned as TensorFlow's tf.data guide recommends: cache what is
    loaded, shuffle the training set every epoch, batch, augment whole batches
    in parallel, and prefetch so that input overlaps training."""
    training = split == "train"  # "adapt": the training data as it is
    if split != "adapt":  # one pass only: nothing to cache
        dataset = dataset.cache()
    if training:
        buffer = 2048
        # each epoch's order is a function of (seed, epoch) alone, so a
        # resumed run shuffles its epochs as an uninterrupted run does
        base, size, epoch = dataset, dataset.cardinality(), current_epoch()
        dataset = tf.data.Dataset.from_tensors(0).flat_map(
            lambda _: base.shuffle(buffer, seed=7 + epoch, reshuffle_each_iteration=False)
        )
        if size >= 0:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(size))
    dataset = dataset.batch(64, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_datasets(splits=None):
    """The batched `train`, `validation` and `test` pipelines that exist."""
    splits = splits if splits is not None else load_splits()
    return {name: pipeline(dataset, name) for name, dataset in splits.items()}


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
    """Shuffle once with `seed` and hold out the last fractions: the same every run."""
    count = len(labels if not isinstance(labels, dict) else next(iter(labels.values())))
    order = np.random.default_rng(seed).permutation(count)
    n_test = int(round(count * test))
    n_validation = int(round(count * validation))
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
        name: tf.data.Dataset.from_tensor_slices((take(features, index), take(labels, index)))
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


def compile_model(model):
    """`model.compile` with the loss, metrics and options of `train`."""
    model.compile(
        optimizer=make_optimizer(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def spec_path(relative):
    """A path in the spec's folder for a callback to write; its folder is made."""
    path = SPEC_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


class ShuffleEpoch(keras.callbacks.Callback):
    """Tells the data pipeline which epoch it is (see EPOCH)."""

    def on_epoch_begin(self, epoch, logs=None):
        current_epoch().assign(epoch)

    def on_epoch_end(self, epoch, logs=None):
        current_epoch().assign(epoch + 1)  # Keras may open the next epoch's data now


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=3,
            restore_best_weights=True,
        ),
        keras.callbacks.BackupAndRestore(spec_path("runs/digits/backup")),
        ShuffleEpoch(),
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
        compile_model(model)  # the optimizer and metrics, in the scope too
    history = model.fit(
        datasets["train"],
        validation_data=datasets.get("validation"),
        epochs=EPOCHS,
        shuffle=False,
        callbacks=make_callbacks(),
        verbose=verbose,
    )
    return model, history, datasets


def main(run_dir=".", verbose="auto"):
    """Train, evaluate on the test split, and save the model and metrics."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model, history, datasets = train(verbose)
    metrics = {"history": history.history}
    if "test" in datasets:
        metrics["test"] = model.evaluate(datasets["test"], return_dict=True, verbose=0)
    model.save(run_dir / "model.keras")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return model


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/digits_cnn.tfspec"
TFSPEC_LINES = (
    "22:5:12 23:6:16 30:30:10 35:17:3 36:19:8 37:20:8 38:20:8 39:20:8 "
    "40:20:8 41:20:8 42:20:8 43:20:8 44:21:8 45:22:8 46:18:7 47:24:18 "
    "48:16:7 51:9:12 53:9:12 56:10:3 59:9:12 65:13:11 72:12:13 76:11:11 "
    "80:9:12 94:9:12 100:9:12 101:9:12 102:9:12 103:9:12 104:9:12 105:9:12 "
    "106:9:12 107:9:12 108:9:12 109:9:12 110:9:12 111:9:12 112:9:12 113:9:12 "
    "114:9:12 115:9:12 116:9:12 117:9:12 118:9:12 119:9:12 120:9:12 121:9:12 "
    "122:9:12 125:9:12 126:9:12 127:9:12 128:9:12 129:9:12 130:9:12 131:9:12 "
    "132:9:12 133:9:12 134:9:12 135:9:12 136:9:12 137:9:12 138:9:12 139:9:12 "
    "140:9:12 141:9:12 142:9:12 143:9:12 144:9:12 145:9:12 146:9:12 147:9:12 "
    "148:9:12 149:9:12 150:9:12 151:9:12 152:9:12 153:9:12 154:9:12 155:9:12 "
    "156:9:12 157:9:12 158:9:12 159:9:12 160:9:12 161:9:12 162:9:12 163:9:12 "
    "164:9:12 165:9:12 166:9:12 167:9:12 168:9:12 169:9:12 170:9:12 171:9:12 "
    "172:9:12 173:9:12 174:9:12 175:9:12 176:9:12 177:9:12 178:9:12 179:9:12 "
    "180:9:12 181:9:12 182:9:12 183:9:12 184:9:12 185:9:12 186:9:12 187:9:12 "
    "188:9:12 191:9:12 192:9:12 193:9:12 194:9:12 195:9:12 196:9:12 197:9:12 "
    "200:39:25 205:29:15 207:29:15 210:30:10 212:30:10 213:30:10 214:30:10 215:30:10 "
    "216:30:10 236:33:15 239:34:5 240:34:5 241:34:5 242:34:5 243:34:5 244:35:5 "
    "249:27:1 260:32:12 261:32:12 262:32:12 263:32:12 264:32:12 265:32:12 266:32:12 "
    "267:32:12"
)
