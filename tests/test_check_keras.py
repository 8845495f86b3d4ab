"""Where the checker and Keras used to disagree (issue 23): what `validate` accepts
and refuses must be what Keras accepts and what a spec can run.

Checking never imports TensorFlow, so these run on the light core: each spec is
validated as `tfspec validate` does, and the diagnostics are compared exactly.
"""

from __future__ import annotations

import pytest

import tfspec

MODEL = """tfspec 1
model M functional {{
  input x: {input}
  output y = x |> {layer}
}}
"""
TRAIN = """tfspec 1
model M sequential {{
  input x: float32[4]
  Dense(1)
}}
train {{
  optimizer = "adam"
  loss = "mse"
  {train}
}}
"""


def _diagnostics(text: str) -> list[tuple[str, str, int, int]]:
    result = tfspec.validate_text(text, "spec.tfspec")
    return [(d.code, d.message, d.span.line, d.span.col) for d in result.diagnostics]


@pytest.mark.parametrize("layer", [
    'IntegerLookup(vocabulary = [1, 2, 3], output_mode = "binary")',
    'IntegerLookup(vocabulary = [1, 2, 3], output_mode = "tf-idf", idf_weights = [1, 1, 1])',
    'CategoryEncoding(num_tokens = 4, output_mode = "binary")',
])
def test_deprecated_output_modes_keras_accepts_validate(layer: str) -> None:
    assert _diagnostics(MODEL.format(input="int32[3]", layer=layer)) == []


@pytest.mark.parametrize(("layer", "col"), [
    ('Lambda("lambda t: t * 2")', 26),
    ("Lambda()", 19),
    ('Lambda("f", output_shape = [4])', 26),
    ("Lambda(Dense(2))", 26),  # one error, not also "`Dense(…)` is not expected here"
    ('FlaxLayer("module")', 29),
    ('JaxLayer("call_fn")', 28),
    ('TorchModuleWrapper("module")', 38),
])
def test_a_layer_that_needs_python_code_is_one_located_error(layer: str, col: int) -> None:
    name = layer.split("(")[0]
    result = tfspec.validate_text(MODEL.format(input="float32[4]", layer=layer),
                                  "spec.tfspec")
    [diag] = result.diagnostics
    assert (diag.code, diag.span.line, diag.span.col) == ("E409", 4, col)
    assert diag.message.startswith(f"`{name}` ")
    assert "a spec runs no Python code" in diag.message
    assert diag.hint
    if name == "Lambda":
        assert "block" in diag.hint and "generator(" in diag.hint


@pytest.mark.parametrize(("train", "name", "col"), [
    ('callbacks = [LambdaCallback(on_epoch_end = "print")]', "LambdaCallback", 46),
    ('callbacks = [LambdaCallback(on_batch_end = "print")]', "LambdaCallback", 46),
    ('callbacks = [LearningRateScheduler("schedule")]', "LearningRateScheduler", 38),
    ('metrics = [MeanMetricWrapper("fn")]', "MeanMetricWrapper", 32),
])
def test_callbacks_and_metrics_that_need_python_code_too(train: str, name: str,
                                                         col: int) -> None:
    [diag] = tfspec.validate_text(TRAIN.format(train=train), "spec.tfspec").diagnostics
    assert (diag.code, diag.span.line, diag.span.col) == ("E409", 9, col)
    assert diag.message.startswith(f"`{name}` ") and diag.hint


@pytest.mark.parametrize("train", [
    "callbacks = [LambdaCallback()]",  # Keras builds it (a no-op); nothing in it is code
    # a schedule object is the callable (the program turns it into the epoch's function)
    "callbacks = [LearningRateScheduler(ExponentialDecay(0.1, 1000, 0.9))]",
    "callbacks = [LearningRateScheduler(schedule = CosineDecay(0.1, decay_steps = 10))]",
])
def test_callables_a_spec_can_write_still_validate(train: str) -> None:
    assert _diagnostics(TRAIN.format(train=train)) == []


def test_a_schedule_for_the_scheduler_is_checked_as_one() -> None:
    train = "callbacks = [LearningRateScheduler(ExponentialDecay(0.1))]"
    assert [d[0] for d in _diagnostics(TRAIN.format(train=train))] == ["E302"]


def test_a_block_named_like_a_keras_layer_is_one_error() -> None:
    text = """tfspec 1
block Identity(units) {
  input t
  output o = Dense(units)(t)
}
model M functional {
  input x: float32[4]
  h = Identity(8)(x)
  output y = Identity(4)(h)
}
"""
    assert _diagnostics(text) == [
        ("E401", "block `Identity` has the name of a Keras layer", 2, 7)]
    # nor in a sequential model, where a block could not be used anyway
    sequential = text.replace(
        "model M functional {\n  input x: float32[4]\n  h = Identity(8)(x)\n"
        "  output y = Identity(4)(h)\n}",
        "model M sequential {\n  input x: float32[4]\n  Identity(8)\n}")
    assert "sequential" in sequential
    assert [d[0] for d in _diagnostics(sequential)] == ["E401"]
    # its uses are still checked as the block's: a wrong call is reported
    wrong = text.replace("Identity(4)(h)", "Identity(4, 5)(h)")
    assert [d[0] for d in _diagnostics(wrong)] == ["E401", "E303"]
