"""The training half's machinery: the `custom` and `on_batch` loops, XLA's rule for
`jit_compile = "auto"`, what callbacks need, and the files a run leaves.

A program's `train()` builds and compiles its model (the spec's optimizer, loss and
metrics) inside its strategy's scope, then trains it with `model.fit` or with one of
the loops here; `main()` saves what `save_run` saves.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf

from . import backup, data
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
    """Save the trained model and its metrics in `run_dir`: model.keras and metrics.json
    (the history) first, so that no later failure loses them; then the test split's
    metrics (if there is one) into metrics.json. An error of that evaluation carries
    `split = "test"`, to be reported at the test split."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {"history": whole_history(history)}  # a resumed run's too
    resumed = getattr(history, "resumed", None)
    if resumed is not None:
        metrics["resumed_after_epoch"] = resumed.epoch
    model.save(run_dir / "model.keras")
    _write_json(run_dir / "metrics.json", metrics)
    if "test" in datasets:
        try:
            metrics["test"] = evaluate(model, history, datasets["test"])
        except Exception as exc:
            exc.split = "test"  # type: ignore[attr-defined]  # read by jobs/runner.py
            raise
        _write_json(run_dir / "metrics.json", metrics)
    return run_dir


def evaluate(model: keras.Model, history: keras.callbacks.History,
             dataset: tf.data.Dataset) -> dict[str, float]:
    """`model.evaluate(dataset, return_dict=True)`; under MultiWorkerMirroredStrategy,
    where Keras 3's fails (keras-team/keras#20585), the custom loop's distributed
    evaluation that trained it (`history.evaluate`, which `custom` sets)."""
    loop_evaluate = getattr(history, "evaluate", None)
    multi_worker = isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multi_worker and loop_evaluate is not None:
        return loop_evaluate(dataset)
    return model.evaluate(dataset, return_dict=True, verbose=0)


def _write_json(path: pathlib.Path, value: Any) -> None:
    """`value` as JSON in `path`, whole or not at all (written beside it, then renamed)."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(value, indent=2, default=float))
    partial.replace(path)


def whole_history(history: keras.callbacks.History) -> dict[str, list[Any]]:
    """The logs of every epoch: those of the backup a run resumed from (its
    `resumed`, which the loops set), then this run's."""
    resumed: backup.Resumed | None = getattr(history, "resumed", None)
    earlier = resumed.history if resumed is not None else {}
    return {key: [*earlier.get(key, []), *history.history.get(key, [])]
            for key in [*earlier, *(k for k in history.history if k not in earlier)]}


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


def epoch_steps(datasets: Mapping[str, tf.data.Dataset], steps_per_epoch: int | None) -> int:
    """The training batches of an epoch: `steps_per_epoch`, or the data's."""
    if steps_per_epoch is not None:
        return steps_per_epoch
    return int(datasets["train"].cardinality())


def endless_train(datasets: Mapping[str, tf.data.Dataset], steps_per_epoch: int | None,
                  whole: int = 1) -> tuple[tf.data.Dataset, int] | None:
    """The training data epoch after epoch (`data.train_epochs`: `datasets` made by a
    program's `make_datasets`) and its batches per epoch, for a loop to read through one
    iterator; None where epochs are the spec's `steps_per_epoch`, or their length is not
    a multiple of `whole` (the steps of one call into TensorFlow: a call must not run
    into the next epoch)."""
    stream = data.train_epochs(datasets) if steps_per_epoch is None else None
    batches = epoch_steps(datasets, None)
    if stream is None or batches <= 0 or batches % whole:
        return None
    return stream, batches


