"""The Python API (`tfspec.load`, `Spec`, `Run`): thin over what the command line calls.

`load` → `build_model` is the compiled program's model; `fit` writes the run `tfspec
run` writes (a seeded spec: the same weights); a broken spec raises with the
diagnostics `tfspec validate` prints; `load` imports no TensorFlow until a model is
built. Tiny models on the shipped Iris CSV, a few epochs.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tf_state import restore_global_state  # noqa: F401 (autouse)

import tfspec
from tfspec import cli
from tfspec.codegen.program import API, compile_file
from tfspec.jobs.build import load_program
from tfspec.lang.diagnostics import SpecError, render_text
from tfspec.lang.validate import find_specs, parse_override

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
IRIS = EXAMPLES / "iris_mlp.tfspec"

# a seeded, deterministic Iris MLP with a test split and one export: a few seconds
SEEDED = """\
tfspec 1
name "seeded"

param hidden = 8

data {
  source = csv("data/iris.csv", label = "species")
  split { validation = 0.2, test = 0.2, seed = 3 }
  batch = 16
  preprocess = [Normalization()]
}

model Iris sequential {
  input features: float32[4]
  Dense(hidden, activation = "relu")
  Dropout(0.1)
  Dense(3, activation = "softmax")
}

train {
  optimizer = "adam"
  loss = "sparse_categorical_crossentropy"
  metrics = ["accuracy"]
  epochs = 3
  seed = 1
  deterministic = true
}

