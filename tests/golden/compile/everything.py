"""kitchen-sink: compiled from examples/everything.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import json
import pathlib
import shutil
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
    features = keras.layers.AveragePooling2D(
        pool_size=2,
        name="features_average_pooling2d",
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
    training = split == "train"  # "adapt": the training data as it is
    if split != "adapt":  # one pass only: nothing to cache
        cache = SPEC_DIR / "runs/everything/cache"
        cache.parent.mkdir(parents=True, exist_ok=True)
        # one file per split; 8778f514 changes with the spec's data section
        dataset = dataset.cache(f"{cache}_{split}_8778f514")
    if training:
        buffer = 1024
        # each epoch's order is a function of (seed, epoch) alone, so a
        # resumed run shuffles its epochs as an uninterrupted run does
        base, size, epoch = dataset, dataset.cardinality(), current_epoch()
        dataset = tf.data.Dataset.from_tensors(0).flat_map(
            lambda _: base.shuffle(buffer, seed=11 + epoch, reshuffle_each_iteration=False)
        )
        if size >= 0:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(size))
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
CHECKPOINT_DIR = str(SPEC_DIR / "runs/everything/backup")


def make_strategy():
    """`mirrored` distribution: where variables live and steps run."""
    devices = ["/cpu:0", "/cpu:1"]
    cpus = [d for d in devices if d.lower().startswith("/cpu:")]
    if len(cpus) > 1:  # split the CPU into that many logical devices
        try:
            tf.config.set_logical_device_configuration(
                tf.config.list_physical_devices("CPU")[0],
                [tf.config.LogicalDeviceConfiguration()] * len(cpus),
            )
        except RuntimeError:  # TensorFlow has started: too late
            pass
    # a missing device would make training wait forever: say so now
    here = {d.name.lower().replace("/device:", "/") for d in tf.config.list_logical_devices()}
    missing = [d for d in devices if d.lower() not in here]
    if missing:
        raise ValueError(f"no device {missing} on this machine; it has {sorted(here)}")
    return tf.distribute.MirroredStrategy(
        devices=devices,
        cross_device_ops=tf.distribute.HierarchicalCopyAllReduce(),
    )


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.Adam(
        learning_rate=keras.optimizers.schedules.ExponentialDecay(
            LR,
            decay_steps=100,
            decay_rate=0.9,
        ),
        beta_1=0.9,
        global_clipnorm=1.0,
    )


def compile_model(model):
    """`model.compile` with the loss, metrics and options of `train`."""
    model.compile(
        optimizer=make_optimizer(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=3)],
        jit_compile=True,
        steps_per_execution=4,
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
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, mode="min"),
        keras.callbacks.ModelCheckpoint(
            spec_path("runs/everything/best.keras"),
            save_best_only=True,
        ),
        # BackupAndRestore: the custom loop checkpoints itself (CHECKPOINT_DIR)
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1),
        keras.callbacks.CSVLogger(spec_path("runs/everything/log.csv")),
        keras.callbacks.TerminateOnNaN(),
        ShuffleEpoch(),
    ]


def make_metrics():
    """Metric objects for training and validation; "accuracy" is resolved by
    the loss, as `model.compile` does."""
    def build():
        return [
            (None, keras.metrics.SparseCategoricalAccuracy(name="accuracy")),
            (None, keras.metrics.SparseTopKCategoricalAccuracy(k=3)),
        ]
    return {"train": build(), "validation": build()}


def results(metric_list):
    """`{name: value}` of each metric, prefixed by its output when there are several."""
    out = {}
    for output, metric in metric_list:
        name = metric.name if output is None or len(OUTPUTS) == 1 else f"{output}_{metric.name}"
        out[name] = float(metric.result())
    return out


def loss_functions():
    """Each output's loss, per example (the loop averages over the global batch), and weight."""
    return {
        "digit": (keras.losses.sparse_categorical_crossentropy, 1.0),
    }


