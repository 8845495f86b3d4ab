"""The code generator: golden programs, lint-clean output, models that build.

Regenerate the golden programs after an intended change with

    python tests/test_compile.py --update
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from transfer_fixtures import buildable

import tfspec
import tfspec.cli
from tfspec.codegen.program import compile_file, compile_text
from tfspec.lang.formatter import format_spec

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "compile"
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.tfspec"))


def example(name: str) -> str:
    return f"examples/{name}"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)  # golden files name specs by their path from the repo root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every example's compiled program and built Keras model, built once (a model that
    loads another example's export is built beside that export: transfer_fixtures)."""
    from tfspec.jobs.build import build_model

    cwd = Path.cwd()
    try:
        import os

        os.chdir(ROOT)
        out = {}
        for name in EXAMPLES:
            compiled = compile_file(buildable(example(name), tmp_path_factory))
            out[name] = (compiled, build_model(compiled))
        return out
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("name", EXAMPLES)
def test_generated_program_matches_golden(name):
    source = compile_file(example(name)).source
    golden = GOLDEN / name.replace(".tfspec", ".py")
    assert golden.exists(), f"no golden file; run: python {Path(__file__).name} --update"
    assert source == golden.read_text(), f"{name}: run `python tests/test_compile.py --update`"


@pytest.mark.parametrize("name", EXAMPLES)
def test_generation_is_deterministic_and_valid_python(name):
    first = compile_file(example(name)).source
    second = compile_file(example(name)).source
    assert first == second
    compile(first, name, "exec")  # the program is valid Python


