"""kitchen-sink: compiled from examples/everything.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras

# Params: `tfspec run --set NAME=VALUE` overrides them.
LR = 0.002
EPOCHS = 3
DROPOUT = 0.2


def build_model():
    """`Kitchen`: a functional keras.Model (examples/everything.tfspec:23)."""
    image = keras.Input(shape=(8, 8, 1), dtype="float32", name="image")
    features = keras.layers.Conv2D(
        8,
        3,
        padding="same",
        activation="relu",
        kernel_initializer="he_normal",
        name="features_conv2d",
    )(image)
    features = keras.layers.MaxPooling2D(
        pool_size=2,
        name="features_max_pooling2d",
    )(features)
    features = keras.layers.Flatten(name="features_flatten")(features)
    features = keras.layers.Dropout(DROPOUT, name="features")(features)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(features)
    return keras.Model(inputs=image, outputs=digit, name="Kitchen")


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/everything.tfspec"
TFSPEC_LINES = (
    "9:5:12 10:6:16 11:7:17 16:24:3 17:26:8 18:26:8 19:26:8 20:26:8 "
    "21:26:8 22:26:8 23:26:8 24:26:8 25:33:8 26:33:8 27:33:8 28:33:8 "
    "29:34:8 30:25:14 31:36:18 32:23:7"
)
