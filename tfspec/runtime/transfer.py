"""`load_model(…)` in a spec: a saved Keras model used as a layer of the program's model.

The program's `build_model()` calls `transfer.load_keras_model(SPEC_DIR / path, …)`
with the spec's arguments, checked like a layer's (`lang/transfer.py`); a missing
file is reported at the spec before this runs (`lang/missing_files.py`).
"""

from __future__ import annotations

import os
from typing import Any

import keras


def load_keras_model(filepath: str | os.PathLike, *, trainable: bool | None = None,
                     output: str | None = None, name: str | None = None) -> Any:
    """A saved Keras model as a layer (`load_model` in the spec).

    `output` cuts it at that layer's output, to put a new head on it;
    `trainable` freezes (False) or unfreezes (True) all of its layers.
    """
    model = keras.saving.load_model(filepath, compile=False)
    if output is not None:
        model = keras.Model(model.inputs, model.get_layer(output).output)
    if trainable is not None:
        model.trainable = trainable
    if name is not None:
        model.name = name
    return model
