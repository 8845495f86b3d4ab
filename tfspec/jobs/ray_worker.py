"""What each Ray Train worker of `tfspec launch --on ray` runs: `tfspec run` in-process.

Ray Train's `TensorflowTrainer` starts the workers and sets each one's TF_CONFIG (the
cluster's worker addresses, this worker's index = its world rank); `train_loop` then
runs the spec's compiled program exactly as a worker of `tfspec launch` does (the
same runner: the run directory, the per-worker log, errors at spec lines), with two
additions through the runner's `prepare` hook:

- a Keras callback that reports each epoch's metrics with `ray.train.report` (every
  worker reports, as Ray wants; with a digest of the worker's weights, so the driver
  can tell that the replicas stayed in sync);
- a line saying which epoch's checkpoint training resumes from, when Ray restarted
  the workers after a failure (the program's custom loop restores every worker from
  the chief's per-epoch checkpoint, on storage the workers share).

A failure leaves as `WorkerFailed`, which carries the located diagnostic as text
(Ray pickles exceptions back to the driver; a SpecError's diagnostics stay here).
This module imports neither Ray nor TensorFlow at import time: the driver names
`train_loop` without loading them.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from typing import Any

from ..codegen.program import API
from ..lang.diagnostics import SpecError, render_text
from .runner import run


class WorkerFailed(Exception):
    """A worker's run failed; `text` is what `tfspec run` would have printed.

    Not a TfspecError: it carries a worker's error across Ray to the driver, which
    prints its text (jobs/ray.py `_failed`); it never reaches the command line."""

    def __init__(self, text: str, rank: int):
        super().__init__(text, rank)
        self.text = text
        self.rank = rank

    def __str__(self) -> str:
        return self.text


class Prefixed(io.TextIOBase):
    """A text stream that writes each line to `stream` with `prefix` before it."""

    def __init__(self, stream: Any, prefix: str):
        self.stream = stream
        self.prefix = prefix
        self.pending = ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.stream.write(f"{self.prefix}{line}\n")
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False  # the driver prints our lines: one per epoch, no progress bars


def weights_digest(weights: list[Any]) -> str:
    """The first 16 hex digits of the sha256 of the weights' bytes: equal on workers
    whose weights are equal."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def report_callback() -> Any:
    """A Keras callback that reports each epoch's logs with `ray.train.report`."""
    import keras
    import ray.train

    class RayReport(keras.callbacks.Callback):
        """`ray.train.report` at the end of each epoch: its number (1-based), its logs
        as floats, and a digest of this worker's weights (a read of the weights an
        epoch: little next to the epoch's training)."""

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            metrics = {name: float(value) for name, value in (logs or {}).items()}
            metrics["epoch"] = epoch + 1
            metrics["weights_sha256"] = weights_digest(self.model.get_weights())
            ray.train.report(metrics)

    return RayReport()


def prepare(namespace: dict[str, Any]) -> None:
    """Add the report callback to the program's callbacks (where training resumes, the
    program's backup says itself: "resuming after epoch N from DIR")."""
    make_callbacks = namespace[API.make_callbacks]
    namespace[API.make_callbacks] = lambda: [*make_callbacks(), report_callback()]


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train's `train_loop_per_worker`: `tfspec run` of config["spec"] in the shared
    run directory config["run_dir"], with config["overrides"] and
    config["allow_modules"]. Output lines go to the driver as `[worker <rank>] …`."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    # Ray sets this for tf.keras 2 (tf_keras); tfspec's programs are Keras 3
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    # what the program prints; stderr (TensorFlow's and Ray's logs) goes to ray.log
    sys.stdout = Prefixed(sys.__stdout__, f"[worker {rank}] ")
    try:
        run(config["spec"], config["overrides"], tuple(config["allow_modules"]),
            run_dir=config["run_dir"], prepare=prepare)
    except SpecError as exc:
        raise WorkerFailed(render_text(exc.diagnostics, exc.source), rank) from None
    finally:
        sys.stdout.flush()

