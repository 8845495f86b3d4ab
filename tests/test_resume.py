"""A run killed with SIGKILL and started again ends where an uninterrupted run does, with
random layers too: the backup holds the seed generators' state of Dropout (which
Keras's `save_weights` leaves out), in the `fit` and `on_batch` loops (the program's
BackgroundBackupAndRestore) and the custom loop (its tf.train.Checkpoint). And the
training data's order and augmentation, which resume also depends on, are functions
of (seed, epoch) alone.

The runs are real `tfspec run` processes on a tiny model of the digits shipped in
examples/data; the first is killed as it starts its third epoch.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from run_processes import EPOCH_SUMMARY, run_and_kill, run_to_completion

from tfspec.codegen.program import compile_file
from tfspec.jobs.build import load_program, quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 5
KILL_AT = 3  # killed as epoch 3 begins: epochs 1 and 2 are backed up

SPEC = """\
tfspec 1
name "resume"

data {{
  source = npz("data/digits.npz", x = "flat", y = "labels")
  split {{ validation = 0.2, seed = 7 }}
  batch = 128
  augment = [GaussianNoise(0.3)]  # seeded by (seed, epoch, batch): BatchSeeds
}}

model Tiny sequential {{
  input pixels: float32[64]
  Rescaling(1 / 16)
  Dense(16, activation = "relu")
  Dropout(0.3)
  Dense(10, activation = "softmax")
}}