def train(verbose="auto"):
    """Train as `train { … }` says; returns the model, its history and data."""
    keras.utils.set_random_seed(1234)
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    strategy = make_strategy()
    splits = load_splits()
    datasets = make_datasets(splits)
    with strategy.scope():  # variables are created where the strategy wants
        model = build_model()
        check_data(model, datasets["train"], LOSSES)
        # adapted on the training data as it is: not shuffled, not augmented
        adapt(model, pipeline(splits["train"], "adapt"))
        compile_model(model)  # the optimizer and metrics, in the scope too
        model.optimizer.build(model.trainable_variables)
        metrics = make_metrics()
        losses = loss_functions()
        # gradient accumulation: a sum per replica, applied every 2 steps
        accumulated = [
            tf.Variable(
                tf.zeros_like(v),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )
            for v in model.trainable_variables
        ]
    # each worker reads its share of every batch (in-memory data has no files to shard)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_data = datasets["train"].take(20).with_options(options)
    train_data = strategy.experimental_distribute_dataset(train_data)

    def compute_loss(labels, predictions):
        """Each output's per-example loss, averaged over the GLOBAL batch (the
        tf.distribute guide: replicas' gradients are summed), weighted and summed."""
        if not isinstance(predictions, dict):
            predictions, labels = {OUTPUTS[0]: predictions}, {OUTPUTS[0]: labels}
        total = 0.0
        for name, (function, weight) in losses.items():
            per_example = function(labels[name], predictions[name])
            total += weight * tf.nn.compute_average_loss(per_example)
        if model.losses:  # weight regularizers, scaled for the replicas
            total += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        return total

    def float32(predictions):
        """Losses and metrics in float32, whatever the mixed-precision policy."""
        return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), predictions)

    def update(metric_list, labels, predictions):
        for output, metric in metric_list:
            if output is None:
                metric.update_state(labels, predictions)
            else:
                metric.update_state(labels[output], predictions[output])

    @tf.function(jit_compile=True)
    def gradients_of(features, labels):
        """The forward and backward pass, compiled by XLA on each replica (the update
        synchronises replicas, so it stays outside the XLA function)."""
        with tf.GradientTape() as tape:
            predictions = float32(model(features, training=True))
            loss = compute_loss(labels, predictions)
            scaled = model.optimizer.scale_loss(loss)  # mixed precision
        return loss, predictions, tape.gradient(scaled, model.trainable_variables)

    def train_step(features, labels):
        loss, predictions, gradients = gradients_of(features, labels)
        for total, gradient in zip(accumulated, gradients, strict=True):
            total.assign_add(gradient / 2)
        update(metrics["train"], labels, predictions)
        return loss

    def apply_step():
        gradients = [total.read_value() for total in accumulated]
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        for total in accumulated:
            total.assign(tf.zeros_like(total))

    @tf.function
    def distributed_apply_step():
        strategy.run(apply_step)

    def test_step(features, labels):
        predictions = float32(model(features, training=False))
        update(metrics["validation"], labels, predictions)
        return compute_loss(labels, predictions)

    @tf.function
    def distributed_train_step(features, labels):
        per_replica = strategy.run(train_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    @tf.function
    def distributed_test_step(features, labels):
        per_replica = strategy.run(test_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    # resume from the last epoch's checkpoint, if a killed run left one
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, CHECKPOINT_DIR, max_to_keep=1)
    checkpoint.restore(manager.latest_checkpoint)
    verbose = 2
    callbacks = keras.callbacks.CallbackList(
        make_callbacks(),
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=1 if verbose == "auto" else verbose,
        epochs=EPOCHS,
        steps=20,
    )
    history = next(c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History))
    callbacks.on_train_begin()
    logs = {}
    for current in range(int(epoch.numpy()), EPOCHS):
        callbacks.on_epoch_begin(current)
        for _, metric in metrics["train"] + metrics["validation"]:
            metric.reset_state()
        total, batches = 0.0, 0
        for step, (features, labels) in enumerate(train_data):
            callbacks.on_train_batch_begin(step)
            total += float(distributed_train_step(features, labels))
            batches += 1
            if batches % 2 == 0:
                distributed_apply_step()
            logs = {"loss": total / batches, **results(metrics["train"])}
            callbacks.on_train_batch_end(step, logs)
        if "validation" in datasets:
            validation = datasets["validation"].take(5).with_options(options)
            validation = strategy.experimental_distribute_dataset(validation)
            val_total, val_batches = 0.0, 0
            for features, labels in validation:
                val_total += float(distributed_test_step(features, labels))
                val_batches += 1
            logs["val_loss"] = val_total / max(val_batches, 1)
            logs.update({f"val_{k}": v for k, v in results(metrics["validation"]).items()})
        epoch.assign(current + 1)
        manager.save()
        callbacks.on_epoch_end(current, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    shutil.rmtree(manager.directory, ignore_errors=True)  # done: nothing to resume
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
TFSPEC_SPEC = "examples/everything.tfspec"
TFSPEC_LINES = (
    "23:5:12 24:6:16 25:7:17 32:45:10 37:24:3 38:26:8 39:26:8 40:26:8 "
    "41:26:8 42:26:8 43:26:8 44:26:8 45:26:8 46:33:8 47:33:8 48:33:8 "
    "49:33:8 50:34:8 51:25:14 52:36:18 53:23:7 56:10:12 58:10:12 61:11:3 "
    "64:10:12 70:16:11 80:14:13 84:12:11 86:20:13 87:20:14 88:20:43 94:17:14 "
    "97:10:12 111:10:12 117:10:12 118:10:12 119:10:12 120:10:12 121:10:12 122:10:12 "
    "123:10:12 124:10:12 125:10:12 126:10:12 127:10:12 128:10:12 129:10:12 130:10:12 "
    "131:10:12 132:10:12 133:10:12 134:10:12 135:10:12 136:10:12 137:10:12 138:10:12 "
    "139:10:12 142:10:12 143:10:12 144:10:12 145:10:12 146:10:12 147:10:12 148:10:12 "
    "149:10:12 150:10:12 151:10:12 152:10:12 153:10:12 154:10:12 155:10:12 156:10:12 "
    "157:10:12 158:10:12 159:10:12 160:10:12 161:10:12 162:10:12 163:10:12 164:10:12 "
    "165:10:12 166:10:12 167:10:12 168:10:12 169:10:12 170:10:12 171:10:12 172:10:12 "
    "173:10:12 174:10:12 175:10:12 176:10:12 177:10:12 178:10:12 179:10:12 180:10:12 "
    "181:10:12 182:10:12 183:10:12 184:10:12 185:10:12 186:10:12 187:10:12 188:10:12 "
    "189:10:12 190:10:12 191:10:12 192:10:12 193:10:12 194:10:12 195:10:12 196:10:12 "
    "197:10:12 198:10:12 199:10:12 200:10:12 201:10:12 202:10:12 203:10:12 204:10:12 "
    "205:10:12 208:10:12 209:10:12 210:10:12 211:10:12 212:10:12 213:10:12 214:10:12 "
    "218:53:5 221:69:14 223:70:13 244:41:15 246:41:15 247:41:15 248:41:15 249:41:15 "
    "250:41:15 251:41:15 252:41:15 253:41:15 254:41:15 257:45:10 259:45:10 260:45:10 "
    "261:45:10 262:45:10 263:45:10 264:45:10 265:45:10 285:50:15 288:51:5 289:52:5 "
    "290:52:5 291:52:5 292:52:5 293:53:5 294:54:5 295:55:5 296:56:5 301:46:13 "
    "306:46:14 307:46:26 321:45:10 324:45:10 328:39:1 330:61:10 331:62:19 332:58:21 "
    "385:59:17 445:40:10 455:64:16"
)
