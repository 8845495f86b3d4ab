"""digits-resnet: compiled from examples/resnet_blocks.tfspec by tfspec 0.1.0.

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
    digit = keras.layers.GlobalAveragePooling2D(name="digit_global_average_pooling2d")(x)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(digit)
    return keras.Model(inputs=image, outputs=digit, name="ResNet")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/resnet_blocks.tfspec:20)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return split_arrays(features, labels, validation=0.2, test=0.0, seed=7)


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
        epochs=8,
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
TFSPEC_SPEC = "examples/resnet_blocks.tfspec"
TFSPEC_LINES = (
    "22:5:15 29:41:10 32:7:7 34:10:8 35:10:8 36:10:8 37:10:8 38:10:8 "
    "39:10:8 40:10:8 41:10:8 42:11:8 43:12:8 44:13:8 45:13:8 46:13:8 "
    "47:13:8 48:13:8 49:13:8 50:13:8 51:9:7 52:15:14 53:15:14 54:15:14 "
    "55:15:14 56:15:14 57:15:14 58:15:14 59:16:16 60:16:16 66:26:3 67:28:8 "
    "68:29:8 69:30:8 70:31:8 71:27:7 72:33:23 73:33:18 74:25:7 77:20:12 "
    "79:20:12 82:21:3 85:20:12 104:22:11 108:20:12 122:20:12 128:20:12 129:20:12 "
    "130:20:12 131:20:12 132:20:12 133:20:12 134:20:12 135:20:12 136:20:12 137:20:12 "
    "138:20:12 139:20:12 140:20:12 141:20:12 142:20:12 143:20:12 144:20:12 145:20:12 "
    "146:20:12 147:20:12 148:20:12 149:20:12 150:20:12 153:20:12 154:20:12 155:20:12 "
    "156:20:12 157:20:12 158:20:12 159:20:12 160:20:12 161:20:12 162:20:12 163:20:12 "
    "164:20:12 165:20:12 166:20:12 167:20:12 168:20:12 169:20:12 170:20:12 171:20:12 "
    "172:20:12 173:20:12 174:20:12 175:20:12 176:20:12 177:20:12 178:20:12 179:20:12 "
    "180:20:12 181:20:12 182:20:12 183:20:12 184:20:12 185:20:12 186:20:12 187:20:12 "
    "188:20:12 189:20:12 190:20:12 191:20:12 192:20:12 193:20:12 194:20:12 195:20:12 "
    "196:20:12 197:20:12 198:20:12 199:20:12 200:20:12 201:20:12 202:20:12 203:20:12 "
    "204:20:12 205:20:12 206:20:12 207:20:12 208:20:12 209:20:12 210:20:12 211:20:12 "
    "212:20:12 213:20:12 214:20:12 215:20:12 216:20:12 219:20:12 220:20:12 221:20:12 "
    "222:20:12 223:20:12 224:20:12 225:20:12 232:2:8 237:37:15 239:37:15 240:37:15 "
    "241:37:15 242:37:15 243:37:15 244:37:15 245:37:15 248:41:10 250:41:10 251:41:10 "
    "252:41:10 253:41:10 254:41:10 282:36:1 293:43:12 294:43:12 295:43:12 296:43:12 "
    "297:43:12 298:43:12 299:43:12 300:43:12"
)
