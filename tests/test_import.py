"""`tfspec import`: Keras model configs -> specs that validate, compile and match.

Part one works from hand-written Keras 3 configs (the JSON `model.get_config()`
returns) and needs no TensorFlow. Part two builds real models — the
keras.applications and a few hand-made ones — saves them as `.keras` files,
imports them, compiles the spec, copies the weights by layer name and checks
that the compiled model computes the same outputs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tfspec
from tfspec.codegen.program import compile_text
from tfspec.inspect.importer import import_config, import_file, import_to_text
from tfspec.lang.diagnostics import SpecError

ROOT = Path(__file__).resolve().parents[1]

# -- a hand-written Keras 3 config -------------------------------------------------------------


def policy(name: str = "float32") -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def obj(module: str, cls: str, **config) -> dict:
    return {"module": module, "class_name": cls, "config": config, "registered_name": None}


def glorot() -> dict:
    return obj("keras.initializers", "GlorotUniform", seed=None, input_axes=None,
               output_axes=None)


def zeros() -> dict:
    return obj("keras.initializers", "Zeros")


def tensor(layer: str, shape: list, node: int = 0, index: int = 0,
           dtype: str = "float32") -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": dtype, "keras_history": [layer, node, index]}}


def input_layer(name: str, batch_shape: list, dtype: str = "float32") -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": batch_shape, "dtype": dtype, "sparse": False,
                       "ragged": False, "name": name, "optional": False},
            "registered_name": None, "name": name, "inbound_nodes": []}


def layer(cls: str, name: str, config: dict, *calls: list, kwargs: dict | None = None,
          module: str = "keras.layers", registered: str | None = None) -> dict:
    """A serialized layer; each call is the list of its positional arguments."""
    return {"module": module, "class_name": cls,
            "config": {"name": name, "trainable": True, "dtype": policy(), **config},
            "registered_name": registered, "name": name,
            "inbound_nodes": [{"args": args, "kwargs": dict(kwargs or {})} for args in calls]}


def dense(units: int, activation: str = "linear", **extra) -> dict:
    return {"units": units, "activation": activation, "use_bias": True,
            "kernel_initializer": glorot(), "bias_initializer": zeros(),
            "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None, "quantization_config": None, **extra}


def two_tower_config() -> dict:
    """Two inputs, a shared Dense, Concatenate, a renamed layer and two outputs."""
    v16, v32 = [None, 16], [None, 32]
    layers = [
        input_layer("query", v16),
        input_layer("item", v16),
        layer("Dense", "encoder", dense(32, "relu"),
              [tensor("query", v16)], [tensor("item", v16)]),
        layer("Concatenate", "joint", {"axis": -1},
              [[tensor("encoder", v32, 0), tensor("encoder", v32, 1)]]),
        layer("Dense", "hidden-1", dense(16, "relu", kernel_regularizer=obj(
            "keras.regularizers", "L2", l2=0.001)), [tensor("joint", [None, 64])]),
        layer("Dropout", "dropout", {"rate": 0.25, "seed": None, "noise_shape": None},
              [tensor("hidden-1", v16)], kwargs={"training": False}),
        layer("Dense", "score", dense(1, "sigmoid"), [tensor("dropout", v16)]),
        layer("Dense", "category", dense(5, "softmax", kernel_initializer=obj(
            "keras.initializers", "HeNormal", seed=None)), [tensor("joint", [None, 64])]),
    ]
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": "two tower", "trainable": True, "layers": layers,
                       "input_layers": [["query", 0, 0], ["item", 0, 0]],
                       "output_layers": [["score", 0, 0], ["category", 0, 0]]},
            "registered_name": "Functional"}


TWO_TOWER = """\
tfspec 1
name "two tower"

model two_tower functional {
  input query: float32[16]
  input item: float32[16]
  layer encoder = Dense(32, activation = "relu")
  encoder_call1 = encoder(query)
  encoder_call2 = encoder(item)
  joint = Concatenate()([encoder_call1, encoder_call2])
  hidden_1 = Dense(
    16,
    activation = "relu",
    kernel_regularizer = L2(l2 = 0.001),
    name = "hidden-1",
  )(joint)
  dropout = Dropout(0.25)(hidden_1)
  output score = Dense(1, activation = "sigmoid")(dropout)
  output category = Dense(
    5,
    activation = "softmax",
    kernel_initializer = "he_normal",
  )(joint)
}
"""


def sequential_config() -> dict:
    conv = {"filters": 8, "kernel_size": [3], "strides": [1], "padding": "valid",
            "data_format": "channels_last", "dilation_rate": [1], "groups": 1,
            "activation": "relu", "use_bias": True, "kernel_initializer": glorot(),
            "bias_initializer": zeros(), "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    layers = [
        {k: v for k, v in input_layer("input_layer", [None, 32, 1]).items()
         if k not in ("name", "inbound_nodes")},
        layer("Conv1D", "conv1d", conv),
        layer("MaxPooling1D", "max_pooling1d", {"pool_size": [2], "padding": "valid",
                                                "strides": [2], "data_format": "channels_last"}),
        layer("Flatten", "flatten", {"data_format": "channels_last"}),
        layer("Dropout", "dropout", {"rate": 0.25, "seed": None, "noise_shape": None}),
        layer("Dense", "dense", dense(3, "softmax", kernel_constraint=obj(
            "keras.constraints", "MaxNorm", max_value=3.0, axis=0))),
    ]
    for entry in layers[1:]:
        del entry["name"], entry["inbound_nodes"]
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "classifier", "trainable": True, "dtype": policy(),
                       "layers": layers, "build_input_shape": [None, 32, 1]},
            "registered_name": None}


SEQUENTIAL = """\
tfspec 1
name "classifier"

