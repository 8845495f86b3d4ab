"""kitchen-sink: compiled from examples/everything.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import pathlib

import keras
import numpy as np
import tensorflow as tf

# Paths in the spec are relative to the spec's folder.
SPEC_DIR = pathlib.Path(__file__).resolve().parent

# Params: `tfspec run --set NAME=VALUE` overrides them.
LR = 0.002
EPOCHS = 3
DROPOUT = 0.2

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"image": ((8, 8, 1), "float32")}
OUTPUTS = ["digit"]

# The loss of each output, for checking the data before training.
LOSSES = {"digit": "sparse_categorical_crossentropy"}


def build_model():
    """`Kitchen`: a functional keras.Model (examples/everything.tfspec:23)."""
    image = keras.Input(shape=(8, 8, 1), dtype="float32", name="image")
    features = keras.layers.Conv2D(
        8,
        3,
        padding="same",
        activation="relu",
        kernel_initializer="he_normal",
        name="features_conv2d",
    )(image)
    features = keras.layers.MaxPooling2D(
        pool_size=2,
        name="features_max_pooling2d",
    )(features)
    features = keras.layers.Flatten(name="features_flatten")(features)
    features = keras.layers.Dropout(DROPOUT, name="features")(features)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(features)
    return keras.Model(inputs=image, outputs=digit, name="Kitchen")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/everything.tfspec:10)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return split_arrays(features, labels, validation=0.15, test=0.15, seed=11)


def pipeline(dataset, split):
    """One split, tuned as TensorFlow's tf.data guide recommends: cache what is
    loaded, shuffle the training set every epoch, batch, augment whole batches
    in parallel, and prefetch so that input overlaps training."""
    training = split == "train"
    cache = SPEC_DIR / "runs/everything/cache"
    cache.parent.mkdir(parents=True, exist_ok=True)
    dataset = dataset.cache(f"{cache}_{split}")  # one file per split
    if training:
        buffer = 1024
        dataset = dataset.shuffle(buffer, seed=11)
    dataset = dataset.batch(32, drop_remainder=True, num_parallel_calls=2)
    if training:
        augment = keras.Sequential([
            keras.layers.RandomTranslation(0.1, 0.1, seed=11),
            keras.layers.RandomZoom(0.1, seed=11),
        ], name="augment")
        dataset = dataset.map(
            lambda x, y: (augment(x, training=True), y),
            num_parallel_calls=2,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_datasets():
    """The batched `train`, `validation` and `test` pipelines that exist."""
    return {
        name: pipeline(dataset, name)
        for name, dataset in load_splits().items()
    }


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


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/everything.tfspec"
TFSPEC_LINES = (
    "16:5:12 17:6:16 18:7:17 25:45:10 30:24:3 31:26:8 32:26:8 33:26:8 "
    "34:26:8 35:26:8 36:26:8 37:26:8 38:26:8 39:33:8 40:33:8 41:33:8 "
    "42:33:8 43:34:8 44:25:14 45:36:18 46:23:7 49:10:12 51:10:12 54:11:3 "
    "57:10:12 62:16:11 67:14:13 68:12:11 70:20:13 71:20:14 72:20:43 78:17:14 "
    "81:10:12 89:10:12 95:10:12 96:10:12 97:10:12 98:10:12 99:10:12 100:10:12 "
    "101:10:12 102:10:12 103:10:12 104:10:12 105:10:12 106:10:12 107:10:12 108:10:12 "
    "109:10:12 110:10:12 111:10:12 112:10:12 113:10:12 114:10:12 115:10:12 116:10:12 "
    "117:10:12 120:10:12 121:10:12 122:10:12 123:10:12 124:10:12 125:10:12 126:10:12 "
    "127:10:12 128:10:12 129:10:12 130:10:12 131:10:12 132:10:12 133:10:12 134:10:12 "
    "135:10:12 136:10:12 137:10:12 138:10:12 139:10:12 140:10:12 141:10:12 142:10:12 "
    "143:10:12 144:10:12 145:10:12 146:10:12 147:10:12 148:10:12 149:10:12 150:10:12 "
    "151:10:12 152:10:12 153:10:12 154:10:12 155:10:12 156:10:12 157:10:12 158:10:12 "
    "159:10:12 160:10:12 161:10:12 162:10:12 163:10:12 164:10:12 165:10:12 166:10:12 "
    "167:10:12 168:10:12 169:10:12 170:10:12 171:10:12 172:10:12 173:10:12 174:10:12 "
    "175:10:12 176:10:12 177:10:12 178:10:12 179:10:12 180:10:12 181:10:12 182:10:12 "
    "183:10:12 186:10:12 187:10:12 188:10:12 189:10:12 190:10:12 191:10:12 192:10:12"
)
