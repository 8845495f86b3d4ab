"""tfspec.runtime.export and .verify on their own: real TensorFlow, a tiny model.

Writes are atomic, the verify batch keeps the declared dtypes, a SavedModel's
signature carries the spec's names, parity passes and fails on the numbers, an
export that fails says which target it was, and LiteRT runs a flatbuffer (where
ai-edge-litert is installed).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
from tf_state import restore_global_state  # noqa: F401 (autouse)

from tfspec.jobs.build import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfspec.runtime import export, verify  # noqa: E402

INPUTS = {"x": ((4,), "float32")}
OUTPUTS = ["probs"]


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(x, probs)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return tiny_model()


def datasets(features, labels, batch: int = 8) -> dict[str, tf.data.Dataset]:
    return {"train": tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch)}


def tiny_data() -> dict[str, tf.data.Dataset]:
    rng = np.random.default_rng(0)
    return datasets(rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 3, size=40))


def target(fmt: str, path: str, tolerance: float = 1e-4, **options) -> dict:
    return {"format": fmt, "path": path, "tolerance": tolerance, "spec_path": path, **options}


# -- write_atomically -------------------------------------------------------------------------


def test_a_failed_write_leaves_the_previous_folder_whole_and_no_scratch(tmp_path):
    path = tmp_path / "out" / "export"
    export.write_atomically(path, lambda p: (p.mkdir(), (p / "a").write_text("one")))

    def half_then_fail(p):
        p.mkdir()
        (p / "a").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export.write_atomically(path, half_then_fail)
    assert (path / "a").read_text() == "one"
    assert sorted(p.name for p in path.parent.iterdir()) == ["export"]


def test_a_failed_write_of_a_new_file_leaves_nothing(tmp_path):
    path = tmp_path / "model.tflite"

    def half_then_fail(p):
        p.write_bytes(b"half a flatbuffer")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError):
        export.write_atomically(path, half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_a_write_replaces_a_folder_and_cleans_what_a_killed_write_left(tmp_path):
    path = tmp_path / "tfjs"
    export.write_atomically(path, lambda p: (p.mkdir(), (p / "old").write_text("1")))
    (tmp_path / ".tfjs.tmp-killed").mkdir()  # the scratch of a process killed mid-write
    export.write_atomically(path, lambda p: (p.mkdir(), (p / "new").write_text("2")))
    assert sorted(p.name for p in path.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfjs"]


# -- the verify batch -------------------------------------------------------------------------


def test_the_verify_batch_holds_the_declared_dtypes_and_the_model_answers(tmp_path):
    """An int32 input that the pipeline holds as int64, and a string input, as a
    client sends them; the test split first."""
    ids = keras.Input((3,), dtype="int32", name="ids")
    words = keras.Input((), dtype="string", name="words")
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"])(words)
    total = keras.layers.Concatenate()([keras.ops.cast(ids, "float32"),
                                        keras.ops.cast(lookup[:, None], "float32")])
    model = keras.Model({"ids": ids, "words": words}, keras.layers.Dense(2, name="y")(total))
    inputs = {"ids": ((3,), "int32"), "words": ((), "string")}
    features = {"ids": np.arange(30, dtype="int64").reshape(10, 3),
                "words": np.array(["a", "b"] * 5)}
    splits = {name: tf.data.Dataset.from_tensor_slices((features, np.zeros(10))).batch(4)
              for name in ("train", "test")}
    splits["test"] = splits["test"].skip(1)  # the test split starts at the 5th example

    verify.save_verify_batch(model, splits, tmp_path, inputs, ["y"], size=6)

    with np.load(tmp_path / "verify_batch.npz") as batch:
        assert sorted(batch.files) == ["input/ids", "input/words", "output/y"]
        assert batch["input/ids"].dtype == np.int32
        assert batch["input/ids"].shape == (6, 3) and batch["input/ids"][0, 0] == 12
        assert batch["input/words"].dtype.kind == "S"  # bytes: np.load takes no objects
        assert batch["output/y"].dtype == np.float32 and batch["output/y"].shape == (6, 2)
        want = model({"ids": batch["input/ids"], "words": batch["input/words"]})
        np.testing.assert_allclose(batch["output/y"], want, rtol=1e-6)


# -- parity -----------------------------------------------------------------------------------


def test_parity_passes_within_the_tolerance_and_reports_the_numbers():
    expected = {"probs": np.array([[0.2, 0.8], [0.9, 0.1]], dtype="float32")}
    entry = verify.parity(target("tflite", "m.tflite", 1e-2),
                          {"probs": expected["probs"] + 5e-3}, expected)
    assert entry["passed"]
    assert entry["max_abs_error"] == pytest.approx(5e-3, rel=1e-4)
    assert entry["argmax_agreement"] == 1.0 and entry["tolerance"] == 1e-2
    assert entry["message"].startswith("tflite m.tflite answers like the Keras model: max "
                                       "abs error 0.005 <= 0.01")


def test_parity_fails_beyond_the_tolerance_scaled_by_the_outputs_magnitude():
    expected = {"score": np.array([[100.0], [-50.0]])}
    off = {"score": expected["score"] + 0.5}
    assert verify.parity(target("onnx", "m.onnx", 1e-2), off, expected)["passed"]  # 0.5 <= 1
    entry = verify.parity(target("onnx", "m.onnx", 1e-3), off, expected)
    assert not entry["passed"] and entry["tolerance"] == pytest.approx(0.1)
    assert "does not answer like the Keras model: max abs error 0.5 > tolerance 0.1" in \
        entry["message"]
    assert entry["argmax_agreement"] is None  # one score, not classes


def test_parity_needs_every_output():
    with pytest.raises(ValueError, match=r"the tfjs export has no output \['b'\]"):
        verify.parity(target("tfjs", "web"), {"a": np.zeros(2)},
                      {"a": np.zeros(2), "b": np.zeros(2)})


# -- exports in their runtimes ----------------------------------------------------------------


def test_a_saved_model_signature_takes_and_gives_the_spec_names(tmp_path):
    a = keras.Input((2,), name="query")
    b = keras.Input((3,), name="item")
    joined = keras.layers.Concatenate()([a, b])
    model = keras.Model({"query": a, "item": b},
                        [keras.layers.Dense(1, name="d1")(joined),
                         keras.layers.Dense(4, name="d2")(joined)])
    inputs = {"query": ((2,), "float32"), "item": ((3,), "float32")}
    record = export.export_saved_model(model, tmp_path / "serving", inputs,
                                       ["score", "category"], name="two-tower", version=2,
                                       signature="predict")
    assert record == {"format": "saved_model", "path": str(tmp_path / "serving"),
                      "version": 2, "signature": "predict"}
    assert sorted(p.name for p in (tmp_path / "serving").iterdir()) == ["2"]
    extra = tmp_path / "serving" / "2" / "assets.extra" / "tfspec.json"
    assert json.loads(extra.read_text()) == {"name": "two-tower"}
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "2"))
    assert {"predict", "serve"} <= set(loaded.signatures)  # `serve`: what TFSMLayer calls
    serve = loaded.signatures["predict"]
    assert sorted(serve.structured_input_signature[1]) == ["item", "query"]
    assert sorted(serve.structured_outputs) == ["category", "score"]
    feed = {"query": np.ones((5, 2), "float32"), "item": np.ones((5, 3), "float32")}
    answers = verify.run_saved_model(record, feed, ["score", "category"])
    score, category = model(feed)
    np.testing.assert_allclose(answers["score"], score, rtol=1e-6)
    np.testing.assert_allclose(answers["category"], category, rtol=1e-6)


def test_verify_exports_writes_the_report_and_raises_on_a_mismatch(model, tmp_path):
    """A keras export of another model answers differently: ExportMismatch, with the
    entries; a target its runtime cannot load is a failure too; `verify = false`
    targets are left out."""
    verify.save_verify_batch(model, tiny_data(), tmp_path, INPUTS, OUTPUTS)
    same = export.export_keras(model, tmp_path / "same.keras")
    other = tiny_model()
    other.set_weights([-2 * w for w in model.get_weights()])
    different = export.export_keras(other, tmp_path / "other.keras")
    targets = [{**same, "tolerance": 1e-6, "spec_path": "same.keras"},
               {**different, "tolerance": 1e-6, "spec_path": "other.keras"},
               {**same, "tolerance": 1e-6, "verify": False, "spec_path": "skipped"},
               {"format": "keras", "path": str(tmp_path / "gone.keras"), "tolerance": 1e-6,
                "spec_path": "gone.keras"}]
    (tmp_path / "exports.json").write_text(json.dumps({"name": "t", "targets": targets}))

    with pytest.raises(verify.ExportMismatch) as raised:
        verify.verify_exports(tmp_path, OUTPUTS)

    report = json.loads((tmp_path / "verify.json").read_text())
    assert [(e["index"], e["passed"]) for e in report] == [(0, True), (1, False), (3, False)]
    assert report[0]["max_abs_error"] == 0.0
    assert [e["index"] for e in raised.value.failures] == [1, 3]
    assert "keras other.keras does not answer like the Keras model" in str(raised.value)
    assert report[2]["message"].startswith("keras gone.keras could not be checked: ")


def test_export_all_records_the_targets_and_says_which_one_failed(model, tmp_path):
    """A target that cannot be written is recorded as failed, the others as written;
    verify checks the written ones and reports the failed one, `verify = false` or not."""
    (tmp_path / "blocked").write_text("a file where a folder goes")
    (tmp_path / "run").mkdir()
    targets = [{"format": "keras", "path": "out/model.keras", "tolerance": 1e-6},
               {"format": "saved_model", "path": "blocked/serving", "tolerance": 1e-5,
                "verify": False}]
    records = export.export_all(model, tmp_path / "run", tiny_data(), targets, INPUTS,
                                OUTPUTS, name="tiny", spec_dir=tmp_path)
    keras_record, failed = records
    assert keras_record["format"] == "keras" and "written" not in keras_record
    assert (tmp_path / "out" / "model.keras").is_file()
    assert failed == {"format": "saved_model", "written": False, "error": failed["error"],
                      "tolerance": 1e-5, "verify": False, "spec_path": "blocked/serving"}
    assert failed["error"].startswith("[Errno 20] Not a directory")
    written = json.loads((tmp_path / "run" / "exports.json").read_text())
    assert written == {"name": "tiny", "targets": records}

    with pytest.raises(verify.ExportMismatch) as raised:
        verify.verify_exports(tmp_path / "run", OUTPUTS)
    [failure] = raised.value.failures
    assert failure["index"] == 1 and failure["written"] is False
    assert failure["message"].startswith("saved_model blocked/serving was not written: "
                                         "[Errno 20] Not a directory")
    report = json.loads((tmp_path / "run" / "verify.json").read_text())
    assert [(e["index"], e["passed"]) for e in report] == [(0, True), (1, False)]


def test_onnx_string_inputs_reach_onnxruntime_as_text(tmp_path):
    """The verify batch keeps strings as bytes (np.load refuses object arrays), and
    onnxruntime misreads bytes: a lookup (tf2onnx's CategoryMapper for StringLookup)
    then finds no token and the check blames a sound export."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("CategoryMapper", ["word"], ["index"], domain="ai.onnx.ml",
                          cats_strings=["a", "bb"], cats_int64s=[1, 2], default_int64=0)],
        "lookup", [helper.make_tensor_value_info("word", TensorProto.STRING, [None, 1])],
        [helper.make_tensor_value_info("index", TensorProto.INT64, [None, 1])])
    path = tmp_path / "lookup.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("ai.onnx.ml", 3)]),
              path)
    words = np.array([["a"], ["bb"], ["c"]]).astype(bytes)  # as verify_batch.npz holds them
    answers = verify.run_onnx(target("onnx", str(path)), {"word": words}, ["index"])
    assert answers["index"].ravel().tolist() == [1, 2, 0]


