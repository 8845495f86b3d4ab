"""two-tower: compiled from examples/two_tower.tfspec by tfspec 0.1.0.

Edit the spec, not this file: `tfspec compile` writes it again.
"""

import keras


def build_model():
    """`TwoTower`: a functional keras.Model (examples/two_tower.tfspec:10)."""
    query = keras.Input(shape=(16,), dtype="float32", name="query")
    item = keras.Input(shape=(16,), dtype="float32", name="item")
    encoder = keras.layers.Dense(32, activation="relu", name="encoder")
    q = encoder(query)
    i = encoder(item)
    i = keras.layers.Dropout(0.1, name="i")(i)
    joint = keras.layers.Concatenate(name="joint")([q, i])
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(joint)
    category = keras.layers.Dense(16, activation="relu", name="category_dense")(joint)
    category = keras.layers.Dense(5, activation="softmax", name="category")(category)
    return keras.Model(
        inputs={"query": query, "item": item},
        outputs={"score": score, "category": category},
        name="TwoTower",
    )


# Where each line of this program comes from in the spec (generated line:
# spec line:column), so that errors can point at the spec.
TFSPEC_SPEC = "examples/two_tower.tfspec"
TFSPEC_LINES = (
    "11:11:3 12:12:3 13:14:19 14:15:7 15:16:15 16:16:7 17:17:11 18:18:18 "
    "19:20:8 20:19:21 21:10:7 22:10:7 23:10:7 24:10:7 25:10:7"
)
