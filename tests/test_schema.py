"""Tests of spec/tfspec.schema.json, the JSON Schema of the tfspec IR (docs/ir.md).

Besides validity and coverage, these tests pin down *where* errors appear, because the
checker turns jsonschema errors into located diagnostics:

- an unknown key is an ``additionalProperties`` error at the path of the object that
  holds it; the key is ``error.instance``'s key that is not in ``error.schema["properties"]``
  (``located`` below does that translation);
- statements (``input``/``layer``/``node``/``output``/``add``), expression objects
  (``ref``/``op``/``call``/``pipe``) and export targets (``format``) are discriminated
  unions (``allOf`` of ``if``/``then``), so a bad key or value under a known kind gives the
  error of that kind only;
- an object with *no* discriminating key gives an ``anyOf`` error whose context is one
  ``required`` error per kind, plus (for keys known to no kind) a ``propertyNames``
  ``enum`` error whose instance is the bad key and whose ``validator_value`` lists the
  known keys (material for "did you mean").
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "spec" / "tfspec.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)


def call(name, *args, **kwargs):
    """Builds an IR call: ``call("Dense", 10, activation="relu")``."""
    node: dict = {"call": name}
    if args:
        node["args"] = list(args)
    if kwargs:
        node["kwargs"] = kwargs
    return node


def ref(name):
    return {"ref": name}


def apply(layer, *inputs):
    """An application: ``Dense(10)(x)`` is ``apply(call("Dense", 10), ref("x"))``."""
    return {"call": layer, "args": list(inputs)}


def errors(doc) -> list[ValidationError]:
    return sorted(VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))


def located(error: ValidationError) -> list[list]:
    """The instance paths an error is about, as the checker should locate them.

    ``additionalProperties`` errors point at the object; the unknown keys are one level
    further down. ``propertyNames`` errors have the bad key as their instance.
    """
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        return [[*path, key] for key in error.instance if key not in known]
    if "propertyNames" in error.absolute_schema_path:
        return [[*path, error.instance]]
    return [path]


def all_locations(doc) -> list[list]:
    return [loc for error in errors(doc) for loc in located(error)]


# ----------------------------------------------------------------------- valid documents

SEQUENTIAL_MLP = {
    "tfspec": 1,
    "name": "mnist-mlp",
    "params": {"lr": 0.001, "epochs": 3, "hidden": [512, 512], "opt": "adam", "none": None},
    "data": {
        "source": call("keras", "mnist"),
        "split": {"validation": 0.1, "seed": 7},
        "batch": 256,
        "shuffle": True,
        "cache": True,
        "prefetch": "auto",
        "parallel": 4,
        "preprocess": [call("Rescaling", {"op": "/", "args": [1, 255]})],
    },
    "model": {
        "name": "Mlp",
        "kind": "sequential",
        "body": [
            {"input": "pixels", "dtype": "float32", "shape": [28, 28]},
            {"add": call("Flatten")},
            {"add": call("Dense", 512, activation="relu")},
            {"add": call("Dropout", 0.2)},
            {"add": call("Dense", 10, activation="softmax")},
        ],
    },
    "train": {
        "loop": "fit",
        "optimizer": call("Adam", learning_rate=ref("lr")),
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "epochs": ref("epochs"),
        "steps_per_execution": 32,
        "jit_compile": "auto",
        "mixed_precision": "float32",
        "verbose": 2,
        "callbacks": [
            call("EarlyStopping", monitor="val_loss", patience=3, restore_best_weights=True),
            call("BackupAndRestore", "runs/mnist/backup"),
        ],
    },
    "comments": [
        {"at": "/train/epochs", "text": "# keep it short", "trailing": True},
        {"at": "", "text": "# end", "end": True},
    ],
}

FUNCTIONAL_TWO_HEADS = {
    "tfspec": 1,
    "name": "two-heads",
    "params": {"width": 64, "scale": 2.0},
    "data": {
        "source": call("csv", "data/houses.csv"),
        "features": ["rooms", "area", "photo"],
        "labels": ["price", "kind"],
        "split": {"validation": 0.2, "test": "test", "seed": ref("width")},
        "batch": {"op": "*", "args": [16, 2]},
        "drop_remainder": True,
        "shuffle": 1024,
        "repeat": False,
    },
    "model": {
        "name": "TwoHeads",
        "kind": "functional",
        "body": [
            {"input": "tabular", "dtype": "float32", "shape": [2]},
            {"input": "photo", "shape": [None, None, 3]},
            {"layer": "shared", "value": call("Dense", ref("width"), activation="relu")},
            {"node": "a", "value": apply("shared", ref("tabular"))},
            {
                "node": "b",
                "value": {
                    "pipe": [
                        ref("photo"),
                        call("Conv2D", 16, 3, padding="same"),
                        call("GlobalAveragePooling2D"),
                        ref("shared"),
                    ]
                },
            },
            {"node": "joined", "value": apply(call("Concatenate"), [ref("a"), ref("b")])},
            {"node": "res", "value": {"op": "+", "args": [ref("joined"), ref("joined")]}},
            {"output": "price", "value": apply(call("Dense", 1), ref("res"))},
            {"node": "kind", "value": apply(call("Dense", 3, activation="softmax"), ref("res"))},
            {"output": "kind"},
        ],
    },
    "train": {
        "loop": "custom",
        "optimizer": "adam",
        "loss": {"price": "mse", "kind": call("SparseCategoricalCrossentropy")},
        "loss_weights": {"price": 1.0, "kind": ref("scale")},
        "metrics": {"price": ["mae"], "kind": ["accuracy", call("SparseTopKCategoricalAccuracy")]},
        "epochs": 2,
        "steps_per_epoch": 10,
        "validation_steps": 2,
        "seed": 1,
        "deterministic": True,
        "clip_norm": 1.0,
        "global_clip_norm": ref("scale"),
        "accumulate": 4,
        "mixed_precision": "mixed_bfloat16",
        "jit_compile": True,
    },
    "distribute": {
        "strategy": "multi_worker_mirrored",
        "cluster": {"chief": ["localhost:2222"], "worker": ["localhost:2223", "worker1:2224"]},
        "communication": "ring",
    },
}

BLOCK_USED_TWICE = {
    "tfspec": 1,
    "params": {"filters": 32},
    "blocks": [
        {
            "name": "ResBlock",
            "params": [{"name": "filters"}, {"name": "stride", "default": 1}],
            "body": [
                {"input": "x"},
                {
                    "node": "h",
                    "value": {
                        "pipe": [
                            ref("x"),
                            call(
                                "Conv2D", ref("filters"), 3, padding="same", strides=ref("stride")
                            ),
                            call("BatchNormalization"),
                            call("ReLU"),
                        ]
                    },
                },
                {"output": "y", "value": apply(call("Add"), [ref("x"), ref("h")])},
            ],
        }
    ],
    "model": {
        "name": "ResNetTiny",
        "kind": "subclass",
        "body": [
            {"input": "image", "dtype": "uint8", "shape": [32, 32, 3]},
            {"node": "x", "value": apply(call("Conv2D", ref("filters"), 3), ref("image"))},
            {"node": "r1", "value": apply(call("ResBlock", ref("filters")), ref("x"))},
            {
                "node": "r2",
                "value": {"pipe": [ref("r1"), call("ResBlock", filters=ref("filters"), stride=1)]},
            },
            {"node": "neg", "value": {"op": "neg", "args": [ref("r2")]}},
            {
                "output": "logits",
                "value": apply(call("Dense", 10), apply(call("Flatten"), ref("neg"))),
            },
        ],
    },
    "distribute": {"strategy": "mirrored", "devices": ["/gpu:0", "/gpu:1"]},
}

ALL_EXPORTS = {
    "tfspec": 1,
    "name": "exports",
    "params": {"tol": 1e-6},
    "data": {"source": call("synthetic", shape=[4], classes=3, count=64)},
    "model": {
        "name": "Tiny",
        "kind": "functional",
        "body": [
            {"input": "x", "shape": [4]},
            {"output": "y", "value": apply(call("Dense", 3), ref("x"))},
        ],
    },
    "distribute": {"strategy": "one_device", "device": "/cpu:0"},
    "export": [
        {
            "format": "saved_model",
            "path": "runs/out",
            "version": 2,
            "signature": "serving_default",
            "verify": True,
            "tolerance": ref("tol"),
        },
        {"format": "keras", "path": "runs/out/model.keras"},
        {
            "format": "tflite",
            "path": "runs/out/model.tflite",
            "quantize": "int8",
            "integer_io": True,
            "representative_samples": 50,
            "tolerance": 0.1,
        },
        {"format": "tflite", "path": "runs/out/model_f16.tflite", "quantize": "float16"},
        {"format": "tfjs", "path": "runs/out/tfjs", "quantize": "uint8", "verify": False},
        {"format": "onnx", "path": "runs/out/model.onnx", "opset": 17},
    ],
}

MINIMAL = {"tfspec": 1}

# `param seq_len = 128` then `input tokens: int32[seq_len, None]`: a dimension names a param
PARAM_DIMS = {
    "tfspec": 1,
    "params": {"seq_len": 128, "vocab": 1000},
    "model": {
        "name": "Tokens",
        "kind": "sequential",
        "body": [
            {"input": "tokens", "dtype": "int32", "shape": [ref("seq_len"), None]},
            {"add": call("Embedding", ref("vocab"), 8)},
        ],
    },
}

VALID = {
    "sequential_mlp": SEQUENTIAL_MLP,
    "functional_two_heads": FUNCTIONAL_TWO_HEADS,
    "block_used_twice": BLOCK_USED_TWICE,
    "all_exports": ALL_EXPORTS,
    "minimal": MINIMAL,
    "param_dims": PARAM_DIMS,
}


# ----------------------------------------------------------------------- the schema itself


def test_schema_is_valid_draft_2020_12():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] == "https://tfspec.dev/schema/tfspec-1.json"
    Draft202012Validator.check_schema(SCHEMA)


def _walk(node, pointer=""):
    """Yields (pointer, schema) for every subschema-bearing dict in the schema."""
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            yield from _walk(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{i}")


def _schema_nodes():
    """Like _walk, but skipping `examples`, `default`, `const` and `enum` (instance data)."""
    stack = [("", SCHEMA)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict):
            yield pointer, node
            for key, value in node.items():
                if key in {"examples", "default", "const", "enum", "enumDescriptions"}:
                    continue
                if key in {"properties", "$defs", "dependentSchemas", "patternProperties"}:
                    for name, sub in value.items():
                        stack.append((f"{pointer}/{key}/{name}", sub))
                else:
                    stack.append((f"{pointer}/{key}", value))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                stack.append((f"{pointer}/{i}", value))


def test_every_property_and_definition_has_a_description():
    missing = []
    for pointer, node in _schema_nodes():
        for name, sub in node.get("properties", {}).items():
            in_conditional = "/if" in pointer or "/then" in pointer or "/else" in pointer
            if in_conditional and set(sub) - {"description"} <= {
                "const",
                "minItems",
                "maxItems",
                "enum",
            }:
                continue  # a constraint inside an if/then, not a declared property
            if not sub.get("description"):
                missing.append(f"{pointer}/properties/{name}")
    for name, sub in SCHEMA["$defs"].items():
        if not sub.get("description"):
            missing.append(f"/$defs/{name}")
    assert not missing, missing


def test_every_closed_object_is_closed():
    """Objects with declared properties reject unknown keys (except the union bases)."""
    open_ok = {"/$defs/export_target"}  # closed by its per-format branches
    offenders = []
    for pointer, node in _schema_nodes():
        conditional = any(part in pointer for part in ("/if", "/then", "/else"))
        if "properties" not in node or conditional or pointer in open_ok:
            continue
        if node.get("additionalProperties") is not False:
            offenders.append(pointer)
    assert not offenders, offenders


def test_every_ref_resolves():
    for pointer, node in _walk(SCHEMA):
        target = node.get("$ref")
        if isinstance(target, str):
            assert target.startswith("#/$defs/"), pointer
            assert target.removeprefix("#/$defs/") in SCHEMA["$defs"], pointer


def test_params_keys_are_names_and_not_closed():
    params = SCHEMA["$defs"]["params"]
    assert "propertyNames" in params
    assert params["additionalProperties"] is not False


# ----------------------------------------------------------------------- valid documents


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_documents(name):
    found = errors(VALID[name])
    assert not found, [(list(e.absolute_path), e.message) for e in found]


def test_every_export_format_is_covered():
    formats = {t["format"] for t in ALL_EXPORTS["export"]}
    assert formats == set(SCHEMA["$defs"]["export_target"]["properties"]["format"]["enum"])


def test_every_statement_kind_is_covered():
    kinds = {"input", "layer", "node", "output", "add"}
    seen = set()
    for doc in VALID.values():
        for statement in doc.get("model", {}).get("body", []):
            seen |= kinds & set(statement)
    assert seen == kinds


# ----------------------------------------------------------------------- invalid documents


def mutate(doc, pointer, value=None, delete=False):
    """A deep copy of `doc` with the item at JSON pointer `pointer` set (or deleted)."""
    doc = copy.deepcopy(doc)
    *parents, last = _keys(pointer)
    node = doc
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return doc


def _keys(pointer: str) -> list:
    return [int(k) if k.isdigit() else k for k in pointer.split("/")[1:]]


DELETE = object()


def case(name, base, pointer, value, validator, text, where=None):
    """An invalid document: `base` with `pointer` set to `value` (or DELETE).

    The document must have an error of keyword `validator`, whose message contains `text`,
    located (see `located`) at the JSON pointer `where` (default: `pointer`).
    """
    where = pointer if where is None else where
    return pytest.param(base, pointer, value, _keys(where), validator, text, id=name)


TWO_HEADS = FUNCTIONAL_TWO_HEADS
INVALID = [
    case("unknown_train_key", SEQUENTIAL_MLP, "/train/epoch", 3, "additionalProperties", "'epoch'"),
    case("unknown_top_level_key", MINIMAL, "/trian", {}, "additionalProperties", "'trian'"),
    case("missing_version", SEQUENTIAL_MLP, "/tfspec", DELETE, "required", "'tfspec'", ""),
    case("wrong_version", SEQUENTIAL_MLP, "/tfspec", 2, "const", "1 was expected"),
    case("bad_strategy", ALL_EXPORTS, "/distribute/strategy", "mirror", "enum", "'mirror'"),
    case("bad_loop", SEQUENTIAL_MLP, "/train/loop", "tape", "enum", "'tape'"),
    case(
        "export_without_path",
        ALL_EXPORTS,
        "/export/2/path",
        DELETE,
        "required",
        "'path'",
        "/export/2",
    ),
    case(
        "export_without_format",
        ALL_EXPORTS,
        "/export/1/format",
        DELETE,
        "required",
        "'format'",
        "/export/1",
    ),
    case("bad_export_format", ALL_EXPORTS, "/export/0/format", "pb", "enum", "'pb'"),
    case("tflite_int4", ALL_EXPORTS, "/export/2/quantize", "int4", "enum", "'int4'"),
    case("tfjs_dynamic", ALL_EXPORTS, "/export/4/quantize", "dynamic", "enum", "'dynamic'"),
    case(
        "tflite_key_on_saved_model",
        ALL_EXPORTS,
        "/export/0/quantize",
        "int8",
        "additionalProperties",
        "'quantize'",
    ),
    case(
        "integer_io_without_int8",
        ALL_EXPORTS,
        "/export/2/quantize",
        "dynamic",
        "const",
        "'int8' was expected",
    ),
    case("onnx_opset_too_old", ALL_EXPORTS, "/export/5/opset", 9, "minimum", "13"),
    case("keras_path_suffix", ALL_EXPORTS, "/export/1/path", "m.h5", "pattern", "keras"),
    case(
        "no_discriminator_typo",
        TWO_HEADS,
        "/model/body/3",
        {"nod": "a", "value": 1},
        "enum",
        "'nod'",
        "/model/body/3/nod",
    ),
    case(
        "typo_in_statement",
        TWO_HEADS,
        "/model/body/3",
        {"node": "a", "valu": 1},
        "additionalProperties",
        "'valu'",
        "/model/body/3/valu",
    ),
    case(
        "layer_without_value",
        TWO_HEADS,
        "/model/body/2/value",
        DELETE,
        "required",
        "'value'",
        "/model/body/2",
    ),
    case(
        "input_without_shape",
        TWO_HEADS,
        "/model/body/0/shape",
        DELETE,
        "required",
        "'shape'",
        "/model/body/0",
    ),
    case(
        "typed_block_input",
        BLOCK_USED_TWICE,
        "/blocks/0/body/0/shape",
        [4],
        "additionalProperties",
        "'shape'",
    ),
    case("bad_dtype", TWO_HEADS, "/model/body/0/dtype", "float", "enum", "'float'"),
    case("zero_dimension", TWO_HEADS, "/model/body/0/shape/0", 0, "minimum", "0"),
    case("param_name_as_string_dimension", PARAM_DIMS, "/model/body/0/shape/0", "seq_len",
         "type", "'seq_len'"),
    case("dimension_ref_not_a_name", PARAM_DIMS, "/model/body/0/shape/0/ref", 3, "type", "3"),
    case("dimension_as_an_expression", PARAM_DIMS, "/model/body/0/shape/0",
         {"op": "*", "args": [ref("seq_len"), 2]}, "additionalProperties", "'op'",
         "/model/body/0/shape/0/op"),
    case("bad_model_kind", SEQUENTIAL_MLP, "/model/kind", "graph", "enum", "'graph'"),
    case("bad_node_name", TWO_HEADS, "/model/body/3/node", "2a", "pattern", "'2a'"),
    case("epochs_as_string", SEQUENTIAL_MLP, "/train/epochs", "ten", "type", "'ten'"),
    case("zero_batch", SEQUENTIAL_MLP, "/data/batch", 0, "minimum", "0"),
    case(
        "fraction_out_of_range",
        SEQUENTIAL_MLP,
        "/data/split/validation",
        1.5,
        "exclusiveMaximum",
        "1.5",
    ),
    case("unknown_source", SEQUENTIAL_MLP, "/data/source/call", "parquet", "enum", "'parquet'"),
    case("prefetch_word", SEQUENTIAL_MLP, "/data/prefetch", "max", "const", "'auto' was expected"),
    case(
        "bad_mixed_precision",
        SEQUENTIAL_MLP,
        "/train/mixed_precision",
        "float16",
        "enum",
        "'float16'",
    ),
    case("bad_verbose", SEQUENTIAL_MLP, "/train/verbose", 3, "enum", "3"),
    case("bad_communication", TWO_HEADS, "/distribute/communication", "grpc", "enum", "'grpc'"),
    case(
        "bad_cluster_address",
        TWO_HEADS,
        "/distribute/cluster/worker/1",
        "worker1",
        "pattern",
        "'worker1'",
    ),
    case(
        "unknown_key_in_ref",
        SEQUENTIAL_MLP,
        "/train/epochs",
        {"ref": "e", "x": 1},
        "additionalProperties",
        "'x'",
        "/train/epochs/x",
    ),
    case(
        "unknown_op",
        SEQUENTIAL_MLP,
        "/data/batch",
        {"op": "**", "args": [2, 8]},
        "enum",
        "'**'",
        "/data/batch/op",
    ),
    case(
        "neg_with_two_args",
        BLOCK_USED_TWICE,
        "/model/body/4/value/args",
        [ref("r2"), 1],
        "maxItems",
        "too long",
    ),
    case(
        "kwarg_typo_in_call",
        SEQUENTIAL_MLP,
        "/model/body/2/add/kwarg",
        {},
        "additionalProperties",
        "'kwarg'",
    ),
    case(
        "plain_object_as_value",
        SEQUENTIAL_MLP,
        "/model/body/2/add/kwargs/activation",
        {"name": "relu"},
        "enum",
        "'name'",
        "/model/body/2/add/kwargs/activation/name",
    ),
    case(
        "short_pipe", TWO_HEADS, "/model/body/4/value/pipe", [ref("photo")], "minItems", "too short"
    ),
    case("comment_without_hash", SEQUENTIAL_MLP, "/comments/0/text", "keep", "pattern", "'keep'"),
    case(
        "bad_param_name",
        MINIMAL,
        "/params",
        {"learning-rate": 0.1},
        "pattern",
        "'learning-rate'",
        "/params/learning-rate",
    ),
    case(
        "expression_in_param",
        MINIMAL,
        "/params",
        {"lr": ref("x")},
        "type",
        "is not of type",
        "/params/lr",
    ),
]


@pytest.mark.parametrize(("base", "pointer", "value", "where", "validator", "text"), INVALID)
def test_invalid_documents(base, pointer, value, where, validator, text):
    doc = mutate(base, pointer, value, delete=value is DELETE)
    found = errors(doc)
    assert found, "expected at least one error"
    matching = [e for e in found if where in located(e) and e.validator == validator]
    assert matching, [(located(e), e.validator, e.message) for e in found]
    assert any(text in e.message for e in matching), [e.message for e in matching]
    # No error is reported twice (e.g. once per branch of a union).
    keys = [(list(e.absolute_path), e.validator, e.message) for e in found]
    assert len(keys) == len({repr(k) for k in keys}), keys
    # The best error is the specific one, not a generic anyOf/oneOf failure.
    best = best_match(VALIDATOR.iter_errors(doc))
    assert best.validator not in {"anyOf", "oneOf"}, best.message
    assert "is not valid under any of the given schemas" not in best.message
    assert where in located(best), (located(best), best.message)


@pytest.mark.parametrize(
    ("statement", "keys"),
    [
        ({"layer": "s", "input": "t", "value": call("Dense", 1)}, ("layer", "input")),
        ({"add": call("Flatten"), "node": "f"}, ("add", "node")),
        ({"output": "o", "node": "n", "value": 1}, ("output", "node")),
    ],
    ids=["layer+input", "add+node", "output+node"],
)
def test_two_discriminators_are_reported_by_both_kinds(statement, keys):
    """Each kind that applies rejects the other kind's key as unknown."""
    doc = mutate(FUNCTIONAL_TWO_HEADS, "/model/body/2", statement)
    found = errors(doc)
    assert all(list(e.absolute_path) == ["model", "body", 2] for e in found)
    locations = all_locations(doc)
    for key in keys:
        assert ["model", "body", 2, key] in locations, locations
    best = best_match(VALIDATOR.iter_errors(doc))
    assert best.validator == "additionalProperties"
    assert any(f"'{key}'" in best.message for key in keys), best.message