def test_verify_checks_the_runs_own_copy_and_says_what_became_of_the_published_one(
        model, tmp_path, capsys):
    """The run's own copy is checked; a published file changed by hand, or removed, is
    said so (no run beside it wrote it); a changed own copy is a digest mismatch."""
    run = tmp_path / "run"
    run.mkdir()
    targets = [{"format": "keras", "path": "out/model.keras", "tolerance": 1e-6},
               {"format": "saved_model", "path": "out/serving", "tolerance": 1e-5}]
    records = export.export_all(model, run, tiny_data(), targets, INPUTS, OUTPUTS,
                                name="tiny", spec_dir=tmp_path)
    assert [r["path"] for r in records] == ["exports/0/model.keras", "exports/1/serving"]
    own, published = run / "exports" / "0" / "model.keras", tmp_path / "out" / "model.keras"
    assert own.read_bytes() == published.read_bytes()
    assert records[0]["digest"] == verify.tree_digest(own) == verify.tree_digest(published)
    published.write_bytes(b"not a model")  # in place: the run's copy is a copy, not a link
    shutil.rmtree(tmp_path / "out" / "serving" / "1")
    report = verify.verify_exports(run, OUTPUTS)
    assert [(e["passed"], e["published"]["current"]) for e in report] == [(True, False)] * 2
    out = capsys.readouterr().out
    assert (f"verify: note: keras out/model.keras: the file at {published} was changed after "
            "this run, not by a run beside it (digest differs); this run's own copy, the one "
            f"checked, is {own}") in out
    assert (f"verify: note: saved_model out/serving: the folder at "
            f"{tmp_path / 'out' / 'serving' / '1'} is gone") in out
    own.write_bytes(published.read_bytes())  # the run's own copy, changed
    with pytest.raises(verify.ExportMismatch) as raised:
        verify.verify_exports(run, OUTPUTS)
    [failure] = raised.value.failures
    assert failure["changed"] is True
    assert "its digest differs from exports.json's" in failure["message"]


