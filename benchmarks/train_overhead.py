"""Does the program tfspec generates train as fast as Keras written by hand?
Prints figures; asserts nothing.

    python benchmarks/train_overhead.py [--examples N] [--rounds R] [--cnn-rounds R]
                                        [--epochs E] [--only mlp|cnn] [--cnn-jit]

Two models train on the same fixed synthetic data (N examples of float32[28, 28, 1]
and int64 labels 0..9, written once to an `.npz` in a temporary folder):

  mlp  Flatten -> Dense(512, relu) -> Dense(512, relu) -> Dense(10, softmax), batch 256
  cnn  Conv2D(32, 3, relu) -> MaxPooling2D -> Conv2D(64, 3, relu) -> MaxPooling2D
       -> Flatten -> Dense(10, softmax), batch 128

both with Adam(0.001), sparse categorical cross-entropy and the accuracy metric.
The contenders, in examples/s of training:

(1) generated: a spec (npz source, batch, `shuffle = true`, epochs) compiled with
    `tfspec.compiler.compile_file`, loaded with `load_program`, and trained by the
    program's own `train(verbose=0)` -- with tfspec's defaults ("default spec"),
    and with the `train` options that make it fast ("tuned spec":
    `steps_per_execution = 32`, plus `jit_compile = true` for the MLP; XLA makes
    convolutions slower on CPU, see --cnn-jit). `loop = "custom"` is the
    generated tf.function/GradientTape loop of the same spec.
(a) plain: `model.fit(x, y, batch_size=B)` on the NumPy arrays, Keras's defaults.
(b) by hand, tuned: `model.fit` on a hand-written tf.data pipeline with
    `steps_per_execution=32` (and `jit_compile=True` for the MLP), two pipelines:
    "guide" (from_tensor_slices -> cache -> shuffle(N) -> batch -> prefetch, the
    tf.data guide's recipe) and "gather" (shuffled indices -> batch -> one
    `tf.gather` per batch -> prefetch); the faster one is the baseline.
(d) the MLP's training FLOP rate, 6 x (784*512 + 512*512 + 512*10) FLOPs per
    example (2 per multiply-add, x3 for forward + backward), against NumPy's float32
    matmul rate measured in the same run (large square matmuls, best of several).

How it is timed: every contender trains in its own thread for 1 + R x E epochs
(one `fit`/`train()` call, as a user runs it), paused between epochs by a
callback, so the main thread can run the contenders' epochs in rounds: epoch 0
(tracing, XLA compilation, filling caches) is a warm-up, then each round runs E
epochs of every contender in turn, the order rotating from round to round. An
epoch is timed from `on_epoch_begin` to `on_epoch_end` (which waits for the
step's results). Rates are medians over the rounds; each ratio is also given per
round, since the contenders of one round share whatever else loads the machine.

Goals: default spec >= 1.3x plain; tuned spec >= 0.97x the best by hand; custom
loop >= 0.95x fit (same spec options); MLP >= 70 % of NumPy's matmul GFLOP/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfspec.build import load_program, quiet_tensorflow  # noqa: E402
from tfspec.compiler import compile_file  # noqa: E402

CLASSES = 10
LR = 0.001
SPE = 32  # steps_per_execution of the tuned spec and of the hand-tuned fits
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
        "layers": """\
  Flatten()
  Dense(512, activation = "relu")
  Dense(512, activation = "relu")
  Dense(10, activation = "softmax")""",
    },
    "cnn": {
        "batch": 128,
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
  source = npz("data.npz", x = "images", y = "labels")
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


# -- pacing: every contender trains in a thread that waits for its turn each epoch --------


class Contender:
    """One way of training, run in its own thread for a fixed number of epochs.

    `body(callback, epochs)` trains for `epochs` epochs with `callback` among its
    callbacks; the callback holds each epoch until the main thread calls `epoch()`.
    """

    def __init__(self, name: str, body: Callable[[Any, int], None], keras: Any):
        self.name = name
        self.body = body
        self.rates: list[float] = []
        self.error: BaseException | None = None
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._seconds = 0.0
        self._finished = False
        self._thread: threading.Thread | None = None
        self.callback = self._callback(keras)

    def _callback(self, keras: Any) -> Any:
        contender = self

        class Pace(keras.callbacks.Callback):
            # epoch hooks only: Keras keeps dispatching batch hooks asynchronously
            def on_epoch_begin(self, epoch, logs=None):
                contender._go.acquire()
                contender._cpu = time.process_time()
                contender._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                contender._seconds = time.perf_counter() - contender._start
                contender.cpu_seconds = time.process_time() - contender._cpu
                contender._done.release()

        return Pace()

    def _run(self, epochs: int) -> None:
        try:
            self.body(self.callback, epochs)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self._finished = True
            self._done.release()

    def start(self, epochs: int) -> float:
        """Start training; runs the warm-up epoch; returns its seconds."""
        self._thread = threading.Thread(target=self._run, args=(epochs,), daemon=True,
                                        name=self.name)
        self._thread.start()
        return self.epoch()

    def epoch(self) -> float:
        """Let the thread train one epoch; its seconds."""
        if self._finished:
            raise RuntimeError(f"{self.name}: training ended early") from self.error
        self._go.release()
        self._done.acquire()
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed: {self.error!r}") from self.error
        return self._seconds

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed: {self.error!r}") from self.error


# -- the contenders ------------------------------------------------------------------------


def spec_options(spe: int | None, jit: bool | None) -> str:
    lines = []
    if spe is not None:
        lines.append(f"  steps_per_execution = {spe}\n")
    if jit is not None:
        lines.append(f"  jit_compile = {'true' if jit else 'false'}\n")
    return "".join(lines)


@dataclass
class Generated:
    """A compiled spec's program: `train()` runs with the pacing callback added."""

    folder: Path
    kind: str
    loop: str
    spe: int | None = None
    jit: bool | None = None
    source: str = field(default="", init=False)

    def spec_text(self, epochs: int) -> str:
        name = f"{self.kind}-{self.loop}-spe{self.spe or 'default'}-jit{self.jit}".lower()
        return SPEC.format(name=name, epochs=epochs, batch=MODELS[self.kind]["batch"],
                           layers=MODELS[self.kind]["layers"], loop=self.loop, lr=LR,
                           options=spec_options(self.spe, self.jit))

    def prepare(self, epochs: int) -> Callable[[Any, int], None]:
        name = f"{self.kind}_{self.loop}_{self.spe}_{self.jit}"
        path = self.folder / f"{name}.tfspec"
        path.write_text(self.spec_text(epochs))
        compiled = compile_file(path)
        self.source = compiled.source
        namespace = load_program(compiled)

        def body(callback: Any, count: int) -> None:
            assert count == namespace["EPOCHS"], (count, namespace["EPOCHS"])
            own = namespace["make_callbacks"]
            namespace["make_callbacks"] = lambda: [*own(), callback]
            namespace["train"](verbose=0)

        return body


