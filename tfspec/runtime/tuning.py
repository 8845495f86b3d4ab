"""A program's hyperparameter search, `tune { … }`, on KerasTuner.

A program with a tune section defines `HyperModel(tuning.HyperModel)`: its
`set_params(hp)` sets the tuned params from KerasTuner's `hp`, `build(hp)` builds and
compiles the model as `train()` does, `fit` trains it with the spec's loop. Its
`search(directory)` builds the data once and calls `search` here, which runs
KerasTuner's tuner with the state in `directory`: started again on the same
directory it resumes (KerasTuner's `overwrite=False`); under `KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` it is the chief (the oracle) or
one worker of a distributed search, as KerasTuner documents.

KerasTuner is imported when a search starts, so `tfspec run` of the same program
does not need it. What this adds to KerasTuner's own loop:

- the space is declared by `set_params` alone: no model is built before the first trial;
- a trial's callbacks are the spec's without its backup (KerasTuner runs an
  interrupted trial again from its start), TerminateOnNaN, and the tuner's;
- a trial that fails (its loss became NaN, out of memory, any error in it) is
  recorded as FAILED with its reason, and the search goes on (KerasTuner stops it
  after `max_consecutive_failed_trials` failures in a row, 3 by default);
- one line per finished trial: its number, objective or reason, time and values;
- Ctrl-C stops the search even where Python would swallow it (in garbage
  collection between trials): the next batch raises it again;
- `timing.json` in each trial's folder: when the trial began, its first training
  step and its end (what `benchmarks/tune_overhead.py` reads);
- the objects that exist when the search starts (TensorFlow's, Keras's, the data) are
  set aside from garbage collection (`gc.freeze`), which KerasTuner runs twice a
  trial: a collection then walks only what the trials made.
"""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import keras


class HyperModel:
    """The base of a program's HyperModel: what every trial shares, built once by the
    program's `search` (the strategy, the splits, the batched datasets)."""

    def __init__(self, strategy: Any, splits: dict[str, Any], datasets: dict[str, Any]):
        self.strategy = strategy
        self.splits = splits
        self.datasets = datasets
        # the custom loop's checkpoints for the trial being run (set by the tuner)
        self.checkpoint_dir: str | None = None

    def set_params(self, hp: Any) -> None:
        raise NotImplementedError

    def build(self, hp: Any) -> keras.Model:
        raise NotImplementedError

    def fit(self, hp: Any, model: keras.Model, callbacks: list[keras.callbacks.Callback],
            verbose: int = 0, **kwargs: Any) -> keras.callbacks.History:
        raise NotImplementedError


def trial_callbacks(spec: Sequence[keras.callbacks.Callback],
                    tuner: Sequence[keras.callbacks.Callback]) -> list[keras.callbacks.Callback]:
    """A trial's callbacks: the spec's, less its backup (a trial KerasTuner runs again
    starts over; another trial's backup must not be restored), TerminateOnNaN (a
    diverging trial stops at once), then the tuner's (they read the final logs)."""
    kept = [c for c in spec if not isinstance(c, keras.callbacks.BackupAndRestore)]
    return [*kept, keras.callbacks.TerminateOnNaN(), *tuner]


# Set by Ctrl-C during a search. Python may swallow the KeyboardInterrupt (raised in a
# weakref callback while Keras clears its session between trials): the trial's
# callbacks raise it again at its next batch.
_INTERRUPTED = threading.Event()


def _stop_if_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def _unraisable(hook: Any) -> Any:
    """sys.unraisablehook, quiet about a swallowed Ctrl-C (raised again later)."""

    def quiet(unraisable: Any) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            hook(unraisable)

    return quiet


class _TrialWatch(keras.callbacks.Callback):
    """Records when a trial's first training step begins; stops it on Ctrl-C."""

    def __init__(self, times: dict[str, float]):
        super().__init__()
        self.times = times

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.times.setdefault("first_step", time.time())
        _stop_if_interrupted()


def _hypermodel(program: HyperModel) -> Any:
    """The program's HyperModel as a `keras_tuner.HyperModel` (made here, so that
    importing this module does not import KerasTuner)."""
    import keras_tuner

    class SpecHyperModel(keras_tuner.HyperModel):
        def __init__(self) -> None:
            super().__init__(name="spec")
            self.program = program
            self.times: dict[str, float] = {}

        def declare_hyperparameters(self, hp: Any) -> None:
            program.set_params(hp)

        def build(self, hp: Any) -> keras.Model:
            model = program.build(hp)
            if "tuner/trial_id" in hp.values:
                # Hyperband trains this model on from an earlier trial's weights, which
                # hold its optimizer's state too: Keras loads that only into a built one
                with program.strategy.scope():
                    model.optimizer.build(model.trainable_variables)
            return model

        def fit(self, hp: Any, model: keras.Model, *args: Any,
                callbacks: Sequence[keras.callbacks.Callback] = (), **kwargs: Any) -> Any:
            return program.fit(hp, model, [*callbacks, _TrialWatch(self.times)], *args,
                               **kwargs)

    return SpecHyperModel()


