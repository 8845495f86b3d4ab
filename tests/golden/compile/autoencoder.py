"""digits-autoencoder: compiled from examples/autoencoder.tfspec by tfspec 0.1.0.

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
            lambda _: base.shuffle(buffer, seed=3 + epoch, reshuffle_each_iteration=False)
        )
        if size >= 0:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(size))
    dataset = dataset.batch(128, num_parallel_calls=tf.data.AUTOTUNE)
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


# Every epoch is checkpointed here; a killed run, started again, resumes.
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-autoencoder" / "checkpoints")


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam()


def compile_model(model):
    """`model.compile` with the loss, metrics and options of `train`."""
    model.compile(optimizer=make_optimizer(), loss="mse", metrics=["mae"])


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
        keras.callbacks.BackupAndRestore(CHECKPOINT_DIR),  # resume if killed
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
        epochs=10,
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
TFSPEC_SPEC = "examples/autoencoder.tfspec"
TFSPEC_LINES = (
    "22:5:14 29:27:10 34:14:3 35:16:8 36:17:8 37:17:8 38:17:8 39:17:8 "
    "40:17:8 41:15:14 42:20:8 43:20:8 44:20:8 45:20:8 46:20:8 47:21:8 "
    "48:21:8 49:21:8 50:21:8 51:21:8 52:19:27 53:13:7 56:8:12 58:8:12 "
    "61:9:3 64:8:12 83:10:11 87:8:12 101:8:12 107:8:12 108:8:12 109:8:12 "
    "110:8:12 111:8:12 112:8:12 113:8:12 114:8:12 115:8:12 116:8:12 117:8:12 "
    "118:8:12 119:8:12 120:8:12 121:8:12 122:8:12 123:8:12 124:8:12 125:8:12 "
    "126:8:12 127:8:12 128:8:12 129:8:12 132:8:12 133:8:12 134:8:12 135:8:12 "
    "136:8:12 137:8:12 138:8:12 139:8:12 140:8:12 141:8:12 142:8:12 143:8:12 "
    "144:8:12 145:8:12 146:8:12 147:8:12 148:8:12 149:8:12 150:8:12 151:8:12 "
    "152:8:12 153:8:12 154:8:12 155:8:12 156:8:12 157:8:12 158:8:12 159:8:12 "
    "160:8:12 161:8:12 162:8:12 163:8:12 164:8:12 165:8:12 166:8:12 167:8:12 "
    "168:8:12 169:8:12 170:8:12 171:8:12 172:8:12 173:8:12 174:8:12 175:8:12 "
    "176:8:12 177:8:12 178:8:12 179:8:12 180:8:12 181:8:12 182:8:12 183:8:12 "
    "184:8:12 185:8:12 186:8:12 187:8:12 188:8:12 189:8:12 190:8:12 191:8:12 "
    "192:8:12 193:8:12 194:8:12 195:8:12 198:8:12 199:8:12 200:8:12 201:8:12 "
    "202:8:12 203:8:12 204:8:12 211:2:8 216:26:15 218:26:15 221:27:10 223:27:10 "
    "251:25:1 262:29:12 263:29:12 264:29:12 265:29:12 266:29:12 267:29:12 268:29:12 "
    "269:29:12"
)