@dataclasses.dataclass(frozen=True)
class Epochs:
    """The training data as a loop reads it: `dataset`, through one iterator for every
    epoch (`endless`) or a new one each epoch, `batches` of it an epoch (negative:
    unknown), and the `steps` the callbacks are told an epoch has."""

    dataset: tf.data.Dataset
    batches: int
    endless: bool
    steps: int

    @classmethod
    def of(cls, datasets: Mapping[str, tf.data.Dataset],
           steps_per_epoch: int | None) -> Epochs:
        """The `train` split's epochs: endless where it can be (`endless_train`), else
        the split (its first `steps_per_epoch` batches) read anew each epoch."""
        steps = epoch_steps(datasets, steps_per_epoch)
        endless = endless_train(datasets, steps_per_epoch)
        if endless is not None:
            return cls(endless[0], endless[1], True, steps)
        train = datasets["train"]
        if steps_per_epoch is not None:
            train = train.take(steps_per_epoch)
        return cls(train, int(train.cardinality()), False, steps)

    def iterator(self, last: Iterator[Any] | None) -> Iterator[Any]:
        """The iterator of an epoch: `last`, the one before, where endless (made after
        the epoch is set, when it is read)."""
        return last if self.endless and last is not None else iter(self.dataset)


def validation_data(datasets: Mapping[str, tf.data.Dataset],
                    validation_steps: int | None) -> tf.data.Dataset | None:
    """The `validation` split (its first `validation_steps` batches), if there is one."""
    validation = datasets.get("validation")
    if validation is not None and validation_steps is not None:
        validation = validation.take(validation_steps)
    return validation


