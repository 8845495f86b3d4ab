"""two-tower: compiled from examples/two_tower.tfspec by tfspec 0.1.0.

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
        dataset = dataset.shuffle(buffer)
    dataset = dataset.batch(32, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_datasets(splits=None):
    """The batched `train`, `validation` and `test` pipelines that exist."""
    splits = splits if splits is not None else load_splits()
    return {name: pipeline(dataset, name) for name, dataset in splits.items()}


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


# Every epoch is checkpointed here; a killed run, started again, resumes.
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "two-tower" / "checkpoints")


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(learning_rate=0.003)


def compile_model(model):
    """`model.compile` with the loss, metrics and options of `train`."""
    model.compile(
        optimizer=make_optimizer(),
        loss={"score": "binary_crossentropy", "category": "sparse_categorical_crossentropy"},
        loss_weights={"score": 1.0, "category": 0.5},
        metrics={"score": ["accuracy", keras.metrics.AUC()], "category": ["accuracy"]},
    )


def spec_path(relative):
    """A path in the spec's folder for a callback to write; its folder is made."""
    path = SPEC_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        keras.callbacks.BackupAndRestore(CHECKPOINT_DIR),  # resume if killed
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
        epochs=5,
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
TFSPEC_SPEC = "examples/two_tower.tfspec"
TFSPEC_LINES = (
    "22:26:3 27:11:3 28:12:3 29:14:19 30:15:7 31:16:15 32:16:7 33:17:11 "
    "34:18:18 35:20:8 36:19:21 37:10:7 38:10:7 39:10:7 40:10:7 41:10:7 "
    "44:6:12 47:6:12 71:5:1 74:6:12 86:7:11 90:6:12 96:6:12 102:6:12 "
    "103:6:12 104:6:12 105:6:12 106:6:12 107:6:12 108:6:12 111:6:12 112:6:12 "
    "113:6:12 114:6:12 115:6:12 116:6:12 117:6:12 118:6:12 119:6:12 120:6:12 "
    "121:6:12 122:6:12 123:6:12 124:6:12 125:6:12 126:6:12 127:6:12 128:6:12 "
    "129:6:12 130:6:12 131:6:12 132:6:12 133:6:12 136:6:12 137:6:12 138:6:12 "
    "139:6:12 140:6:12 141:6:12 142:6:12 143:6:12 144:6:12 145:6:12 146:6:12 "
    "147:6:12 148:6:12 149:6:12 150:6:12 151:6:12 152:6:12 153:6:12 154:6:12 "
    "155:6:12 156:6:12 157:6:12 158:6:12 159:6:12 160:6:12 161:6:12 162:6:12 "
    "163:6:12 164:6:12 165:6:12 166:6:12 167:6:12 168:6:12 169:6:12 170:6:12 "
    "171:6:12 172:6:12 173:6:12 174:6:12 175:6:12 176:6:12 177:6:12 178:6:12 "
    "179:6:12 180:6:12 181:6:12 182:6:12 183:6:12 184:6:12 185:6:12 186:6:12 "
    "187:6:12 188:6:12 189:6:12 190:6:12 191:6:12 192:6:12 193:6:12 194:6:12 "
    "195:6:12 196:6:12 197:6:12 198:6:12 199:6:12 206:2:8 211:25:15 213:25:15 "
    "216:26:3 218:26:3 219:26:3 220:26:3 221:26:3 222:26:3 223:26:3 240:24:1 "
    "251:32:12 252:32:12 253:32:12 254:32:12 255:32:12 256:32:12 257:32:12 258:32:12"
)