def plain(keras: Any, kind: str, images: Any, labels: Any) -> Callable[[Any, int], None]:
    """(a) `model.fit` on NumPy arrays, Keras's defaults."""
    def body(callback: Any, epochs: int) -> None:
        model = keras_model(keras, kind)
        compile_by_hand(keras, model)
        model.fit(images, labels, batch_size=MODELS[kind]["batch"], epochs=epochs,
                  callbacks=[callback], verbose=0)
    return body


def by_hand(tf: Any, keras: Any, kind: str, images: Any, labels: Any, pipeline: str,
            jit: bool) -> Callable[[Any, int], None]:
    """(b) a hand-tuned tf.data pipeline and `compile` options."""
    batch = MODELS[kind]["batch"]
    count = len(labels)

    def dataset() -> Any:
        if pipeline == "guide":
            data = tf.data.Dataset.from_tensor_slices((images, labels)).cache()
            data = data.shuffle(count).batch(batch, num_parallel_calls=tf.data.AUTOTUNE)
        else:  # gather: shuffle indices, and copy each batch with one gather
            x, y = tf.constant(images), tf.constant(labels)
            data = tf.data.Dataset.range(count).shuffle(count).batch(batch)
            data = data.map(lambda i: (tf.gather(x, i), tf.gather(y, i)),
                            num_parallel_calls=tf.data.AUTOTUNE)
        return data.prefetch(tf.data.AUTOTUNE)

    def body(callback: Any, epochs: int) -> None:
        model = keras_model(keras, kind)
        compile_by_hand(keras, model, steps_per_execution=SPE, jit_compile=jit)
        model.fit(dataset(), epochs=epochs, callbacks=[callback], verbose=0)
    return body


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


