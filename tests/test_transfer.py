"""Transfer learning for real: `load_model(…)` and `TFSMLayer(…)` on another spec's export.

examples/iris_mlp.tfspec is trained once in a copy of examples/ (transfer_fixtures);
each test that trains works in its own copy of that folder, so that the backbone file
it compares against is the one iris_mlp exported. Runs go through `tfspec.cli.main`,
in this process (their stdout is captured, not a terminal).
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tf_state import restore_global_state  # noqa: F401 (autouse)
from transfer_fixtures import EXAMPLES, examples_with_exports

from tfspec import cli
from tfspec.codegen.program import compile_file
from tfspec.inspect.plan import plan
from tfspec.jobs.build import build_model, quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402

FINETUNE = "iris_finetune.tfspec"
BACKBONE = Path("runs/iris/model.keras")  # iris_mlp's export, relative to the specs
# iris_mlp's layers that the fine-tuned model keeps (its softmax head `dense_3` is cut)
KEPT = ["features_normalization", "dense", "dense_2"]


@pytest.fixture
def folder(tmp_path_factory, tmp_path) -> Path:
    """A copy of examples/ in which iris_mlp.tfspec has run (its exports in runs/iris/)."""
    copy = tmp_path / "examples"
    shutil.copytree(examples_with_exports(tmp_path_factory), copy)
    return copy


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def weights(model, names: list[str]) -> dict[str, list[np.ndarray]]:
    return {name: model.get_layer(name).get_weights() for name in names}


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)


def line_of(spec: Path, text: str) -> int:
    lines = spec.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


# -- load_model: frozen, fine-tuned, exported --------------------------------------------------


def test_a_frozen_backbone_trains_only_the_new_head(folder, capsys):
    status, _, err = run_cli(capsys, "run", str(folder / FINETUNE))
    assert status == 0, err
    exported = folder / "runs/iris_finetune/model.keras"
    assert exported.is_file()
    assert (folder / "runs/iris_finetune/serving/1/saved_model.pb").is_file()
    model = keras.saving.load_model(exported)
    backbone = keras.saving.load_model(folder / BACKBONE)
    inner = model.get_layer("backbone")
    assert [layer.name for layer in inner.layers][1:] == [*KEPT[:2], "dropout", KEPT[2]]
    assert not inner.trainable and inner.trainable_weights == []
    assert_same(weights(inner, KEPT), weights(backbone, KEPT))  # untouched by training
    run_dir = next((folder / "runs/iris-finetune").iterdir())
    assert (run_dir / "metrics.json").is_file()


def test_fine_tuning_changes_the_backbone(folder, capsys):
    status, _, err = run_cli(capsys, "run", "--set", "fine_tune=true", str(folder / FINETUNE))
    assert status == 0, err
    model = keras.saving.load_model(folder / "runs/iris_finetune/model.keras")
    backbone = keras.saving.load_model(folder / BACKBONE)
    inner = model.get_layer("backbone")
    assert inner.trainable
    tuned, saved = weights(inner, KEPT), weights(backbone, KEPT)
    for name in ("dense", "dense_2"):
        assert not np.array_equal(tuned[name][0], saved[name][0]), name
    # Normalization's statistics are not weights that training changes
    assert_same({"n": tuned["features_normalization"]}, {"n": saved["features_normalization"]})


def test_plan_counts_a_frozen_backbone_as_non_trainable(folder):
    frozen = plan(compile_file(folder / FINETUNE))["totals"]
    tuned = plan(compile_file(folder / FINETUNE, {"fine_tune": True}))["totals"]
    statistics = 4 + 4 + 1  # Normalization's mean, variance and count
    backbone = statistics + (4 * 32 + 32) + (32 * 32 + 32)
    head = 32 * 3 + 3
    assert frozen["params"] == tuned["params"] == backbone + head
    assert frozen["trainable_params"] == head
    assert tuned["trainable_params"] == backbone - statistics + head


def test_the_path_is_relative_to_the_spec_not_the_working_directory(folder, capsys,
                                                                     monkeypatch, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, _, err = run_cli(capsys, "run", "--dry-run", str(folder / FINETUNE))
    assert status == 0, err
    assert "dry run passed" in err
    source = compile_file(folder / FINETUNE).source
    assert 'SPEC_DIR / "runs/iris/model.keras"' in source


# -- mistakes ----------------------------------------------------------------------------------


def test_a_missing_backbone_is_located_and_names_its_producer(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("runs", "invalid"))
    spec = folder / FINETUNE
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "validate", str(spec))[0] == 0  # the file is not needed here
    line = line_of(spec, '"runs/iris/model.keras"')
    for command in (["run"], ["run", "--dry-run"], ["plan"], ["compile", "--check"]):
        status, _, err = run_cli(capsys, *command, "examples/" + FINETUNE)
        assert status == 1, (command, err)
        assert f"examples/{FINETUNE}:{line}:5: error[E500]: `load_model` cannot load the " \
               "model: no such file: runs/iris/model.keras" in err, (command, err)
        assert "hint: it is written by the `keras` export of examples/iris_mlp.tfspec: run " \
               "`tfspec run examples/iris_mlp.tfspec` first" in err, (command, err)
        assert "Traceback" not in err
    assert not (folder / "runs").exists()


def test_a_missing_file_with_no_producer_says_where_paths_start(tmp_path, capsys):
    spec = write(tmp_path, "lone.tfspec", """
        tfspec 1
        model M functional {
          input x: float32[4]
          output y = TFSMLayer("exported/model", trainable = false)(x)
        }
    """)
    status, _, err = run_cli(capsys, "plan", str(spec))
    assert status == 1
    assert f"{spec}:4:24: error[E500]: `TFSMLayer` cannot load the model: no such file: " \
           "exported/model" in err
    assert "paths in a spec are relative to its folder" in err
    assert "Traceback" not in err


def test_a_layer_name_the_backbone_lacks_is_a_keras_error_at_the_call(folder, capsys):
    text = (folder / FINETUNE).read_text(encoding="utf-8").replace('"dense_2"', '"dense_9"')
    spec = write(folder, "cut.tfspec", text)
    status, _, err = run_cli(capsys, "plan", str(spec))
    assert status == 1
    line = line_of(spec, "backbone = load_model(")
    assert f"{spec}:{line}:14: error[E500]: Keras cannot build `backbone`: No such layer: " \
           "dense_9" in err, err
    assert "'dense_2'" in err  # Keras lists the layers there are
    assert "Traceback" not in err


@pytest.mark.parametrize(("call", "message", "hint"), [
    ('load_modle("m.keras")', "unknown Keras layer `load_modle`", "did you mean `load_model`?"),
    ('load_model("m.keras", outptu = "d")', "`load_model` has no argument `outptu`",
     "did you mean `output`?"),
    ('load_model("m.keras", trainabel = false)', "`load_model` has no argument `trainabel`",
     "did you mean `trainable`?"),
    ("load_model()", "`load_model` needs `filepath`", "write `load_model(filepath)`"),
    ('load_model("m.keras", trainable = "no")', "`trainable` must be a boolean", None),
    ("load_model(3)", "`filepath` must be a string", None),
    ('load_model("m.keras", "d")', "`load_model` takes 1 positional argument", None),
])
def test_load_model_arguments_are_checked(call, message, hint, tmp_path, capsys):
    spec = write(tmp_path, "bad.tfspec", f"""
        tfspec 1
        model M functional {{
          input x: float32[4]
          output y = {call}(x)
        }}
    """)
    status, out, _ = run_cli(capsys, "validate", str(spec))
    assert status == 1
    assert message in out, out
    if hint:
        assert f"hint: {hint}" in out, out


def test_relative_paths_start_at_the_spec_and_absolute_ones_stay(tmp_path, monkeypatch):
    def saved(path: Path, seed: int) -> keras.Model:
        keras.utils.set_random_seed(seed)
        # explicit names: Keras's process-wide counters depend on the tests run before
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="dense_1"),
                                  keras.layers.Dense(4, name="dense_2")])
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        return model

    relative = saved(tmp_path / "spec" / "runs" / "iris" / "model.keras", 1)
    absolute = saved(tmp_path / "elsewhere" / "abs.keras", 2)
    spec = tmp_path / "spec" / "m.tfspec"
    spec.write_text(textwrap.dedent(f"""
        tfspec 1
        param backbone = "runs/iris/model.keras"
        model M sequential {{
          input x: float32[4]
          load_model(backbone, trainable = false)
          load_model("{tmp_path / "elsewhere" / "abs.keras"}", output = "dense_2")
          Dense(3)
        }}
    """))
    compiled = compile_file(spec)
    flat = re.sub(r"\s+", "", compiled.source)  # the calls are broken over lines
    assert "load_keras_model(SPEC_DIR/BACKBONE,trainable=False,name=" in flat
    # no data section, but a model that loads a file: the program finds it all the same
    assert "import pathlib" in compiled.source and "SPEC_DIR = " in compiled.source
    monkeypatch.chdir(tmp_path / "elsewhere")  # not where the spec is
    model = build_model(compiled)
    first, second = model.layers[0], model.layers[1]
    for loaded, original in ((first, relative), (second, absolute)):
        for a, b in zip(loaded.get_weights(), original.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert not first.trainable and second.trainable


# -- TFSMLayer: a SavedModel as a layer --------------------------------------------------------


def test_a_frozen_tfsm_layer_found_from_the_spec(folder, capsys, monkeypatch, tmp_path):
    # a SavedModel with a positional `serve` endpoint, what TFSMLayer calls by default
    keras.saving.load_model(folder / BACKBONE).export(str(folder / "runs/iris/tfsm/1"),
                                                       verbose=False)
    spec = write(folder, "tfsm.tfspec", """
        tfspec 1
        data {
          source = csv("data/iris.csv", label = "species")
          split { validation = 0.2, seed = 7 }
          batch = 16
        }
        model Tfsm sequential {
          input features: float32[4]
          TFSMLayer("runs/iris/tfsm/1", trainable = false, name = "iris")
          Dense(3, activation = "softmax", name = "head")
        }
        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 2
        }
    """)
    source = compile_file(spec).source
    assert 'str(SPEC_DIR / "runs/iris/tfsm/1")' in source
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, _, err = run_cli(capsys, "run", str(spec))
    assert status == 0, err
    (run_dir,) = (folder / "runs" / "Tfsm").iterdir()
    # a TFSMLayer is only reloaded with safe_mode off: it loads a SavedModel from disk
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=False)
    iris = model.get_layer("iris")
    backbone = keras.saving.load_model(folder / BACKBONE)
    assert not iris.trainable and iris.trainable_weights == []
    saved = [w for name in ("dense", "dense_2", "dense_3")
             for w in backbone.get_layer(name).get_weights()]
    for a, b in zip(iris.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(a, b)


def trainable_tfsm_spec(folder: Path, optimizer: str) -> Path:
    """A spec that trains a TFSMLayer's weights (`trainable` is true by default)."""
    keras.saving.load_model(folder / BACKBONE).export(str(folder / "tfsm"), verbose=False)
    return write(folder, "tuned.tfspec", f"""
        tfspec 1
        data {{
          source = csv("data/iris.csv", label = "species")
          batch = 16
        }}
        model Tuned sequential {{
          input features: float32[4]
          TFSMLayer("tfsm", name = "iris")
          Dense(3, activation = "softmax")
        }}
        train {{
          optimizer = {optimizer}
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }}
    """)


