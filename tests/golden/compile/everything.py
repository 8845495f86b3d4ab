"""kitchen-sink: compiled from examples/everything.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import functools
import json
import pathlib
import shutil
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
    digit = keras.layers.Dense(
        10,
        activation="softmax",
        name="digit",
        dtype="float32",
    )(features)
    return keras.Model(inputs=image, outputs=digit, name="Kitchen")


def load_splits():
    """The arrays of the `.npz` archive, split (examples/everything.tfspec:10)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return split_arrays(features, labels, validation=0.15, test=0.15, seed=11)


def pipeline(arrays, split):
    """One split, tuned as TensorFlow's tf.data guide recommends: cache what is
    loaded, shuffle the training set every epoch, batch, augment whole batches
    in parallel, and prefetch so that input overlaps training."""
    training = split == "train"  # "adapt": the training data as it is
    # examples, for the file cache
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
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
        augment = BatchSeeds(keras.Sequential([
            keras.layers.RandomTranslation(0.1, 0.1),
            keras.layers.RandomZoom(0.1),
        ], name="augment"), seed=11)
        dataset = dataset.enumerate().map(
            lambda batch, example: (augment(batch, example[0]), example[1]),
            num_parallel_calls=2,
        )
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


class BatchSeeds:
    """`augment(features)` that every run repeats. Its random layers draw their seeds
    from (seed, layer, draw, epoch, batch number) instead of from their seed
    generators, whose state the batches augmented in parallel would share and race
    for: the same batch of the same epoch is augmented the same way in every run,
    resumed or not, however many batches are augmented at once."""

    def __init__(self, augment, seed):
        self.augment, self.batch, self.draws = augment, None, 0
        # every layer, those inside RandAugment, AugMix or Pipeline too
        for number, layer in enumerate(augment._flatten_layers(include_self=False)):
            stream = (seed if getattr(layer, "seed", None) is None else layer.seed, number)
            for generator in list(vars(layer).values()):
                if isinstance(generator, keras.random.SeedGenerator):
                    generator.next = functools.partial(self.draw, stream, generator.state.dtype)

    def __call__(self, batch, features):
        # traced once by `map`: the seeds are tensors of the batch's number
        self.batch, self.draws = batch, 0
        return self.augment(features, training=True)

    def draw(self, stream, dtype, ordered=True):
        seed = tf.constant(stream, tf.int64)
        for data in (self.draws, current_epoch(), self.batch):
            seed = tf.random.experimental.stateless_fold_in(seed, data)
        self.draws += 1
        return tf.cast(seed, dtype)


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
        jit_compile=False,
        steps_per_execution=4,
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