def test_a_mixed_precision_model_is_converted_from_a_float32_copy(model):
    keras.mixed_precision.set_global_policy("mixed_float16")  # as during a mixed run
    mixed = tiny_model()
    mixed.set_weights(model.get_weights())
    assert mixed.layers[-1].compute_dtype == "float16"
    twin = export.float32_model(mixed, tiny_model)
    assert keras.mixed_precision.global_policy().name == "mixed_float16"  # put back
    assert {layer.compute_dtype for layer in twin.layers} == {"float32"}
    for a, b in zip(twin.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_tflite_in_litert_answers_like_the_model_and_int8_io_is_dequantized(model, tmp_path):
    pytest.importorskip("ai_edge_litert")
    serving = tmp_path / "serving"
    export.write_saved_model(model, serving, INPUTS, OUTPUTS)
    feed = {"x": np.random.default_rng(1).normal(size=(6, 4)).astype("float32")}
    want = model(feed["x"]).numpy()

    plain = export.export_tflite(serving, tmp_path / "m.tflite")
    assert plain == {"format": "tflite", "path": str(tmp_path / "m.tflite"), "quantize": "none"}
    np.testing.assert_allclose(verify.run_tflite(plain, feed, OUTPUTS)["probs"], want,
                               atol=1e-5)

    calibration = export.representative_data(tiny_data(), INPUTS, 20)
    int8 = export.export_tflite(serving, tmp_path / "int8.tflite", "int8", calibration,
                                integer_io=True)
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(int8["path"]).get_signature_runner()
    assert {d["dtype"] for d in runner.get_input_details().values()} == {np.int8}
    answers = verify.run_tflite(int8, feed, OUTPUTS)["probs"]
    assert answers.dtype == np.float32  # dequantized with the model's own scale
    np.testing.assert_allclose(answers, want, atol=0.1)


def test_litert_info_lines_are_kept_off_stderr_and_the_rest_written_back(capfd):
    def chatter():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"WARNING: something a user should see\n")
        return 42

    assert verify.without_litert_info(chatter) == 42
    sys.stderr.flush()
    err = capfd.readouterr().err
    assert "INFO: " not in err and "WARNING: something a user should see" in err
