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
from tfspec.diagnostics import SpecError
from tfspec.importer import import_config, import_file, import_to_text

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

def test_nested_model_is_reported():
    inner = layer("Sequential", "backbone", {"layers": []}, [tensor("x", [None, 4])],
                  module="keras")
    [(code, message, hint)] = errors_of(with_layer(inner))
    assert code == "E300"
    assert message == ("layer `backbone` is a nested model (`Sequential`); a spec model "
                       "cannot contain another model")
    assert "flat functional model" in hint


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
        "import sys, tfspec.importer as i\n"
        f"i.import_to_text({str(keras_file)!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)


# -- part two: real Keras models ---------------------------------------------------------------

# name -> constructor keyword arguments (small inputs: 96 px is above every minimum)
APPLICATIONS = {
    name: {"input_shape": (96, 96, 3), "classes": 10}
    for name in ("MobileNetV2", "ResNet50", "DenseNet121", "EfficientNetB0", "VGG16",
                 "InceptionV3", "Xception", "NASNetMobile", "MobileNetV3Small", "ResNet50V2",
                 "MobileNet")
}


@pytest.fixture(scope="module")
def keras():
    from tfspec.build import quiet_tensorflow

    quiet_tensorflow()
    import keras

    return keras


def round_trip(original, path: Path, batch):
    """Save, import, validate, compile and build; copy weights; compare outputs."""
    import numpy as np

    from tfspec.build import build_model
    from tfspec.compiler import compile_text

    original.save(path)
    text = import_to_text(path)
    assert_clean_and_canonical(text)
    assert import_to_text(path) == text  # same model, same bytes
    assert tfspec.format_spec(import_config(original.get_config())) == text  # tuples too
    compiled = build_model(compile_text(text, "imported.tfspec"))
    assert compiled.count_params() == original.count_params()
    for keras_layer in original.layers:
        weights = keras_layer.get_weights()
        if weights:
            compiled.get_layer(keras_layer.name).set_weights(weights)
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


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_application_round_trip(keras, tmp_path, name):
    import numpy as np

    model = getattr(keras.applications, name)(weights=None, **APPLICATIONS[name])
    batch = np.random.default_rng(0).random((2, 96, 96, 3), dtype=np.float32)
    text = round_trip(model, tmp_path / "x.keras", batch)
    assert text.count("\n  output ") == 1


def test_convnext_is_reported_as_unsupported(keras):
    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(96, 96, 3), classes=10)
    errors = errors_of(model.get_config())
    assert {code for code, *_ in errors} == {"E300"}
    messages = [message for _, message, _ in errors]
    assert "layer `convnext_tiny_stage_0_block_0_layer_scale` is the custom class " \
           "`LayerScale` from `keras.src.applications.convnext`, which is not a Keras " \
           "layer" in messages
    assert "layer `convnext_tiny_stem` is a nested model (`Sequential`); a spec model " \
           "cannot contain another model" in messages


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

    class ByPosition:  # the original takes a list; the compiled model a dict by input name
        def __init__(self, model):
            self.model = model

        def __getattr__(self, attr):
            return getattr(self.model, attr)

        def __call__(self, inputs, training=False):
            return self.model(list(inputs.values()), training=training)

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

