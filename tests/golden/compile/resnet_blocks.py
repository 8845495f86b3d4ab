"""digits-resnet: compiled from examples/resnet_blocks.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras

# Params: `tfspec run --set NAME=VALUE` overrides them.
WIDTH = 16


def residual_block(x, filters, stride=1, *, name):
    """Block `Residual` (examples/resnet_blocks.tfspec:7): its layers are named `<name>_…`."""
    y = keras.layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        name=f"{name}_y_conv2d",
    )(x)
    y = keras.layers.BatchNormalization(name=f"{name}_y_batch_normalization")(y)
    y = keras.layers.ReLU(name=f"{name}_y_re_lu")(y)
    y = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        name=f"{name}_y_conv2d_2",
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_y")(y)
    shortcut = keras.layers.Conv2D(
        filters,
        1,
        strides=stride,
        padding="same",
        name=f"{name}_shortcut",
    )(x)
    out = keras.layers.Add(name=f"{name}_out_add")([y, shortcut])
    out = keras.layers.ReLU(name=name)(out)
    return out


def build_model():
    """`ResNet`: a functional keras.Model (examples/resnet_blocks.tfspec:25)."""
    image = keras.Input(shape=(8, 8, 1), dtype="float32", name="image")
    x = keras.layers.Rescaling(1 / 16, name="x_rescaling")(image)
    x = residual_block(x, WIDTH, name="x_residual")
    x = residual_block(x, WIDTH, name="x_residual_2")
    x = residual_block(x, WIDTH * 2, stride=2, name="x_residual_3")
    x = residual_block(x, WIDTH * 2, name="x")
    digit = keras.layers.GlobalAveragePooling2D(name="digit_global_average_pooling2d")(x)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(digit)
    return keras.Model(inputs=image, outputs=digit, name="ResNet")


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/resnet_blocks.tfspec"
TFSPEC_LINES = (
    "9:5:15 12:7:7 14:10:8 15:10:8 16:10:8 17:10:8 18:10:8 19:10:8 "
    "20:10:8 21:10:8 22:11:8 23:12:8 24:13:8 25:13:8 26:13:8 27:13:8 "
    "28:13:8 29:13:8 30:13:8 31:9:7 32:15:14 33:15:14 34:15:14 35:15:14 "
    "36:15:14 37:15:14 38:15:14 39:16:16 40:16:16 46:26:3 47:28:8 48:29:8 "
    "49:30:8 50:31:8 51:27:7 52:33:23 53:33:18 54:25:7"
)
