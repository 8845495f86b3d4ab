"""kitchen-sink: compiled from examples/everything.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import types

import keras
import numpy as np
import tensorflow as tf

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


# TF.js in Node.js runs the tfjs export with this script (tfspec/js/).
TFJS_PREDICT = r"""
// Runs a TensorFlow.js graph model (as tfspec exports it) on a batch of inputs, in
// Node.js with the pure-JS CPU backend: the runtime a browser or Node app uses.
//
//   node predict.js MODEL_DIR INPUTS_JSON
//
// INPUTS_JSON: {"name": {"dtype": "float32", "shape": [n, ...], "data": [...]}, ...}
// keyed by the signature's input names. Prints the outputs in the same form, keyed
// by the signature's output names.
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");

async function main() {
  const [modelDir, inputsPath] = process.argv.slice(2);
  const artifacts = JSON.parse(fs.readFileSync(path.join(modelDir, "model.json"), "utf8"));
  // model.json names its weight shards; fromMemory wants the bytes in manifest order
  const specs = [];
  const shards = [];
  for (const group of artifacts.weightsManifest) {
    specs.push(...group.weights);
    for (const file of group.paths) shards.push(fs.readFileSync(path.join(modelDir, file)));
  }
  const bytes = Buffer.concat(shards);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: artifacts.modelTopology,
    weightSpecs: specs,
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    signature: artifacts.signature,
    userDefinedMetadata: artifacts.userDefinedMetadata,
  }));
  const signature = artifacts.signature || {};
  const inputs = JSON.parse(fs.readFileSync(inputsPath, "utf8"));
  const feed = {};
  for (const [key, value] of Object.entries(inputs)) {
    // the graph's input node for this signature key ("image:0" -> "image")
    const info = (signature.inputs || {})[key];
    const node = info ? info.name.replace(/:0$/, "") : key;
    feed[node] = tf.tensor(value.data, value.shape, value.dtype);
  }
  const outputKeys = Object.keys(signature.outputs || {});
  const nodes = outputKeys.map((key) => signature.outputs[key].name.replace(/:0$/, ""));
  let results = model.execute(feed, nodes.length ? nodes : undefined);
  if (!Array.isArray(results)) results = [results];
  const out = {};
  results.forEach((tensor, i) => {
    out[outputKeys[i] || `output_${i}`] = {
      dtype: tensor.dtype, shape: tensor.shape, data: Array.from(tensor.dataSync()),
    };
  });
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.message || err}\n`);
  process.exit(1);
});
"""


def input_specs():
    """The spec's inputs as tf.TensorSpecs of any batch size, by name."""
    return {
        name: tf.TensorSpec((None, *shape), dtype, name=name)
        for name, (shape, dtype) in INPUTS.items()
    }


def model_inputs(named):
    """Inputs given by name as the model takes them: the dict, or its one value."""
    return named if len(named) > 1 else named[next(iter(INPUTS))]


def by_name(features):
    """A batch's features by input name (a one-input pipeline yields a tensor)."""
    return features if isinstance(features, dict) else {next(iter(INPUTS)): features}


def serving_function(model):
    """The model as a tf.function from named inputs to named outputs: the signature
    that every export shares (floating outputs as float32, what clients expect)."""

    @tf.function(input_signature=[input_specs()])
    def serve(inputs):
        return named_outputs(model(model_inputs(inputs), training=False))

    return serve


def named_outputs(outputs):
    """A model's outputs as a dict keyed by the spec's output names."""
    if not isinstance(outputs, dict):
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        outputs = dict(zip(OUTPUTS, outputs, strict=True))
    return {
        name: tf.cast(value, tf.float32) if value.dtype.is_floating else value
        for name, value in outputs.items()
    }


def write_saved_model(model, path, signature="serving_default"):
    """A SavedModel whose `signature` takes and gives the spec's names, plus the
    positional `serve` endpoint that `model.export` writes (what TFSMLayer calls)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(signature, serving_function(model))
    archive.add_endpoint(
        "serve",
        lambda inputs: model(inputs, training=False),
        input_signature=[model_inputs(input_specs())],
    )
    archive.write_out(str(path), verbose=False)


def write_atomically(path, write):
    """Write `path` (a file or a folder) with `write(temporary_path)` beside it, then
    rename it into place: a failed or killed export leaves the previous export (or
    nothing) at `path`, never part of one."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        write(scratch / path.name)
        if path.is_dir():
            os.replace(path, scratch / "previous")  # a folder cannot replace a folder
        os.replace(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def save_verify_batch(model, datasets, run_dir, size=32):
    """A fixed batch of the spec's data (the test split first) and the Keras model's
    answers to it: what `verify_exports` checks every export against."""
    split = next(name for name in ("test", "validation", "train") if name in datasets)
    features = by_name(next(iter(datasets[split].unbatch().batch(size).take(1)))[0])
    # in the declared dtypes, as a client sends them (a pipeline may hold int64 for int32)
    features = {name: features[name] if dtype == "string" else tf.cast(features[name], dtype)
                for name, (_, dtype) in INPUTS.items()}
    expected = named_outputs(model(model_inputs(features), training=False))
    # strings as fixed-width bytes: np.load refuses object arrays
    arrays = {f"input/{name}": value.numpy().astype(bytes) if value.dtype == tf.string
              else value.numpy() for name, value in features.items()}
    arrays.update({f"output/{name}": value.numpy() for name, value in expected.items()})
    np.savez(run_dir / "verify_batch.npz", **arrays)


def verify_exports(run_dir):
    """Run the kept batch through each export in its own runtime and compare with the
    Keras model's answers; writes verify.json and raises ExportMismatch on a failure."""
    run_dir = pathlib.Path(run_dir)
    record = json.loads((run_dir / "exports.json").read_text())
    with np.load(run_dir / "verify_batch.npz") as batch:
        inputs = {key[6:]: batch[key] for key in batch.files if key.startswith("input/")}
        expected = {key[7:]: batch[key] for key in batch.files if key.startswith("output/")}
    report = []
    for index, target in enumerate(record["targets"]):
        if not target.get("verify", True):
            continue
        try:
            answers = RUNTIMES[target["format"]](target, inputs)
            entry = parity(target, answers, expected)
        except Exception as exc:  # an export its runtime cannot load or run fails too
            where = f"{target['format']} {target['spec_path']}"
            entry = {"format": target["format"], "path": target["path"], "passed": False,
                     "message": f"{where} could not be checked: {exc}"}
        report.append({"index": index, **entry})
        print(f"verify: {entry['message']}")
    (run_dir / "verify.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = [entry for entry in report if not entry["passed"]]
    if failed:
        raise ExportMismatch(failed)
    return report


class ExportMismatch(AssertionError):
    """Exports that do not answer like the Keras model (`failures`: their reports)."""

    def __init__(self, failures):
        self.failures = failures
        super().__init__("; ".join(entry["message"] for entry in failures))


def parity(target, answers, expected):
    """How far an export's answers are from the Keras model's, against its tolerance
    (absolute, scaled by the outputs' magnitude where that exceeds 1)."""
    missing = sorted(set(expected) - set(answers))
    if missing:
        raise ValueError(f"the {target['format']} export has no output {missing}")
    worst, mean, agree = 0.0, 0.0, []
    scale = 1.0
    for name, want in expected.items():
        got = np.asarray(answers[name], dtype="float64").reshape(want.shape)
        error = np.abs(got - want)
        worst = max(worst, float(error.max(initial=0.0)))
        mean = max(mean, float(error.mean()))
        scale = max(scale, float(np.abs(want).max(initial=0.0)))
        if want.ndim == 2 and want.shape[-1] > 1:  # class scores: compare the argmax
            agree.append(float(np.mean(got.argmax(-1) == want.argmax(-1))))
    limit = target["tolerance"] * scale
    passed = worst <= limit
    where = f"{target['format']} {target['spec_path']}"
    detail = f"mean {mean:.3g}" + (f", argmax agreement {100 * min(agree):.1f} %"
                                   if agree else "")
    if passed:
        message = (f"{where} answers like the Keras model: max abs error {worst:.3g} "
                   f"<= {limit:.3g} ({detail})")
    else:
        message = (f"{where} does not answer like the Keras model: max abs error "
                   f"{worst:.3g} > tolerance {limit:.3g} ({detail})")
    return {
        "format": target["format"],
        "path": target["path"],
        "max_abs_error": worst,
        "mean_abs_error": mean,
        "argmax_agreement": min(agree) if agree else None,
        "tolerance": limit,
        "passed": passed,
        "message": message,
    }


def float32_model(model):
    """The trained model computing in float32: TFLite, TF.js and ONNX lack 16-bit
    kernels for most ops, so a mixed-precision model is converted in float32."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clone = build_model()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    clone.set_weights(model.get_weights())
    return clone


def export_keras(model, path, **target):
    """A `.keras` archive: the model, its weights and its optimizer state."""
    write_atomically(path, model.save)
    return {"format": "keras", "path": str(path), **target}


def run_keras(target, inputs):
    """The `.keras` archive, loaded back into Keras."""
    model = keras.saving.load_model(target["path"], compile=False)
    return {name: value.numpy() for name, value in
            named_outputs(model(model_inputs(inputs), training=False)).items()}


def export_onnx(saved_model, path, opset=None, **target):
    """An ONNX model converted from the serving SavedModel by tf2onnx."""

    def convert(tmp):
        command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
                   "--output", str(tmp)]
        if opset is not None:
            command += ["--opset", str(opset)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            lines = [line for line in done.stderr.splitlines() if "Error" in line]
            why = lines[-1] if lines else done.stderr.strip()[-300:]
            if "No module named tf2onnx" in done.stderr:
                why = "tf2onnx is not installed: pip install 'tfspec[onnx]'"
            raise RuntimeError(f"tf2onnx could not convert the model: {why}")

    write_atomically(path, convert)
    return {"format": "onnx", "path": str(path), **target}


def run_onnx(target, inputs):
    """The ONNX model in onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "checking an onnx export runs it in onnxruntime: pip install 'tfspec[onnx]'"
        ) from None
    session = onnxruntime.InferenceSession(target["path"],
                                           providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    feed = {item.name: inputs[item.name] for item in session.get_inputs()}
    return dict(zip(names, session.run(names, feed), strict=True))


def export_saved_model(model, base, name, version=1, signature="serving_default",
                       **target):
    """A SavedModel in TF Serving's layout, `base/<version>/`, with the spec's `name` in
    its `assets.extra/tfspec.json`: `tfspec serve` serves the model under that name, and
    TF Serving and the SavedModel loader leave the file alone."""

    def write(path):
        write_saved_model(model, path, signature)
        (path / "assets.extra").mkdir()
        (path / "assets.extra" / "tfspec.json").write_text(json.dumps({"name": name}) + "\n")

    write_atomically(pathlib.Path(base) / str(version), write)
    return {"format": "saved_model", "path": str(base), "version": version,
            "signature": signature, **target}


def run_saved_model(target, inputs):
    """The export's serving signature, loaded as TF Serving loads it."""
    loaded = tf.saved_model.load(str(pathlib.Path(target["path"]) / str(target["version"])))
    serve = loaded.signatures[target["signature"]]
    answers = serve(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in answers.items()}


def export_tfjs(saved_model, path, quantize="none", **target):
    """A TensorFlow.js graph model converted from the serving SavedModel."""
    # tensorflowjs imports TF Decision Forests only to convert TF-DF models, and no
    # TF-DF release installs beside this TensorFlow: an empty stand-in is enough.
    sys.modules.setdefault("tensorflow_decision_forests",
                           types.ModuleType("tensorflow_decision_forests"))
    try:
        from tensorflowjs.converters import tf_saved_model_conversion_v2
    except ImportError:
        raise ImportError(
            "a tfjs export needs the TensorFlow.js converter: run tools/install-tfjs "
            "from the tfspec repository"
        ) from None
    quantization = {} if quantize == "none" else {quantize: "*"}
    write_atomically(path, lambda tmp: tf_saved_model_conversion_v2.convert_tf_saved_model(
        str(saved_model), str(tmp), quantization_dtype_map=quantization))
    return {"format": "tfjs", "path": str(path), "quantize": quantize, **target}


def run_tfjs(target, inputs):
    """The graph model in Node.js with @tensorflow/tfjs (found through NODE_PATH):
    the runtime a web or Node app loads it in."""
    if shutil.which("node") is None:
        raise RuntimeError("checking a tfjs export runs it in Node.js: install node")
    with tempfile.TemporaryDirectory() as scratch:
        script = pathlib.Path(scratch) / "predict.js"
        script.write_text(TFJS_PREDICT)
        feed = pathlib.Path(scratch) / "inputs.json"
        feed.write_text(json.dumps({
            name: {"dtype": str(value.dtype), "shape": list(value.shape),
                   "data": value.ravel().tolist()}
            for name, value in inputs.items()
        }))
        done = subprocess.run(["node", str(script), target["path"], str(feed)],
                              capture_output=True, text=True)
    if done.returncode:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        if "Cannot find module '@tensorflow/tfjs'" in done.stderr:
            why = ("@tensorflow/tfjs is not installed: run tools/install-tfjs, or set "
                   "NODE_PATH to the node_modules that holds it")
        raise RuntimeError(f"TF.js in Node.js could not run the export: {why}")
    answers = json.loads(done.stdout)
    return {name: np.asarray(value["data"], dtype="float32").reshape(value["shape"])
            for name, value in answers.items()}


def export_tflite(saved_model, path, quantize="none", representative=None,
                  integer_io=False, **target):
    """A TensorFlow Lite flatbuffer converted from the serving SavedModel."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    flatbuffer = converter.convert()
    write_atomically(path, lambda tmp: tmp.write_bytes(flatbuffer))
    return {"format": "tflite", "path": str(path), "quantize": quantize, **target}


def representative_data(datasets, samples):
    """`samples` training examples, one at a time, to calibrate int8 quantization."""
    examples = datasets["train"].unbatch().take(samples)

    def generate():
        for features, _ in examples:
            features = by_name(features)
            yield {name: tf.expand_dims(tf.cast(features[name], INPUTS[name][1]), 0)
                   for name in INPUTS}

    return generate


def run_tflite(target, inputs):
    """The flatbuffer in LiteRT, the TensorFlow Lite runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError(
            "checking a tflite export runs it in LiteRT: pip install 'tfspec[tflite]' "
            "(ai-edge-litert)"
        ) from None
    return without_litert_info(lambda: tflite_answers(Interpreter(target["path"]), inputs))


def without_litert_info(call):
    """`call()`, without LiteRT's C++ `INFO: ...` lines (`Created TensorFlow Lite XNNPACK
    delegate for CPU.` when the default delegate is applied) on stderr: file descriptor 2
    goes to a file meanwhile, and every other line is written back."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        return call()
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            return call()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            for line in log.read().decode(errors="replace").splitlines(keepends=True):
                if not line.startswith("INFO: "):
                    sys.stderr.write(line)


def tflite_answers(interpreter, inputs):
    """The interpreter's signature on named inputs; integer inputs and outputs are
    quantized and dequantized with the model's own scales."""
    runner = interpreter.get_signature_runner()
    feed = {}
    for name, detail in runner.get_input_details().items():
        value = inputs[name]
        scale, zero = detail["quantization"]
        if scale:
            info = np.iinfo(detail["dtype"])
            value = np.clip(np.round(value / scale + zero), info.min, info.max)
        feed[name] = value.astype(detail["dtype"])
    answers = runner(**feed)
    for name, detail in runner.get_output_details().items():
        scale, zero = detail["quantization"]
        if scale:
            answers[name] = (answers[name].astype("float32") - zero) * scale
    return answers


# Each format's own runtime, as `verify_exports` runs it.
RUNTIMES = {
    "keras": run_keras,
    "onnx": run_onnx,
    "saved_model": run_saved_model,
    "tfjs": run_tfjs,
    "tflite": run_tflite,
}


def export_all(model, run_dir, datasets):
    """Write every export target, each atomically, and record them in
    exports.json with the batch that `verify_exports` checks them on."""
    run_dir = pathlib.Path(run_dir)
    name = "kitchen-sink"  # the spec's name, recorded with the exports
    save_verify_batch(model, datasets, run_dir)
    targets = []
    with tempfile.TemporaryDirectory() as scratch:
        # tflite, tfjs and onnx convert the same serving SavedModel
        saved_model = pathlib.Path(scratch) / "serving"
        write_saved_model(float32_model(model), saved_model)
        targets.append(export_saved_model(
            model,
            SPEC_DIR / "runs/everything/serving",
            name,
            version=3,
            signature="serving_default",
            tolerance=0.02,
            spec_path="runs/everything/serving",
        ))
        targets.append(export_keras(
            model,
            SPEC_DIR / "runs/everything/model.keras",
            tolerance=0.02,
            spec_path="runs/everything/model.keras",
        ))
        targets.append(export_tflite(
            saved_model,
            SPEC_DIR / "runs/everything/model_int8.tflite",
            quantize="int8",
            integer_io=True,
            representative=representative_data(datasets, 64),
            tolerance=0.35,
            spec_path="runs/everything/model_int8.tflite",
        ))
        targets.append(export_tflite(
            saved_model,
            SPEC_DIR / "runs/everything/model_fp16.tflite",
            quantize="float16",
            tolerance=0.02,
            spec_path="runs/everything/model_fp16.tflite",
        ))
        targets.append(export_tfjs(
            saved_model,
            SPEC_DIR / "runs/everything/tfjs",
            quantize="float16",
            tolerance=0.02,
            spec_path="runs/everything/tfjs",
        ))
        targets.append(export_onnx(
            saved_model,
            SPEC_DIR / "runs/everything/model.onnx",
            opset=17,
            tolerance=0.02,
            verify=True,
            spec_path="runs/everything/model.onnx",
        ))
    record = {"name": name, "targets": targets}
    (run_dir / "exports.json").write_text(json.dumps(record, indent=2) + "\n")
    return targets


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
    "29:5:12 30:6:16 31:7:17 38:51:10 43:24:3 44:26:8 45:26:8 46:26:8 "
    "47:26:8 48:26:8 49:26:8 50:26:8 51:26:8 52:33:8 53:33:8 54:33:8 "
    "55:33:8 56:34:8 57:35:8 58:37:18 59:37:18 60:37:18 61:37:18 62:37:18 "
    "63:37:18 64:23:7 67:10:12 69:10:12 72:11:3 75:10:12 83:16:11 93:14:13 "
    "97:12:11 99:20:13 100:20:14 101:20:43 107:17:14 110:10:12 124:10:12 130:10:12 "
    "131:10:12 132:10:12 133:10:12 134:10:12 135:10:12 136:10:12 137:10:12 138:10:12 "
    "139:10:12 140:10:12 141:10:12 142:10:12 143:10:12 144:10:12 145:10:12 146:10:12 "
    "147:10:12 148:10:12 149:10:12 150:10:12 151:10:12 152:10:12 153:10:12 156:10:12 "
    "157:10:12 158:10:12 159:10:12 160:10:12 161:10:12 162:10:12 163:10:12 164:10:12 "
    "165:10:12 166:10:12 167:10:12 168:10:12 169:10:12 170:10:12 171:10:12 172:10:12 "
    "173:10:12 174:10:12 175:10:12 176:10:12 177:10:12 178:10:12 179:10:12 180:10:12 "
    "181:10:12 182:10:12 185:10:12 186:10:12 187:10:12 188:10:12 189:10:12 190:10:12 "
    "191:10:12 192:10:12 193:10:12 194:10:12 195:10:12 196:10:12 197:10:12 198:10:12 "
    "199:10:12 200:10:12 201:10:12 202:10:12 203:10:12 204:10:12 205:10:12 206:10:12 "
    "207:10:12 208:10:12 209:10:12 210:10:12 211:10:12 212:10:12 213:10:12 214:10:12 "
    "215:10:12 216:10:12 217:10:12 218:10:12 219:10:12 220:10:12 221:10:12 222:10:12 "
    "223:10:12 224:10:12 225:10:12 226:10:12 227:10:12 228:10:12 229:10:12 230:10:12 "
    "231:10:12 232:10:12 233:10:12 234:10:12 235:10:12 236:10:12 237:10:12 238:10:12 "
    "239:10:12 240:10:12 241:10:12 242:10:12 243:10:12 244:10:12 245:10:12 246:10:12 "
    "247:10:12 248:10:12 251:10:12 252:10:12 253:10:12 254:10:12 255:10:12 256:10:12 "
    "257:10:12 261:59:5 264:75:14 266:76:13 287:47:15 289:47:15 290:47:15 291:47:15 "
    "292:47:15 293:47:15 294:47:15 295:47:15 296:47:15 297:47:15 300:51:10 302:51:10 "
    "303:51:10 304:51:10 305:51:10 306:51:10 307:51:10 308:51:10 336:56:15 339:57:5 "
    "340:58:5 341:58:5 342:58:5 343:58:5 344:59:5 345:60:5 346:61:5 347:62:5 "
    "352:52:13 357:52:14 358:52:26 372:51:10 375:51:10 379:45:1 381:67:10 382:68:19 "
    "383:64:21 487:70:16 515:46:10 1007:80:1 1018:81:3 1019:81:3 1020:81:3 1021:81:3 "
    "1022:81:3 1023:81:3 1024:81:3 1025:81:3 1026:81:3 1027:82:3 1028:82:3 1029:82:3 "
    "1030:82:3 1031:82:3 1032:82:3 1033:83:3 1034:83:3 1035:83:3 1036:83:3 1037:83:3 "
    "1038:83:3 1039:83:3 1040:83:3 1041:83:3 1042:91:3 1043:91:3 1044:91:3 1045:91:3 "
    "1046:91:3 1047:91:3 1048:91:3 1049:92:3 1050:92:3 1051:92:3 1052:92:3 1053:92:3 "
    "1054:92:3 1055:92:3 1056:93:3 1057:93:3 1058:93:3 1059:93:3 1060:93:3 1061:93:3 "
    "1062:93:3 1063:93:3 1080:80:1 1081:80:1"
)