def test_generated_programs_are_ruff_clean(tmp_path):
    for name in EXAMPLES:
        (tmp_path / name.replace(".tfspec", ".py")).write_text(
            compile_file(example(name)).source)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
         "--select", "E,F,W,I,B,UP", "--line-length", "100", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_long_layer_names_are_wrapped_in_every_model_kind(tmp_path):
    """A one-argument call too long for its line breaks like any other (subclass
    attributes with long generated names ran past 100 columns)."""
    body = """
      input tokens: int32[12]
      e = tokens |> Embedding(50, 8)
      weights_for_each_token = e |> GlobalAveragePooling1D() |> Dense(12)
      output label = weights_for_each_token |> Dense(3, activation = "softmax")
    }
    """
    for kind in ("functional", "subclass"):
        source = compile_text(f"tfspec 1\nmodel M {kind} {{{body}", "m.tfspec").source
        (tmp_path / f"{kind}.py").write_text(source)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
         "--select", "E501", "--line-length", "100", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compiling_imports_no_tensorflow():
    code = (
        "import sys, tfspec.codegen.program as c\n"
        f"for n in {EXAMPLES!r}: c.compile_file('examples/' + n)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not bad, bad[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_builds(built, name):
    compiled, model = built[name]
    assert model.count_params() > 0
    # every layer the generator names (outside block templates) exists under that name
    named = {info.name for info in compiled.layers if not info.template}
    assert named <= _nested_names(model)


def _nested_names(model) -> set[str]:
    names = set()
    for layer in model.layers:
        names.add(layer.name)
        for sub in getattr(layer, "_layers", []):
            names.add(sub.name)
    return names


def test_layer_names_follow_the_spec(built):
    _, model = built["digits_cnn.tfspec"]
    assert [layer.name for layer in model.layers] == [
        "image", "x_rescaling", "x_conv2d", "x_conv2d_2", "x_max_pooling2d", "x_flatten", "x",
        "digit",
    ]
    _, model = built["two_tower.tfspec"]
    assert model.get_layer("encoder") is not None  # the shared layer keeps its spec name
    assert sorted(model.output_names) == ["category", "score"]


def test_overrides_reach_the_program():
    source = compile_file(example("iris_mlp.tfspec"), {"hidden": 64}).source
    assert "HIDDEN = 64" in source


def twin(name: str, kind: str):
    """The same network as another model kind: compile and build it."""
    from tfspec.jobs.build import build_model

    result = tfspec.validate_file(example(name))
    ir = copy.deepcopy(result.ir)
    ir["model"]["kind"] = kind
    compiled = compile_text(format_spec(ir), f"{kind}_{name}")
    return build_model(compiled)


@pytest.mark.parametrize("name", ["subclassed_mlp.tfspec", "resnet_blocks.tfspec",
                                  "two_tower.tfspec"])
def test_functional_and_subclassed_twins_agree(name):
    functional = twin(name, "functional")
    subclassed = twin(name, "subclass")
    assert functional.count_params() == subclassed.count_params()
    weighted = [layer for layer in functional.layers if layer.weights]
    names = {layer.name for layer in subclassed.layers}
    if all(layer.name in names for layer in weighted):
        for layer in weighted:  # same layer names: copy layer by layer
            subclassed.get_layer(layer.name).set_weights(layer.get_weights())
    else:  # blocks are nested layers in subclassed code: same creation order
        weights = functional.get_weights()
        assert [w.shape for w in weights] == [w.shape for w in subclassed.get_weights()]
        subclassed.set_weights(weights)
    rng = np.random.default_rng(0)
    inputs = functional.inputs
    if len(inputs) == 1:
        batch = rng.normal(size=(3, *inputs[0].shape[1:])).astype("float32")
    else:
        batch = {t.name.split(":")[0]: rng.normal(size=(3, *t.shape[1:])).astype("float32")
                 for t in inputs}
        batch = {name: batch[name] for name in batch}
    a = functional(batch, training=False)
    b = subclassed(batch, training=False)
    if isinstance(a, dict):
        for key in a:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keras_errors_are_reported_at_the_spec(tmp_path, capsys):
    spec = tmp_path / "shapes.tfspec"
    spec.write_text(
        "tfspec 1\nmodel M functional {\n  input a: float32[8]\n  input b: float32[4, 4]\n"
        "  h = a |> Dense(16)\n  joint = Concatenate()([h, b])\n  output y = Dense(1)(joint)\n}\n"
    )
    status = tfspec.cli.main(["compile", "--check", str(spec)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{spec}:6:11: error[E500]: Keras cannot build `joint`" in err
    assert "matching shapes" in err  # Keras's own words
    assert "Traceback" not in err


SHAPES_SPEC = """tfspec 1
name "shapes"

data {
  source = synthetic(samples = 32)
  batch = 8
}

model M KIND {
  input x: float32[4]
BODY
}

train {
  optimizer = "adam"
  loss = "mse"
  epochs = 1
}
"""
# line 12 holds the layer Keras cannot build: a Conv2D after a Dense, on a rank-1 input
SEQUENTIAL_BODY = "  Dense(8)\n  Conv2D(8, 3)"
SUBCLASS_BODY = "  h = x |> Dense(8)\n  output y = h |> Conv2D(8, 3)"


def shapes_spec(tmp_path: Path, kind: str = "sequential") -> Path:
    spec = tmp_path / f"{kind}.tfspec"
    body = SEQUENTIAL_BODY if kind == "sequential" else SUBCLASS_BODY
    spec.write_text(SHAPES_SPEC.replace("KIND", kind).replace("BODY", body))
    return spec


def assert_at_the_conv2d(err: str, spec: Path, col: int, name: str) -> None:
    """E500 at the Conv2D of line 12 (not the model's header), caret under it, in
    Keras's own one-line words."""
    head = (f"{spec}:12:{col}: error[E500]: Keras cannot build `{name}`: Input 0 of layer "
            f"'{name}' is incompatible with the layer: expected min_ndim=4, found ndim=2. "
            "Full shape received: (None, 8)")
    assert head in err.splitlines(), err
    assert "12 |   " in err and "\n   |" + " " * col + "^" * len("Conv2D(8, 3)") + "\n" in err
    assert "Traceback" not in err and "Warning" not in err and "Could not" not in err


@pytest.mark.parametrize("command", [["compile", "--check"], ["run", "--dry-run"], ["run"]])
def test_keras_errors_in_sequential_models_point_at_the_layer(tmp_path, capsys, command):
    spec = shapes_spec(tmp_path)
    status = tfspec.cli.main([*command, str(spec)])
    err = capsys.readouterr().err
    assert status == 1
    # a dry run compiles a copy of the spec, thrown away: the error is in the user's
    assert_at_the_conv2d(err, spec, 3, "conv2d")
    assert "hint: check the shapes flowing into this layer with `tfspec plan`" in err


def test_a_dry_runs_training_error_is_in_the_users_spec(tmp_path, capsys):
    """The dry run trains its own copy of the spec (one epoch, synthetic data, some
    callbacks left out); an error at a part it did not change is in the user's file."""
    spec = tmp_path / "metrics.tfspec"
    # Precision() wants one probability per example, not a softmax over 10 classes
    spec.write_text(SHAPES_SPEC.replace("KIND", "sequential")
                    .replace("BODY", '  Dense(10, activation = "softmax")')
                    .replace('loss = "mse"', 'loss = "sparse_categorical_crossentropy"\n'
                             '  metrics = [Precision()]\n  callbacks = [CSVLogger("log.csv")]')
                    .replace("epochs = 1", "epochs = 30"))
    status = tfspec.cli.main(["run", "--dry-run", str(spec)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{spec}:19:12: error[E502]: training failed: Incompatible shapes" in err, err
    assert "19 |   epochs = 30\n" in err


@pytest.mark.parametrize("command", [["compile", "--check"], ["run", "--dry-run"]])
def test_keras_errors_in_subclassed_models_point_at_the_layer(tmp_path, capsys, command):
    """Keras's "Could not automatically infer the output shape" wrapper and its two
    warnings about unbuilt state are left out: the layer's own message remains."""
    spec = shapes_spec(tmp_path, "subclass")
    status = tfspec.cli.main([*command, str(spec)])
    err = capsys.readouterr().err
    assert status == 1
    assert_at_the_conv2d(err, spec, 19, "y")


def test_subclassed_model_saves_and_loads(built, tmp_path):
    import keras

    _, model = built["subclassed_mlp.tfspec"]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.ones((2, 8, 8, 1), "float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(loaded(x)), atol=1e-6)


if __name__ == "__main__":
    if "--update" in sys.argv:
        import os

        os.chdir(ROOT)
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name in EXAMPLES:
            out = GOLDEN / name.replace(".tfspec", ".py")
            out.write_text(compile_file(example(name)).source)
            print(f"wrote {out.relative_to(ROOT)}")
