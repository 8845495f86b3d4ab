"""The training half's machinery: the `custom` and `on_batch` loops, XLA's rule for
`jit_compile = "auto"`, what callbacks need, and the files a run leaves.

A program's `train()` builds and compiles its model (the spec's optimizer, loss and
metrics) inside its strategy's scope, then trains it with `model.fit` or with one of
the loops here; `main()` saves what `save_run` saves.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from . import data
from .distribute import is_chief

# the steps a run needs before XLA's compile time (1-2 s on a CPU) pays itself back
XLA_MIN_STEPS = 2000

# (output, metric): the metric of one output, or of the only one (output None)
Metrics = list[tuple[str | None, keras.metrics.Metric]]
# output name -> (per-example loss function, weight)
Losses = dict[str, tuple[Callable[..., Any], float]]


def xla_pays_off(steps: int) -> bool | str:
    """`jit_compile = "auto"` for a model of dense layers. Keras's "auto" means no XLA
    on a CPU-only machine, where XLA makes convolutions slower; on dense layers it
    measured 1.0-2x the examples/s of `fit`, for 1-2 s of compiling. So on a CPU,
    XLA when the run has XLA_MIN_STEPS steps or more; elsewhere Keras's "auto"."""
    if any(device.device_type != "CPU" for device in tf.config.list_physical_devices()):
        return "auto"  # XLA where the model supports it
    return steps >= XLA_MIN_STEPS


