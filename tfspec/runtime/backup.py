"""Backup and resume for the `fit` and `on_batch` loops: Keras's BackupAndRestore,
written in the background.

A program's `make_callbacks()` puts a `BackgroundBackupAndRestore` where the spec
has `BackupAndRestore(…)`, or adds one on its own checkpoint folder: a run killed
and started again resumes at the last epoch backed up, with the same weights,
optimizer state and random state an uninterrupted run has there. (The custom loop
checkpoints itself: `training.custom`.)
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from typing import Any

import keras
import numpy as np


class BackgroundBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, written in the background. When an epoch ends (or
    every `save_freq` batches) the variables of the model (seed generators included)
    and of the optimizer are copied, and a thread writes the copy to `backup.npz` while
    training goes on; the file is replaced whole, so a kill leaves the last backup."""

    def __init__(self, backup_dir: str | os.PathLike, save_freq: str | int = "epoch",
                 double_checkpoint: bool = False, delete_checkpoint: bool = True) -> None:
        super().__init__(str(backup_dir), save_freq, double_checkpoint, delete_checkpoint)
        self.path = pathlib.Path(backup_dir) / "backup.npz"
        self.writer: concurrent.futures.ThreadPoolExecutor | None = None
        self.writing: concurrent.futures.Future | None = None

    def state(self) -> list[Any]:
        """The variables a backup holds: the model's (weights, seed generators' states)
        and the optimizer's."""
        return self.model.variables + self.model.optimizer.variables

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.writer = concurrent.futures.ThreadPoolExecutor(1)  # its thread, until the end
        if self.path.exists():
            self.restore()

    def restore(self) -> None:
        """Load the backup into the model and optimizer, and start at its epoch."""
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        with np.load(self.path) as saved:
            values = [saved[f"v{i}"] for i in range(len(saved.files) - 1)]
            epoch = int(saved["epoch"])
        variables = self.state()
        if [v.shape for v in values] != [tuple(v.shape) for v in variables]:
            raise ValueError(f"{self.path} is the backup of another model: delete it to "
                             "train this one from the start")
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        self.model._initial_epoch = epoch  # where fit starts, as Keras's callback does
        self._current_epoch = epoch  # what a backup within the first epoch records

    def _save_model(self) -> None:  # Keras calls it when a backup is due
        values = [variable.numpy() for variable in self.state()]  # a copy, now
        self.wait()  # one write at a time
        assert self.writer is not None  # on_train_begin made it
        self.writing = self.writer.submit(self.write, values, self._current_epoch)

    def write(self, values: list[np.ndarray], epoch: int) -> None:
        """Write a backup: to a scratch file, then renamed over the last one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        with open(scratch, "wb") as file:
            np.savez(file, epoch=epoch, **{f"v{i}": value for i, value in enumerate(values)})
        os.replace(scratch, self.path)

    def wait(self) -> None:
        """Wait for the write under way, if any; raises what it raised."""
        if self.writing is not None:
            self.writing.result()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.writer is not None:
            self.writer.shutdown()  # the last write is done
        self.wait()
        super().on_train_end(logs)  # deletes the backup if delete_checkpoint
