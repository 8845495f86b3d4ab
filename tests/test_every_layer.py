"""Every Keras layer in the catalog builds from a spec, with real TensorFlow.

The table is tests/layer_cases.py: for each layer of spec/catalog/layers.json, a
minimal spec that uses it, or the reason a spec cannot (`UNSUPPORTED`). Each case
is compiled, its program is built into a Keras model, and the model runs one
forward pass on a batch of 2. TensorFlow is imported once, by the first build.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from layer_cases import CASES, SAVEDMODEL, UNSUPPORTED, WRAPPER_CASES, Case, case_of, spec_text

from tfspec.codegen.program import Compiled, compile_text
from tfspec.jobs.build import build_model, quiet_tensorflow
from tfspec.lang.resources import data_path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 2
INT_HIGH = 4  # int inputs are ids in [0, 4): every int case takes them
WORDS = ["a", "b", "a b", "c"]


def _entries() -> dict[str, Any]:
    path = data_path("catalog", "layers.json")
    return json.loads(path.read_text(encoding="utf-8"))["entries"]


def _params(entries: list[Any]) -> list[Any]:
    """pytest params of table entries: a Case is named after its layer."""
    return [e if not isinstance(e, Case) else pytest.param(e, id=e.layer) for e in entries]


ALL_CASES = _params(CASES) + WRAPPER_CASES


@pytest.fixture(scope="session")
def savedmodel(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny SavedModel (Dense(2) on 4 features) for `TFSMLayer` to load."""
    quiet_tensorflow()
    import keras

    x = keras.Input(shape=(4,))
    model = keras.Model(x, keras.layers.Dense(2)(x))
    path = tmp_path_factory.mktemp("tfsm") / "model"
    model.export(str(path), verbose=False)
    return str(path)


def _compile(case: Case, request: pytest.FixtureRequest | None = None) -> Compiled:
    path = "savedmodel"
    if request is not None and SAVEDMODEL in case.call:
        path = request.getfixturevalue("savedmodel")
    return compile_text(spec_text(case, savedmodel=path), f"{case.layer}.tfspec")


def _batch(compiled: Compiled, model: Any) -> Any:
    """Inputs for one forward pass: floats, ids in [0, INT_HIGH), or short strings."""
    decls = [(s["input"], s.get("dtype", "float32"), s["shape"])
             for s in compiled.ir["model"]["body"] if "input" in s]
    if not decls:  # a sequential model that starts with an InputLayer
        decls = [(t.name, str(t.dtype), list(t.shape[1:])) for t in model.inputs]
    rng = np.random.default_rng(0)
    feed = {}
    for name, dtype, dims in decls:
        shape = (BATCH, *(3 if d is None else d for d in dims))
        if dtype == "string":
            feed[name] = np.array(rng.choice(WORDS, size=shape), dtype=object)
        elif dtype.startswith(("int", "uint")):
            feed[name] = rng.integers(0, INT_HIGH, size=shape).astype(dtype)
        elif dtype == "bool":
            feed[name] = rng.random(shape) < 0.5
        else:
            feed[name] = rng.random(shape).astype(dtype)
    return next(iter(feed.values())) if len(feed) == 1 else feed


def _flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value]


def _layer_types(model: Any) -> set[type]:
    """The class of every layer in the model, wrapped and nested ones included."""
    return {type(layer) for layer in model._flatten_layers(include_self=False)}


@pytest.mark.parametrize("case", ALL_CASES)
def test_layer_builds_and_runs(case: Case, request: pytest.FixtureRequest) -> None:
    compiled = _compile(case, request)
    model = build_model(compiled)
    import keras

    assert isinstance(model, keras.Model)
    n = model.count_params()
    assert isinstance(n, int) and n >= 0
    # the layer is in the model (a merge function builds its class: add -> Add)
    cls = getattr(keras.layers, case.layer)
    if not isinstance(cls, type):
        cls = getattr(keras.layers, case.layer.capitalize())
    assert cls in _layer_types(model), sorted(t.__name__ for t in _layer_types(model))
    outputs = _flat(model(_batch(compiled, model), training=False))
    assert outputs
    for out in outputs:
        assert tuple(out.shape)[0] == BATCH


@pytest.mark.parametrize("case", ALL_CASES)
def test_generated_code_compiles(case: Case) -> None:
    compiled = _compile(case)
    compile(compiled.source, compiled.filename, "exec")
    assert "def build_model" in compiled.source


def test_table_covers_the_catalog() -> None:
    catalog = set(_entries())
    names = [case_of(e).layer for e in CASES]
    assert len(names) == len(set(names)), "a layer has two cases"
    cases = set(names)
    assert not cases & set(UNSUPPORTED), "a layer is both a case and unsupported"
    assert cases | set(UNSUPPORTED) <= catalog, "not a catalog layer"
    assert catalog - cases - set(UNSUPPORTED) == set(), "catalog layers without a case"
    for reason in UNSUPPORTED.values():
        assert reason and "\n" not in reason


def test_docs_list_every_layer() -> None:
    doc = (ROOT / "docs" / "layers.md").read_text(encoding="utf-8")
    for name in _entries():
        assert f"| `{name}` |" in doc, name
    for entry in CASES:
        case = case_of(entry)
        assert f"`{case.call.replace(SAVEDMODEL, 'exported/model')}`" in doc, case.layer
