"""`tfspec tune` against the same KerasTuner search written by hand, in one sitting.

Both search examples/iris_tune.tfspec's space (hidden, lr, dropout) with RandomSearch,
the same trials, epochs, batch, seed and data (examples/data/iris.csv, 70/30 split),
each in a fresh process, alternately, `--repeats` times. Printed:

- wall time of the whole command (process start to exit), tfspec / hand-written
  (goal: at most 1.05);
- per-trial overhead: from one trial's end to the next trial's first training step
  (goal: under 0.5 s), median over the trials, for both. It is KerasTuner's own
  between-trial work (saving the trial and oracle, `keras.backend.clear_session()`
  and `gc.collect()`, a new trial from the oracle) plus building the model,
  adapting its Normalization layer, compiling it, and `fit` starting (iterator,
  callbacks); tfspec adds its data check (`check_data`, its labels read once a
  process);
- where the time goes, medians of one run each: start-up (process start to the
  first trial), a trial's setup (its start to its first step), its training (first
  step to end), and the exit (last trial's end to the process's).

tfspec's figures come from the `timing.json` its runtime writes in each trial's folder;
the hand-written script records the same three times with a callback.

    python benchmarks/tune_overhead.py [--trials 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What a Keras user writes for this search, the settings tfspec's program uses
# (steps_per_execution = the batches of an epoch, no XLA for so short a run).
BY_HAND = '''
import csv, json, os, sys, time
import numpy as np
import keras
import keras_tuner
import tensorflow as tf

directory, trials = sys.argv[1], int(sys.argv[2])
with open("data/iris.csv") as f:
    rows = list(csv.DictReader(f))
x = np.array([[float(r[k]) for k in r if k != "species"] for r in rows], "float32")
names = sorted({r["species"] for r in rows})
y = np.array([names.index(r["species"]) for r in rows], "int64")
order = np.random.default_rng(42).permutation(len(x))
cut = int(round(len(x) * 0.7))
train_x, train_y = x[order[:cut]], y[order[:cut]]
val_x, val_y = x[order[cut:]], y[order[cut:]]
train = tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(
    len(train_x), seed=42).batch(16).prefetch(tf.data.AUTOTUNE)
validation = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(16)
batches = int(train.cardinality())
times = {}


class Watch(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        times.setdefault("first_step", time.time())


class Tuner(keras_tuner.RandomSearch):
    def on_trial_begin(self, trial):
        times.clear()
        times["begin"] = time.time()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        times["end"] = time.time()
        super().on_trial_end(trial)
        with open(os.path.join(self.get_trial_dir(trial.trial_id), "timing.json"), "w") as f:
            json.dump(times, f)


def build(hp):
    hidden = hp.Int("hidden", 2, 32, step=2, default=2)
    lr = hp.Float("lr", 0.0001, 0.1, sampling="log", default=0.0001)
    dropout = hp.Choice("dropout", [0.0, 0.1, 0.5], default=0.5)
    keras.utils.set_random_seed(1)
    normalization = keras.layers.Normalization()
    normalization.adapt(train_x)
    model = keras.Sequential([
        keras.Input(shape=(4,)), normalization,
        keras.layers.Dense(hidden, activation="relu"), keras.layers.Dropout(dropout),
        keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=batches)
    return model


tuner = Tuner(build, objective="val_accuracy", max_trials=trials, seed=7,
              directory=directory, project_name="search")
tuner.search(train, validation_data=validation, epochs=10, verbose=0,
             callbacks=[keras.callbacks.TerminateOnNaN(), Watch()])
'''


def records(search_dir: Path) -> list[dict[str, float]]:
    """Each trial's timing.json (begin, first_step, end: seconds since the epoch)."""
    found = [json.loads(p.read_text()) for p in search_dir.glob("trial_*/timing.json")]
    return sorted(found, key=lambda r: r["begin"])


def gaps(trials: list[dict[str, float]]) -> list[float]:
    """Seconds from each trial's end to the next trial's first step."""
    return [b["first_step"] - a["end"] for a, b in zip(trials, trials[1:], strict=False)
            if "first_step" in b]


def phases(trials: list[dict[str, float]], started: float, ended: float) -> list[float]:
    """Start-up, a trial's setup and training (medians), and the exit, in seconds."""
    return [trials[0]["begin"] - started,
            statistics.median(t["first_step"] - t["begin"] for t in trials),
            statistics.median(t["end"] - t["first_step"] for t in trials),
            ended - trials[-1]["end"]]


def run(command: list[str], cwd: Path) -> tuple[float, float]:
    """The command's start and end (seconds since the epoch, as timing.json has them)."""
    start = time.time()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    return start, time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tfspec-tune-bench-"))
    names = ("tfspec", "by hand")
    try:
        (work / "data").mkdir()
        shutil.copy(ROOT / "examples" / "data" / "iris.csv", work / "data")
        shutil.copy(ROOT / "examples" / "iris_tune.tfspec", work / "iris_tune.tfspec")
        (work / "by_hand.py").write_text(BY_HAND)
        walls: dict[str, list[float]] = {name: [] for name in names}
        between: dict[str, list[float]] = {name: [] for name in names}
        parts: dict[str, list[list[float]]] = {name: [] for name in names}
        for i in range(args.repeats):
            shutil.rmtree(work / "runs", ignore_errors=True)
            commands = {
                "tfspec": [sys.executable, "-m", "tfspec", "tune", "iris_tune.tfspec",
                           "--max-trials", str(args.trials)],
                "by hand": [sys.executable, "by_hand.py", str(work / f"hand-{i}"),
                            str(args.trials)],
            }
            for name in names:
                started, ended = run(commands[name], work)
                if name == "tfspec":
                    (search,) = (work / "runs" / "iris-tune").glob("tune-*/search")
                else:
                    search = work / f"hand-{i}" / "search"
                trials = records(search)
                walls[name].append(ended - started)
                between[name] += gaps(trials)
                parts[name].append(phases(trials, started, ended))
        print(f"{args.trials} trials of 10 epochs, {args.repeats} runs each (medians)")
        for name in names:
            start_up, setup, training, exit_ = (
                statistics.median(p) for p in zip(*parts[name], strict=True))
            print(f"  {name:8} wall {statistics.median(walls[name]):6.2f} s   "
                  f"trial end -> next first step {statistics.median(between[name]):.3f} s "
                  f"(max {max(between[name]):.3f} s)")
            print(f"           start-up {start_up:.2f} s, a trial's setup {setup:.3f} s and "
                  f"training {training:.3f} s, exit {exit_:.2f} s")
        ratio = statistics.median(walls["tfspec"]) / statistics.median(walls["by hand"])
        print(f"wall time tfspec / by hand: {ratio:.3f} (goal <= 1.05)")
        print(f"tfspec's per-trial overhead: {statistics.median(between['tfspec']):.3f} s "
              "(goal < 0.5 s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
