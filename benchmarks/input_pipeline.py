"""Is the input pipeline tfspec generates as fast as a tuned hand-written one?
Prints figures; asserts nothing.

    python benchmarks/input_pipeline.py [--examples N] [--epochs E] [--rounds R]

Three pipelines over the same arrays (N examples of 28x28x1 float32, MNIST-sized,
written to an `.npz` in a temporary folder), each applying the same augmentation
(`keras.layers.RandomTranslation(0.1, 0.1)`, a per-pixel resampling cost, so
parallelism matters), batch 128:

(a) generated: `make_datasets()["train"]` of a spec compiled by tfspec whose
    source is `npz(...)` of those arrays and whose `augment` is that layer;
(b) naive, by hand: `from_tensor_slices -> map(augment one example) -> batch`,
    no cache, no prefetch, no `num_parallel_calls`;
(c) tuned, by hand, as in TensorFlow's "Better performance with the tf.data API"
    guide: `cache -> shuffle -> batch -> map(augment the batch,
    num_parallel_calls=AUTOTUNE) -> prefetch(AUTOTUNE)`.

Each pipeline is warmed first (one full epoch: traces the map functions and
fills the caches), then each round iterates E epochs of each pipeline in turn
(the order rotating from round to round, so noise spreads over all three) and
counts the elements; the rate reported is the median over the rounds, and each
ratio is given both from those medians and per round (the pipelines of one round
run close together in time, so they share whatever else loads the machine).
Goals: generated/tuned >= ~0.9 (equal within noise), generated/naive well above 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfspec.codegen.program import compile_text  # noqa: E402
from tfspec.jobs.build import load_program, quiet_tensorflow  # noqa: E402

BATCH = 128
SHUFFLE = 10_000  # what `shuffle = true` gives a split of more than 10,000 examples
GOAL_TUNED = 0.9

SPEC = """\
tfspec 1
name "pipeline-benchmark"

data {
  source = npz("images.npz", x = "images", y = "labels")
  batch = 128
  augment = [RandomTranslation(0.1, 0.1)]
}

model Net sequential {
  input image: float32[28, 28, 1]
  Flatten()
  Dense(10, activation = "softmax")
}

train {
  optimizer = "adam"
  loss = "sparse_categorical_crossentropy"
}
"""


def write_arrays(folder: Path, examples: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((examples, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, size=examples, dtype=np.int64)
    np.savez(folder / "images.npz", images=images, labels=labels)


def generated(folder: Path):
    """(a) the train pipeline of the compiled spec, exactly as the program builds it."""
    spec = folder / "bench.tfspec"
    spec.write_text(SPEC)
    compiled = compile_text(SPEC, str(spec))
    namespace = load_program(compiled)
    return namespace["make_datasets"]()["train"], compiled.source


def naive(tf, keras, images, labels):
    """(b) the same work, written without any of the guide's advice."""
    augment = keras.layers.RandomTranslation(0.1, 0.1)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.map(lambda x, y: (augment(x, training=True), y))
    return dataset.batch(BATCH)


def tuned(tf, keras, images, labels):
    """(c) the tf.data performance guide's recipe, by hand."""
    augment = keras.layers.RandomTranslation(0.1, 0.1)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.cache()
    dataset = dataset.shuffle(SHUFFLE)
    dataset = dataset.batch(BATCH)
    dataset = dataset.map(lambda x, y: (augment(x, training=True), y),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def count(dataset, epochs: int) -> tuple[int, float]:
    """Elements delivered in `epochs` passes, and the seconds they took."""
    elements = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, _y in dataset:
            elements += int(x.shape[0])
    return elements, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="tfspec-bench-") as tmp:
        folder = Path(tmp)
        write_arrays(folder, args.examples)
        pipelines = {}
        pipelines["generated"], source = generated(folder)
        with np.load(folder / "images.npz") as archive:
            images, labels = archive["images"], archive["labels"]
        pipelines["naive"] = naive(tf, keras, images, labels)
        pipelines["tuned"] = tuned(tf, keras, images, labels)

        for name, dataset in pipelines.items():  # trace, fill caches
            elements, _ = count(dataset, 1)
            assert elements == args.examples, (name, elements)

        names = list(pipelines)
        rates: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            # rotate the order each round: no pipeline always runs first or last
            for name in names[round_ % 3:] + names[:round_ % 3]:
                elements, seconds = count(pipelines[name], args.epochs)
                rates[name].append(elements / seconds)

    median = {name: statistics.median(r) for name, r in rates.items()}
    # ratios within each round (runs close in time share the machine's load)
    paired = {other: sorted(g / o for g, o in zip(rates["generated"], rates[other],
                                                  strict=True))
              for other in ("naive", "tuned")}
    body = source[source.index("def pipeline("):source.index("def make_datasets(")]
    print(f"python {sys.version.split()[0]}, tensorflow {tf.__version__}, "
          f"keras {keras.__version__}, {os.cpu_count()} CPUs")
    print(f"{args.examples:,} examples of float32[28, 28, 1], batch {BATCH}, "
          f"augment RandomTranslation(0.1, 0.1); {args.epochs} epochs per round, "
          f"median of {args.rounds} rounds")
    for letter, name in zip("abc", names, strict=True):
        r = sorted(rates[name])
        print(f"  ({letter}) {name:9s} {median[name]:10,.0f} elements/s  "
              f"(rounds: {r[0]:,.0f} .. {r[-1]:,.0f})")
    goals = {"naive": ("well above 1", lambda v: v >= 2),
             "tuned": (f">= ~{GOAL_TUNED}, equal within noise", lambda v: v >= GOAL_TUNED)}
    for other, (goal, met) in goals.items():
        ratio = median["generated"] / median[other]
        r = paired[other]
        print(f"generated/{other}: {ratio:.2f}  (per round: median "
              f"{statistics.median(r):.2f}, range {r[0]:.2f} .. {r[-1]:.2f}; "
              f"goal {goal}: {'ok' if met(ratio) else 'MISSED'})")
    print("\nthe generated pipeline:\n" + body.rstrip())


if __name__ == "__main__":
    main()