def race(contenders: dict[str, Contender], examples: int, rounds: int,
         epochs: int) -> None:
    total = 1 + rounds * epochs
    for contender in contenders.values():
        warm = contender.start(total)
        print(f"    warm-up {contender.name:28s} {warm:6.1f} s", flush=True)
    names = list(contenders)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            contender = contenders[name]
            seconds = sum(contender.epoch() for _ in range(epochs))
            contender.rates.append(examples * epochs / seconds)
            if round_ == rounds - 1:
                contender.join()  # train() returns: its wrap-up overlaps no one's epoch
        print(f"    round {round_ + 1}/{rounds}: " + ", ".join(
            f"{n} {contenders[n].rates[-1]:,.0f}" for n in names), flush=True)


def median(contender: Contender) -> float:
    return statistics.median(contender.rates)


def ratio_line(label: str, top: Contender, bottom: Contender, goal: float | None) -> None:
    ratio = median(top) / median(bottom)
    per_round = [t / b for t, b in zip(top.rates, bottom.rates, strict=True)]
    verdict = "" if goal is None else (
        f"  goal >= {goal:.2f}: {'ok' if ratio >= goal else 'MISSED'}")
    print(f"  {label:44s} {ratio:5.2f}x{verdict}")
    print(f"  {'':44s} per round: " + " ".join(f"{r:.2f}" for r in per_round))


def run_model(kind: str, folder: Path, images: Any, labels: Any, rounds: int, epochs: int,
              cnn_jit: bool, tf: Any, keras: Any) -> dict[str, Any]:
    jit = kind == "mlp" or cnn_jit  # XLA slows convolutions down on CPU
    specs: dict[str, Generated] = {
        "gen fit, default spec": Generated(folder, kind, "fit"),
        "gen fit, spe 32": Generated(folder, kind, "fit", spe=SPE),
    }
    if jit:
        specs["gen fit, spe 32 + jit"] = Generated(folder, kind, "fit", spe=SPE, jit=True)
    specs["gen custom, default spec"] = Generated(folder, kind, "custom")
    if jit:
        specs["gen custom, jit"] = Generated(folder, kind, "custom", jit=True)
    tuned = "gen fit, spe 32 + jit" if jit else "gen fit, spe 32"
    custom_tuned = "gen custom, jit" if jit else "gen custom, default spec"
    total = 1 + rounds * epochs
    bodies = {name: spec.prepare(total) for name, spec in specs.items()}
    bodies["plain fit(x, y)"] = plain(keras, kind, images, labels)
    hand = "jit" if jit else "no jit"
    for pipeline in ("guide", "gather"):
        bodies[f"hand {pipeline}, spe 32 {hand}"] = by_hand(tf, keras, kind, images, labels,
                                                           pipeline, jit)
    contenders = {name: Contender(name, body, keras) for name, body in bodies.items()}

    print(f"\n{kind}: {len(labels):,} examples, batch {MODELS[kind]['batch']}, "
          f"{epochs} epoch(s) per round, {rounds} rounds", flush=True)
    race(contenders, len(labels), rounds, epochs)

    print(f"\n  {kind} examples/s of training (median of {rounds} rounds, min .. max):")
    for name, contender in contenders.items():
        r = sorted(contender.rates)
        print(f"    {name:34s} {median(contender):9,.0f}  ({r[0]:,.0f} .. {r[-1]:,.0f})")
    c = contenders
    hands = [n for n in c if n.startswith("hand ")]
    best = max(hands, key=lambda n: median(c[n]))
    print(f"  best by hand: {best}")
    ratio_line("(a) default spec / plain fit", c["gen fit, default spec"],
               c["plain fit(x, y)"], GOAL_PLAIN)
    ratio_line("(a) tuned spec / plain fit", c[tuned], c["plain fit(x, y)"], GOAL_PLAIN)
    ratio_line("(b) tuned spec / best by hand", c[tuned], c[best], GOAL_HAND)
    ratio_line("(b) default spec / best by hand", c["gen fit, default spec"], c[best],
               GOAL_HAND)
    ratio_line("(c) custom / fit, default spec", c["gen custom, default spec"],
               c["gen fit, default spec"], GOAL_CUSTOM)
    if custom_tuned != "gen custom, default spec" or tuned != "gen fit, default spec":
        ratio_line(f"(c) {custom_tuned.split(', ')[1]} custom / tuned fit", c[custom_tuned],
                   c[tuned], GOAL_CUSTOM)
    return {"contenders": contenders, "tuned": tuned, "best": best, "specs": specs}


