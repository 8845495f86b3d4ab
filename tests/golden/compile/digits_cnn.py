"""digits-cnn: compiled from examples/digits_cnn.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras

# Params: `tfspec run --set NAME=VALUE` overrides them.
LR = 0.001
EPOCHS = 10


def build_model():
    """`Net`: a functional keras.Model (examples/digits_cnn.tfspec:16)."""
    image = keras.Input(shape=(8, 8, 1), dtype="float32", name="image")
    x = keras.layers.Rescaling(1 / 16, name="x_rescaling")(image)
    x = keras.layers.Conv2D(
        16,
        3,
        padding="same",
        activation="relu",
        name="x_conv2d",
    )(x)
    x = keras.layers.MaxPooling2D(name="x_max_pooling2d")(x)
    x = keras.layers.Flatten(name="x_flatten")(x)
    x = keras.layers.Dropout(0.25, name="x")(x)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    return keras.Model(inputs=image, outputs=digit, name="Net")


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/digits_cnn.tfspec"
TFSPEC_LINES = (
    "9:5:12 10:6:16 15:17:3 16:19:8 17:20:8 18:20:8 19:20:8 20:20:8 "
    "21:20:8 22:20:8 23:20:8 24:21:8 25:22:8 26:18:7 27:24:18 28:16:7"
)