model classifier sequential {
  input input_layer: float32[32, 1]
  Conv1D(8, [3], activation = "relu", name = "conv1d")
  MaxPooling1D(name = "max_pooling1d")
  Flatten(name = "flatten")
  Dropout(0.25, name = "dropout")
  Dense(
    3,
    activation = "softmax",
    kernel_constraint = MaxNorm(max_value = 3.0),
    name = "dense",
  )
}
"""


def assert_clean_and_canonical(text: str) -> None:
    """The spec validates with no diagnostics at all, and `fmt` leaves it unchanged."""
    result = tfspec.validate_text(text, "x.tfspec")
    assert result.ok, [f"{d.code} {d.message}" for d in result.diagnostics]
    assert not len(result.diagnostics), [f"{d.code} {d.message}" for d in result.diagnostics]
    assert tfspec.format_spec(result.ir) == text


def errors_of(config: dict) -> list[tuple[str, str, str | None]]:
    with pytest.raises(SpecError) as info:
        import_config(config, filename="model.json")
    diags = info.value.diagnostics
    assert diags.file == "model.json"
    assert all(d.span is None and d.file == "model.json" for d in diags)
    return [(d.code, d.message, d.hint) for d in diags]


# -- part one: configs, no TensorFlow ----------------------------------------------------------


def test_functional_config_imports_to_a_clean_spec():
    ir = import_config(two_tower_config())
    assert set(ir) == {"tfspec", "name", "model"}
    text = tfspec.format_spec(ir)
    assert text == TWO_TOWER
    assert_clean_and_canonical(text)


def test_sequential_config_imports_to_a_clean_spec():
    text = tfspec.format_spec(import_config(sequential_config()))
    assert text == SEQUENTIAL
    assert_clean_and_canonical(text)


def test_config_forms_and_spec_name():
    full = two_tower_config()
    inner = full["config"]
    assert import_config(inner) == import_config(full)
    assert import_config(json.loads(json.dumps(full))) == import_config(full)
    ir = import_config(full, name="towers")
    assert ir["name"] == "towers" and ir["model"]["name"] == "two_tower"
    seq = sequential_config()
    assert import_config(seq["config"]) == import_config(seq)


def test_output_is_deterministic():
    texts = {tfspec.format_spec(import_config(two_tower_config())) for _ in range(3)}
    assert len(texts) == 1


def test_sequential_without_input_layer_uses_build_shape():
    config = sequential_config()["config"]
    config["layers"] = config["layers"][1:]
    text = tfspec.format_spec(import_config(config))
    assert "  input input: float32[32, 1]\n" in text
    assert_clean_and_canonical(text)


def test_names_are_sanitized_and_keep_the_keras_name():
    v4 = [None, 4]
    config = {
        "name": "3d-net",
        "layers": [
            input_layer("in put", v4),
            layer("Dense", "1st.dense", dense(4), [tensor("in put", v4)]),
            layer("Dense", "input", dense(4), [tensor("1st.dense", v4)]),
            layer("Dense", "Dense", dense(4), [tensor("input", v4)]),
            layer("Dense", "_1st_dense", dense(4), [tensor("Dense", v4)]),
            layer("Dense", "add", dense(4), [tensor("_1st_dense", v4)],
                  [tensor("_1st_dense", v4)]),
            layer("Add", "true", {}, [[tensor("add", v4, 0), tensor("add", v4, 1)]]),
        ],
        "input_layers": [["in put", 0, 0]],
        "output_layers": [["true", 0, 0]],
    }
    ir = import_config(config)
    assert ir["name"] == "3d-net" and ir["model"]["name"] == "_3d_net"
    text = tfspec.format_spec(ir)
    assert text == """\
tfspec 1
name "3d-net"

