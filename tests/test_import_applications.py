"""`tfspec import` of every model in `keras.applications` (weights=None), found by
walking the module, so that a new Keras application is tested without a change here.

Each model is built at the smallest square input its family accepts (32 px, or the
minimum Keras names when it refuses that), with its top and 10 classes. Its config
is written as a `.keras` file holds it and imported with `tfspec import … -o`; the
spec must validate with no diagnostics, stay as `fmt` writes it, compile and build
(as `tfspec compile --check` does), have the same number of parameters and the
same layers with weights (by name, nested models' included), and compute the same
outputs as the original once the original's weights are copied over.
"""

from __future__ import annotations

import gc
import inspect
import re
import zipfile

import numpy as np
import pytest
from test_import import weighted_layers

import tfspec
import tfspec.cli
from tfspec.codegen.program import compile_result
from tfspec.jobs.build import build_model, quiet_tensorflow

quiet_tensorflow()
import keras  # noqa: E402

pytestmark = pytest.mark.slow


def applications() -> list[str]:
    """The model constructors of `keras.applications` and its submodules: functions
    that take `weights` and `include_top`."""
    found: dict[object, str] = {}
    modules = [keras.applications] + [v for v in vars(keras.applications).values()
                                      if inspect.ismodule(v)]
    for module in modules:
        for name, value in sorted(vars(module).items()):
            if inspect.isfunction(value) and {"weights", "include_top"} <= set(
                    inspect.signature(value).parameters):
                found.setdefault(value, name)
    return sorted(found.values())


def build(name: str) -> keras.Model:
    """`keras.applications.<name>` at 32 px, or at the minimum size it asks for."""
    constructor = getattr(keras.applications, name)
    try:
        return constructor(weights=None, input_shape=(32, 32, 3), classes=10)
    except ValueError as exc:
        found = re.search(r"at least (\d+)x(\d+)", str(exc))
        if not found:
            raise
        size = (int(found.group(1)), int(found.group(2)), 3)
        return constructor(weights=None, input_shape=size, classes=10)


def test_applications_are_found():
    names = applications()
    assert {"ResNet50", "ConvNeXtTiny", "EfficientNetV2B0", "MobileNetV3Small",
            "InceptionResNetV2", "NASNetLarge"} <= set(names)
    assert len(names) >= 40


@pytest.mark.parametrize("name", applications())
def test_application_imports_compiles_and_matches(name, tmp_path):
    keras.backend.clear_session()
    original = build(name)
    config = tmp_path / "model.keras"  # what `model.save` writes, minus the weights
    with zipfile.ZipFile(config, "w") as archive:
        archive.writestr("config.json", original.to_json())
    spec = tmp_path / "model.tfspec"
    assert tfspec.cli.main(["import", str(config), "-o", str(spec)]) == 0
    result = tfspec.validate_file(spec)  # once: the biggest specs take seconds
    assert not len(result.diagnostics), [f"{d.code} {d.message}" for d in result.diagnostics]
    assert tfspec.format_spec(result.ir) == result.source
    compiled = build_model(compile_result(result))  # as `tfspec compile --check` does
    assert compiled.count_params() == original.count_params()

    expected = dict(weighted_layers(original))
    got = {layer.name: layer for layer in compiled.layers if layer.weights}
    assert sorted(got) == sorted(expected)
    for layer_name, layer in expected.items():  # variable to variable: no NumPy copies
        targets = got[layer_name].weights
        assert [w.shape for w in targets] == [w.shape for w in layer.weights], layer_name
        for target, source in zip(targets, layer.weights, strict=True):
            target.assign(source)
    text = result.source
    rewritten = "block " in text or any(
        type(layer).__module__.startswith("keras.src.applications")
        for layer in original.layers)
    if not rewritten:  # one operation (a layer or `x + 3.0`) per layer of the spec
        assert len(compiled.operations) == len(original.operations)

    shape = (1, *original.input_shape[1:])
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    want = np.asarray(original(batch, training=False))
    have = np.asarray(compiled(batch, training=False))
    np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-7)
    del original, compiled, expected, got
    keras.backend.clear_session()
    gc.collect()

