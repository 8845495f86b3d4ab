"""text-lstm: compiled from examples/text_lstm.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras

# Params: `tfspec run --set NAME=VALUE` overrides them.
VOCAB = 2000
SEQ_LEN = 64


def build_model():
    """`Sentiment`: a functional keras.Model (examples/text_lstm.tfspec:14)."""
    text = keras.Input(shape=(), dtype="string", name="text")
    tokens = keras.layers.TextVectorization(
        max_tokens=VOCAB,
        output_sequence_length=SEQ_LEN,
        name="tokens",
    )(text)
    h = keras.layers.Embedding(VOCAB, 32, mask_zero=True, name="h_embedding")(tokens)
    h = keras.layers.Bidirectional(keras.layers.LSTM(32), name="h_bidirectional")(h)
    h = keras.layers.Dropout(0.3, name="h")(h)
    positive = keras.layers.Dense(1, activation="sigmoid", name="positive")(h)
    return keras.Model(inputs=text, outputs=positive, name="Sentiment")


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/text_lstm.tfspec"
TFSPEC_LINES = (
    "9:5:15 10:6:17 15:15:3 16:16:12 17:16:12 18:16:12 19:16:12 20:16:12 "
    "21:19:8 22:20:8 23:18:7 24:22:21 25:14:7"
)