def excerpt(source: str, start: str, end: str) -> str:
    if start not in source:
        return ""
    body = source[source.index(start):]
    return body[:body.index(end)].rstrip() if end in body else body.rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, MLP")
    parser.add_argument("--cnn-rounds", type=int, default=3, help="timed rounds, CNN")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per round")
    parser.add_argument("--only", choices=["mlp", "cnn"])
    parser.add_argument("--cnn-jit", action="store_true",
                        help="also tune the CNN with jit_compile (slower on CPU)")
    args = parser.parse_args()

    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    print(f"python {sys.version.split()[0]}, tensorflow {tf.__version__}, "
          f"keras {keras.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    peak = matmul_gflops(np)
    print(f"NumPy float32 matmul: {peak:.0f} GFLOP/s (3072^2, best of 5)", flush=True)

    results = {}
    with tempfile.TemporaryDirectory(prefix="tfspec-train-") as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        images = rng.random((args.examples, 28, 28, 1), dtype=np.float32)
        labels = rng.integers(0, CLASSES, size=args.examples, dtype=np.int64)
        np.savez(folder / "data.npz", images=images, labels=labels)
        for kind in ("mlp", "cnn"):
            if args.only in (None, kind):
                rounds = args.rounds if kind == "mlp" else args.cnn_rounds
                results[kind] = run_model(kind, folder, images, labels, rounds,
                                          args.epochs, args.cnn_jit, tf, keras)

    peak = max(peak, matmul_gflops(np))  # again: the machine may have been busy before
    if "mlp" in results:
        c = results["mlp"]["contenders"]
        print(f"\n(d) MLP training FLOP rate ({MLP_FLOPS / 1e6:.2f} MFLOP per example) "
              f"against NumPy's matmul, {peak:.0f} GFLOP/s (best of both measurements):")
        for name in (results["mlp"]["tuned"], "gen fit, default spec", results["mlp"]["best"]):
            gflops = median(c[name]) * MLP_FLOPS / 1e9
            goal = name == results["mlp"]["tuned"]
            verdict = (f"  goal >= {GOAL_PEAK:.0%}: "
                       f"{'ok' if gflops / peak >= GOAL_PEAK else 'MISSED'}") if goal else ""
            print(f"  {name:34s} {gflops:6.1f} GFLOP/s = {gflops / peak:4.0%}{verdict}")

    for kind, result in results.items():
        specs = result["specs"]
        default = specs["gen fit, default spec"].source
        tuned = specs[result["tuned"]].source
        print(f"\n{kind}: the default spec's generated training:\n"
              + excerpt(default, "def compile_model(", "\n\n\n") + "\n"
              + excerpt(default, "    history = model.fit(", "    return"))
        print(f"{kind}: the tuned spec's `compile_model`:\n"
              + excerpt(tuned, "def compile_model(", "\n\n\n"))
    if results:
        source = next(iter(results.values()))["specs"]["gen fit, default spec"].source
        print("\nthe generated pipeline (both models):\n"
              + excerpt(source, "def pipeline(", "\n\n\n"))


if __name__ == "__main__":
    main()
