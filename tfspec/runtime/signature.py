"""The model's inputs and outputs by name: the serving signature every export shares.

`inputs` is the program's `INPUTS` (input name -> (shape per example, dtype)) and
`outputs` its `OUTPUTS` (the output names, in the model's order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

Inputs = Mapping[str, tuple[Sequence[int | None], str]]


def input_specs(inputs: Inputs) -> dict[str, tf.TensorSpec]:
    """The spec's inputs as tf.TensorSpecs of any batch size, by name."""
    return {
        name: tf.TensorSpec((None, *shape), dtype, name=name)
        for name, (shape, dtype) in inputs.items()
    }


def model_inputs(named: Mapping[str, Any]) -> Any:
    """Inputs given by name as the model takes them: the dict, or its one value."""
    return named if len(named) > 1 else next(iter(named.values()))


def by_name(features: Any, inputs: Inputs) -> dict[str, Any]:
    """A batch's features by input name (a one-input pipeline yields a tensor)."""
    return features if isinstance(features, dict) else {next(iter(inputs)): features}


def named_outputs(outputs: Any, names: Sequence[str]) -> dict[str, tf.Tensor]:
    """A model's outputs as a dict keyed by the spec's output `names` (floating ones
    as float32: what clients expect, whatever precision the model computes in)."""
    if not isinstance(outputs, dict):
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        outputs = dict(zip(names, outputs, strict=True))
    return {
        name: tf.cast(value, tf.float32) if value.dtype.is_floating else value
        for name, value in outputs.items()
    }


def serving_function(model: Any, inputs: Inputs,
                     outputs: Sequence[str]) -> Callable[..., dict[str, tf.Tensor]]:
    """The model as a tf.function from named inputs to named outputs: the signature
    that every export shares."""

    specs = input_specs(inputs)

    @tf.function(input_signature=[specs])
    def serve(inputs):  # the argument's name as SavedModels have always had it
        return named_outputs(model(model_inputs(inputs), training=False), outputs)

    return serve