class _Reporting:
    """Mixed into KerasTuner's tuner class (`search` makes the pair)."""

    hypermodel: Any
    oracle: Any

    def _populate_initial_space(self) -> None:
        # KerasTuner's way to override this (AutoKeras does): `set_params` declares
        # every param, so no model needs building to find conditional ones
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def on_trial_begin(self, trial: Any) -> None:
        _stop_if_interrupted()
        self.hypermodel.times.clear()
        self.hypermodel.times["begin"] = time.time()
        super().on_trial_begin(trial)  # type: ignore[misc]

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        from keras_tuner import errors

        trial_dir = self.get_trial_dir(trial.trial_id)  # type: ignore[attr-defined]
        self.hypermodel.program.checkpoint_dir = os.path.join(trial_dir, "checkpoint")
        try:
            results = super().run_trial(trial, *args, **kwargs)  # type: ignore[misc]
        except (errors.FatalError, errors.FailedTrialError):
            raise
        except Exception as exc:  # the trial failed, not the search
            raise errors.FailedTrialError(failure(exc)) from exc
        for history in results if isinstance(results, list) else [results]:
            losses = getattr(history, "history", {}).get("loss", [])
            bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
            if bad is not None:
                raise errors.FailedTrialError(f"the loss became {losses[bad]} in epoch "
                                              f"{bad + 1}")
        return results

    def on_trial_end(self, trial: Any) -> None:
        times = self.hypermodel.times
        times["end"] = time.time()
        super().on_trial_end(trial)  # type: ignore[misc]  # the oracle records it
        directory = self.get_trial_dir(trial.trial_id)  # type: ignore[attr-defined]
        with open(os.path.join(directory, "timing.json"), "w", encoding="utf-8") as f:
            json.dump(times, f)
        ended = self.oracle.get_trial(trial.trial_id)
        print(trial_line(ended.trial_id, ended.status, ended.score, ended.message,
                         ended.hyperparameters.values, self.oracle.objective.name,
                         times["end"] - times["begin"]), flush=True)


def failure(exc: BaseException) -> str:
    """A failed trial's reason, in one line."""
    name = type(exc).__name__
    text = " ".join(str(exc).split()) or name
    if name == "ResourceExhaustedError" or "out of memory" in text.lower():
        return f"out of memory: {text[:200]}"
    return f"{name}: {text[:300]}"


def reason(message: str | None) -> str:
    """The reason KerasTuner recorded for a failed trial: the last line of its
    message (a traceback), without the exception's class."""
    lines = [line for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return "failed"
    last = lines[-1]
    return last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last


def trial_line(trial_id: str, status: str, score: float | None, message: str | None,
               values: dict[str, Any], objective: str, seconds: float) -> str:
    """`trial 03  val_accuracy 0.9556  4.1 s  hidden=24, lr=0.0123`, or the reason
    it failed."""
    params = ", ".join(f"{k}={_value(v)}" for k, v in values.items()
                       if not k.startswith("tuner/"))  # Hyperband's bookkeeping
    if status == "COMPLETED":
        outcome = f"{objective} {_value(score)}"
    else:
        outcome = f"failed ({reason(message)})"
    return f"trial {trial_id}  {outcome}  {seconds:.1f} s  {params}"


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def search(hypermodel: HyperModel, directory: str | os.PathLike, tuner: str, *,
           objective: str, direction: str, max_trials: int | None = None,
           seed: int | None = None, verbose: int = 0, **options: Any) -> Any:
    """Run (or resume) the search in `directory` with KerasTuner's `tuner` class
    ("RandomSearch", "BayesianOptimization", "Hyperband", "GridSearch"); `options`:
    its other arguments. Returns the tuner."""
    import keras_tuner

    base = getattr(keras_tuner, tuner)
    cls = type(tuner, (_Reporting, base), {})
    kwargs = dict(options)
    if tuner != "Hyperband":  # whose trials follow from max_epochs and factor
        kwargs["max_trials"] = max_trials
    found = cls(hypermodel=_hypermodel(hypermodel),
                objective=keras_tuner.Objective(objective, direction), seed=seed,
                directory=str(directory), project_name="search", overwrite=False, **kwargs)
    if tuner == "Hyperband" and max_trials:
        found.oracle.max_trials = max_trials  # the Oracle stops there as for the others
    sys.stdout.flush()
    _INTERRUPTED.clear()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_sigint) if main else None
    hook, sys.unraisablehook = sys.unraisablehook, _unraisable(sys.unraisablehook)
    # KerasTuner collects garbage twice a trial (keras.backend.clear_session): each
    # collection walks every object Python holds, TensorFlow's and Keras's modules too
    # (0.2 s on 2 cores, a tenth of an iris trial). What exists now outlives the
    # search: it is set aside, and a collection walks what trials make
    gc.freeze()
    try:
        found.search(verbose=verbose)
    finally:
        gc.unfreeze()
        sys.unraisablehook = hook
        if main:
            signal.signal(signal.SIGINT, previous)
    return found
