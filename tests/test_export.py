"""Exports for real: every runnable example is trained and each export target it names
is loaded in its own runtime (TensorFlow, Keras, LiteRT, TF.js in Node.js,
onnxruntime) and compared with the Keras model; forced mismatches fail with the
numbers; `tfspec export --from` and `tfspec verify` work on finished runs; a killed
export leaves the previous export in place.

The examples run from a copy of examples/ in a tmp folder (their exports land in
its runs/), once per module: the slow part, shared by the tests below.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tf_state import restore_global_state  # noqa: F401 (autouse)

from tfspec import cli
from tfspec.jobs.build import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# The examples `tfspec run` trains here (multi_worker needs `tfspec launch`:
# tests/test_launch.py).
RUNNABLE = ["autoencoder", "digits_cnn", "everything", "iris_mlp", "iris_finetune",
            "resnet_blocks", "subclassed_mlp", "text_lstm", "two_tower"]
# iris_finetune loads the `.keras` model iris_mlp exports
NEEDS = {"iris_finetune": "iris_mlp"}


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    """A copy of examples/ (specs and data, no runs) to train and export in."""
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(EXAMPLES, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs", "invalid"))
    return root


_RUNS: dict[str, Path] = {}
# MirroredStrategy over two CPU devices: only a fresh process can split the CPU
FRESH_PROCESS = {"everything"}


def run_example(examples: Path, name: str) -> Path:
    """Train the example once (its run directory is shared by the tests)."""
    if name not in _RUNS:
        if name in NEEDS:
            run_example(examples, NEEDS[name])
        run_dir = examples / "runs" / f"{name}-test"
        args = ["run", str(examples / f"{name}.tfspec"), "--run-dir", str(run_dir)]
        if name in FRESH_PROCESS:
            done = subprocess.run([sys.executable, "-m", "tfspec", *args],
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
        else:
            assert cli.main(args) == 0, f"tfspec run {name}.tfspec failed"
        _RUNS[name] = run_dir
    return _RUNS[name]


def targets_of(spec: Path) -> list[dict]:
    from tfspec.lang.validate import validate_file

    return validate_file(str(spec)).ir.get("export", [])


def tree_digest(path: Path) -> str:
    """One hash of a file, or of every file under a folder (names and bytes)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        h.update(str(file.relative_to(path.parent)).encode())
        h.update(file.read_bytes())
    return h.hexdigest()


# -- every export of every runnable example, in its runtime -----------------------------------


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_export_of_the_example_answers_like_keras(examples, name):
    run_dir = run_example(examples, name)
    spec = examples / f"{name}.tfspec"
    targets = targets_of(spec)
    report = json.loads((run_dir / "verify.json").read_text())
    checked = {entry["index"]: entry for entry in report}
    for index, target in enumerate(targets):
        if target.get("verify") is False:
            continue
        entry = checked[index]  # every target is checked…
        assert entry["format"] == target["format"]
        assert entry["passed"], entry["message"]  # …in its runtime, and passes
        assert entry["max_abs_error"] <= entry["tolerance"]
        where = spec.parent / target["path"]
        if target["format"] == "saved_model":
            where = where / str(target.get("version", 1)) / "saved_model.pb"
        if target["format"] == "tfjs":
            where = where / "model.json"
        assert where.is_file(), f"{where} was not written"
    # nothing half-written beside the exports
    assert not list((spec.parent / "runs").rglob(".*.tmp-*"))


def test_the_main_example_learns_the_digits(examples):
    """The README's example is a good model: the weights EarlyStopping keeps (the
    epoch of lowest val_loss) get >= 97 % of the validation split right (0.98 to
    0.99 in 20 runs; the run the export tests share, so no extra training)."""
    run_dir = run_example(examples, "digits_cnn")
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    best = int(np.argmin(history["val_loss"]))
    assert history["val_accuracy"][best] >= 0.97, history["val_accuracy"]


