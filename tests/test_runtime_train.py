"""tfspec.runtime.training, .backup and .distribute, called directly with real
TensorFlow on tiny models: the background backup writes and restores, XLA's rule for
`jit_compile = "auto"`, the custom loop's step against `fit`'s, the loops' files,
and strategies made from a spec's settings and TF_CONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tf_state import restore_global_state  # noqa: F401  (autouse)

from tfspec.jobs.build import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfspec.codegen import train as train_codegen  # noqa: E402
from tfspec.runtime import backup, distribute, training  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def toy_model(seed: int = 0, dropout: bool = False) -> keras.Model:
    """Three inputs -> two outputs, with weights fixed by `seed`."""
    x = keras.Input((3,), name="x")
    h = keras.layers.Dense(4, activation="relu", name="h",
                           kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    if dropout:
        h = keras.layers.Dropout(0.5, seed=seed, name="dropout")(h)
    y = keras.layers.Dense(2, name="y",
                           kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(h)
    return keras.Model(x, y)


def toy_data(examples: int = 16, batch: int = 8) -> dict[str, tf.data.Dataset]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(examples, 3)).astype("float32")
    y = rng.normal(size=(examples, 2)).astype("float32")
    return {"train": tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)}


def compiled(model: keras.Model, **options) -> keras.Model:
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse", **options)
    return model


# -- backup ----------------------------------------------------------------------------------


def test_the_backup_holds_every_variable_and_the_epoch(tmp_path):
    model = compiled(toy_model(dropout=True))
    callback = backup.BackgroundBackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    training.fit(model, toy_data(), [callback], epochs=2, verbose=0)
    with np.load(tmp_path / "backup" / "backup.npz") as saved:
        assert int(saved["epoch"]) == 2
        values = [saved[f"v{i}"] for i in range(len(saved.files) - 1)]
    state = model.variables + model.optimizer.variables  # the Dropout's seed state too
    assert any("seed_generator" in v.path for v in state)
    assert len(values) == len(state)
    for value, variable in zip(values, state, strict=True):
        np.testing.assert_array_equal(value, np.asarray(variable))
    assert not list((tmp_path / "backup").glob("*.tmp"))  # written whole, then renamed


def test_a_new_model_resumes_from_the_backup(tmp_path):
    trained = compiled(toy_model(seed=0))
    training.fit(trained, toy_data(), [
        backup.BackgroundBackupAndRestore(tmp_path, delete_checkpoint=False)], epochs=1,
        verbose=0)
    fresh = compiled(toy_model(seed=5))  # other weights, an unbuilt optimizer
    history = training.fit(fresh, toy_data(), [backup.BackgroundBackupAndRestore(tmp_path)],
                           epochs=1, verbose=0)
    assert history.history == {}  # restored at epoch 1 of 1: nothing left to train
    for a, b in zip(trained.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == int(trained.optimizer.iterations)
    assert not (tmp_path / "backup.npz").exists()  # delete_checkpoint: done, nothing to resume


def test_the_backup_of_another_model_is_refused(tmp_path):
    np.savez(tmp_path / "backup.npz", epoch=1, v0=np.zeros(3, "float32"))
    model = compiled(toy_model())
    with pytest.raises(ValueError, match="is the backup of another model: delete it"):
        training.fit(model, toy_data(), [backup.BackgroundBackupAndRestore(tmp_path)],
                     epochs=1, verbose=0)


def test_a_failed_write_is_raised_in_training(tmp_path):
    (tmp_path / "backup").write_text("a file where the folder should be")
    model = compiled(toy_model())
    with pytest.raises(FileExistsError):
        training.fit(model, toy_data(), [backup.BackgroundBackupAndRestore(tmp_path / "backup")],
                     epochs=1, verbose=0)


# -- XLA, callbacks' helpers, a run's files ---------------------------------------------------


def test_xla_pays_off_after_enough_steps_on_a_cpu():
    if any(d.device_type != "CPU" for d in tf.config.list_physical_devices()):
        assert training.xla_pays_off(1) == "auto"  # Keras decides where XLA helps
        return
    assert training.xla_pays_off(training.XLA_MIN_STEPS - 1) is False
    assert training.xla_pays_off(training.XLA_MIN_STEPS) is True


def test_the_xla_rule_is_the_one_the_plan_states():
    assert training.XLA_MIN_STEPS == train_codegen.XLA_MIN_STEPS


def test_spec_path_makes_the_folder(tmp_path):
    path = training.spec_path(tmp_path, "logs/run/log.csv")
    assert path == str(tmp_path / "logs" / "run" / "log.csv")
    assert (tmp_path / "logs" / "run").is_dir()


def test_schedule_by_epoch_counts_epochs():
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    learning_rate = training.schedule_by_epoch(decay)
    assert [round(learning_rate(epoch, 9.0), 6) for epoch in range(3)] == [0.1, 0.05, 0.025]


def test_save_run_writes_the_model_and_metrics(tmp_path):
    model = compiled(toy_model())
    data = toy_data()
    history = training.fit(model, data, [], epochs=2, verbose=0)
    training.save_run(tmp_path / "run", model, history, {**data, "test": data["train"]})
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2
    assert set(metrics["test"]) == {"loss"}
    assert keras.saving.load_model(tmp_path / "run" / "model.keras").count_params() == \
        model.count_params()


# -- the loops -------------------------------------------------------------------------------


def custom_run(model: keras.Model, datasets, checkpoints: Path, epochs: int = 1,
               callbacks=(), **options) -> keras.callbacks.History:
    """The custom loop on one replica, with a mean-squared-error loss and no metrics."""
    return training.custom(model, datasets, tf.distribute.get_strategy(),
                           {"y": (keras.losses.mean_squared_error, 1.0)}, list, callbacks,
                           epochs=epochs, outputs=["y"], checkpoint_dir=str(checkpoints),
                           verbose=0, **options)


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_a_custom_loop_step_is_fits_step(steps_per_execution, tmp_path):
    """SGD on the mean of per-example losses over the global batch: the same update
    as Keras's `fit`, from the same weights on the same batches."""
    datasets = toy_data()
    ours = compiled(toy_model(), steps_per_execution=steps_per_execution)
    keras_own = compiled(toy_model(), steps_per_execution=steps_per_execution)
    history = custom_run(ours, datasets, tmp_path / "checkpoints")
    expected = training.fit(keras_own, datasets, [], epochs=1, verbose=0)
    for a, b in zip(ours.get_weights(), keras_own.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-6)
    assert not (tmp_path / "checkpoints").exists()  # done: nothing to resume