def test_a_tfsm_layer_fine_tunes_with_plain_sgd(folder, capsys):
    spec = trainable_tfsm_spec(folder, "SGD(learning_rate = 0.1)")
    status, _, err = run_cli(capsys, "run", str(spec))
    assert status == 0, err
    (run_dir,) = (folder / "runs" / "Tuned").iterdir()
    iris = keras.saving.load_model(run_dir / "model.keras", safe_mode=False).get_layer("iris")
    assert len(iris.trainable_weights) == 6  # the three Dense layers' kernels and biases
    kernel = keras.saving.load_model(folder / BACKBONE).get_layer("dense").get_weights()[0]
    assert not np.array_equal(iris.get_weights()[0], kernel)


def test_training_a_tfsm_layer_with_adam_says_what_to_do(folder, capsys):
    # Keras 3.15: the layer's weights are named `dense_kernel:0`, and Adam's moments
    # `dense_kernel:0_momentum`, which TensorFlow refuses as a name scope
    spec = trainable_tfsm_spec(folder, '"adam"')
    status, _, err = run_cli(capsys, "run", str(spec))
    assert status == 1
    assert re.search(r"error\[E502\]: training failed: .*is not a valid scope name", err), err
    assert "write `TFSMLayer(…, trainable = false)`" in err
    assert "Traceback" not in err


def test_the_example_says_how_to_get_its_backbone():
    text = (EXAMPLES / FINETUNE).read_text(encoding="utf-8")
    assert "tfspec run examples/iris_mlp.tfspec" in text
    assert os.fspath(BACKBONE) in (EXAMPLES / "iris_mlp.tfspec").read_text(encoding="utf-8")