export {
  keras "runs/seeded/model.keras"
}
"""


def seeded_spec(folder: Path, text: str = SEEDED) -> Path:
    (folder / "data").mkdir(parents=True)
    shutil.copyfile(EXAMPLES / "data" / "iris.csv", folder / "data" / "iris.csv")
    path = folder / "seeded.tfspec"
    path.write_text(text, encoding="utf-8")
    return path


def only_run(folder: Path, name: str = "seeded") -> Path:
    runs = sorted((folder / "runs" / name).glob("2*"))
    assert len(runs) == 1, runs
    return runs[0]


def weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run_dir / "model.keras").get_weights()


def test_build_model_is_the_compiled_programs_model():
    spec = tfspec.load(IRIS, set={"hidden": 12})
    ours = spec.build_model()
    namespace = load_program(compile_file(IRIS, {"hidden": 12}))
    theirs = namespace[API.build_model]()
    assert ours is not theirs and ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    assert ours.get_layer("dense").units == 12
    ours.set_weights([np.random.default_rng(0).normal(size=w.shape) for w in ours.weights])
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False))
    assert spec.build_model() is not ours  # a new model each call


def test_datasets_callbacks_and_compile_are_the_programs(tmp_path):
    spec = tfspec.load(seeded_spec(tmp_path))
    model = spec.build_model()
    data = spec.datasets(model)  # adapts the Normalization on the training split
    assert set(data) >= {"train", "validation", "test"}
    norm = model.get_layer("features_normalization")
    assert np.any(np.asarray(norm.mean) != 0)
    spec.compile_model(model)
    assert model.optimizer is not None and model.loss == "sparse_categorical_crossentropy"
    names = [type(c).__name__ for c in spec.callbacks()]
    assert "BackgroundBackupAndRestore" in names
    model.fit(data["train"], epochs=1, verbose=0, shuffle=False)  # the pipeline shuffles
    assert set(spec.datasets()) == set(data)  # no model: the pipelines, unadapted


def test_fit_writes_the_run_tfspec_run_writes(tmp_path):
    by_cli, by_api = seeded_spec(tmp_path / "cli"), seeded_spec(tmp_path / "api")
    with contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["run", str(by_cli)]) == 0
    run = tfspec.load(by_api).fit()
    reference = only_run(by_cli.parent)
    assert run.path == only_run(by_api.parent)
    files = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*"))
    assert files == sorted(p.relative_to(reference).as_posix() for p in reference.rglob("*"))
    for name in ("spec.tfspec", "program.py"):
        assert (run.path / name).read_text() == (reference / name).read_text().replace(
            str(by_cli.parent), str(by_api.parent))
    for a, b in zip(weights(run.path), weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    # and the run reads back: history, test metrics, exports and their checks
    opened = tfspec.open_run(reference)
    assert len(opened.history["loss"]) == 3 and "accuracy" in opened.test
    assert run.test == opened.test
    assert [e["format"] for e in run.exports] == ["keras"]
    assert [v["passed"] for v in run.verified] == [True]
    assert "test split: " in run._repr_html_()


def test_fit_of_a_text_spec_runs_beside_its_name_and_leaves_no_copy(tmp_path, monkeypatch):
    seeded_spec(tmp_path).unlink()
    monkeypatch.chdir(tmp_path)
    spec = tfspec.load(SEEDED.replace("epochs = 3", "epochs = 1"))
    run = spec.fit(hidden=4)
    assert run.path.parent == tmp_path / "runs" / "seeded"
    assert "param hidden = 4" in run.spec_text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "runs"]


def test_a_text_specs_run_error_is_at_its_own_name(tmp_path, monkeypatch):
    seeded_spec(tmp_path).unlink()
    monkeypatch.chdir(tmp_path)
    broken = SEEDED.replace('label = "species"', 'label = "kind"')  # no such column
    spec = tfspec.load(broken, filename="mine.tfspec")
    with pytest.raises(SpecError) as caught:
        spec.fit()
    assert all(d.file == "mine.tfspec" for d in caught.value.diagnostics)
    assert str(caught.value).startswith("mine.tfspec:")


INVALID = sorted(find_specs([str(EXAMPLES / "invalid")]))


def first_line_sets(path: Path) -> list[str]:
    """The `--set` values a broken example is checked with (`# set: NAME=VALUE …`)."""
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    return shlex.split(first.removeprefix("# set:")) if first.startswith("# set:") else []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_a_broken_spec_raises_the_diagnostics_validate_prints(path, capsys):
    sets = first_line_sets(path)
    cli.main(["validate", *[x for s in sets for x in ("--set", s)], str(path)])
    printed = capsys.readouterr().out.strip()
    values = dict(parse_override(s) for s in sets)
    if path.name.startswith("W"):  # warnings only: it loads, and keeps them
        spec = tfspec.load(path, set=values)
        assert render_text(spec.diagnostics, spec.source) == printed
        assert printed.splitlines()[0] in html.unescape(spec._repr_html_())
        return
    with pytest.raises(SpecError) as caught:
        tfspec.load(path, set=values)
    assert render_text(caught.value.diagnostics, caught.value.source) == printed
    assert printed.splitlines()[0] in html.unescape(caught.value._repr_html_())
    if not path.name.endswith(".json"):  # the same text, given as text
        with pytest.raises(SpecError) as again:
            tfspec.load(path.read_text(encoding="utf-8"), set=values, filename=str(path))
        assert render_text(again.value.diagnostics, again.value.source) == printed


def test_plan_and_graph(tmp_path):
    spec = tfspec.load(IRIS)
    plan = spec.plan()
    assert plan.params == spec.build_model().count_params() == plan.to_json()["totals"]["params"]
    assert plan.flops > 0 and "Total params:" in plan.table
    assert f"{plan.params:,}" in plan._repr_html_()
    graph = spec.graph()
    assert "digraph" in graph.dot
    if shutil.which("dot"):
        assert "<svg" in graph._repr_svg_()


def test_open_run_refuses_what_is_no_run_directory(tmp_path):
    with pytest.raises(tfspec.TfspecError, match="not a run directory"):
        tfspec.open_run(tmp_path)


CHECK = textwrap.dedent(
    r"""
    import json, sys
    import tfspec

    def heavy():
        return sorted(m for m in sys.modules
                      if m.split(".")[0] in ("tensorflow", "keras", "numpy", "IPython"))

    spec = tfspec.load(sys.argv[1], set={"hidden": 4})
    seen = {"load": heavy()}
    spec.params, spec.program(), spec._repr_html_(), spec.diagnostics
    seen["program"] = heavy()
    try:
        tfspec.load(sys.argv[1].replace(".tfspec", "-missing.tfspec"))
    except tfspec.SpecError as exc:
        exc._repr_html_()
    seen["error"] = heavy()
    model = spec.build_model()
    seen["build_model"] = sorted({m.split(".")[0] for m in heavy()})
    print(json.dumps(seen))
    """
)


def test_load_imports_no_tensorflow_until_build_model():
    env = {k: v for k, v in os.environ.items() if k != "TFSPEC_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", CHECK, str(IRIS)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["load"] == seen["program"] == seen["error"] == [], seen
    assert {"keras", "tensorflow"} <= set(seen["build_model"]), seen


MAGIC_SPEC = """\
tfspec 1
model Flowers sequential {
  input features: float32[4]
  Dense(3, activation = "softmax")
}
"""


def test_the_cell_magic_binds_the_spec_and_locates_errors_at_cell_lines(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # its profile: not ~
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactiveshell.InteractiveShell()
    tfspec.load_ipython_extension(shell)
    result = shell.run_cell("%%tfspec flowers\n" + MAGIC_SPEC)
    assert result.success, result.error_in_exec
    assert isinstance(shell.user_ns["flowers"], tfspec.Spec)
    assert shell.user_ns["flowers"].ir["model"]["name"] == "Flowers"
    result = shell.run_cell("%%tfspec broken --set hidden=3\n"
                            + MAGIC_SPEC.replace("Dense(3", "Dens(3"))
    assert isinstance(result.error_in_exec, SpecError) and "broken" not in shell.user_ns
    shown = capsys.readouterr()
    text = shown.out + shown.err
    # the magic's line is line 1: `Dens` is on the cell's line 5
    assert re.search(r"<cell( \d+)?>:5:3: error\[E300\]", text), text
    assert "Traceback" not in text and "^^^^" in text
    result = shell.run_cell("%%tfspec --set nope\n" + MAGIC_SPEC)
    assert isinstance(result.error_in_exec, tfspec.TfspecError)
    assert "tfspec: error: --set:" in "".join(capsys.readouterr())