def test_the_custom_loops_evaluation_is_kerass():
    """`CustomLoop.evaluate` (what a multi-worker run evaluates its test split with):
    the loss is the mean over the examples (a short last batch counts its examples),
    plus the weights' regularization, and the metrics are Keras's."""
    x = keras.Input((3,), name="x")
    y = keras.layers.Dense(2, name="y", kernel_regularizer=keras.regularizers.L2(0.1),
                           kernel_initializer=keras.initializers.GlorotUniform(0))(x)
    model = keras.Model(x, y)
    model.compile(loss="mse", metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    loop = training.CustomLoop(model, tf.distribute.get_strategy(),
                               {"y": (keras.losses.mean_squared_error, 1.0)},
                               lambda: [(None, keras.metrics.MeanAbsoluteError(name="mae"))],
                               outputs=["y"])
    test = toy_data(examples=19, batch=8)["train"]
    expected = model.evaluate(test, return_dict=True, verbose=0)
    assert loop.evaluate(test) == pytest.approx(expected, rel=1e-6)


def test_accumulated_gradients_are_one_step_of_the_whole_batch(tmp_path):
    """Two batches of 8 accumulated (their mean gradient) make the step of one batch
    of 16."""
    halves, whole = compiled(toy_model()), compiled(toy_model())
    custom_run(halves, toy_data(batch=8), tmp_path / "halves", accumulate=2)
    custom_run(whole, toy_data(batch=16), tmp_path / "whole")
    for a, b in zip(halves.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_custom_loop_resumes_where_a_killed_run_stopped(tmp_path):
    """Each epoch's checkpoint (model, optimizer, epoch) brings a new model, started
    again, to where a killed run was; it trains the epochs left and ends where an
    uninterrupted run does."""

    class Killed(Exception):
        pass

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Killed

    with pytest.raises(Killed):
        custom_run(compiled(toy_model()), toy_data(), tmp_path / "killed", 2, [Kill()])
    resumed = compiled(toy_model(seed=3))  # other weights: the checkpoint's replace them
    history = custom_run(resumed, toy_data(), tmp_path / "killed", 2)
    assert len(history.history["loss"]) == 1  # epoch 2 of 2 only
    uninterrupted = compiled(toy_model())
    custom_run(uninterrupted, toy_data(), tmp_path / "uninterrupted", 2)
    for a, b in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_on_batch_trains_like_fit_on_one_batch_an_epoch(tmp_path):
    datasets = toy_data(batch=16)  # one batch: train_on_batch's logs are the epoch's
    ours, keras_own = compiled(toy_model()), compiled(toy_model())
    history = training.on_batch(ours, datasets, [], epochs=2, verbose=0)
    expected = training.fit(keras_own, datasets, [], epochs=2, verbose=0)
    for a, b in zip(ours.get_weights(), keras_own.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-6)


# -- strategies ------------------------------------------------------------------------------


def test_a_missing_device_is_an_error_now():
    with pytest.raises(ValueError, match=r"no device \['/gpu:7'\] on this machine"):
        distribute.mirrored(["/cpu:0", "/gpu:7"])


def test_one_device_and_default():
    assert distribute.one_device("/cpu:0").num_replicas_in_sync == 1
    assert distribute.default() is tf.distribute.get_strategy()


def test_the_chief_and_the_other_workers(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief()  # no cluster: this process is all of it
    for task, chief in (({"type": "worker", "index": 0}, True),
                        ({"type": "worker", "index": 1}, False),
                        ({"type": "chief", "index": 0}, True)):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}, "task": task}))
        assert distribute.is_chief() is chief
    assert distribute.worker_dir(tmp_path) == tmp_path / "chief-0"
    # a TFJob's TF_CONFIG: a chief beside the workers, so worker 0 is not the chief
    cluster = {"chief": ["job-chief-0.ns.svc:2222"], "worker": ["job-worker-0.ns.svc:2222"]}
    for task, chief in (({"type": "chief", "index": 0}, True),
                        ({"type": "worker", "index": 0}, False)):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task,
                                                    "environment": "cloud"}))
        assert distribute.is_chief() is chief
        with distribute.output_dir(tmp_path) as where:
            (where / "model.keras").write_text("x")
        assert (where == tmp_path) is chief
        assert where.exists() is chief  # the others' scratch space is gone
    assert distribute.worker_dir(tmp_path) == tmp_path / "worker-0"


