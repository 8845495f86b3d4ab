"""Does the program tfspec generates train as fast as Keras written by hand?
Prints figures; asserts nothing.

    python benchmarks/train_overhead.py [--examples N] [--cnn-examples N] [--rounds R]
                                        [--cnn-rounds R] [--epochs E] [--only mlp|cnn]

Two models train on the same fixed synthetic data (N examples of float32[28, 28, 1]
and int64 labels 0..9, written once to an `.npz` in a temporary folder; the CNN,
about 8x the compute per example, trains on the first --cnn-examples of them):

  mlp  Flatten -> Dense(512, relu) -> Dense(512, relu) -> Dense(10, softmax), batch 256
  cnn  Conv2D(32, 3, relu) -> MaxPooling2D -> Conv2D(64, 3, relu) -> MaxPooling2D
       -> Flatten -> Dense(10, softmax), batch 128

both with Adam(0.001), sparse categorical cross-entropy and the accuracy metric.
The contenders, in examples/s of training:

(1) generated: a spec (npz source, batch, `shuffle = true`, `epochs = 30`: the job
    the program's own decisions see) compiled with `tfspec.codegen.program.compile_file`
    and loaded with `load_program`; a callback stops each run after its E epochs.
    Its own `train(verbose=0)` runs first (the warm-up: tracing, caches); the timed
    runs repeat the program's own `model.fit(...)` call, recorded as `train()` made
    it, on the same model and datasets ("gen fit, ..."). "default spec" is tfspec's
    defaults (which are 32 steps per execution; for arrays in memory, a pipeline
    that gathers each batch's rows; and `jit_compile = "auto"`, which on a CPU-only
    machine turns XLA on for a model of dense layers trained for 2,000 steps or
    more, as the MLP's 30 epochs of 79 batches are); "spe 1" sets
    `steps_per_execution = 1` (Keras's default, to show what that default is
    worth); "jit off" sets `jit_compile = false` for the MLP (what its XLA is
    worth), "jit" `jit_compile = true` for the CNN (XLA makes it slower on CPU,
    which is why the default leaves it off); "no backup" leaves out the BackupAndRestore the program
    adds (every epoch it copies the weights and the optimizer's state, which a
    thread writes while the next epoch trains: that is its cost).
(a) plain: `model.fit(x, y, batch_size=B)` on the NumPy arrays, Keras's defaults.
(b) by hand, tuned: `model.fit` on a hand-written tf.data pipeline, compiled with
    `steps_per_execution=32` (and `jit_compile=True` for the MLP), two pipelines:
    "guide" (from_tensor_slices -> cache -> shuffle(all) -> batch -> prefetch, the
    tf.data guide's recipe), "gather" (shuffled indices -> batch -> one
    `tf.gather` per batch -> prefetch) and "gather, no autotune" (the same with
    tf.data's autotuner off, which on 2 cores avoids epochs a third slower), and
    "numpy" (`fit(x, y, batch_size=B)` on the arrays, Keras's own array adapter);
    the fastest is the baseline.
(c) `loop = "custom"` (the generated tf.function GradientTape loop) against
    `loop = "fit"`, same spec otherwise. The custom loop cannot be re-entered, so
    both are timed the same way here: each round is a whole `train()` of 1 + E
    epochs whose first epoch is not counted ("train(): ..."; a fresh model, a new
    tf.function and new pipelines every round).
(d) the MLP's training FLOP rate, 6 x (784*512 + 512*512 + 512*10) FLOPs per
    example (2 per multiply-add, x3 for forward + backward), against NumPy's float32
    matmul rate measured in the same run (3072^2 matmuls, best of several).

Each round runs E epochs of every contender, the order rotating from round to
round; an epoch is timed from `on_epoch_begin` to `on_epoch_end` (which waits for
the step results). Rates are medians over the rounds, and every ratio is also given
per round, since contenders of one round share whatever else loads the machine
(the CPU that other processes took during each round is printed). Verdicts use the
median of the per-round ratios.

Goals: default spec >= 1.3x plain; default spec >= 0.97x the best by hand (tfspec's
defaults are its tuning); custom loop >= 0.95x fit; the MLP's default spec >= 70 % of
NumPy's matmul GFLOP/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfspec.codegen.program import compile_file  # noqa: E402
from tfspec.jobs.build import load_program, quiet_tensorflow  # noqa: E402

CLASSES = 10
LR = 0.001
SPE = 32  # steps_per_execution of the hand-tuned fits (and tfspec's default)
# The job the generated contenders' spec describes: `epochs = 30`, which is what the
# program's own decisions see (XLA pays for its compile time on long runs of dense
# models: `jit_compile = "auto"`). Each timed run stops after its E epochs.
JOB_EPOCHS = 30
# forward multiply-adds of the MLP's dense layers, per example
MLP_MACS = 784 * 512 + 512 * 512 + 512 * CLASSES
MLP_FLOPS = 2 * MLP_MACS * 3  # 2 FLOPs per multiply-add, x3 for forward + backward

GOAL_PLAIN = 1.3
GOAL_HAND = 0.97
GOAL_CUSTOM = 0.95
GOAL_PEAK = 0.70

MODELS = {
    "mlp": {
        "batch": 256,
        "jit": True,  # XLA fuses the dense layers and Adam's updates: faster on CPU
        "layers": """\
  Flatten()
  Dense(512, activation = "relu")
  Dense(512, activation = "relu")
  Dense(10, activation = "softmax")""",
    },
    "cnn": {
        "batch": 128,
        "jit": False,  # XLA's CPU convolutions are slower than oneDNN's
        "layers": """\
  Conv2D(32, 3, activation = "relu")
  MaxPooling2D()
  Conv2D(64, 3, activation = "relu")
  MaxPooling2D()
  Flatten()
  Dense(10, activation = "softmax")""",
    },
}

SPEC = """\
tfspec 1
name "{name}"

