"""digits-subclassed: compiled from examples/subclassed_mlp.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras


@keras.saving.register_keras_serializable(package="tfspec")
class DigitsMLP(keras.Model):
    """`DigitsMLP`: a subclassed keras.Model (examples/subclassed_mlp.tfspec:11)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden_flatten = keras.layers.Flatten(name="hidden_flatten")
        self.hidden_dense = keras.layers.Dense(
            64,
            activation="relu",
            kernel_regularizer=keras.regularizers.L2(0.0001),
            name="hidden_dense",
        )
        self.hidden = keras.layers.Dropout(0.2, name="hidden")
        self.digit = keras.layers.Dense(10, activation="softmax", name="digit")

    def call(self, inputs, training=None):
        image = inputs
        hidden = self.hidden_flatten(image)
        hidden = self.hidden_dense(hidden)
        hidden = self.hidden(hidden)
        digit = self.digit(hidden)
        return digit


def build_model():
    """Create `DigitsMLP` and build its weights on symbolic inputs."""
    model = DigitsMLP(name="DigitsMLP")
    model(keras.Input(shape=(8, 8, 1), dtype="float32", name="image"))
    return model


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/subclassed_mlp.tfspec"
TFSPEC_LINES = (
    "10:11:7 15:14:8 16:15:8 17:15:8 18:15:8 19:15:8 20:15:8 21:15:8 "
    "22:16:8 23:17:18 27:14:8 28:15:8 29:13:12 30:17:18"
)