model _3d_net functional {
  # imported from the Keras input "in put"
  input in_put: float32[4]
  _1st_dense_2 = Dense(4, name = "1st.dense")(in_put)
  input_ = Dense(4, name = "input")(_1st_dense_2)
  Dense_ = Dense(4, name = "Dense")(input_)
  _1st_dense = Dense(4)(Dense_)
  layer add_layer = Dense(4, name = "add")
  add_layer_call1 = add_layer(_1st_dense)
  add_layer_call2 = add_layer(_1st_dense)
  output true_ = Add(name = "true")([add_layer_call1, add_layer_call2])
}
"""
    assert_clean_and_canonical(text)


def test_outputs_keep_the_model_order():
    v = [None, 4]

    def config(outputs: list) -> dict:
        return {"name": "m", "layers": [
            input_layer("x", v),
            layer("Dense", "a", dense(4), [tensor("x", v)]),
            layer("Dense", "b", dense(2), [tensor("a", v)]),
            layer("Dense", "c", dense(3), [tensor("x", v)]),
        ], "input_layers": [["x", 0, 0]], "output_layers": outputs}

    in_order = tfspec.format_spec(import_config(config([["b", 0, 0], ["c", 0, 0],
                                                        ["a", 0, 0]])))
    assert in_order.endswith("""\
  a = Dense(4)(x)
  output b = Dense(2)(a)
  output c = Dense(3)(x)
  output a
}
""")
    reversed_ = tfspec.format_spec(import_config(config([["c", 0, 0], ["x", 0, 0],
                                                         ["b", 0, 0]])))
    assert reversed_.endswith("""\
  a = Dense(4)(x)
  b = Dense(2)(a)
  c = Dense(3)(x)
  output c
  output x
  output b
}
""")
    for text in (in_order, reversed_):
        assert_clean_and_canonical(text)

def test_defaults_are_dropped_and_the_rest_kept():
    v = [None, 8, 8, 3]
    conv = {"filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
            "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
            "activation": "linear", "use_bias": False,
            "kernel_initializer": obj("keras.initializers", "VarianceScaling", scale=2.0,
                                      mode="fan_out", distribution="truncated_normal",
                                      seed=None),
            "bias_initializer": zeros(), "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None}
    frozen = layer("BatchNormalization", "bn", {
        "axis": -1, "momentum": 0.9, "epsilon": 0.001, "center": True, "scale": True,
        "beta_initializer": zeros(), "gamma_initializer": obj("keras.initializers", "Ones"),
        "moving_mean_initializer": zeros(), "moving_variance_initializer": obj(
            "keras.initializers", "Ones"), "beta_regularizer": None, "gamma_regularizer": None,
        "beta_constraint": None, "gamma_constraint": None, "synchronized": False,
    }, [tensor("conv", [None, 8, 8, 4])], kwargs={"mask": None})
    frozen["config"]["trainable"] = False
    pool = layer("MaxPooling2D", "pool", {"pool_size": [2, 2], "padding": "valid",
                                          "strides": [1, 1], "data_format": "channels_last"},
                 [tensor("bn", [None, 8, 8, 4])])
    pool["config"]["dtype"] = policy("mixed_float16")
    config = {"name": "m", "layers": [
        input_layer("image", v, dtype="uint8"),
        layer("Conv2D", "conv", conv, [tensor("image", v)]),
        frozen,
        pool,
    ], "input_layers": [["image", 0, 0]], "output_layers": [["pool", 0, 0]]}
    body = import_config(config)["model"]["body"]
    assert body[0] == {"input": "image", "dtype": "uint8", "shape": [8, 8, 3]}
    assert body[1]["value"]["call"] == {
        "call": "Conv2D", "args": [4, [3, 3]],
        "kwargs": {"padding": "same", "use_bias": False,
                   "kernel_initializer": {"call": "VarianceScaling",
                                          "kwargs": {"scale": 2.0, "mode": "fan_out"}}}}
    assert body[2]["value"]["call"] == {
        "call": "BatchNormalization", "kwargs": {"momentum": 0.9, "trainable": False}}
    assert body[3]["output"] == "pool"
    assert body[3]["value"]["call"] == {
        "call": "MaxPooling2D", "kwargs": {"strides": [1, 1], "dtype": "mixed_float16"}}
    assert_clean_and_canonical(tfspec.format_spec(import_config(config)))


def test_tensor_arithmetic_becomes_layers():
    v = [None, 4]

    def op(cls: str, name: str, *args) -> dict:
        return {"module": "keras.src.ops.numpy", "class_name": cls, "config": {"name": name},
                "registered_name": cls, "name": name,
                "inbound_nodes": [{"args": list(args), "kwargs": {}}]}

    config = {"name": "ops", "layers": [
        input_layer("x", v),
        op("Add", "add", tensor("x", v), 3.0),
        op("Multiply", "multiply", tensor("add", v), 0.5),
        op("Subtract", "subtract", 1.0, tensor("multiply", v)),
        op("Add", "add_1", tensor("subtract", v), tensor("x", v)),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["add_1", 0, 0]]}
    text = tfspec.format_spec(import_config(config))
    assert "  add = Rescaling(1.0, offset = 3.0)(x)\n" in text
    assert "  multiply = Rescaling(0.5)(add)\n" in text
    assert "  subtract = Rescaling(-1.0, offset = 1.0)(multiply)\n" in text
    assert "  output add_1 = Add()([subtract, x])\n" in text
    assert_clean_and_canonical(text)


def test_legacy_keras2_config():
    config = {"class_name": "Model", "config": {
        "name": "old", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 5], "dtype": "float32",
                        "sparse": False, "ragged": False, "name": "input_1"}},
            {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]],
             "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 2,
                        "activation": "relu", "use_bias": True,
                        "kernel_initializer": {"class_name": "GlorotUniform",
                                               "config": {"seed": None}},
                        "bias_initializer": {"class_name": "Zeros", "config": {}}}},
        ],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    text = tfspec.format_spec(import_config(config))
    assert "  input input_1: float32[5]\n" in text
    assert '  output dense = Dense(2, activation = "relu")(input_1)\n' in text
    assert_clean_and_canonical(text)


def test_initializers_with_arguments_are_calls():
    """An object is a Keras string only where `keras.<kind>.get(string)` builds it."""
    config = with_layer(layer("Dense", "d", dense(
        4, kernel_initializer=obj("keras.initializers", "RandomNormal", mean=0.0,
                                  stddev=0.05, seed=None),
        bias_initializer=obj("keras.initializers", "Constant", value=0.0),
        kernel_regularizer=obj("keras.regularizers", "L1L2", l1=0.0, l2=0.0),
        kernel_constraint=obj("keras.constraints", "MaxNorm", max_value=3.0, axis=0),
    ), [tensor("x", [None, 4])]))
    config["layers"][2]["config"]["bias_initializer"] = obj("keras.initializers", "Constant",
                                                            value=0.5)
    text = tfspec.format_spec(import_config(config))
    assert text.endswith("""\
  d = Dense(
    4,
    kernel_initializer = "random_normal",
    bias_initializer = Constant(),
    kernel_regularizer = "l1l2",
    kernel_constraint = MaxNorm(max_value = 3.0),
  )(x)
  output out = Dense(1, bias_initializer = Constant(value = 0.5))(d)
}
""")
    assert_clean_and_canonical(text)  # "constant" would be E305: Keras cannot build it


def seq_entry(cls: str, name: str, config: dict) -> dict:
    """A layer as a Sequential model's config lists it (no name, no inbound nodes)."""
    entry = layer(cls, name, config)
    del entry["name"], entry["inbound_nodes"]
    return entry