# A strategy reads TF_CONFIG once per process: each case runs in its own.
STRATEGY_PROGRAM = textwrap.dedent("""
    import json, os, sys
    from tfspec.jobs.build import quiet_tensorflow
    quiet_tensorflow()
    from tfspec.runtime import distribute
    kind, *args = sys.argv[1:]
    if kind == "mirrored":
        strategy = distribute.mirrored(args, communication="ring")
    else:
        strategy = distribute.multi_worker_mirrored(args or None, communication="ring")
    resolver = getattr(strategy, "cluster_resolver", None)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "devices": list(strategy.extended.worker_devices),
        "task": [resolver.task_type, resolver.task_id] if resolver else None,
        "tf_config": json.loads(os.environ.get("TF_CONFIG", "{}")),
        "class": type(strategy).__name__,
    }))
""")


def strategy_of(*args: str, env: dict[str, str] | None = None) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG",
                                                                     "TFSPEC_WORKER")}
    done = subprocess.run([sys.executable, "-c", STRATEGY_PROGRAM, *args], cwd=ROOT,
                          env={**environment, **(env or {})}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_multi_worker_strategy_from_tf_config():
    port = free_port()
    config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker",
                                                                      "index": 0}}
    made = strategy_of("multi_worker_mirrored", env={"TF_CONFIG": json.dumps(config)})
    assert made["class"] == "CollectiveAllReduceStrategy"
    assert made["task"] == ["worker", 0] and made["replicas"] == 1
    assert made["tf_config"] == config  # the environment's, as it was


def test_the_specs_cluster_is_tf_config_where_there_is_none():
    workers = [f"127.0.0.1:{free_port()}"]
    made = strategy_of("multi_worker_mirrored", *workers, env={"TFSPEC_WORKER": "0"})
    assert made["tf_config"] == {"cluster": {"worker": workers},
                                 "task": {"type": "worker", "index": 0}}
    assert made["task"] == ["worker", 0]


def test_mirrored_cpus_become_logical_devices():
    made = strategy_of("mirrored", "/cpu:0", "/cpu:1")
    assert made["replicas"] == 2
    assert [d.lower().rsplit("/", 1)[-1] for d in made["devices"]] == ["device:cpu:0",
                                                                       "device:cpu:1"]
