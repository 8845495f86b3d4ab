"""How much does tfspec add to building a model? Prints figures; asserts nothing.

    python benchmarks/compile_speed.py [--rounds N]

(a) spec text -> built Keras model (check + generate + exec + build) for a
    200-layer spec, against building the same model with hand-written Keras in
    the same process (median of N alternating rounds), goal: ratio <= 1.2;
(b) spec text -> program text only (no TensorFlow), in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from validate_speed import generated_spec  # noqa: E402

from tfspec.codegen.program import compile_text  # noqa: E402

GOAL_RATIO = 1.2
LAYERS = 200


def by_hand(keras):
    """The model of `generated_spec(200)`, written directly against Keras."""
    stages = [
        lambda: keras.layers.Conv1D(32, 3, padding="same", activation="relu"),
        lambda: keras.layers.BatchNormalization(),
        lambda: keras.layers.Dense(32, activation="relu"),
        lambda: keras.layers.Dropout(0.1),
    ]
    seq = keras.Input(shape=(64, 32), name="seq")
    x, blocks, count = seq, [], 0
    while count < LAYERS - 3:
        n = min(8, LAYERS - 3 - count)
        for i in range(n):
            x = stages[i % len(stages)]()(x)
        blocks.append(x)
        count += n
    merged = keras.layers.Add()([blocks[-1], blocks[max(0, len(blocks) - 2)]])
    pooled = keras.layers.GlobalAveragePooling1D()(merged)
    label = keras.layers.Dense(10, activation="softmax")(pooled)
    return keras.Model(seq, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    text = generated_spec(LAYERS)
    start = time.perf_counter()
    compile_text(text, "deep.tfspec")  # warm the grammar, schema and catalog
    source_ms = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        compile_text(text, "deep.tfspec")
        source_ms.append((time.perf_counter() - start) * 1000)

    from tfspec.jobs.build import build_model, quiet_tensorflow

    quiet_tensorflow()
    import keras

    by_hand(keras)  # warm Keras
    build_model(compile_text(text, "deep.tfspec"))
    tfspec_s, hand_s = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        model = build_model(compile_text(text, "deep.tfspec"))
        tfspec_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = by_hand(keras)
        hand_s.append(time.perf_counter() - start)
    assert model.count_params() == reference.count_params(), "the two models differ"

    t, h = statistics.median(tfspec_s), statistics.median(hand_s)
    print(f"python {sys.version.split()[0]}, keras {keras.__version__}, "
          f"{len(model.layers)} layers, {model.count_params():,} params")
    print(f"(a) spec -> built model: {t * 1000:8.1f} ms; by hand: {h * 1000:8.1f} ms; "
          f"ratio {t / h:.2f} (goal <= {GOAL_RATIO}: {'ok' if t / h <= GOAL_RATIO else 'MISSED'})")
    print(f"(b) spec -> program text only: {statistics.median(source_ms):.1f} ms "
          "(no TensorFlow import)")


if __name__ == "__main__":
    main()
