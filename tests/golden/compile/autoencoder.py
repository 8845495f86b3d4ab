"""digits-autoencoder: compiled from examples/autoencoder.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras

# Params: `tfspec run --set NAME=VALUE` overrides them.
CODE = 8


def build_model():
    """`AutoEncoder`: a functional keras.Model (examples/autoencoder.tfspec:13)."""
    pixels = keras.Input(shape=(64,), dtype="float32", name="pixels")
    code_vec = keras.layers.Rescaling(1 / 16, name="code_vec_rescaling")(pixels)
    code_vec = keras.layers.Dense(
        32,
        activation="relu",
        name="code_vec_dense",
    )(code_vec)
    code_vec = keras.layers.Dense(CODE, activation="relu", name="code")(code_vec)
    reconstruction = keras.layers.Dense(
        32,
        activation="relu",
        name="reconstruction_dense",
    )(code_vec)
    reconstruction = keras.layers.Dense(
        64,
        activation="sigmoid",
        name="reconstruction_dense_2",
    )(reconstruction)
    reconstruction = keras.layers.Rescaling(16, name="reconstruction")(reconstruction)
    return keras.Model(inputs=pixels, outputs=reconstruction, name="AutoEncoder")


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/autoencoder.tfspec"
TFSPEC_LINES = (
    "9:5:14 14:14:3 15:16:8 16:17:8 17:17:8 18:17:8 19:17:8 20:17:8 "
    "21:15:14 22:20:8 23:20:8 24:20:8 25:20:8 26:20:8 27:21:8 28:21:8 "
    "29:21:8 30:21:8 31:21:8 32:19:27 33:13:7"
)