train {{
  loop = "{loop}"
  optimizer = Adam(learning_rate = 0.01)
  loss = "sparse_categorical_crossentropy"
  epochs = {epochs}
  seed = 1
  deterministic = true
  callbacks = [BackupAndRestore("backup")]
}}
"""


def write_spec(folder: Path, loop: str) -> Path:
    (folder / "data").mkdir(parents=True)
    shutil.copyfile(ROOT / "examples" / "data" / "digits.npz", folder / "data" / "digits.npz")
    spec = folder / "resume.tfspec"
    spec.write_text(SPEC.format(loop=loop, epochs=EPOCHS), encoding="utf-8")
    return spec






def final_model(spec: Path) -> Path:
    (model,) = (spec.parent / "runs" / "resume").glob("*/model.keras")  # the killed run has none
    return model


@pytest.mark.parametrize("loop", ["fit", "on_batch", "custom"])
def test_resume_with_dropout_equals_an_uninterrupted_run(loop, tmp_path):
    interrupted = write_spec(tmp_path / "interrupted", loop)
    uninterrupted = write_spec(tmp_path / "uninterrupted", loop)
    with ThreadPoolExecutor(1) as pool:
        reference = pool.submit(run_to_completion, uninterrupted)
        killed = run_and_kill(interrupted, KILL_AT)
        if loop != "custom":  # every variable is backed up, the Dropout's seed state too
            with np.load(interrupted.parent / "backup" / "backup.npz") as saved:
                backed_up = int(saved["epoch"]), len(saved.files) - 1
        resumed = run_to_completion(interrupted)
        reference = reference.result()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert len([line for line in killed if EPOCH_SUMMARY.match(line)]) == KILL_AT - 1

    ours = keras.models.load_model(final_model(interrupted))
    theirs = keras.models.load_model(final_model(uninterrupted))
    if loop != "custom":
        # written while the next epoch trains: the kill may come before it is whole
        assert backed_up[0] in (KILL_AT - 2, KILL_AT - 1)
        seed_states = [v for v in ours.variables if "seed_generator" in v.path]
        assert len(seed_states) == 1  # the one Dropout's
        assert backed_up[1] == len(ours.variables) + len(ours.optimizer.variables)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(ours.optimizer.variables, theirs.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # the resumed run's history is the uninterrupted run's: the epochs before the kill
    # (kept with the backup) and the resumed ones, which logged the same losses
    history = json.loads((final_model(interrupted).parent / "metrics.json").read_text())
    expected = json.loads((final_model(uninterrupted).parent / "metrics.json").read_text())
    resumed_from = backed_up[0] if loop != "custom" else KILL_AT - 1
    assert history["resumed_after_epoch"] == resumed_from
    np.testing.assert_allclose(history["history"]["loss"], expected["history"]["loss"],
                               rtol=1e-6)


def test_each_epochs_order_is_a_function_of_seed_and_epoch(tmp_path):
    """Arrays in memory are fed by shuffling row numbers and gathering each batch's
    rows: the order is the one the same seeded shuffle gives the examples themselves,
    epoch by epoch, and a new program (a resumed run) starts at any epoch's order."""
    import tensorflow as tf

    spec = write_spec(tmp_path, "fit")
    text = spec.read_text()
    spec.write_text(re.sub(r"  augment = .*\n", "", text))  # the rows as they are

    def epoch_rows(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        program = load_program(compile_file(spec))
        splits = program["load_splits"]()
        program["EPOCH"].assign(epoch)
        train = program["make_datasets"](splits)["train"]
        return splits["train"][0], np.concatenate([x.numpy() for x, _ in train])

    features, first = epoch_rows(0)
    second = epoch_rows(1)[1]
    assert first.shape == features.shape and not np.array_equal(first, second)
    tf.random.set_seed(None)  # the pipeline's order does not depend on the global seed
    for epoch, rows in ((0, first), (1, second)):
        examples = tf.data.Dataset.from_tensor_slices(features).shuffle(
            len(features), seed=7 + epoch, reshuffle_each_iteration=False)
        np.testing.assert_array_equal(rows, np.stack(list(examples.as_numpy_iterator())))


def test_a_backup_of_another_model_is_a_located_error(tmp_path):
    """A backup folder left by an older version of the spec is not loaded into this
    model: the error names the file and points at the spec's BackupAndRestore."""
    from tfspec import SpecError
    from tfspec.jobs.runner import run

    spec = write_spec(tmp_path, "fit")
    (tmp_path / "backup").mkdir()
    np.savez(tmp_path / "backup" / "backup.npz", epoch=1, v0=np.zeros(3, "float32"))
    with pytest.raises(SpecError) as raised:
        run(str(spec))
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.code == "E502"
    assert "backup.npz is the backup of another model: delete it" in diagnostic.message
    line = spec.read_text().splitlines()[diagnostic.span.line - 1]
    assert line.strip() == 'callbacks = [BackupAndRestore("backup")]'


def test_a_failed_backup_write_stops_training(tmp_path):
    """The backup is written by a thread; what the write raised is raised in training
    (at the next backup or at the end), not lost in the thread."""
    spec = write_spec(tmp_path, "fit")
    (tmp_path / "backup").write_text("a file where the backup folder should be")
    program = load_program(compile_file(spec))
    with pytest.raises(FileExistsError):
        program["train"](verbose=0)


def test_a_backup_within_the_first_resumed_epoch_records_that_epoch(tmp_path):
    """With `save_freq` in batches, the backups written before the resumed run's first
    epoch ends still record the epoch it resumed at, not 0 (Keras's own callback
    starts counting again from 0 there)."""
    spec = write_spec(tmp_path, "fit")
    spec.write_text(spec.read_text().replace(
        'callbacks = [BackupAndRestore("backup")]',
        'callbacks = [BackupAndRestore("backup", save_freq = 1, delete_checkpoint = false)]'
    ).replace(f"epochs = {EPOCHS}", "epochs = 2"))

    def train() -> tuple[int, int]:
        """(epochs trained, epoch the backup records)."""
        _, history, _ = load_program(compile_file(spec))["train"](verbose=0)
        with np.load(tmp_path / "backup" / "backup.npz") as saved:
            return len(history.history["loss"]), int(saved["epoch"])

    assert train() == (2, 1)  # the last batch of epoch 2 records one epoch complete
    assert train() == (1, 1)  # resumed at epoch 2: its batches record 1 again