def random_state(model):
    """The model's variables that are not weights: the seed generators' states of its
    random layers (Dropout…). Without them a resumed run would draw the first epoch's
    dropout masks again."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


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
        DataEpoch(),
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
        out[name] = metric.result()  # a tensor: the callbacks read it
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
    batches_per_epoch = int(train_data.cardinality())  # negative: unknown
    train_data = strategy.experimental_distribute_dataset(train_data)
    steps_per_execution = model.steps_per_execution  # as compile_model set it

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

    def train_step(features, labels):
        with tf.GradientTape() as tape:
            predictions = float32(model(features, training=True))
            loss = compute_loss(labels, predictions)
            scaled = model.optimizer.scale_loss(loss)  # mixed precision
        gradients = tape.gradient(scaled, model.trainable_variables)
        for total, gradient in zip(accumulated, gradients, strict=True):
            total.assign_add(gradient / 2)
        update(metrics["train"], labels, predictions)
        return loss

    def apply_step():
        gradients = [total.read_value() for total in accumulated]
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        for total in accumulated:
            total.assign(tf.zeros_like(total))

    def test_step(features, labels):
        predictions = float32(model(features, training=False))
        update(metrics["validation"], labels, predictions)
        return compute_loss(labels, predictions)

    # the epoch's summed losses and batches stay in TensorFlow: Python reads them for
    # the callbacks' logs once an execution (not once a step), and the steps never wait
    sums = {split: (tf.Variable(0.0), tf.Variable(0, dtype=tf.int64))
            for split in ("train", "validation")}

    def mean_loss(split):
        """The mean loss of the epoch's batches so far (a tensor)."""
        total, batches = sums[split]
        return total / tf.cast(tf.maximum(batches, 1), tf.float32)

    def run_steps(step, split):
        """A tf.function that runs `step` on every replica for the next `steps_per_execution`
        batches of an iterator, or what is left of them (one call from Python, like `fit`),
        and returns how many batches of the epoch it has run so far."""
        total, batches = sums[split]

        @tf.function
        def run(iterator):
            for _ in tf.range(steps_per_execution):
                batch = iterator.get_next_as_optional()
                if not batch.has_value():  # the end of the epoch's data
                    break
                per_replica = strategy.run(step, args=batch.get_value())
                loss = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
                total.assign_add(loss)
                batches.assign_add(1)
                # apply the accumulated gradients every 2 training batches
                if step is train_step and batches % 2 == 0:
                    strategy.run(apply_step)
            return batches.read_value()

        return run

    train_steps, test_steps = run_steps(train_step, "train"), run_steps(test_step, "validation")

    # resume from the last epoch's checkpoint, if a killed run left one
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=model.optimizer, epoch=epoch, random_state=random_state(model),
    )
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
        for total, batches in sums.values():
            total.assign(0.0)
            batches.assign(0)
        for _, metric in metrics["train"] + metrics["validation"]:
            metric.reset_state()
        iterator, done = iter(train_data), 0
        while done != batches_per_epoch and not model.stop_training:
            callbacks.on_train_batch_begin(done)
            ran = int(train_steps(iterator))  # waits for this execution's steps
            if ran == done:  # no data was left
                break
            done = ran
            logs = {"loss": mean_loss("train"), **results(metrics["train"])}
            callbacks.on_train_batch_end(done - 1, logs)
        logs = {"loss": mean_loss("train"), **results(metrics["train"])}
        if "validation" in datasets:
            validation = datasets["validation"].take(5).with_options(options)
            iterator = iter(strategy.experimental_distribute_dataset(validation))
            done = 0
            while (ran := int(test_steps(iterator))) > done:  # to the end of the data
                done = ran
            logs["val_loss"] = mean_loss("validation")
            logs.update({f"val_{k}": v for k, v in results(metrics["validation"]).items()})
        epoch.assign(current + 1)
        manager.save()
        callbacks.on_epoch_end(current, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    shutil.rmtree(manager.directory, ignore_errors=True)  # done: nothing to resume
    return model, history, datasets


# The spec's export targets: `export_all` writes them, `verify_exports` checks them.
EXPORTS = [
    {"format": "saved_model", "path": "runs/everything/serving", "version": 3,
     "signature": "serving_default", "tolerance": 0.02},
    {"format": "keras", "path": "runs/everything/model.keras", "tolerance": 0.02},
    {"format": "tflite", "path": "runs/everything/model_int8.tflite",
     "quantize": "int8", "integer_io": True, "representative_samples": 64,
     "tolerance": 0.35},
    {"format": "tflite", "path": "runs/everything/model_fp16.tflite",
     "quantize": "float16", "tolerance": 0.02},
    {"format": "tfjs", "path": "runs/everything/tfjs", "quantize": "float16",
     "tolerance": 0.02},
    {"format": "onnx", "path": "runs/everything/model.onnx", "opset": 17,
     "tolerance": 0.02, "verify": True},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="kitchen-sink", spec_dir=SPEC_DIR,
                             rebuild=build_model)


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
TFSPEC_SPEC = "examples/everything.tfspec"
TFSPEC_LINES = (
    "27:5:12 28:6:16 29:7:17 36:51:10 41:24:3 42:26:8 43:26:8 44:26:8 "
    "45:26:8 46:26:8 47:26:8 48:26:8 49:26:8 50:33:8 51:33:8 52:33:8 "
    "53:33:8 54:34:8 55:35:8 56:37:18 57:37:18 58:37:18 59:37:18 60:37:18 "
    "61:37:18 62:23:7 65:10:12 67:10:12 70:11:3 73:10:12 81:16:11 91:14:13 "
    "95:12:11 97:20:13 98:20:14 99:20:43 105:17:14 108:10:12 122:10:12 128:10:12 "
    "129:10:12 130:10:12 131:10:12 132:10:12 133:10:12 134:10:12 135:10:12 136:10:12 "
    "137:10:12 138:10:12 139:10:12 140:10:12 141:10:12 142:10:12 143:10:12 144:10:12 "
    "145:10:12 146:10:12 147:10:12 148:10:12 149:10:12 150:10:12 151:10:12 154:10:12 "
    "155:10:12 156:10:12 157:10:12 158:10:12 159:10:12 160:10:12 161:10:12 162:10:12 "
    "163:10:12 164:10:12 165:10:12 166:10:12 167:10:12 168:10:12 169:10:12 170:10:12 "
    "171:10:12 172:10:12 173:10:12 174:10:12 175:10:12 176:10:12 177:10:12 178:10:12 "
    "179:10:12 180:10:12 183:10:12 184:10:12 185:10:12 186:10:12 187:10:12 188:10:12 "
    "189:10:12 190:10:12 191:10:12 192:10:12 193:10:12 194:10:12 195:10:12 196:10:12 "
    "197:10:12 198:10:12 199:10:12 200:10:12 201:10:12 202:10:12 203:10:12 204:10:12 "
    "205:10:12 206:10:12 207:10:12 208:10:12 209:10:12 210:10:12 211:10:12 212:10:12 "
    "213:10:12 214:10:12 215:10:12 216:10:12 217:10:12 218:10:12 219:10:12 220:10:12 "
    "221:10:12 222:10:12 223:10:12 224:10:12 225:10:12 226:10:12 227:10:12 228:10:12 "
    "229:10:12 230:10:12 231:10:12 232:10:12 233:10:12 234:10:12 235:10:12 236:10:12 "
    "237:10:12 238:10:12 239:10:12 240:10:12 241:10:12 242:10:12 243:10:12 244:10:12 "
    "245:10:12 246:10:12 249:10:12 250:10:12 251:10:12 252:10:12 253:10:12 254:10:12 "
    "255:10:12 259:59:5 262:75:14 264:76:13 285:47:15 287:47:15 288:47:15 289:47:15 "
    "290:47:15 291:47:15 292:47:15 293:47:15 294:47:15 295:47:15 298:51:10 300:51:10 "
    "301:51:10 302:51:10 303:51:10 304:51:10 305:51:10 306:51:10 334:56:15 337:57:5 "
    "338:58:5 339:58:5 340:58:5 341:58:5 342:59:5 343:60:5 344:61:5 345:62:5 "
    "350:52:13 355:52:14 356:52:26 370:51:10 373:51:10 377:45:1 379:67:10 380:68:19 "
    "381:64:21 485:70:16 513:46:10 549:80:1 550:81:3 551:81:3 552:82:3 553:83:3 "
    "554:83:3 555:83:3 556:91:3 557:91:3 558:92:3 559:92:3 560:93:3 561:93:3 "
    "562:80:1 565:80:1 567:80:1 568:80:1 569:80:1 572:80:1 574:80:1 588:80:1 "
    "589:80:1"
)