param epochs = {epochs}

data {{
  source = npz("{data}", x = "images", y = "labels")
  batch = {batch}
  shuffle = true
}}

model Net sequential {{
  input image: float32[28, 28, 1]
{layers}
}}

train {{
  loop = "{loop}"
  optimizer = Adam(learning_rate = {lr})
  loss = "sparse_categorical_crossentropy"
  metrics = ["accuracy"]
  epochs = epochs
{options}}}
"""


def keras_model(keras: Any, kind: str) -> Any:
    """The same network as the spec's `model`, written by hand."""
    layers = keras.layers
    if kind == "mlp":
        body = [layers.Flatten(), layers.Dense(512, activation="relu"),
                layers.Dense(512, activation="relu")]
    else:
        body = [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Flatten()]
    return keras.Sequential([keras.Input((28, 28, 1)), *body,
                             layers.Dense(CLASSES, activation="softmax")])


def compile_by_hand(keras: Any, model: Any, **options: Any) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], **options)


# -- timing --------------------------------------------------------------------------------


def busy_seconds() -> float | None:
    """CPU-seconds all processes have used (Linux's /proc/stat), None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def timer_callback(keras: Any) -> Any:
    """A callback that times each epoch: wall seconds, CPU-seconds this process used,
    CPU-seconds the other processes used."""

    class EpochTimer(keras.callbacks.Callback):
        # epoch hooks only: Keras keeps dispatching its batch hooks asynchronously
        def __init__(self):
            super().__init__()
            self.epochs: list[tuple[float, float, float | None]] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._busy, self._cpu = busy_seconds(), time.process_time()
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._start
            busy, cpu = busy_seconds(), time.process_time() - self._cpu
            others = None if busy is None or self._busy is None else max(
                0.0, busy - self._busy - cpu)
            self.epochs.append((seconds, cpu, others))

    return EpochTimer()


def stop_after(keras: Any, epochs: int) -> Any:
    """A callback that ends training after `epochs` epochs (of the spec's JOB_EPOCHS)."""

    class StopAfter(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = 0

        def on_epoch_end(self, epoch, logs=None):
            self.seen += 1
            if self.seen >= epochs:
                self.model.stop_training = True

    return StopAfter()


class Contender:
    """One way of training: `warm()` once, then `run()` E epochs per round."""

    def __init__(self, name: str, keras: Any):
        self.name = name
        self.timer = timer_callback(keras)
        self.rates: list[float] = []
        self.cores: list[float] = []  # cores this process kept busy, per round
        self.others: list[float] = []  # cores that other processes used, per round

    def warm(self) -> None:
        raise NotImplementedError

    def train(self, epochs: int) -> None:
        raise NotImplementedError

    def timed_epochs(self, epochs: int) -> list[tuple[float, float, float | None]]:
        self.timer.epochs = []
        self.train(epochs)
        return self.timer.epochs[-epochs:]

    def run(self, examples: int, epochs: int) -> None:
        timed = self.timed_epochs(epochs)
        seconds = sum(s for s, _, _ in timed)
        self.rates.append(examples * epochs / seconds)
        self.cores.append(sum(c for _, c, _ in timed) / seconds)
        if all(o is not None for _, _, o in timed):
            self.others.append(sum(o for _, _, o in timed) / seconds)


class Generated(Contender):
    """A spec compiled by tfspec; its program's own `train()` and `model.fit` call."""

    def __init__(self, name: str, keras: Any, folder: Path, kind: str, data: str,
                 epochs: int, loop: str = "fit", spe: int | None = None,
                 jit: bool | None = None, whole: bool = False, backup: bool = True):
        super().__init__(name, keras)
        # whole: each round is a whole train() of 1 + E epochs, the first not timed
        # (the custom loop cannot be re-entered; a `fit` timed so is its like)
        self.whole = whole or loop != "fit"
        options = "".join([f"  steps_per_execution = {spe}\n" if spe else "",
                           f"  jit_compile = {str(jit).lower()}\n" if jit is not None else ""])
        self.epochs = epochs + self.whole  # then stopped: the spec says JOB_EPOCHS
        stem = (f"{kind}_{loop}_spe{spe or 'auto'}_jit{jit}_{'whole' if self.whole else 'fit'}"
                f"{'' if backup else '_nobackup'}")
        stem = stem.lower()
        self.spec = SPEC.format(name=stem.replace("_", "-"), epochs=JOB_EPOCHS, data=data,
                                batch=MODELS[kind]["batch"], layers=MODELS[kind]["layers"],
                                loop=loop, lr=LR, options=options)
        path = folder / f"{stem}.tfspec"
        path.write_text(self.spec)
        compiled = compile_file(path)
        self.source = compiled.source
        self.namespace = load_program(compiled)
        own = self.namespace["make_callbacks"]
        # backup=False: without the BackupAndRestore the program adds, to measure its cost
        self.namespace["make_callbacks"] = lambda: [
            *(c for c in own() if backup or not isinstance(c, keras.callbacks.BackupAndRestore)),
            self.timer,
            stop_after(keras, self.epochs),
        ]
        self.fit_call: tuple[Callable[..., Any], tuple, dict] | None = None
        if not self.whole:  # record the program's model.fit call as train() makes it
            compile_model = self.namespace["compile_model"]

            def recording_compile_model(model: Any, *args: Any) -> None:
                compile_model(model, *args)
                fit = model.fit

                def recorded_fit(*args: Any, **kwargs: Any) -> Any:
                    self.fit_call = (fit, args, kwargs)
                    return fit(*args, **kwargs)

                model.fit = recorded_fit

            self.namespace["compile_model"] = recording_compile_model

    def warm(self) -> None:
        self.namespace["train"](verbose=0)

    def train(self, epochs: int) -> None:
        if self.whole:
            self.namespace["train"](verbose=0)
            return
        assert self.fit_call is not None, "train() did not call model.fit"
        fit, args, kwargs = self.fit_call
        assert kwargs.get("epochs") == JOB_EPOCHS and epochs == self.epochs, kwargs
        fit(*args, **kwargs)


class Plain(Contender):
    """(a) `model.fit` on NumPy arrays, Keras's defaults (or `compile` options)."""

    def __init__(self, name: str, keras: Any, kind: str, images: Any, labels: Any,
                 **options: Any):
        super().__init__(name, keras)
        self.kind, self.images, self.labels = kind, images, labels
        self.model = keras_model(keras, kind)
        compile_by_hand(keras, self.model, **options)

    def warm(self) -> None:
        self.train(1)

    def train(self, epochs: int) -> None:
        self.model.fit(self.images, self.labels, batch_size=MODELS[self.kind]["batch"],
                       epochs=epochs, callbacks=[self.timer], verbose=0)


class ByHand(Contender):
    """(b) a hand-tuned tf.data pipeline and `compile` options."""

    def __init__(self, name: str, tf: Any, keras: Any, kind: str, images: Any, labels: Any,
                 pipeline: str, jit: bool):
        super().__init__(name, keras)
        batch, count = MODELS[kind]["batch"], len(labels)
        if pipeline == "guide":
            data = tf.data.Dataset.from_tensor_slices((images, labels)).cache()
            data = data.shuffle(count).batch(batch, num_parallel_calls=tf.data.AUTOTUNE)
        else:  # gather: shuffle indices, and copy each batch with one gather
            x, y = tf.constant(images), tf.constant(labels)
            data = tf.data.Dataset.range(count).shuffle(count).batch(batch)
            data = data.map(lambda i: (tf.gather(x, i), tf.gather(y, i)),
                            num_parallel_calls=tf.data.AUTOTUNE)
        self.dataset = data.prefetch(tf.data.AUTOTUNE)
        if pipeline == "gather, no autotune":  # as tfspec generates it for arrays
            options = tf.data.Options()
            options.autotune.enabled = False
            self.dataset = self.dataset.with_options(options)
        self.model = keras_model(keras, kind)
        compile_by_hand(keras, self.model, steps_per_execution=SPE, jit_compile=jit)

    def warm(self) -> None:
        self.train(1)

    def train(self, epochs: int) -> None:
        self.model.fit(self.dataset, epochs=epochs, shuffle=False, callbacks=[self.timer],
                       verbose=0)


# -- measuring -----------------------------------------------------------------------------


def matmul_gflops(np: Any, size: int = 3072, repeats: int = 5) -> float:
    """NumPy's float32 matmul rate, best of `repeats`."""
    rng = np.random.default_rng(1)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b  # threads up, pages touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def race(contenders: dict[str, Contender], examples: int, rounds: int, epochs: int,
         between: Callable[[], None] = lambda: None) -> None:
    for contender in contenders.values():
        start = time.perf_counter()
        contender.warm()
        print(f"    warm-up {contender.name:30s} {time.perf_counter() - start:5.1f} s",
              flush=True)
    names = list(contenders)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            contenders[name].run(examples, epochs)
        between()
        others = [c.others[-1] for c in contenders.values() if c.others]
        load = f" [other processes: {statistics.mean(others):.1f} cores]" if others else ""
        print(f"    round {round_ + 1}/{rounds}{load}: " + ", ".join(
            f"{n} {contenders[n].rates[-1]:,.0f}" for n in names), flush=True)


def median(contender: Contender) -> float:
    return statistics.median(contender.rates)


def paired(top: Contender, bottom: Contender) -> list[float]:
    return [t / b for t, b in zip(top.rates, bottom.rates, strict=True)]


def ratio_line(label: str, top: Contender, bottom: Contender, goal: float | None) -> None:
    per_round = paired(top, bottom)
    ratio = statistics.median(per_round)
    verdict = "" if goal is None else (
        f"  goal >= {goal:.2f}: {'ok' if ratio >= goal else 'MISSED'}")
    print(f"  {label:46s} {ratio:5.2f}x{verdict}")
    print(f"  {'':46s} (ratio of medians {median(top) / median(bottom):.2f}; per round: "
          + " ".join(f"{r:.2f}" for r in per_round) + ")")


def run_model(kind: str, folder: Path, data: str, images: Any, labels: Any, rounds: int,
              epochs: int, tf: Any, keras: Any, between: Callable[[], None]) -> dict[str, Any]:
    jit = MODELS[kind]["jit"]  # XLA helps this model on CPU (the default spec's choice too)
    default = "gen fit, default spec"
    plain = "plain fit(x, y)"

    def gen(name: str, **options: Any) -> Generated:
        return Generated(name, keras, folder, kind, data, epochs, **options)

    contenders: list[Contender] = [
        gen(default),
        gen("gen fit, spe 1", spe=1),
        gen("gen fit, default, no backup", backup=False),
        gen("gen fit, jit off", jit=False) if jit else gen("gen fit, jit", jit=True),
        # (c): whole train() runs, fit against custom
        gen("train(): fit", whole=True),
        gen("train(): custom", loop="custom"),
        Plain(plain, keras, kind, images, labels),
    ]
    hand = "jit" if jit else "no jit"
    for pipeline in ("guide", "gather", "gather, no autotune"):
        contenders.append(ByHand(f"hand {pipeline}, spe 32 {hand}", tf, keras, kind, images,
                                 labels, pipeline, jit))
    contenders.append(Plain(f"hand numpy, spe 32 {hand}", keras, kind, images, labels,
                            steps_per_execution=SPE, jit_compile=jit))
    c = {contender.name: contender for contender in contenders}

    print(f"\n{kind}: {len(labels):,} examples, batch {MODELS[kind]['batch']}, "
          f"{epochs} epoch(s) per round, {rounds} rounds", flush=True)
    race(c, len(labels), rounds, epochs, between)

    print(f"\n  {kind} examples/s of training (median of {rounds} rounds, min .. max; "
          "CPU cores this process used, median):")
    for name, contender in c.items():
        r = sorted(contender.rates)
        print(f"    {name:34s} {median(contender):9,.0f}  ({r[0]:,.0f} .. {r[-1]:,.0f})  "
              f"{statistics.median(contender.cores):.2f} cores")
    hands = [n for n in c if n.startswith("hand ")]
    best = max(hands, key=lambda n: median(c[n]))
    print(f"  best by hand: {best}")
    ratio_line("(a) default spec / plain fit", c[default], c[plain], GOAL_PLAIN)
    ratio_line("(b) default spec / best by hand", c[default], c[best], GOAL_HAND)
    ratio_line("(c) train(): custom / fit", c["train(): custom"], c["train(): fit"],
               GOAL_CUSTOM)
    ratio_line("    best by hand / plain fit (what tuning can reach)", c[best], c[plain], None)
    ratio_line("    default spec / spe 1", c[default], c["gen fit, spe 1"], None)
    ratio_line("    default spec / default without its backup", c[default],
               c["gen fit, default, no backup"], None)
    if jit:
        ratio_line("    default spec / jit off (what its XLA is worth)", c[default],
                   c["gen fit, jit off"], None)
        ratio_line("    jit off / plain fit", c["gen fit, jit off"], c[plain], None)
    else:
        ratio_line("    default spec / jit (XLA, which the default leaves off)", c[default],
                   c["gen fit, jit"], None)
    for other in hands:
        if other != best:
            ratio_line(f"    default spec / {other}", c[default], c[other], None)
    ratio_line("    train(): fit / gen fit (re-entered)", c["train(): fit"], c[default], None)
    return {"contenders": c, "best": best}


def excerpt(source: str, start: str, end: str) -> str:
    if start not in source:
        return ""
    body = source[source.index(start):]
    return body[:body.index(end)].rstrip() if end in body else body.rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--cnn-examples", type=int, default=8_000)
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds, MLP")
    parser.add_argument("--cnn-rounds", type=int, default=4, help="timed rounds, CNN")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per round")
    parser.add_argument("--only", choices=["mlp", "cnn"])
    args = parser.parse_args()

    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    began = time.perf_counter()
    print(f"python {sys.version.split()[0]}, tensorflow {tf.__version__}, "
          f"keras {keras.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    peaks = [matmul_gflops(np)]
    print(f"NumPy float32 matmul: {peaks[0]:.0f} GFLOP/s (3072^2, best of 5; measured "
          "again after every round: the best of all is the peak)", flush=True)

    results = {}
    with tempfile.TemporaryDirectory(prefix="tfspec-train-") as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        images = rng.random((args.examples, 28, 28, 1), dtype=np.float32)
        labels = rng.integers(0, CLASSES, size=args.examples, dtype=np.int64)
        np.savez(folder / "data.npz", images=images, labels=labels)
        cnn = min(args.cnn_examples, args.examples)
        np.savez(folder / "data_cnn.npz", images=images[:cnn], labels=labels[:cnn])
        for kind, data, count, rounds in (("mlp", "data.npz", args.examples, args.rounds),
                                          ("cnn", "data_cnn.npz", cnn, args.cnn_rounds)):
            if args.only in (None, kind):
                results[kind] = run_model(
                    kind, folder, data, images[:count], labels[:count], rounds, args.epochs,
                    tf, keras, lambda: peaks.append(matmul_gflops(np, repeats=2)))

    peaks.append(matmul_gflops(np))
    peak = max(peaks)  # other processes may slow any one measurement down
    if "mlp" in results:
        c, default = results["mlp"]["contenders"], "gen fit, default spec"
        print(f"\n(d) MLP training FLOP rate ({MLP_FLOPS / 1e6:.2f} MFLOP per example) "
              f"against NumPy's matmul, {peak:.0f} GFLOP/s (best of {len(peaks)} measurements, "
              f"median {statistics.median(peaks):.0f}):")
        for name in (default, results["mlp"]["best"]):
            rates = sorted(c[name].rates)
            gflops = median(c[name]) * MLP_FLOPS / 1e9
            verdict = (f"  goal >= {GOAL_PEAK:.0%}: "
                       f"{'ok' if gflops / peak >= GOAL_PEAK else 'MISSED'}"
                       if name == default else "")
            print(f"  {name:34s} {gflops:6.1f} GFLOP/s = {gflops / peak:4.0%}{verdict}"
                  f"  (best round {rates[-1] * MLP_FLOPS / 1e9 / peak:.0%})")

    for kind, result in results.items():
        default = result["contenders"]["gen fit, default spec"].source
        print(f"\n{kind}, default spec: the generated `compile_model` and fit call:\n"
              + excerpt(default, "def compile_model(", "\n\n\n") + "\n"
              + excerpt(default, "    history = model.fit(", "    return"))
    if results:
        source = next(iter(results.values()))["contenders"]["gen fit, default spec"].source
        print("\nthe generated pipeline (both models):\n"
              + excerpt(source, "def pipeline(", "\n\n\n"))
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