def fit(model: keras.Model, datasets: Mapping[str, tf.data.Dataset],
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
    callbacks = backup.last(callbacks)
    history = model.fit(
        train,
        validation_data=datasets.get("validation"),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        shuffle=False,
        callbacks=callbacks,
        verbose=verbose,
    )
    history.resumed = backup.resumed_of(callbacks)  # the epochs before, for save_run
    return history


def on_batch(model: keras.Model, datasets: Mapping[str, tf.data.Dataset],
             callbacks: Sequence[keras.callbacks.Callback], verbose: int | str = "auto", *,
             epochs: int, steps_per_epoch: int | None = None,
             validation_steps: int | None = None) -> keras.callbacks.History:
    """Train a compiled model a batch at a time with `train_on_batch` (and validate
    with `test_on_batch`), calling the callbacks as `fit` does. A BackupAndRestore
    among them restores a backup when training begins; the loop starts at its epoch."""
    given = backup.last(callbacks)
    callbacks, history = callback_list(model, given, epochs,
                                       epoch_steps(datasets, steps_per_epoch), verbose)
    callbacks.on_train_begin()  # BackgroundBackupAndRestore restores a backup
    train = Epochs.of(datasets, steps_per_epoch)
    validation = validation_data(datasets, validation_steps)
    logs: dict[str, Any] = {}
    iterator = None
    # where the backup left off (the attribute Keras's `fit` reads too)
    for epoch in range(model._initial_epoch or 0, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)  # the data's first epoch, before it is read
        iterator = train.iterator(iterator)
        batches = itertools.islice(iterator, train.batches) if train.endless else iterator
        logs = {}
        for step, (features, labels) in enumerate(batches):
            callbacks.on_train_batch_begin(step)
            logs = model.train_on_batch(features, labels, return_dict=True)
            callbacks.on_train_batch_end(step, logs)
        if validation is not None:
            model.reset_metrics()
            tested: dict[str, Any] = {}
            for features, labels in validation:
                tested = model.test_on_batch(features, labels, return_dict=True)
            logs.update({f"val_{k}": v for k, v in tested.items()})
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    history.resumed = backup.resumed_of(given)  # the epochs before, for save_run
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


class CustomLoop:
    """A compiled model trained with a `tf.GradientTape` loop under `strategy`, as the
    tf.distribute guide writes it, calling the callbacks as `fit` does.

    Each call into TensorFlow runs `model.steps_per_execution` steps on every replica
    (`strategy.run`); the per-example `losses` are averaged over the global batch and
    the updates are the optimizer's (its clipping too). Every `accumulate` steps the
    summed gradients are applied, when it is more than 1. `xla`: "step" compiles the
    whole step with XLA, as `model.jit_compile` says (one replica); "passes" only the
    forward and backward passes (several replicas: the update synchronises them).
    `fit` checkpoints every epoch (the model, the optimizer, the random layers' state);
    a killed run, started again, resumes at the last epoch.
    """

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy, losses: Losses,
                 make_metrics: Callable[[], Metrics], *, outputs: Sequence[str],
                 accumulate: int = 1, xla: str | None = None) -> None:
        self.model, self.strategy, self.losses, self.outputs = model, strategy, losses, outputs
        self.accumulate = accumulate
        with strategy.scope():  # the optimizer's and metrics' variables, where the model's are
            model.optimizer.build(model.trainable_variables)
            self.metrics = {"train": make_metrics(), "validation": make_metrics()}
            # the evaluation's loss as Keras's `evaluate` reports it: the mean over the
            # examples, summed over the replicas and workers when read (a metric's sums)
            self.test_loss = keras.metrics.Mean(name="loss")
            self.accumulated = [
                tf.Variable(
                    tf.zeros_like(v),
                    trainable=False,
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.SUM,
                )
                for v in model.trainable_variables
            ] if accumulate != 1 else []
        self.gradients_of: Callable[..., Any] = self._gradients_of
        if xla == "passes":  # compiled by XLA on each replica, the update left outside
            self.gradients_of = tf.function(self._gradients_of, jit_compile=model.jit_compile)
        train_step, test_step = self._train_step, self._test_step
        if xla == "step":  # XLA: the whole step, on one replica (as `fit` does)
            train_step = tf.function(train_step, jit_compile=model.jit_compile)
            test_step = tf.function(test_step, jit_compile=model.jit_compile)
        # the epoch's summed losses and batches stay in TensorFlow: Python reads them for
        # the callbacks' logs once an execution (not once a step), and the steps never wait
        self.sums = {split: (tf.Variable(0.0), tf.Variable(0, dtype=tf.int64))
                     for split in ("train", "validation")}
        self.train_steps = self._run_steps(train_step, "train")
        self.test_steps = self._run_steps(test_step, "validation")

    # -- the steps, traced by tf.function ------------------------------------------------------

    def _per_example(self, labels: Any, predictions: Any) -> list[tuple[Any, float]]:
        """Each output's per-example loss and its weight."""
        if not isinstance(predictions, dict):
            predictions, labels = {self.outputs[0]: predictions}, {self.outputs[0]: labels}
        return [(function(labels[name], predictions[name]), weight)
                for name, (function, weight) in self.losses.items()]

    def _compute_loss(self, labels: Any, predictions: Any) -> Any:
        """Each output's per-example loss, averaged over the GLOBAL batch (the
        tf.distribute guide: replicas' gradients are summed), weighted and summed."""
        total = 0.0
        for per_example, weight in self._per_example(labels, predictions):
            total += weight * tf.nn.compute_average_loss(per_example)
        if self.model.losses:  # weight regularizers, scaled for the replicas
            total += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        return total

    def _gradients_of(self, features: Any, labels: Any) -> tuple[Any, Any, list[Any]]:
        """The forward and backward pass: the loss, predictions and gradients."""
        model = self.model
        with tf.GradientTape() as tape:
            predictions = float32(model(features, training=True))
            loss = self._compute_loss(labels, predictions)
            scaled = model.optimizer.scale_loss(loss)  # mixed precision
        return loss, predictions, tape.gradient(scaled, model.trainable_variables)

    def _train_step(self, features: Any, labels: Any) -> Any:
        loss, predictions, gradients = self.gradients_of(features, labels)
        if self.accumulated:
            for total, gradient in zip(self.accumulated, gradients, strict=True):
                total.assign_add(gradient / self.accumulate)
        else:
            # clipping is the optimizer's (clipnorm, clipvalue, global_clipnorm)
            self.model.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables,
                                                     strict=True))
        update(self.metrics["train"], labels, predictions)
        return loss

    def _apply_step(self) -> None:
        """Apply the accumulated gradients, and start summing again."""
        gradients = [total.read_value() for total in self.accumulated]
        self.model.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables,
                                                 strict=True))
        for total in self.accumulated:
            total.assign(tf.zeros_like(total))

    def _test_step(self, features: Any, labels: Any) -> Any:
        predictions = float32(self.model(features, training=False))
        update(self.metrics["validation"], labels, predictions)
        # each example's loss as Keras's evaluate counts it: the outputs' (each averaged
        # over its elements) weighted, plus the regularization losses
        total = tf.add_n([weight * tf.reduce_mean(loss, axis=tf.range(1, tf.rank(loss)))
                          for loss, weight in self._per_example(labels, predictions)])
        if self.model.losses:
            total += tf.add_n(self.model.losses)
        self.test_loss.update_state(total)  # (a replica's share of a batch may be empty)
        return tf.reduce_sum(total)  # summed in `sums`, which count the batches

    def _run_steps(self, step: Callable[..., Any], split: str) -> Callable[[Any, Any], Any]:
        """A tf.function that runs `step` on every replica for the next `limit` batches
        of an iterator, or what is left of them (one call from Python, like `fit`), and
        returns how many batches of the epoch it has run so far."""
        total, batches = self.sums[split]
        strategy, accumulate = self.strategy, self.accumulate
        # apply the accumulated gradients every `accumulate` training batches
        applies = bool(self.accumulated) and split == "train"

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
                if applies and batches % accumulate == 0:
                    strategy.run(self._apply_step)
            return batches.read_value()

        return run

    # -- epochs, from Python -------------------------------------------------------------------

    def fit(self, train: Epochs, validation: tf.data.Dataset | None,
            callbacks: Sequence[keras.callbacks.Callback], verbose: int | str = "auto", *,
            epochs: int, checkpoint_dir: str,
            experiment: backup.Experiment | None = None) -> keras.callbacks.History:
        """Train for `epochs` on `train`, validated on `validation` (if any) after each
        epoch, checkpointed in `checkpoint_dir`, from the epoch a checkpoint there left
        (if it is of `experiment`, the program's EXPERIMENT)."""
        model = self.model
        train = dataclasses.replace(train, dataset=self.distributed(train.dataset))
        validation = None if validation is None else self.distributed(validation)
        epoch, manager, resumable = self.checkpointing(checkpoint_dir, experiment)
        callbacks, history = callback_list(model, callbacks, epochs, train.steps, verbose)
        done = int(epoch.numpy())
        history.resumed = resumable.resumed(done) if done else None  # for save_run
        callbacks.on_train_begin()
        logs: dict[str, Any] = {}
        iterator = None
        for current in range(int(epoch.numpy()), epochs):
            callbacks.on_epoch_begin(current)
            self.reset()
            iterator = train.iterator(iterator)  # after the epoch is set: it is read
            logs = self.train_epoch(iterator, train.batches, callbacks)
            if validation is not None:
                logs.update(self.validate(validation))
            epoch.assign(current + 1)
            callbacks.on_epoch_end(current, logs)
            # after the callbacks (a new learning rate, the logs History keeps): the
            # record of the epochs' logs, then the checkpoint
            resumable.write(current + 1, whole_history(history), manager.directory)
            manager.save()
            if model.stop_training:
                break
        callbacks.on_train_end(logs)
        shutil.rmtree(manager.directory, ignore_errors=True)  # done: nothing to resume
        return history

    def distributed(self, dataset: tf.data.Dataset) -> Any:
        """`dataset` split among the replicas: each worker reads its share of every
        batch (in-memory data has no files to shard)."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def checkpointing(self, checkpoint_dir: str, experiment: backup.Experiment | None = None
                      ) -> tuple[tf.Variable, tf.train.CheckpointManager, backup.Resumable]:
        """The epoch to start at (restored from the last epoch's checkpoint, if a killed
        run of `experiment` left one: another experiment's is moved aside), the manager
        that saves each epoch's, and the folder's record."""
        model = self.model
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch,
                                         random_state=random_state(model))
        # under several workers every one saves (the save is collective); only the chief's
        # is kept, and every worker resumes from it (the multi-worker guide's way: the
        # checkpoint folder is on storage they share)
        multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        owner = is_chief() or not multi_worker
        resumable = backup.Resumable(checkpoint_dir, experiment, owner=owner)
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        if latest is not None and not resumable.may_resume():
            latest = None  # another experiment's: the run starts afresh
        # made after a stale checkpoint is moved aside: a manager reads its folder's state
        directory = checkpoint_dir if owner else tempfile.mkdtemp()
        manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1)
        checkpoint.restore(latest)
        return epoch, manager, resumable

    def reset(self) -> None:
        """A new epoch: its loss sums and metrics from zero."""
        for total, batches in self.sums.values():
            total.assign(0.0)
            batches.assign(0)
        for _, metric in self.metrics["train"] + self.metrics["validation"]:
            metric.reset_state()
        self.test_loss.reset_state()

    def train_epoch(self, iterator: Any, batches: int,
                    callbacks: keras.callbacks.CallbackList) -> dict[str, Any]:
        """One epoch's `batches` (negative: to the data's end), `steps_per_execution` a
        call; returns its logs."""
        every, done = self.model.steps_per_execution, 0
        while done != batches and not self.model.stop_training:
            callbacks.on_train_batch_begin(done)
            # an execution stops at the epoch's end (endless data goes on)
            limit = every if batches < 0 else min(every, batches - done)
            ran = int(self.train_steps(iterator, tf.constant(limit)))  # waits for its steps
            if ran == done:  # no data was left
                break
            done = ran
            callbacks.on_train_batch_end(done - 1, self.logs("train"))
        return self.logs("train")

    def validate(self, validation: Any) -> dict[str, Any]:
        """The whole (distributed) `validation` data: its `val_` logs."""
        iterator = iter(validation)
        done = 0
        every = tf.constant(self.model.steps_per_execution)
        while (ran := int(self.test_steps(iterator, every))) > done:  # to the data's end
            done = ran
        return {f"val_{k}": v for k, v in self.logs("validation").items()}

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """`model.evaluate(dataset, return_dict=True)` under the loop's strategy (Keras 3's
        fails under MultiWorkerMirroredStrategy, keras-team/keras#20585): `validate`'s
        test step on every replica, the metrics and loss summed over the replicas and
        workers. Under several workers, every worker calls it."""
        self.reset()
        logs = self.validate(self.distributed(dataset))
        metrics = {name.removeprefix("val_"): float(value) for name, value in logs.items()}
        return {**{k: v for k, v in metrics.items() if k != "loss"}, "loss": metrics["loss"]}

    def logs(self, split: str) -> dict[str, Any]:
        """The loss (training: the mean of the epoch's batches so far; validation: of
        its examples, as Keras's) and the metrics (tensors)."""
        total, batches = self.sums[split]
        loss = (self.test_loss.result() if split == "validation"
                else total / tf.cast(tf.maximum(batches, 1), tf.float32))
        return {"loss": loss, **results(self.metrics[split], self.outputs)}


def custom(model: keras.Model, datasets: Mapping[str, tf.data.Dataset],
           strategy: tf.distribute.Strategy, losses: Losses, make_metrics: Callable[[], Metrics],
           callbacks: Sequence[keras.callbacks.Callback], verbose: int | str = "auto", *,
           epochs: int, outputs: Sequence[str], checkpoint_dir: str,
           steps_per_epoch: int | None = None, validation_steps: int | None = None,
           accumulate: int = 1, xla: str | None = None,
           experiment: backup.Experiment | None = None) -> keras.callbacks.History:
    """`CustomLoop(…).fit(…)` on the `train` split (endless where it can be: `Epochs`),
    validated on `validation` if there is one: what a program's `train()` calls.
    `experiment`: what the checkpoints in `checkpoint_dir` must be of to be resumed."""
    loop = CustomLoop(model, strategy, losses, make_metrics, outputs=outputs,
                      accumulate=accumulate, xla=xla)
    history = loop.fit(Epochs.of(datasets, steps_per_epoch),
                       validation_data(datasets, validation_steps), callbacks, verbose,
                       epochs=epochs, checkpoint_dir=checkpoint_dir, experiment=experiment)
    history.evaluate = loop.evaluate  # the test split's, where Keras's fails (`evaluate`)
    return history