def test_statement_without_any_kind_key():
    """Only known keys, but none that names the kind: the anyOf lists every kind."""
    doc = mutate(FUNCTIONAL_TWO_HEADS, "/model/body/3", {"value": ref("tabular")})
    (error,) = errors(doc)
    assert list(error.absolute_path) == ["model", "body", 3]
    assert error.validator == "anyOf"
    kinds = {e.validator_value[0] for e in error.context}
    assert kinds == {"input", "layer", "node", "output", "add"}
    assert all(e.validator == "required" for e in error.context)


def test_did_you_mean_material_for_unknown_statement_key():
    doc = mutate(FUNCTIONAL_TWO_HEADS, "/model/body/3", {"nod": "a", "value": 1})
    (enum_error,) = [e for e in errors(doc) if e.validator == "enum"]
    assert enum_error.instance == "nod"
    assert "node" in enum_error.validator_value


def test_unknown_export_key_is_reported_once_by_its_format():
    doc = mutate(ALL_EXPORTS, "/export/2/quantise", "int8")
    found = errors(doc)
    assert [located(e) for e in found] == [[["export", 2, "quantise"]]]


def test_errors_in_different_places_are_all_reported():
    doc = mutate(SEQUENTIAL_MLP, "/train/epoch", 3)
    doc["distribute"] = {"strategy": "mirror"}
    doc["export"] = [{"format": "tflite", "quantize": "int4"}]
    locations = all_locations(doc)
    for where in (
        ["train", "epoch"],
        ["distribute", "strategy"],
        ["export", 0],
        ["export", 0, "quantize"],
    ):
        assert where in locations, locations


def test_value_union_errors_match_the_instance_type():
    """A wrong-typed value reports one `type` error naming the accepted JSON types."""
    doc = mutate(SEQUENTIAL_MLP, "/train/epochs", [1, 2])
    (error,) = errors(doc)
    assert error.validator == "type"
    assert error.validator_value == ["integer", "object"]


@pytest.mark.parametrize("item", ["Dense", 3, None, [1]])
def test_non_object_statement_gives_one_type_error(item):
    doc = mutate(SEQUENTIAL_MLP, "/model/body/1", item)
    (error,) = errors(doc)
    assert list(error.absolute_path) == ["model", "body", 1]
    assert error.validator == "type"


def test_non_object_pipe_stage_gives_one_type_error():
    doc = mutate(FUNCTIONAL_TWO_HEADS, "/model/body/4/value/pipe/1", "Conv2D")
    (error,) = errors(doc)
    assert list(error.absolute_path) == ["model", "body", 4, "value", "pipe", 1]
    assert error.validator == "type"