def test_saved_models_are_in_tf_serving_layout_with_the_spec_names(examples):
    run_example(examples, "two_tower")
    base = examples / "runs" / "two_tower" / "serving"
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # <base>/<version>/
    serve = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == ["item", "query"]
    assert sorted(serve.structured_outputs) == ["category", "score"]
    run_dir = examples / "runs" / "two_tower-test"
    record = json.loads((run_dir / "exports.json").read_text())
    assert record["name"] == "two-tower"
    # the run's own copy (what verify checks and serve serves), published at the spec's path
    target = record["targets"][0]
    assert (target["path"], target["published"]) == ("exports/0/serving", str(base))
    assert tree_digest(run_dir / "exports" / "0" / "serving" / "1") == tree_digest(base / "1")


def test_tfspec_serve_serves_a_saved_model_export_under_the_spec_name(examples):
    """`tfspec serve runs/two_tower/serving`: the model is `two-tower`, not `serving`."""
    from tfspec.serving.servables import find_export

    run_example(examples, "two_tower")
    base = examples / "runs" / "two_tower" / "serving"
    # recorded inside the version folder, written (and renamed into place) with it
    record = base / "1" / "assets.extra" / "tfspec.json"
    assert json.loads(record.read_text()) == {"name": "two-tower"}
    export = find_export(base)
    assert (export.name, export.name_from) == ("two-tower", "spec")
    assert export.versions == {1: base / "1"}


def test_tfsmlayer_calls_a_spec_saved_model_export(examples):
    """The export also carries `model.export`'s positional `serve` endpoint."""
    run_dir = run_example(examples, "iris_mlp")
    layer = keras.layers.TFSMLayer(str(examples / "runs" / "iris" / "serving" / "1"),
                                   trainable=False)
    features = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    model = keras.saving.load_model(run_dir / "model.keras")
    np.testing.assert_allclose(np.asarray(layer(features)), model.predict(features, verbose=0),
                               atol=1e-6)


def test_quantized_tflite_is_smaller_and_int8_io_is_integer(examples):
    run_example(examples, "everything")
    from ai_edge_litert.interpreter import Interpreter

    out = examples / "runs" / "everything"
    int8 = Interpreter(model_path=str(out / "model_int8.tflite")).get_signature_runner()
    assert {d["dtype"] for d in int8.get_input_details().values()} == {np.int8}
    assert {d["dtype"] for d in int8.get_output_details().values()} == {np.int8}
    fp16 = (out / "model_fp16.tflite").stat().st_size
    assert (out / "model_int8.tflite").stat().st_size < fp16


# -- failures are loud, located and carry the numbers ------------------------------------------


def digits_spec(directory: Path, export: str) -> Path:
    (directory / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "data" / "digits.npz", directory / "data")
    spec = directory / "spec.tfspec"
    spec.write_text(textwrap.dedent("""\
        tfspec 1
        name "digits-small"
        data {
          source = npz("data/digits.npz", x = "images", y = "labels")
          split { validation = 0.2, seed = 1 }
          batch = 64
        }
        model Small sequential {
          input image: float32[8, 8, 1]
          Rescaling(1 / 16)
          Flatten()
          Dense(32, activation = "relu")
          Dense(10, activation = "softmax")
        }
        train {
          optimizer = Adam(learning_rate = 0.01)
          loss = "sparse_categorical_crossentropy"
          epochs = 2
        }
        export {
        """) + textwrap.indent(textwrap.dedent(export).strip(), "  ") + "\n}\n",
        encoding="utf-8")
    return spec