def nested_sequential(name: str, *layers: dict, calls: list, trainable: bool = True
                      ) -> dict:
    """A Sequential model used as a layer of a functional model, applied to `calls`."""
    first = {k: v for k, v in input_layer(f"input_{name}", [None, 4]).items()
             if k not in ("name", "inbound_nodes")}
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": name, "trainable": trainable, "dtype": policy(),
                       "layers": [first, *layers]},
            "registered_name": None, "name": name,
            "inbound_nodes": [{"args": args, "kwargs": {"mask": None}} for args in calls]}


NESTED = """\
tfspec 1
name "m"

block Stem() {
  input x
  proj = Dense(8)(x)
  norm = LayerNormalization(epsilon = 1e-06)(proj)
  output out = Identity()(norm)
}

block Down() {
  input x
  layer_norm = LayerNormalization(trainable = false)(x)
  output out = Identity()(layer_norm)
}

model m functional {
  input x: float32[4]
  stem = Stem()(x)
  down = Down()(stem)
  output out = Dense(1)(down)
}
"""


def test_nested_sequential_becomes_a_block():
    v = [None, 4]
    norm = {"axis": [-1], "epsilon": 1e-6, "center": True, "scale": True}
    stem = nested_sequential("stem", seq_entry("Dense", "stem_proj", dense(8)),
                             seq_entry("LayerNormalization", "stem_norm", norm),
                             calls=[[tensor("x", v)]])
    down = nested_sequential("down", seq_entry("LayerNormalization", "layer_norm",
                                               {**norm, "epsilon": 0.001}),
                             calls=[[tensor("stem", [None, 8])]], trainable=False)
    config = {"name": "m", "layers": [
        input_layer("x", v), stem, down,
        layer("Dense", "out", dense(1), [tensor("down", [None, 8])]),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}
    text = tfspec.format_spec(import_config(config))
    assert text == NESTED
    assert_clean_and_canonical(text)
    # the block's output layer takes the use's name: the layers keep the Keras names
    compiled = compile_text(text, "m.tfspec").source
    assert 'keras.layers.Dense(8, name=f"{name}_proj")' in compiled
    assert 'keras.layers.Identity(name=name)' in compiled
    assert 'stem = stem_block(x, name="stem")' in compiled


def test_sequential_with_a_nested_model_becomes_functional():
    inner = nested_sequential("features", seq_entry("Dense", "features_dense", dense(3)),
                              calls=[])
    del inner["name"], inner["inbound_nodes"]
    config = {"name": "s", "layers": [
        {k: v for k, v in input_layer("values", [None, 4]).items()
         if k not in ("name", "inbound_nodes")},
        inner, seq_entry("Dense", "head", dense(2)),
    ]}
    text = tfspec.format_spec(import_config(config))
    assert text.endswith("""\
block Features() {
  input x
  dense = Dense(3)(x)
  output out = Identity()(dense)
}

model s functional {
  input values: float32[4]
  features = Features()(values)
  output head = Dense(2)(features)
}
""")
    assert_clean_and_canonical(text)


def test_application_layers_become_keras_layers():
    """`LayerScale` (ConvNeXt) and `CustomScaleLayer` (Inception-ResNet-v2) are layers
    of keras.applications' own modules; each has an exact Keras equivalent."""
    v = [None, 4]
    scale = layer("LayerScale", "ls", {"init_values": 1e-6, "projection_dim": 4},
                  [tensor("x", v)], module="keras.src.applications.convnext",
                  registered="LayerScale")
    mix = layer("CustomScaleLayer", "mix", {"scale": 0.17},
                [[tensor("x", v), tensor("ls", v)]],
                module="keras.src.applications.inception_resnet_v2",
                registered="CustomScaleLayer")
    config = {"name": "m", "layers": [input_layer("x", v), scale, mix],
              "input_layers": [["x", 0, 0]], "output_layers": [["mix", 0, 0]]}
    text = tfspec.format_spec(import_config(config))
    assert text.endswith("""\
  ls = EinsumDense("...c,c->...c", 4, kernel_initializer = Constant(value = 1e-06))(x)
  mix_scaled = Rescaling(0.17)(ls)
  output mix = Add()([x, mix_scaled])
}
""")
    assert_clean_and_canonical(text)


# -- what cannot be imported -------------------------------------------------------------------


def with_layer(entry: dict) -> dict:
    """A model input -> `entry` -> Dense output, as a functional config."""
    v = [None, 4]
    return {"name": "m", "layers": [
        input_layer("x", v), entry,
        layer("Dense", "out", dense(1), [tensor(entry["name"], v)]),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}


def test_lambda_layer_is_reported():
    lam = layer("Lambda", "double", {"function": {"class_name": "__lambda__", "config": {
        "code": "4wEAAAAAAAAAAAAA", "defaults": None, "closure": None}}, "arguments": {}},
        [tensor("x", [None, 4])])
    [(code, message, hint)] = errors_of(with_layer(lam))
    assert code == "E300"
    assert message == ("layer `double` cannot be imported: a `Lambda` layer holds a "
                       "Python function")
    assert "custom layers cannot be expressed in a spec" in hint


def test_custom_layers_are_all_reported():
    v = [None, 4]
    config = {"name": "m", "layers": [
        input_layer("x", v),
        layer("Scale", "scale", {"factor": 2}, [tensor("x", v)], module="my_layers",
              registered="MyLayers>Scale"),
        layer("Dense", "shadow", dense(4), [tensor("scale", v)], module="my_layers",
              registered="MyLayers>Dense"),
        layer("Dense", "out", dense(1), [tensor("shadow", v)]),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}
    errors = errors_of(config)
    assert [(code, message) for code, message, _ in errors] == [
        ("E300", "layer `scale` is the custom class `Scale` from `my_layers`, which is not "
                 "a Keras layer"),
        ("E300", "layer `shadow` is the custom class `Dense` from `my_layers`, which is not "
                 "a Keras layer"),
    ]
    assert all("custom layers cannot be expressed in a spec" in hint for *_, hint in errors)


def test_custom_initializer_is_reported():
    entry = layer("Dense", "d", dense(4, kernel_initializer=obj("my_inits", "Fancy")),
                  [tensor("x", [None, 4])])
    [(code, message, _)] = errors_of(with_layer(entry))
    assert (code, message) == ("E300", "`kernel_initializer` of `d` is `Fancy`, which is "
                                       "not in `keras.initializers`")


def test_custom_activation_is_reported():
    act = {"module": "builtins", "class_name": "function", "config": "my_act",
           "registered_name": "function"}
    entry = layer("Dense", "d", dense(4, activation=act), [tensor("x", [None, 4])])
    [(code, message, _)] = errors_of(with_layer(entry))
    assert (code, message) == ("E300", "`activation` of `d` is the custom function `my_act`")

def test_nested_models_that_cannot_be_blocks_are_reported():
    v = [None, 4]
    shared = nested_sequential("encoder", seq_entry("Dense", "encoder_dense", dense(4)),
                               calls=[[tensor("x", v)], [tensor("x", v)]])
    config = {"name": "m", "layers": [
        input_layer("x", v), shared,
        layer("Add", "sum", {}, [[tensor("encoder", v, 0), tensor("encoder", v, 1)]]),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["sum", 0, 0]]}
    [(code, message, hint)] = errors_of(config)
    assert (code, message) == ("E300", "the nested model `encoder` (`Sequential`) is applied "
                                       "2 times; the block it would become builds new layers "
                                       "at each use, so its weights would not be shared")
    assert "flat functional model" in hint

    wrapped = nested_sequential("step", seq_entry("Dense", "step_dense", dense(4)), calls=[])
    del wrapped["name"], wrapped["inbound_nodes"]
    entry = layer("TimeDistributed", "td", {"layer": wrapped}, [tensor("x", [None, 3, 4])])
    [(code, message, _)] = errors_of(with_layer(entry))
    assert (code, message) == ("E300", "layer `step` is a model (`Sequential`) given to "
                                       "another layer; a spec passes only Keras layers there")

    two = {"module": "keras.src.models.functional", "class_name": "Functional",
           "registered_name": "Functional", "name": "two", "config": {
               "name": "two", "trainable": True, "layers": [
                   input_layer("a", v),
                   layer("Dense", "d1", dense(4), [tensor("a", v)]),
                   layer("Dense", "d2", dense(4), [tensor("a", v)])],
               "input_layers": [["a", 0, 0]],
               "output_layers": [["d1", 0, 0], ["d2", 0, 0]]},
           "inbound_nodes": [{"args": [tensor("x", v)], "kwargs": {}}]}
    config = {"name": "m", "layers": [
        input_layer("x", v), two,
        layer("Dense", "out", dense(1), [tensor("two", v)]),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}
    [(code, message, _)] = errors_of(config)
    assert (code, message) == ("E406", "the nested model `two` has 2 outputs; the block it "
                                       "becomes has one, used like a layer's")


def test_layer_with_several_outputs_is_reported():
    v = [None, 3, 4]
    lstm = layer("LSTM", "lstm", {"units": 4, "return_state": True},
                 [tensor("x", v)])
    config = {"name": "m", "layers": [
        input_layer("x", v), lstm,
        layer("Dense", "out", dense(1), [tensor("lstm", [None, 4], index=1)]),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}
    errors = errors_of(config)
    assert errors[0][:2] == ("E406", "layer `lstm` (`LSTM`) returns several tensors; a spec "
                                     "node holds one tensor")


def test_unsupported_operation_is_reported():
    v = [None, 4]
    entry = {"module": "keras.src.ops.numpy", "class_name": "Mean", "config": {"name": "mean"},
             "registered_name": "Mean", "name": "mean",
             "inbound_nodes": [{"args": [tensor("x", v)], "kwargs": {"axis": -1}}]}
    [(code, message, _)] = errors_of(with_layer(entry))
    assert (code, message) == ("E300", "`mean` is the Keras operation `Mean` (from "
                                       "`keras.src.ops.numpy`), which has no layer form in "
                                       "tfspec")


def test_subclassed_model_is_reported():
    config = {"module": "my_models", "class_name": "TwoTower", "config": {},
              "registered_name": "Custom>TwoTower"}
    [(code, message, hint)] = errors_of(config)
    assert code == "E300"
    assert message == ("`TwoTower` is not a Sequential or Functional model; subclassed "
                       "models cannot be imported")
    assert "functional API" in hint


def test_malformed_config_is_reported():
    [(code, message, _)] = errors_of({"class_name": "Functional", "config": {"name": "m"}})
    assert code == "E103" and message == "not a Keras model config: missing key 'layers'"


def _malformed(case: str) -> dict:
    config = two_tower_config()
    layers = config["config"]["layers"]
    if case == "inbound_nodes":
        layers[2]["inbound_nodes"] = 5
    elif case == "keras_history":
        layers[2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["a", 0]
    elif case == "input_config":
        layers[0]["config"] = [1, 2]
    elif case == "class_name":
        layers[2]["class_name"] = ["Dense"]
    elif case == "output":
        config["config"]["output_layers"] = [["nowhere", 0, 0]]
    return config


@pytest.mark.parametrize("case, message", [
    ("inbound_nodes", "the inbound_nodes of layer 'encoder' are not a list"),
    ("keras_history", "a malformed keras_history"),
    ("input_config", "the config of 'query' is not an object"),
    ("class_name", "a layer is not a serialized Keras object"),
    ("output", "model output 'nowhere' (call 0) is not a layer call of the model"),
])
def test_malformed_configs_are_e103_with_what_is_wrong(case, message):
    [(code, got, hint)] = errors_of(_malformed(case))
    assert (code, got) == ("E103", f"not a Keras model config: {message}")
    assert hint == "give a `.keras` file, or the JSON of `model.get_config()`"


def test_mutated_configs_raise_only_spec_errors():
    """Any value anywhere in a config replaced by junk: E103 or another located
    diagnostic, never an exception of the importer's own (a bug: status 2)."""
    import copy
    import random

    junk = [None, 0, -1, 2.5, True, "", "x", [], [1], [None], {}, {"a": 1}, ["x", 0, 0],
            [[["a", 0, 0, 5]]], {"class_name": "__tuple__", "config": 3},
            {"class_name": "__keras_tensor__", "config": {}}, {"args": [], "kwargs": []}]

    def paths(value, at=()):
        yield at
        items = value.items() if isinstance(value, dict) else enumerate(value) if \
            isinstance(value, list) else ()
        for key, item in items:
            yield from paths(item, (*at, key))

    rng = random.Random(20)
    bases = [two_tower_config(), sequential_config()]
    for _ in range(400):
        config = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            at = rng.choice(list(paths(config))[1:])
            target = config
            for key in at[:-1]:
                target = target[key]
            target[at[-1]] = copy.deepcopy(rng.choice(junk))
        try:
            import_config(config)
        except SpecError:
            pass


def test_cli_import_exit_status_tells_a_bad_config_from_a_bug(tmp_path, monkeypatch, capsys):
    """A malformed config is the input's fault (E103, status 1); an exception of the
    importer's own code is a bug (status 2, one line), even an AttributeError."""
    from tfspec import cli
    from tfspec.inspect import importer

    monkeypatch.delenv("TFSPEC_DEBUG", raising=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_malformed("inbound_nodes")))
    assert cli.main(["import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: error[E103]: not a Keras model config: the inbound_nodes" in err

    good = tmp_path / "good.json"
    good.write_text(json.dumps(two_tower_config()))
    assert cli.main(["import", str(good)]) == 0
    capsys.readouterr()

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'get'")

    monkeypatch.setattr(importer, "_node_arguments", broken)
    assert cli.main(["import", str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tfspec: internal error: AttributeError: 'NoneType' object has no "
                   "attribute 'get' (set TFSPEC_DEBUG=1 for a traceback, and please report it)"]


# -- files -------------------------------------------------------------------------------------


def write_keras_zip(path: Path, config: dict) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps(config))


def test_import_file_reads_keras_archives_and_json(tmp_path):
    keras_file = tmp_path / "towers.keras"
    write_keras_zip(keras_file, two_tower_config())
    json_file = tmp_path / "towers.json"
    json_file.write_text(json.dumps(two_tower_config()["config"]))
    assert import_to_text(keras_file) == TWO_TOWER
    assert import_file(json_file) == import_file(keras_file)


@pytest.mark.parametrize("case", ["missing", "directory", "not_zip", "no_config", "bad_json",
                                  "h5", "list"])
def test_unreadable_files_are_e103(tmp_path, case):
    path = tmp_path / "model.keras"
    if case == "directory":
        path.mkdir()
    elif case == "not_zip":
        path.write_text("hello")
    elif case == "no_config":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model.weights.h5", b"")
    elif case == "bad_json":
        path = tmp_path / "config.json"
        path.write_text("{not json")
    elif case == "h5":
        path = tmp_path / "model.h5"
        path.write_bytes(b"\x89HDF\r\n")
    elif case == "list":
        path = tmp_path / "config.json"
        path.write_text("[]")
    with pytest.raises(SpecError) as info:
        import_file(path)
    [diag] = info.value.diagnostics
    assert diag.code == "E103" and diag.file == str(path) and diag.span is None
    assert diag.message == {
        "missing": "cannot read the file: No such file or directory",
        "directory": "cannot import a directory (a SavedModel?)",
        "not_zip": "not a .keras file (a .keras file is a zip archive)",
        "no_config": "the archive has no config.json: not a .keras file",
        "bad_json": "cannot read the model config: invalid JSON (Expecting property name "
                    "enclosed in double quotes: line 1 column 2 (char 1))",
        "h5": "cannot import a legacy HDF5 file",
        "list": "not a Keras model config: the JSON is not an object",
    }[case]


def test_importing_never_imports_tensorflow(tmp_path):
    keras_file = tmp_path / "m.keras"
    write_keras_zip(keras_file, two_tower_config())
    script = (
        "import sys, tfspec.inspect.importer as i\n"
        f"i.import_to_text({str(keras_file)!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)


# -- part two: real Keras models ---------------------------------------------------------------

# name -> constructor keyword arguments (small inputs: 96 px is above every minimum)
@pytest.fixture(scope="module")
def keras():
    from tfspec.jobs.build import quiet_tensorflow

    quiet_tensorflow()
    import keras

    return keras


def weighted_layers(model, prefix: str = ""):
    """(name in the imported model, layer) for every layer with weights. A nested
    model's layers are named `<model>_<layer>`, unless the name starts so already."""
    for layer in model.layers:
        name = layer.name if layer.name.startswith(prefix) else prefix + layer.name
        if hasattr(layer, "layers"):  # a nested model
            yield from weighted_layers(layer, name + "_")
        elif layer.weights:
            yield name, layer


def copy_weights(original, compiled) -> None:
    """The original's weights into the compiled model, layer by layer, by name; both
    have the same layers with weights."""
    expected = dict(weighted_layers(original))
    got = {layer.name: layer for layer in compiled.layers if layer.weights}
    assert sorted(got) == sorted(expected)
    for name, layer in expected.items():
        got[name].set_weights(layer.get_weights())


def round_trip(original, path: Path, batch):
    """Save, import, validate, compile and build; copy weights; compare outputs."""
    import numpy as np

    from tfspec.codegen.program import compile_text
    from tfspec.jobs.build import build_model

    original.save(path)
    text = import_to_text(path)
    assert_clean_and_canonical(text)
    assert import_to_text(path) == text  # same model, same bytes
    assert tfspec.format_spec(import_config(original.get_config())) == text  # tuples too
    compiled = build_model(compile_text(text, "imported.tfspec"))
    assert compiled.count_params() == original.count_params()
    copy_weights(original, compiled)
    expected = original(batch, training=False)
    got = compiled(batch, training=False)
    if isinstance(got, dict):  # several outputs: a dict by spec output name, in order
        got = list(got.values())
    if not isinstance(expected, (list, tuple)):
        expected, got = [expected], [got]
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=0, atol=1e-5)
    return text


def test_application_round_trip(keras, tmp_path):
    """Every keras.applications model: test_import_applications.py (slow)."""
    import numpy as np

    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3),
                                                classes=10)
    batch = np.random.default_rng(0).random((2, 96, 96, 3), dtype=np.float32)
    text = round_trip(model, tmp_path / "x.keras", batch)
    assert text.count("\n  output ") == 1


def test_nested_models_round_trip(keras, tmp_path):
    """Nested Sequential and Functional models (in each other, frozen, with two
    inputs) become blocks; so does a model inside a Sequential one."""
    import numpy as np

    layers = keras.layers
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    pair = keras.Model([a, b], layers.Dense(3, name="pair_dense")(
        layers.Concatenate(name="cat")([a, b])), name="pair")
    u = keras.Input((4,), name="u")
    deep = keras.Sequential([layers.Dense(4, name="deep_dense")], name="deep")
    wrap = keras.Model(u, deep(layers.Dense(4, name="pre")(u)), name="wrap")
    frozen = keras.Sequential([keras.Input((4,)), layers.Dense(4, name="frozen_dense"),
                               layers.BatchNormalization(name="bn")], name="frozen")
    frozen.trainable = False
    x, y = keras.Input((4,), name="x"), keras.Input((4,), name="y")
    model = keras.Model([x, y], pair([wrap(frozen(x)), y]), name="outer")
    rng = np.random.default_rng(0)
    batch = {"x": rng.random((2, 4), dtype=np.float32),
             "y": rng.random((2, 4), dtype=np.float32)}

    text = round_trip(ByPosition(model), tmp_path / "x.keras", batch)
    assert "block Wrap() {\n  input u\n  pre = Dense(4)(u)\n  deep = Deep()(pre)\n" in text
    assert "block Pair() {\n  input a\n  input b\n" in text
    assert "  output pair = Pair()([wrap, y])\n" in text
    assert "  dense = Dense(4, trainable = false)(x)\n" in text
    compiled = build_model_of(text)
    assert [w.name for w in compiled.get_layer("frozen_dense").trainable_weights] == []
    assert compiled.get_layer("wrap_deep_deep_dense").kernel.shape == (4, 4)

    seq = keras.Sequential([keras.Input((4,)), deep, layers.Dense(2, name="head")],
                           name="seq")
    text = round_trip(seq, tmp_path / "s.keras", batch["x"])
    assert "model seq functional {\n" in text


class ByPosition:
    """A model that takes a list, called as the compiled model is: a dict by input name."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, attr):
        return getattr(self.model, attr)

    def __call__(self, inputs, training=False):
        return self.model(list(inputs.values()), training=training)


def build_model_of(text: str):
    from tfspec.jobs.build import build_model

    return build_model(compile_text(text, "imported.tfspec"))


def test_functional_model_with_shared_layers_round_trips(keras, tmp_path):
    import numpy as np

    layers = keras.layers
    tokens = keras.Input((6,), dtype="int32", name="input")
    feats = keras.Input((6, 4), name="num feats")
    seq = layers.Embedding(50, 8, name="emb")(tokens)
    seq = layers.Bidirectional(layers.LSTM(5, return_sequences=True), name="bi")(seq)
    per_step = layers.TimeDistributed(layers.Dense(10), name="td")(feats)
    shared = layers.Dense(7, activation="tanh", name="concatenate")  # a catalog name
    a, b = shared(seq), shared(per_step)
    att = layers.MultiHeadAttention(2, 4, name="mha")(a, b, use_causal_mask=True)
    x = (att + 3.0) * (1.0 / 6.0)  # keras.ops on symbolic tensors
    x = 2.0 - (x - a)
    joined = layers.Concatenate(name="output")([x, b])
    joined = layers.LayerNormalization(name="1st.norm")(joined)
    pooled = layers.GlobalAveragePooling1D()(joined)
    score = layers.Dense(1, activation="sigmoid", name="score")(pooled)
    kind = layers.Dense(3, name="Dense", kernel_regularizer=keras.regularizers.L2(1e-3),
                        kernel_initializer=keras.initializers.HeNormal(seed=1))(pooled)
    model = keras.Model([tokens, feats], [kind, score], name="tricky model")
    rng = np.random.default_rng(0)
    batch = {"input": rng.integers(0, 50, (2, 6)).astype("int32"),
             "num_feats": rng.random((2, 6, 4), dtype=np.float32)}

    text = round_trip(ByPosition(model), tmp_path / "x.keras", batch)
    assert "  layer concatenate_layer = Dense(7, activation = \"tanh\", name = " \
           "\"concatenate\")\n" in text
    assert "  bi = Bidirectional(LSTM(5, return_sequences = true))(emb)\n" in text
    assert "use_causal_mask = true)\n" in text
    assert re.search(r"\n  (add\w*) = Rescaling\(1.0, offset = 3.0\)\(mha\)\n"
                     r"  multiply\w* = Rescaling\(0.16666666666666666\)\(\1\)\n", text)


def test_sequential_model_round_trips(keras, tmp_path):
    import numpy as np

    layers = keras.layers
    model = keras.Sequential([
        keras.Input((12, 3)),
        layers.Conv1D(8, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.GRU(6, return_sequences=True),
        layers.Dropout(0.1),
        layers.Flatten(),
        layers.Dense(4, activation="softmax", kernel_regularizer="l2"),
    ], name="seq")
    batch = np.random.default_rng(0).random((2, 12, 3), dtype=np.float32)
    text = round_trip(model, tmp_path / "x.keras", batch)
    assert "model seq sequential {\n" in text

