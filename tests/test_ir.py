"""The IR's access layer (`lang/ir.py`) and `catalog.argument_category`: pointers,
statement kinds, and the checker and generator agreeing on a nested call's category."""

from __future__ import annotations

from typing import Any

import pytest

from tfspec.codegen.model import Generator
from tfspec.codegen.program import compile_text
from tfspec.lang import catalog, ir
from tfspec.lang.check import Checker
from tfspec.lang.validate import validate_text

# -- pointers --------------------------------------------------------------------------------


@pytest.mark.parametrize("key, part", [
    ("plain", "plain"), ("a/b", "a~1b"), ("a~b", "a~0b"), ("~1", "~01"), ("/~", "~1~0"), (3, "3"),
])
def test_escape_and_unescape_are_inverse(key, part):
    assert ir.escape(key) == part
    assert ir.unescape(part) == str(key)


def test_unescape_reads_tilde_one_before_tilde_zero():
    # RFC 6901: "~01" is "~1" (a key with a tilde and a one), not "/"
    assert ir.unescape("~01") == "~1"
    assert ir.unescape("~10") == "/0"


def test_pointer_and_parts():
    assert ir.pointer() == ""
    assert ir.pointer("model", "body", 3) == "/model/body/3"
    assert ir.pointer("params", "a/b~c") == "/params/a~1b~0c"
    assert ir.parts("/params/a~1b~0c/0") == ["params", "a/b~c", "0"]
    assert ir.parts("") == []


DOC: dict[str, Any] = {
    "params": {"a/b": 1, "m~n": [10, 20], "": "empty"},
    "model": {"body": [{"input": "x"}, {"node": "h", "value": {"ref": "x"}}]},
}


@pytest.mark.parametrize("at, expected", [
    ("", DOC),
    ("/params/a~1b", 1),
    ("/params/m~0n/1", 20),
    ("/params/", "empty"),  # the empty key
    ("/model/body/1/value/ref", "x"),
])
def test_resolve_finds(at, expected):
    assert ir.resolve(DOC, at) == expected


@pytest.mark.parametrize("at", [
    "/nope",  # a key the dict lacks
    "/params/a/b",  # unescaped: key "a", not "a/b"
    "/params/m~0n/2",  # past the list's end
    "/params/m~0n/-1",  # not a decimal index
    "/params/m~0n/x",
    "/params/a~1b/0",  # a step into a scalar
    "/model/body/0/input/0",  # a string is a scalar too
])
def test_resolve_gives_the_default_when_a_part_is_missing(at):
    assert ir.resolve(DOC, at) is None
    marker = object()
    assert ir.resolve(DOC, at, marker) is marker


def test_resolve_and_pointer_round_trip():
    for at in ("/params/a~1b", "/params/m~0n/0"):
        assert ir.pointer(*ir.parts(at)) == at


# -- statement kinds -------------------------------------------------------------------------


@pytest.mark.parametrize("stmt, expected", [
    ({"input": "x", "dtype": "float32", "shape": [4]}, ("input", "x")),
    ({"input": "x"}, ("input", "x")),  # a block's untyped input
    ({"layer": "shared", "value": {"call": "Dense", "args": [4]}}, ("layer", "shared")),
    ({"node": "h", "value": {"ref": "x"}}, ("node", "h")),
    ({"output": "y", "value": {"ref": "h"}}, ("output", "y")),
    ({"output": "h"}, ("output_ref", "h")),  # `output h`: no value of its own
    ({"add": {"call": "Dense", "args": [4]}}, ("add", None)),
    ({"value": 1}, (None, None)),
    ({}, (None, None)),
    ("input", (None, None)),
    (None, (None, None)),
])
def test_statement_kind(stmt, expected):
    assert ir.statement_kind(stmt) == expected


def test_statement_kind_keeps_a_schema_invalid_name_as_is():
    assert ir.statement_kind({"node": 5, "value": 1}) == ("node", 5)


def test_statement_kinds_of_parsed_dsl():
    result = validate_text("""tfspec 1
block Res(units) {
  input x
  layer d = Dense(units)
  h = d(x)
  output y = Add()([x, h])
}
model M functional {
  input a: float32[4]
  b = Res(4)(a)
  output b
}
""")
    assert result.ir is not None
    block_body = result.ir["blocks"][0]["body"]
    assert [ir.statement_kind(s)[0] for s in block_body] == ["input", "layer", "node", "output"]
    body = result.ir["model"]["body"]
    assert [ir.statement_kind(s) for s in body] == [
        ("input", "a"), ("node", "b"), ("output_ref", "b")]
    assert ir.declared(body, "input") == ["a"]
    assert ir.declared(body, *ir.OUTPUTS) == ["b"]
    assert ir.declared(block_body, "node", "layer") == ["d", "h"]
    assert ir.declared(None, "input") == []


# -- nested calls: the checker and the generator agree ---------------------------------------