def spec_path(spec_dir: str | pathlib.Path, relative: str) -> str:
    """A path in the spec's folder for a callback to write; its folder is made."""
    path = pathlib.Path(spec_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def schedule_by_epoch(schedule: Callable[[int], Any]) -> Callable[[int, float], float]:
    """A `keras.optimizers.schedules` schedule as LearningRateScheduler wants it,
    `schedule(epoch, learning_rate)`: the schedule's learning rate at the epoch
    (its steps count epochs here)."""

    def learning_rate(epoch: int, current: float) -> float:
        del current  # the schedule alone decides
        return float(schedule(epoch))

    return learning_rate


def save_run(run_dir: str | pathlib.Path, model: keras.Model, history: keras.callbacks.History,
             datasets: dict[str, tf.data.Dataset]) -> pathlib.Path:
    """Evaluate the trained model on the test split (if there is one), and save it and
    its metrics in `run_dir`: model.keras, metrics.json (the history, the test's)."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"history": history.history}
    if "test" in datasets:
        metrics["test"] = model.evaluate(datasets["test"], return_dict=True, verbose=0)
    model.save(run_dir / "model.keras")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return run_dir


def callback_list(model: keras.Model, callbacks: Sequence[keras.callbacks.Callback],
                  epochs: int, steps: int, verbose: int | str
                  ) -> tuple[keras.callbacks.CallbackList, keras.callbacks.History]:
    """The callbacks as `fit` runs them (with a History, and a progress bar unless
    `verbose` is 0), and the History."""
    callbacks = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=1 if verbose == "auto" else verbose,
        epochs=epochs,
        steps=steps,
    )
    history = next(c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History))
    return callbacks, history


def epoch_steps(datasets: dict[str, tf.data.Dataset], steps_per_epoch: int | None) -> int:
    """The training batches of an epoch: `steps_per_epoch`, or the data's."""
    if steps_per_epoch is not None:
        return steps_per_epoch
    return int(datasets["train"].cardinality())


def endless_train(datasets: dict[str, tf.data.Dataset], steps_per_epoch: int | None,
                  whole: int = 1) -> tuple[tf.data.Dataset, int] | None:
    """The training data epoch after epoch (`data.epochs`) and its batches per epoch,
    for a loop to read through one iterator; None where epochs are the spec's
    `steps_per_epoch`, or their length is not a multiple of `whole` (the steps of
    one call into TensorFlow: a call must not run into the next epoch)."""
    stream = data.epochs(datasets["train"]) if steps_per_epoch is None else None
    batches = epoch_steps(datasets, None)
    if stream is None or batches <= 0 or batches % whole:
        return None
    return stream, batches


def fit(model: keras.Model, datasets: dict[str, tf.data.Dataset],
        callbacks: Sequence[keras.callbacks.Callback], verbose: int | str = "auto", *,
        epochs: int, steps_per_epoch: int | None = None,
        validation_steps: int | None = None) -> keras.callbacks.History:
    """`model.fit` on the `train` split, validated on `validation` if there is one.
    The pipeline shuffles (seeded by epoch), so `fit` does not. Keras reads the
    training data through one iterator where it can (`endless_train`), not a new
    one every epoch."""
    train = datasets["train"]
    endless = endless_train(datasets, steps_per_epoch, model.steps_per_execution)
    if endless is not None:
        train, steps_per_epoch = endless
    return model.fit(
        train,
        validation_data=datasets.get("validation"),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        shuffle=False,
        callbacks=list(callbacks),
        verbose=verbose,
    )


def on_batch(model: keras.Model, datasets: dict[str, tf.data.Dataset],
             callbacks: Sequence[keras.callbacks.Callback], verbose: int | str = "auto", *,
             epochs: int, steps_per_epoch: int | None = None,
             validation_steps: int | None = None) -> keras.callbacks.History:
    """Train a compiled model a batch at a time with `train_on_batch` (and validate
    with `test_on_batch`), calling the callbacks as `fit` does. A BackupAndRestore
    among them restores a backup when training begins; the loop starts at its epoch."""
    callbacks, history = callback_list(model, callbacks, epochs,
                                       epoch_steps(datasets, steps_per_epoch), verbose)
    callbacks.on_train_begin()  # BackgroundBackupAndRestore restores a backup
    logs: dict[str, Any] = {}
    endless, iterator = endless_train(datasets, steps_per_epoch), None
    # where the backup left off (the attribute Keras's `fit` reads too)
    for epoch in range(model._initial_epoch or 0, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)  # the data's first epoch, before it is read
        logs = {}
        if endless is not None:  # one iterator for every epoch
            if iterator is None:  # made after the epoch is set: it is read then
                iterator = iter(endless[0])
            train: Any = itertools.islice(iterator, endless[1])
        else:
            train = datasets["train"]
            if steps_per_epoch is not None:
                train = train.take(steps_per_epoch)
        for step, (features, labels) in enumerate(train):
            callbacks.on_train_batch_begin(step)
            logs = model.train_on_batch(features, labels, return_dict=True)
            callbacks.on_train_batch_end(step, logs)
        if "validation" in datasets:
            model.reset_metrics()
            validation = {}
            data = datasets["validation"]
            if validation_steps is not None:
                data = data.take(validation_steps)
            for features, labels in data:
                validation = model.test_on_batch(features, labels, return_dict=True)
            logs.update({f"val_{k}": v for k, v in validation.items()})
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return history


def random_state(model: keras.Model) -> list[tf.Variable]:
    """The model's variables that are not weights: the seed generators' states of its
    random layers (Dropout…). Without them a resumed run would draw the first epoch's
    dropout masks again."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def results(metric_list: Metrics, outputs: Sequence[str]) -> dict[str, Any]:
    """`{name: value}` of each metric, prefixed by its output when there are several."""
    out = {}
    for output, metric in metric_list:
        name = metric.name if output is None or len(outputs) == 1 else f"{output}_{metric.name}"
        out[name] = metric.result()  # a tensor: the callbacks read it
    return out


def float32(predictions: Any) -> Any:
    """Losses and metrics in float32, whatever the mixed-precision policy."""
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), predictions)


def update(metric_list: Metrics, labels: Any, predictions: Any) -> None:
    """Update each metric with its output's labels and predictions."""
    for output, metric in metric_list:
        if output is None:
            metric.update_state(labels, predictions)
        else:
            metric.update_state(labels[output], predictions[output])


def custom(model: keras.Model, datasets: dict[str, tf.data.Dataset],
           strategy: tf.distribute.Strategy, losses: Losses, make_metrics: Callable[[], Metrics],
           callbacks: Sequence[keras.callbacks.Callback], verbose: int | str = "auto", *,
           epochs: int, outputs: Sequence[str], checkpoint_dir: str,
           steps_per_epoch: int | None = None, validation_steps: int | None = None,
           accumulate: int = 1, xla: str | None = None) -> keras.callbacks.History:
    """Train a compiled model with a `tf.GradientTape` loop under `strategy`, as the
    tf.distribute guide writes it, calling the callbacks as `fit` does.

    Each call into TensorFlow runs `model.steps_per_execution` steps on every replica
    (`strategy.run`); the per-example `losses` are averaged over the global batch and
    the updates are the optimizer's (its clipping too). Every `accumulate` steps the
    summed gradients are applied, when it is more than 1. `xla`: "step" compiles the
    whole step with XLA, as `model.jit_compile` says (one replica); "passes" only the
    forward and backward passes (several replicas: the update synchronises them).
    Every epoch is checkpointed in `checkpoint_dir` (the model, the optimizer, the
    random layers' state); a killed run, started again, resumes at the last epoch.
    """
    with strategy.scope():  # the optimizer's and metrics' variables, where the model's are
        model.optimizer.build(model.trainable_variables)
        metrics = {"train": make_metrics(), "validation": make_metrics()}
        accumulated = [
            tf.Variable(
                tf.zeros_like(v),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )
            for v in model.trainable_variables
        ] if accumulate != 1 else []
    # each worker reads its share of every batch (in-memory data has no files to shard)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    endless = endless_train(datasets, steps_per_epoch)  # one iterator for every epoch
    if endless is not None:
        train_data, batches_per_epoch = endless
    else:
        train_data = datasets["train"]
        if steps_per_epoch is not None:
            train_data = train_data.take(steps_per_epoch)
        batches_per_epoch = int(train_data.cardinality())  # negative: unknown
    train_data = strategy.experimental_distribute_dataset(train_data.with_options(options))
    steps_per_execution = model.steps_per_execution  # as the program's compile set it

    def compute_loss(labels: Any, predictions: Any) -> Any:
        """Each output's per-example loss, averaged over the GLOBAL batch (the
        tf.distribute guide: replicas' gradients are summed), weighted and summed."""
        if not isinstance(predictions, dict):
            predictions, labels = {outputs[0]: predictions}, {outputs[0]: labels}
        total = 0.0
        for name, (function, weight) in losses.items():
            per_example = function(labels[name], predictions[name])
            total += weight * tf.nn.compute_average_loss(per_example)
        if model.losses:  # weight regularizers, scaled for the replicas
            total += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        return total

    def gradients_of(features: Any, labels: Any) -> tuple[Any, Any, list[Any]]:
        """The forward and backward pass: the loss, predictions and gradients."""
        with tf.GradientTape() as tape:
            predictions = float32(model(features, training=True))
            loss = compute_loss(labels, predictions)
            scaled = model.optimizer.scale_loss(loss)  # mixed precision
        return loss, predictions, tape.gradient(scaled, model.trainable_variables)

    if xla == "passes":  # compiled by XLA on each replica, the update left outside
        gradients_of = tf.function(gradients_of, jit_compile=model.jit_compile)

    def train_step(features: Any, labels: Any) -> Any:
        loss, predictions, gradients = gradients_of(features, labels)
        if accumulated:
            for total, gradient in zip(accumulated, gradients, strict=True):
                total.assign_add(gradient / accumulate)
        else:
            # clipping is the optimizer's (clipnorm, clipvalue, global_clipnorm)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables,
                                                strict=True))
        update(metrics["train"], labels, predictions)
        return loss

    def apply_step() -> None:
        """Apply the accumulated gradients, and start summing again."""
        gradients = [total.read_value() for total in accumulated]
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        for total in accumulated:
            total.assign(tf.zeros_like(total))

    def test_step(features: Any, labels: Any) -> Any:
        predictions = float32(model(features, training=False))
        update(metrics["validation"], labels, predictions)
        return compute_loss(labels, predictions)

    if xla == "step":  # XLA: the whole step, on one replica (as `fit` does)
        train_step = tf.function(train_step, jit_compile=model.jit_compile)
        test_step = tf.function(test_step, jit_compile=model.jit_compile)

    # the epoch's summed losses and batches stay in TensorFlow: Python reads them for
    # the callbacks' logs once an execution (not once a step), and the steps never wait
    sums = {split: (tf.Variable(0.0), tf.Variable(0, dtype=tf.int64))
            for split in ("train", "validation")}

    def mean_loss(split: str) -> Any:
        """The mean loss of the epoch's batches so far (a tensor)."""
        total, batches = sums[split]
        return total / tf.cast(tf.maximum(batches, 1), tf.float32)

    def run_steps(step: Callable[..., Any], split: str) -> Callable[[Any, Any], Any]:
        """A tf.function that runs `step` on every replica for the next `limit` batches
        of an iterator, or what is left of them (one call from Python, like `fit`), and
        returns how many batches of the epoch it has run so far."""
        total, batches = sums[split]

        @tf.function
        def run(iterator: Any, limit: Any) -> Any:
            for _ in tf.range(limit):
                batch = iterator.get_next_as_optional()
                if not batch.has_value():  # the end of the epoch's data
                    break
                per_replica = strategy.run(step, args=batch.get_value())
                loss = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
                total.assign_add(loss)
                batches.assign_add(1)
                # apply the accumulated gradients every `accumulate` training batches
                if accumulated and step is train_step and batches % accumulate == 0:
                    strategy.run(apply_step)
            return batches.read_value()

        return run

    train_steps, test_steps = run_steps(train_step, "train"), run_steps(test_step, "validation")

    # resume from the last epoch's checkpoint, if a killed run left one
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch,
                                     random_state=random_state(model))
    # under several workers every one saves (the save is collective); only the chief's
    # is kept, and every worker resumes from it (the multi-worker guide's way: the
    # checkpoint folder is on storage they share)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    directory = checkpoint_dir if is_chief() or not multi_worker else tempfile.mkdtemp()
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1)
    checkpoint.restore(tf.train.latest_checkpoint(checkpoint_dir))
    callbacks, history = callback_list(model, callbacks, epochs,
                                       epoch_steps(datasets, steps_per_epoch), verbose)
    callbacks.on_train_begin()
    logs: dict[str, Any] = {}
    start = int(epoch.numpy())
    for current in range(start, epochs):
        callbacks.on_epoch_begin(current)
        for total, batches in sums.values():
            total.assign(0.0)
            batches.assign(0)
        for _, metric in metrics["train"] + metrics["validation"]:
            metric.reset_state()
        if endless is None or current == start:  # after the epoch is set: it is read
            train_iterator = iter(train_data)
        done = 0
        while done != batches_per_epoch and not model.stop_training:
            callbacks.on_train_batch_begin(done)
            # an execution stops at the epoch's end (endless data goes on)
            limit = steps_per_execution if batches_per_epoch < 0 else min(
                steps_per_execution, batches_per_epoch - done)
            ran = int(train_steps(train_iterator, tf.constant(limit)))  # waits for its steps
            if ran == done:  # no data was left
                break
            done = ran
            logs = {"loss": mean_loss("train"), **results(metrics["train"], outputs)}
            callbacks.on_train_batch_end(done - 1, logs)
        logs = {"loss": mean_loss("train"), **results(metrics["train"], outputs)}
        if "validation" in datasets:
            validation = datasets["validation"]
            if validation_steps is not None:
                validation = validation.take(validation_steps)
            validation = validation.with_options(options)
            iterator = iter(strategy.experimental_distribute_dataset(validation))
            done = 0
            every = tf.constant(steps_per_execution)
            while (ran := int(test_steps(iterator, every))) > done:  # to the data's end
                done = ran
            logs["val_loss"] = mean_loss("validation")
            logs.update({f"val_{k}": v
                         for k, v in results(metrics["validation"], outputs).items()})
        epoch.assign(current + 1)
        manager.save()
        callbacks.on_epoch_end(current, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    shutil.rmtree(manager.directory, ignore_errors=True)  # done: nothing to resume
    return history
