"""iris-mlp: compiled from examples/iris_mlp.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras

# Params: `tfspec run --set NAME=VALUE` overrides them.
HIDDEN = 32


def build_model():
    """`Iris`: a keras.Sequential model (examples/iris_mlp.tfspec:14)."""
    return keras.Sequential(
        [
            keras.Input(shape=(4,), dtype="float32", name="features"),
            keras.layers.Dense(HIDDEN, activation="relu", name="dense"),
            keras.layers.Dropout(0.1, name="dropout"),
            keras.layers.Dense(HIDDEN, activation="relu", name="dense_2"),
            keras.layers.Dense(3, activation="softmax", name="dense_3"),
        ],
        name="Iris",
    )


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/iris_mlp.tfspec"
TFSPEC_LINES = (
    "9:5:16 14:14:7 16:15:3 17:16:3 18:17:3 19:18:3 20:19:3"
)