def test_a_quantization_the_model_cannot_survive_fails_with_target_and_numbers(
        tmp_path, capsys):
    spec = digits_spec(tmp_path, """
        saved_model "out/serving"
        tflite "out/model.tflite" { quantize = "int8", integer_io = true, tolerance = 1e-6 }
    """)
    status = cli.main(["run", str(spec), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{spec}:22:3: error[E504]: tflite out/model.tflite does not answer like the " \
           "Keras model: max abs error" in err
    assert "> tolerance 1e-06" in err and "argmax agreement" in err
    assert "Traceback" not in err
    report = json.loads((tmp_path / "run" / "verify.json").read_text())
    assert [e["passed"] for e in report] == [True, False]  # the SavedModel passed
    # after the errors, the run's summary: no test split here, each export's check
    saved_model, tflite = report
    assert err.splitlines()[-3:] == [
        f"export saved_model out/serving: passed, max abs error "
        f"{saved_model['max_abs_error']:.3g} <= tolerance {saved_model['tolerance']:.3g}",
        f"export tflite out/model.tflite: failed, max abs error {tflite['max_abs_error']:.3g}"
        " > tolerance 1e-06",
        f"run directory: {tmp_path / 'run'}",
    ]


def test_a_target_that_cannot_be_written_fails_at_its_line(tmp_path, capsys):
    """The export runs in tfspec.runtime: its error still points at the target."""
    spec = digits_spec(tmp_path, """
        saved_model "out/serving"
        keras "blocked/model.keras"
    """)
    (tmp_path / "blocked").write_text("a file where the export's folder goes")
    run_dir = tmp_path / "run"
    status = cli.main(["run", str(spec), "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{spec}:22:3: error[E504]: the export failed: [Errno 17] File exists" in err, err
    assert "Traceback" not in err
    # the target that was written is recorded and checked; the failed one is marked
    record = json.loads((run_dir / "exports.json").read_text())
    assert [t.get("written", True) for t in record["targets"]] == [True, False]
    report = json.loads((run_dir / "verify.json").read_text())
    assert [(e["index"], e["passed"]) for e in report] == [(0, True), (1, False)]
    assert err.splitlines()[-2] == "export keras blocked/model.keras: failed: not written " \
                                   "(the export failed)"
    # `tfspec verify` reports each target again, and `tfspec serve` serves the SavedModel
    assert cli.main(["verify", str(run_dir)]) == 1
    out, err = capsys.readouterr()
    assert "verify: saved_model out/serving answers like the Keras model" in out
    # at the target in the run's copy of the spec (formatted: its own line numbers)
    assert f"{run_dir / 'spec.tfspec'}:26:3: error[E504]: the export failed: [Errno 17] " \
           "File exists" in err, err
    from test_serve import call, in_process

    with in_process(run_dir) as url:
        status, answer, _ = call(url, "POST", "/v1/models/digits-small:predict",
                                 {"instances": np.zeros((1, 8, 8, 1)).tolist()})
    assert status == 200 and len(answer["predictions"][0]) == 10


TEXT_SPEC = """\
tfspec 1
data {
  source = text("data/reviews", label_mode = "binary")
  split { validation = 0.5, seed = 1 }
}
model Words functional {
  input text: string[]
  output positive = text
    |> TextVectorization(max_tokens = 20, output_sequence_length = 4)
    |> Embedding(20, 2)
    |> Flatten()
    |> Dense(1, activation = "sigmoid")
}
train {
  loss = "binary_crossentropy"
  epochs = 1
}
export {
  saved_model "out/serving"
  tfjs "out/tfjs"
}
"""


def test_a_target_that_cannot_convert_stops_the_run_before_training(tmp_path, capsys):
    """`plan --target`'s check runs before the first epoch: TF.js has no string ops."""
    shutil.copytree(EXAMPLES / "data" / "reviews", tmp_path / "data" / "reviews")
    spec = tmp_path / "spec.tfspec"
    spec.write_text(TEXT_SPEC, encoding="utf-8")
    status = cli.main(["run", str(spec), "--run-dir", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert status == 1
    assert f"{spec}:20:3: error[E506]: tfjs out/tfjs cannot be exported: layer " \
           "`positive_text_vectorization` (TextVectorization) at line 9 will not convert to " \
           "TensorFlow.js: needs StringLower, StringSplitV2" in err, err
    assert "= hint: TF.js has no kernel for it; or do this preprocessing in the data " \
           "pipeline" in err
    assert "Traceback" not in err and err.count("error[") == 1  # the SavedModel converts
    assert "Epoch" not in out  # no training
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_the_export_check_is_kept_and_read_back(tmp_path, monkeypatch):
    """The check's process runs once for a spec: its answer is kept in the cache, keyed
    by the program (a changed spec is checked again) and by the `--set` values."""
    from tfspec.inspect import convertcheck
    from tfspec.lang.diagnostics import SpecError

    monkeypatch.setenv("TFSPEC_CACHE_DIR", str(tmp_path / "cache"))
    spec = tmp_path / "spec.tfspec"
    spec.write_text(TEXT_SPEC, encoding="utf-8")
    with pytest.raises(SpecError) as first:
        convertcheck.check_exports_apart(str(spec), {})
    assert len(list((tmp_path / "cache" / "export-checks").glob("*.json"))) == 1
    started = []
    monkeypatch.setattr(convertcheck, "_check_in_a_process",
                        lambda *args: started.append(args) or [])
    with pytest.raises(SpecError) as again:
        convertcheck.check_exports_apart(str(spec), {})
    assert started == []
    assert [d.to_dict() for d in again.value.diagnostics] == [
        d.to_dict() for d in first.value.diagnostics]
    spec.write_text(TEXT_SPEC.replace("epochs = 1", "epochs = 2"), encoding="utf-8")
    convertcheck.check_exports_apart(str(spec), {})  # another program: checked anew
    assert len(started) == 1
    spec.write_text(TEXT_SPEC.replace('  tfjs "out/tfjs"\n', ""), encoding="utf-8")
    convertcheck.check_exports_apart(str(spec), {})  # nothing to convert: no process
    assert len(started) == 1


def test_verify_checks_a_run_again_and_catches_a_tampered_export(examples, capsys):
    run_dir = run_example(examples, "digits_cnn")
    assert cli.main(["verify", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "verify: tfjs runs/digits/tfjs answers like the Keras model" in out
    # change the TF.js model's float weights (the run's own copy, which verify checks): it
    # still loads, and answers differently
    record = json.loads((run_dir / "exports.json").read_text())
    tfjs = run_dir / next(t["path"] for t in record["targets"] if t["format"] == "tfjs")
    manifest = json.loads((tfjs / "model.json").read_text())["weightsManifest"]
    assert len(manifest) == 1 and len(manifest[0]["paths"]) == 1
    shard = tfjs / manifest[0]["paths"][0]
    original = shard.read_bytes()
    try:
        data, offset = bytearray(original), 0
        for weight in manifest[0]["weights"]:
            size = int(np.prod(weight["shape"])) * 4  # float32 and int32 alike
            if weight["dtype"] == "float32":
                values = np.frombuffer(original, "float32", size // 4, offset) + 0.5
                data[offset:offset + size] = values.astype("float32").tobytes()
            offset += size
        shard.write_bytes(bytes(data))
        assert cli.main(["verify", str(run_dir)]) == 1
        captured = capsys.readouterr()
        line = next(i for i, text in enumerate(
            (run_dir / "spec.tfspec").read_text().splitlines(), 1) if "tfjs " in text)
        assert f"{run_dir / 'spec.tfspec'}:{line}:" in captured.err
        assert "error[E504]: tfjs runs/digits/tfjs does not answer like the Keras model" \
            in captured.err
        # not a precision problem: the hint says the file changed
        assert "its digest differs from exports.json's" in captured.err
        assert "the run's copy of this export was changed after the run" in captured.err
        assert "a coarser `quantize`" not in captured.err
        report = json.loads((run_dir / "verify.json").read_text())
        assert {e["format"]: e["passed"] for e in report} == {
            "saved_model": True, "tflite": True, "tfjs": False}
    finally:
        shard.write_bytes(original)
        verified = cli.main(["verify", str(run_dir)])  # verify.json as the run left it
        capsys.readouterr()
    assert verified == 0


def test_verify_a_run_whose_model_loads_another_export(examples, capsys):
    """The run's copy of the spec is elsewhere than the spec: `verify` does not look for
    the backbone its model loaded (only the exports are loaded again)."""
    run_dir = run_example(examples, "iris_finetune")
    assert cli.main(["verify", str(run_dir)]) == 0, capsys.readouterr().err
    assert "keras runs/iris_finetune/model.keras answers like the Keras model" in \
        capsys.readouterr().out


def test_export_from_a_run_writes_the_targets_again_without_training(examples, capsys):
    run_dir = run_example(examples, "iris_mlp")
    out = examples / "runs" / "iris"
    shutil.rmtree(out)
    metrics = (run_dir / "metrics.json").read_bytes()
    spec = examples / "iris_mlp.tfspec"
    assert cli.main(["export", str(spec), "--from", str(run_dir)]) == 0
    assert (out / "model.keras").is_file() and (out / "serving" / "1").is_dir()
    assert (run_dir / "metrics.json").read_bytes() == metrics  # no training
    # the re-exported model is the run's model
    model = keras.saving.load_model(run_dir / "model.keras")
    again = keras.saving.load_model(out / "model.keras")
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert "Epoch" not in capsys.readouterr().out


def test_an_older_run_verifies_and_serves_its_own_exports(tmp_path, capsys):
    """Two runs publish to the same declared paths: the first run's verify checks the
    exports it wrote (its copies in its run directory) and says that the declared paths
    now hold the second run's; serving the first run serves its model."""
    from tfspec.serving.servables import find_export, load_model

    spec = digits_spec(tmp_path, """
        saved_model "out/serving"
        tflite "out/model.tflite"
    """)
    first, second = tmp_path / "run1", tmp_path / "run2"
    assert cli.main(["run", str(spec), "--run-dir", str(first)]) == 0
    spec.write_text(spec.read_text().replace("learning_rate = 0.01", "learning_rate = 0.05"))
    assert cli.main(["run", str(spec), "--run-dir", str(second)]) == 0
    capsys.readouterr()
    assert cli.main(["verify", str(first)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "verify: tflite out/model.tflite answers like the Keras model" in out
    tflite, version = tmp_path / "out" / "model.tflite", tmp_path / "out" / "serving" / "1"
    assert (f"verify: note: tflite out/model.tflite: the file at {tflite} was replaced by "
            f"run {second} after this run (digest differs)") in out, out
    assert f"the folder at {version} was replaced by run {second} after this run" in out
    report = json.loads((first / "verify.json").read_text())
    assert [e["published"]["current"] for e in report] == [False, False]
    # the second run's exports are the published ones: no note
    assert cli.main(["verify", str(second)]) == 0
    assert "note:" not in capsys.readouterr().out
    # `tfspec serve RUN1` serves the first run's model, not what the declared path holds
    images = np.load(EXAMPLES / "data" / "digits.npz")["images"][:8].astype("float32")
    served = load_model(find_export(first)).latest.signatures["serving_default"].function
    answers = next(iter(served(image=tf.constant(images)).values())).numpy()
    for run, same in ((first, True), (second, False)):
        keras_answers = keras.saving.load_model(run / "model.keras").predict(images, verbose=0)
        assert np.allclose(answers, keras_answers, atol=1e-5) == same, run


def test_bad_run_directories_are_errors_not_tracebacks(tmp_path, capsys):
    assert cli.main(["verify", str(tmp_path)]) == 1
    assert "error[E504]" in capsys.readouterr().err
    spec = digits_spec(tmp_path / "spec", 'keras "out/model.keras"')
    assert cli.main(["export", str(spec), "--from", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "holds no model.keras" in err and "Traceback" not in err


# -- atomic exports ---------------------------------------------------------------------------


KILLER = textwrap.dedent("""\
    import os, signal, sys, time
    from pathlib import Path
    # wait for the export's scratch folder, then kill the exporting process
    parents, pid = [Path(p) for p in sys.argv[2:]], int(sys.argv[1])
    # .model.keras.tmp-…, serving/.1.tmp-…: in the run's own copies or where they are published
    while not any(list(parent.rglob(".*.tmp-*")) for parent in parents):
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
""")


def test_a_killed_export_leaves_the_previous_export_or_nothing(examples, tmp_path):
    run_dir = run_example(examples, "iris_mlp")
    spec = examples / "iris_mlp.tfspec"
    out, own = examples / "runs" / "iris", run_dir / "exports"
    # each export where it is published, and the run's own copies (exports/<index>/<name>)
    places = [out, *own.iterdir()]
    before = {p: tree_digest(p) for place in places for p in place.iterdir()
              if not p.name.startswith(".")}
    folders = {p for p in before if p.is_dir()}
    exporter = subprocess.Popen(
        [sys.executable, "-m", "tfspec", "export", str(spec), "--from", str(run_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killer = subprocess.run([sys.executable, "-c", KILLER, str(exporter.pid), str(out),
                             str(own)], timeout=300)
    assert killer.returncode == 0
    assert exporter.wait(timeout=60) == -signal.SIGKILL
    # killed while writing: its scratch is left
    assert any(list(place.rglob(".*.tmp-*")) for place in places)
    for path, digest in before.items():
        if path.exists():
            assert tree_digest(path) == digest  # the previous export, whole
        else:  # only a folder has a moment between two renames with nothing in place
            assert path in folders, path
    # the next export cleans up what the killed one left, and verifies
    assert cli.main(["export", str(spec), "--from", str(run_dir)]) == 0
    assert not [p for place in places for p in place.rglob(".*.tmp-*")]


def test_the_exports_answer_like_keras_when_this_test_runs_them(examples, tmp_path):
    """Apart from verify.json: the test runs exports in their runtimes itself, on new
    inputs, against the trained Keras model. TF.js in Node through the runtime's
    script (the one `verify` runs), LiteRT on the quantized flatbuffer, onnxruntime on
    the ONNX model of a mixed-precision run."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    from tfspec.jobs.runner import node_path

    run_dir = run_example(examples, "digits_cnn")
    out = examples / "runs" / "digits"
    script = ROOT / "tfspec" / "runtime" / "js" / "predict.js"
    images = np.random.default_rng(1).uniform(0, 16, size=(8, 8, 8, 1)).astype("float32")
    expected = keras.saving.load_model(run_dir / "model.keras").predict(images, verbose=0)

    node_path()
    feed = tmp_path / "inputs.json"
    feed.write_text(json.dumps({"image": {"dtype": "float32", "shape": list(images.shape),
                                          "data": images.ravel().tolist()}}))
    done = subprocess.run(["node", str(script), str(out / "tfjs"), str(feed)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (answer,) = json.loads(done.stdout).values()
    np.testing.assert_allclose(np.reshape(answer["data"], answer["shape"]), expected,
                               atol=1e-5)

    runner = Interpreter(model_path=str(out / "model.tflite")).get_signature_runner()
    (answer,) = runner(image=images).values()
    np.testing.assert_allclose(answer, expected, atol=0.05)  # dynamic-range int8 weights

    run_dir = run_example(examples, "everything")
    session = onnxruntime.InferenceSession(
        str(examples / "runs" / "everything" / "model.onnx"), providers=["CPUExecutionProvider"])
    (answer,) = session.run(None, {session.get_inputs()[0].name: images})
    expected = keras.saving.load_model(run_dir / "model.keras").predict(images, verbose=0)
    np.testing.assert_allclose(answer, expected, atol=2e-2)  # trained in bfloat16