AGREE = """tfspec 1
name "agree"

data {
  source = synthetic(samples = 8)
  batch = 4
}

model Net functional {
  input x: float32[6, 4]
  s = Bidirectional(LSTM(8, return_sequences = true),
                    backward_layer = LSTM(8, return_sequences = true, go_backwards = true))(x)
  h = Dense(8, activation = LeakyReLU(0.2), kernel_initializer = HeNormal(seed = 1),
            kernel_regularizer = L2(0.01), kernel_constraint = MaxNorm(2))(s)
  g = Dense(8, activation = relu(max_value = 6.0), bias_initializer = Constant(0.1))(h)
  r = TimeDistributed(Dense(2, activation = Softmax()))(g)
  output y = r |> Flatten() |> Dense(1, activation = "sigmoid")
}

train {
  optimizer = Adam(learning_rate = ExponentialDecay(0.1, decay_steps = 1, decay_rate = 0.5))
  loss = "mse"
  epochs = 1
  callbacks = [
    LearningRateScheduler(schedule = ExponentialDecay(0.1, decay_steps = 1, decay_rate = 0.5)),
    LearningRateScheduler(CosineDecay(0.1, decay_steps = 10)),
  ]
}
"""

# nested call -> the category both must build it from
EXPECTED = {
    "/model/body/1/value/call/args/0": "layers",  # Bidirectional(LSTM(…))
    "/model/body/1/value/call/kwargs/backward_layer": "layers",
    "/model/body/2/value/call/kwargs/activation": "layers",  # LeakyReLU(0.2)
    "/model/body/2/value/call/kwargs/kernel_initializer": "initializers",
    "/model/body/2/value/call/kwargs/kernel_regularizer": "regularizers",
    "/model/body/2/value/call/kwargs/kernel_constraint": "constraints",
    "/model/body/3/value/call/kwargs/activation": "activations",  # relu(max_value = 6.0)
    "/model/body/3/value/call/kwargs/bias_initializer": "initializers",
    "/model/body/4/value/call/args/0": "layers",  # TimeDistributed(Dense(…))
    "/model/body/4/value/call/args/0/kwargs/activation": "layers",  # Softmax(): a layer
    "/train/optimizer/kwargs/learning_rate": "schedules",
    "/train/callbacks/0/kwargs/schedule": "schedules",
    "/train/callbacks/1/args/0": "schedules",
}


def _nested(at: str) -> bool:
    return at in EXPECTED


def test_checker_and_generator_agree_on_nested_categories(monkeypatch):
    checked: dict[str, str] = {}
    built: dict[str, str] = {}
    call, construct = Checker.call, Checker.layer_construction

    def check_call(self, c, at, category, scope=None):
        if _nested(at):
            checked[at] = category
        return call(self, c, at, category, scope)

    def check_layer(self, c, at, scope):
        if _nested(at):
            checked[at] = "layers"
        return construct(self, c, at, scope)

    generate = Generator.construct

    def gen_construct(self, c, at, category, *args, **kwargs):
        if _nested(at):
            built[at] = category
        return generate(self, c, at, category, *args, **kwargs)

    monkeypatch.setattr(Checker, "call", check_call)
    monkeypatch.setattr(Checker, "layer_construction", check_layer)
    monkeypatch.setattr(Generator, "construct", gen_construct)
    compiled = compile_text(AGREE, "agree.tfspec")
    assert "keras.layers.LeakyReLU(0.2)" in compiled.source
    assert checked == EXPECTED
    assert built == EXPECTED


@pytest.mark.parametrize("owner, param, name, expected", [
    ("Dense", {"name": "activation"}, "LeakyReLU", "layers"),  # a layer class
    ("Dense", {"name": "activation"}, "relu", "activations"),
    ("Dense", {"name": "activation"}, "Softmax", "layers"),
    # a function of tensors is no layer: checked (and rejected) as an activation
    ("Dense", {"name": "activation"}, "add", "activations"),
    ("Dense", {"name": "activation"}, "NoSuchThing", "activations"),
    ("Dense", {"name": "kernel_initializer"}, "HeNormal", "initializers"),
    ("Dense", {"name": "units", "type": "positive_int"}, "HeNormal", None),
    ("Bidirectional", {"name": "layer", "type": "layer"}, "LSTM", "layers"),
    ("LearningRateScheduler", {"name": "schedule"}, "ExponentialDecay", "schedules"),
    ("Adam", {"name": "learning_rate"}, "ExponentialDecay", "schedules"),
    ("Dense", None, "HeNormal", None),  # not a parameter the owner takes
])
def test_argument_category(owner, param, name, expected):
    assert catalog.argument_category(owner, param, {"call": name}) == expected


def test_an_activation_the_checker_rejects_is_not_compiled():
    # `activation = add()` is no activation and no layer: the checker reports it (so the
    # generator, which would build it from the same category, never sees it)
    result = validate_text(AGREE.replace("Softmax()", "add()"), "agree.tfspec")
    assert [d.code for d in result.diagnostics if d.is_error] == ["E300"]
