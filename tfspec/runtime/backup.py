"""Backup and resume for the `fit` and `on_batch` loops: Keras's BackupAndRestore,
written in the background.

A program's `make_callbacks()` puts a `BackgroundBackupAndRestore` where the spec
has `BackupAndRestore(…)`, or adds one on its own checkpoint folder: a run killed
and started again resumes at the last epoch backed up, with the same weights,
optimizer state and random state an uninterrupted run has there. (The custom loop
checkpoints itself: `training.custom`.)

Beside each backup, `resume.json` says what it is of (the program's `Experiment`:
the spec, its params' values, its data files) and holds the logs of its epochs. A
backup of another experiment is moved aside, not resumed (`Resumable`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

RECORD = "resume.json"  # beside a backup: its experiment, its epoch, their logs

# a run's logs, epoch by epoch: {"loss": [...], "val_loss": [...]}
History = dict[str, list[float]]


class Experiment:
    """What a backup is of, as the program knows it: digests of the spec's sections
    that decide the training (`spec`), the params' values (`--set` included), and the
    data files or folders the data section names (their sizes and modification times,
    read when a backup is written or restored: big files are never read)."""

    def __init__(self, spec: Mapping[str, str], params: Mapping[str, Any] | None = None,
                 data: Iterable[str | os.PathLike] = ()) -> None:
        self.spec = dict(spec)
        self.params = dict(params or {})
        self.data = [pathlib.Path(p) for p in data]

    def identity(self) -> dict[str, Any]:
        """The experiment as JSON values (what resume.json keeps)."""
        return json.loads(json.dumps({
            "spec": self.spec, "params": self.params,
            "data": [[str(path), *_stat(path)] for path in self.data],
        }, default=str))


def _stat(path: pathlib.Path) -> list[int | None]:
    """[size, mtime_ns] of a file; of a folder, its files' total size and latest time;
    [None, None] for what is not there."""
    try:
        if not path.is_dir():
            found = path.stat()
            return [found.st_size, found.st_mtime_ns]
        size, latest = 0, path.stat().st_mtime_ns
        for folder, _, files in os.walk(path):
            for name in files:
                found = os.stat(os.path.join(folder, name))
                size, latest = size + found.st_size, max(latest, found.st_mtime_ns)
        return [size, latest]
    except OSError:
        return [None, None]


def differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """What differs between two experiments' identities, in a few words: `params lr:
    0.001 -> 0.05`, the spec's sections, the data files."""
    shown = json.dumps
    parts = []
    old, new = saved.get("params") or {}, current.get("params") or {}
    params = [f"{name}: {shown(old.get(name))} -> {shown(new.get(name))}"
              for name in [*new, *(n for n in old if n not in new)]
              if old.get(name) != new.get(name)]
    if params:
        parts.append("params " + ", ".join(params))
    old, new = saved.get("spec") or {}, current.get("spec") or {}
    sections = [f"`{name}`" for name in [*new, *(n for n in old if n not in new)]
                if old.get(name) != new.get(name)]
    if sections:
        parts.append("the spec's " + ", ".join(sections))
    old, new = saved.get("data") or [], current.get("data") or []
    if [entry[0] for entry in old] != [entry[0] for entry in new]:
        parts.append("its data files")
    else:
        parts += [f"data {pathlib.Path(entry[0]).name} changed"
                  for before, entry in zip(old, new, strict=True) if before != entry]
    return "; ".join(parts) or "another record"


def digest(value: Any) -> str:
    """A short digest of a JSON value (an experiment's identity)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclasses.dataclass(frozen=True)
class Resumed:
    """Where a run resumed: after `epoch` epochs (whose logs are `history`), from the
    backup in `directory`."""

    epoch: int
    history: History
    directory: str


class Resumable:
    """A backup folder and its record (resume.json) for a run of `experiment` (None:
    not known, every backup resumes). `owner`: whether this process may move a stale
    backup aside and write the record (a multi-worker job's chief)."""

    def __init__(self, directory: str | os.PathLike, experiment: Experiment | None,
                 owner: bool = True) -> None:
        self.directory = pathlib.Path(directory)
        self.experiment = experiment
        self.owner = owner
        self.identity = experiment.identity() if experiment is not None else None

    def record(self) -> dict[str, Any] | None:
        """resume.json, or None (none, unreadable: a backup older than the records)."""
        try:
            record = json.loads((self.directory / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def may_resume(self) -> bool:
        """Whether the backup in the folder is this experiment's (or of one not known).
        Another experiment's is moved aside, to `<folder>.<its digest>`, and the line
        printed says so: this run starts from the first epoch."""
        record = self.record()
        saved = (record or {}).get("experiment")
        if self.identity is None or saved is None or saved == self.identity:
            return True
        where = ""
        if self.owner:  # the others start afresh too: the chief's backup is not theirs
            aside = self.directory.with_name(f"{self.directory.name}.{digest(saved)}")
            shutil.rmtree(aside, ignore_errors=True)  # an older backup of that experiment
            self.directory.rename(aside)
            where = f"; moved to {aside}"
        print(f"not resuming: the backup in {self.directory} is of another experiment "
              f"({differences(saved, self.identity)}){where}", flush=True)
        return False

    def resumed(self, epoch: int) -> Resumed:
        """The backup restored at `epoch`: says so, and returns the logs of its epochs
        (the record's, cut at `epoch`: it is written just before the backup)."""
        print(f"resuming after epoch {epoch} from {self.directory}", flush=True)
        history = (self.record() or {}).get("history") or {}
        return Resumed(epoch, {k: list(v)[:epoch] for k, v in history.items()},
                       str(self.directory))

    def write(self, epoch: int, history: History, directory: str | os.PathLike | None = None
              ) -> None:
        """Write the record of a backup of `epoch` epochs: before the backup, so that a
        kill between the two leaves a record of more epochs, never fewer."""
        if not self.owner:
            return
        folder = pathlib.Path(directory) if directory is not None else self.directory
        folder.mkdir(parents=True, exist_ok=True)
        scratch = folder / f"{RECORD}.partial"
        scratch.write_text(json.dumps({"experiment": self.identity, "epoch": epoch,
                                       "history": history}, default=float), encoding="utf-8")
        os.replace(scratch, folder / RECORD)


def add_logs(history: History, logs: Mapping[str, Any] | None) -> None:
    """Add an epoch's logs (numbers, tensors) to `history`."""
    for key, value in (logs or {}).items():
        try:
            history.setdefault(key, []).append(float(value))
        except (TypeError, ValueError):
            continue  # not a number: History keeps it, a record cannot


def resumed_of(callbacks: Sequence[keras.callbacks.Callback]) -> Resumed | None:
    """Where the backup among `callbacks` resumed training, if it did."""
    return next((c.resumed for c in callbacks
                 if isinstance(c, BackgroundBackupAndRestore) and c.resumed), None)


def last(callbacks: Sequence[keras.callbacks.Callback]) -> list[keras.callbacks.Callback]:
    """`callbacks` with the backups last: a backup then holds what every other callback
    did at the epoch's end (ReduceLROnPlateau's new learning rate, its logs)."""
    backups = [c for c in callbacks if isinstance(c, keras.callbacks.BackupAndRestore)]
    return [c for c in callbacks if c not in backups] + backups


class BackgroundBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, written in the background. When an epoch ends (or
    every `save_freq` batches) the variables of the model (seed generators included)
    and of the optimizer are copied, and a thread writes the copy to `backup.npz` while
    training goes on; the file is replaced whole, so a kill leaves the last backup.
    `experiment`: what the run is (the program's EXPERIMENT), recorded beside the
    backup; a backup of another experiment is moved aside instead of restored."""

    def __init__(self, backup_dir: str | os.PathLike, save_freq: str | int = "epoch",
                 double_checkpoint: bool = False, delete_checkpoint: bool = True, *,
                 experiment: Experiment | None = None) -> None:
        super().__init__(str(backup_dir), save_freq, double_checkpoint, delete_checkpoint)
        self.path = pathlib.Path(backup_dir) / "backup.npz"
        self.writer: concurrent.futures.ThreadPoolExecutor | None = None
        self.writing: concurrent.futures.Future | None = None
        self.resumable = Resumable(backup_dir, experiment)
        self.history: History = {}  # the logs of the epochs trained (and resumed)
        self.resumed: Resumed | None = None

    def state(self) -> list[Any]:
        """The variables a backup holds: the model's (weights, seed generators' states)
        and the optimizer's."""
        return self.model.variables + self.model.optimizer.variables

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.writer = concurrent.futures.ThreadPoolExecutor(1)  # its thread, until the end
        self.history, self.resumed = {}, None
        if self.path.exists() and self.resumable.may_resume():
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
        self.resumed = self.resumable.resumed(epoch)
        self.history = {k: list(v) for k, v in self.resumed.history.items()}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        add_logs(self.history, logs)  # before the backup Keras's callback writes now
        super().on_epoch_end(epoch, logs)

    def _save_model(self) -> None:  # Keras calls it when a backup is due
        values = [variable.numpy() for variable in self.state()]  # a copy, now
        self.wait()  # one write at a time
        assert self.writer is not None  # on_train_begin made it
        history = {k: list(v) for k, v in self.history.items()}  # the epochs done, now
        self.writing = self.writer.submit(self.write, values, self._current_epoch, history)

    def write(self, values: list[np.ndarray], epoch: int, history: History | None = None
              ) -> None:
        """Write a backup: its record, then the backup to a scratch file, renamed over
        the last one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resumable.write(epoch, history or {})
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
