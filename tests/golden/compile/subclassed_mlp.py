"""digits-subclassed: compiled from examples/subclassed_mlp.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

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

# The model's inputs (shape per example, dtype) and outputs, by name.
INPUTS = {"image": ((8, 8, 1), "float32")}
OUTPUTS = ["digit"]

# The loss of each output, for checking the data before training.
LOSSES = {"digit": "sparse_categorical_crossentropy"}


@keras.saving.register_keras_serializable(package="tfspec")
class DigitsMLP(keras.Model):
    """`DigitsMLP`: a subclassed keras.Model (examples/subclassed_mlp.tfspec:11)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden_rescaling = keras.layers.Rescaling(1 / 16, name="hidden_rescaling")
        self.hidden_flatten = keras.layers.Flatten(name="hidden_flatten")
        self.hidden_dense = keras.layers.Dense(
            64,
            activation="relu",
            kernel_regularizer=keras.regularizers.L2(0.0001),
            name="hidden_dense",
        )
        self.hidden = keras.layers.Dropout(0.2, name="hidden")
        self.digit = keras.layers.Dense(10, activation="softmax", name="digit")

    def call(self, inputs, training=None):
        image = inputs
        hidden = self.hidden_rescaling(image)
        hidden = self.hidden_flatten(hidden)
        hidden = self.hidden_dense(hidden)
        hidden = self.hidden(hidden)
        digit = self.digit(hidden)
        return digit


def build_model():
    """Create `DigitsMLP` and build its weights on symbolic inputs."""
    model = DigitsMLP(name="DigitsMLP")
    model(keras.Input(shape=(8, 8, 1), dtype="float32", name="image"))
    return model


def load_splits():
    """The arrays of the `.npz` archive, split (examples/subclassed_mlp.tfspec:6)."""
    with np.load(SPEC_DIR / "data/digits.npz") as archive:
        features = archive["images"]
        labels = archive["labels"]
    return split_arrays(features, labels, validation=0.2, test=0.0, seed=7)


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
            lambda _: indices.shuffle(count, seed=7 + epoch, reshuffle_each_iteration=False)
        ).apply(tf.data.experimental.assert_cardinality(count))
    dataset = dataset.batch(64, num_parallel_calls=tf.data.AUTOTUNE)
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
CHECKPOINT_DIR = str(SPEC_DIR / "runs" / "digits-subclassed" / "checkpoints")


def make_strategy():
    """`default` distribution: where variables live and steps run."""
    return tf.distribute.get_strategy()


def make_optimizer():
    """The optimizer, created inside the strategy scope by `compile_model`."""
    return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)


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
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=xla_pays_off(batches * 5),
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


def random_state(model):
    """The model's variables that are not weights: the seed generators' states of its
    random layers (Dropout…). Without them a resumed run would draw the first epoch's
    dropout masks again."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def make_callbacks():
    """The callbacks of `train`; their paths are relative to the spec."""
    return [
        DataEpoch(),
    ]


def make_metrics():
    """Metric objects for training and validation; "accuracy" is resolved by
    the loss, as `model.compile` does."""
    def build():
        return [
            (None, keras.metrics.SparseCategoricalAccuracy(name="accuracy")),
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
        "digit": (keras.losses.SparseCategoricalCrossentropy(reduction=None), 1.0),
    }


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
        model.optimizer.build(model.trainable_variables)
        metrics = make_metrics()
        losses = loss_functions()
    # each worker reads its share of every batch (in-memory data has no files to shard)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_data = datasets["train"].with_options(options)
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

    @tf.function(jit_compile=model.jit_compile)  # XLA: the whole step, on one replica
    def train_step(features, labels):
        with tf.GradientTape() as tape:
            predictions = float32(model(features, training=True))
            loss = compute_loss(labels, predictions)
            scaled = model.optimizer.scale_loss(loss)  # mixed precision
        gradients = tape.gradient(scaled, model.trainable_variables)
        # clipping is the optimizer's (clipnorm, clipvalue, global_clipnorm)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        update(metrics["train"], labels, predictions)
        return loss

    @tf.function(jit_compile=model.jit_compile)
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
    callbacks = keras.callbacks.CallbackList(
        make_callbacks(),
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=1 if verbose == "auto" else verbose,
        epochs=5,
        steps=int(datasets["train"].cardinality()),
    )
    history = next(c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History))
    callbacks.on_train_begin()
    logs = {}
    for current in range(int(epoch.numpy()), 5):
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
            validation = datasets["validation"].with_options(options)
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
    {"format": "keras", "path": "runs/digits_subclassed/model.keras",
     "tolerance": 1e-06},
]


def export_all(model, run_dir, datasets):
    """Write the export targets, and the batch `verify_exports` checks them on."""
    return export.export_all(model, run_dir, datasets, EXPORTS, INPUTS, OUTPUTS,
                             name="digits-subclassed", spec_dir=SPEC_DIR)


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
TFSPEC_SPEC = "examples/subclassed_mlp.tfspec"
TFSPEC_LINES = (
    "30:24:10 34:11:7 39:14:8 40:15:8 41:16:8 42:16:8 43:16:8 44:16:8 "
    "45:16:8 46:16:8 47:17:8 48:18:18 52:14:8 53:15:8 54:16:8 55:17:8 "
    "56:18:18 67:6:12 69:6:12 72:7:3 75:6:12 90:8:11 103:6:12 117:6:12 "
    "123:6:12 124:6:12 125:6:12 126:6:12 127:6:12 128:6:12 129:6:12 130:6:12 "
    "131:6:12 132:6:12 133:6:12 134:6:12 135:6:12 136:6:12 137:6:12 138:6:12 "
    "139:6:12 140:6:12 141:6:12 142:6:12 143:6:12 144:6:12 145:6:12 146:6:12 "
    "149:6:12 150:6:12 151:6:12 152:6:12 153:6:12 154:6:12 155:6:12 156:6:12 "
    "157:6:12 158:6:12 159:6:12 160:6:12 161:6:12 162:6:12 163:6:12 164:6:12 "
    "165:6:12 166:6:12 167:6:12 168:6:12 169:6:12 170:6:12 171:6:12 172:6:12 "
    "173:6:12 174:6:12 175:6:12 176:6:12 177:6:12 178:6:12 179:6:12 180:6:12 "
    "181:6:12 182:6:12 183:6:12 184:6:12 185:6:12 186:6:12 187:6:12 188:6:12 "
    "189:6:12 190:6:12 191:6:12 192:6:12 193:6:12 194:6:12 195:6:12 196:6:12 "
    "197:6:12 198:6:12 199:6:12 200:6:12 201:6:12 202:6:12 203:6:12 204:6:12 "
    "205:6:12 206:6:12 207:6:12 208:6:12 209:6:12 210:6:12 211:6:12 212:6:12 "
    "215:6:12 216:6:12 217:6:12 218:6:12 219:6:12 220:6:12 221:6:12 228:2:8 "
    "233:23:15 235:23:15 248:24:10 253:24:10 254:24:10 255:24:10 256:24:10 257:24:10 "
    "258:24:10 259:24:10 294:25:13 299:25:14 313:24:10 316:24:10 320:21:1 436:22:10 "
    "472:29:1 473:30:3 474:30:3 475:29:1 478:29:1 480:29:1 481:29:1 484:29:1 "
    "486:29:1 500:29:1 501:29:1"
)
