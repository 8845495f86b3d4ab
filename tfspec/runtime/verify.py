"""Exports checked in their own runtimes against the Keras model's answers.

`save_verify_batch` keeps a fixed batch of the spec's data and the Keras model's
answers to it (`verify_batch.npz`). `verify_exports` loads each export that
`exports.json` records in the runtime it is meant for — `tf.saved_model.load`,
`keras.saving.load_model`, LiteRT, TF.js in Node.js (`js/predict.js`), onnxruntime —
runs that batch, compares (`parity`) and writes `verify.json`; it raises
`ExportMismatch` when an export does not answer like the model. What it checks is the
run's own copy of each export (in `RUN_DIR/exports/`); `provenance` says whether the
spec's path still holds it (`tree_digest`), or which later run replaced it. LiteRT,
Node.js and onnxruntime are needed only to check their formats.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .signature import Inputs, by_name, model_inputs, named_outputs

# The Node.js script that runs a TF.js export; Node finds @tensorflow/tfjs in the
# node_modules beside it (tools/install-tfjs) or through NODE_PATH.
PREDICT_JS = pathlib.Path(__file__).resolve().parent / "js" / "predict.js"

Arrays = dict[str, np.ndarray]

# A program's own copy of the runtime (`tfspec compile --standalone`) runs where tfspec is
# not installed: its advice names the packages themselves, not tfspec's extras.
VENDORED = __package__ != "tfspec.runtime"


def install_advice(extra: str, packages: str) -> str:
    """How to install what a format needs: `pip install 'tfspec[EXTRA]' (PACKAGES)`, or
    in a standalone program's copy of the runtime `pip install PACKAGES`."""
    if VENDORED:
        return f"pip install {packages}"
    return f"pip install 'tfspec[{extra}]' ({packages})"


def save_verify_batch(model: Any, datasets: Mapping[str, tf.data.Dataset],
                      run_dir: str | os.PathLike, inputs: Inputs, outputs: Sequence[str],
                      size: int = 32) -> None:
    """A fixed batch of the spec's data (the test split first) and the Keras model's
    answers to it: what `verify_exports` checks every export against."""
    split = next(name for name in ("test", "validation", "train") if name in datasets)
    features = by_name(next(iter(datasets[split].unbatch().batch(size).take(1)))[0], inputs)
    # in the declared dtypes, as a client sends them (a pipeline may hold int64 for int32)
    features = {name: features[name] if dtype == "string" else tf.cast(features[name], dtype)
                for name, (_, dtype) in inputs.items()}
    expected = named_outputs(model(model_inputs(features), training=False), outputs)
    # strings as fixed-width bytes: np.load refuses object arrays
    arrays = {f"input/{name}": value.numpy().astype(bytes) if value.dtype == tf.string
              else value.numpy() for name, value in features.items()}
    arrays.update({f"output/{name}": value.numpy() for name, value in expected.items()})
    np.savez(pathlib.Path(run_dir) / "verify_batch.npz", **arrays)


def verify_exports(run_dir: str | os.PathLike, outputs: Sequence[str]) -> list[dict[str, Any]]:
    """Run the kept batch through the run's own copy of each export in its own runtime
    and compare with the Keras model's answers (`outputs`: the model's output names, in
    its order); notes a spec's path that no longer holds the run's export; writes
    verify.json and raises ExportMismatch on a failure."""
    run_dir = pathlib.Path(run_dir)
    record = json.loads((run_dir / "exports.json").read_text())
    with np.load(run_dir / "verify_batch.npz") as batch:
        inputs = {key[6:]: batch[key] for key in batch.files if key.startswith("input/")}
        expected = {key[7:]: batch[key] for key in batch.files if key.startswith("output/")}
    report = []
    for index, target in enumerate(record["targets"]):
        if target.get("written") is False:  # export_all could not write it, checked or not
            entry = not_written(target)
            report.append({"index": index, **entry})
            print(f"verify: {entry['message']}")
            continue
        if not target.get("verify", True):
            continue
        # the run's own copy (a path relative to the run directory; older runs recorded
        # the published path, absolute)
        target = {**target, "path": str(run_dir / target["path"])}
        try:
            answers = RUNTIMES[target["format"]](target, inputs, outputs)
            entry = parity(target, answers, expected)
        except Exception as exc:  # an export its runtime cannot load or run fails too
            where = f"{target['format']} {target['spec_path']}"
            entry = {"format": target["format"], "path": target["path"], "passed": False,
                     "message": f"{where} could not be checked: {exc}"}
        entry.update(provenance(target, run_dir))
        if entry.get("changed"):
            entry["message"] += (" (this run's copy was changed after the run wrote it: "
                                 "its digest differs from exports.json's)")
        report.append({"index": index, **entry})
        print(f"verify: {entry['message']}")
        if entry.get("published", {}).get("note"):
            print(f"verify: note: {entry['published']['note']}")
    (run_dir / "verify.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = [entry for entry in report if not entry["passed"]]
    if failed:
        raise ExportMismatch(failed)
    return report


def tree_digest(path: str | os.PathLike) -> str:
    """`sha256:…` of a file's bytes, or of a folder's files (their relative paths and
    bytes, in order): what a run wrote at an export's path."""
    path = pathlib.Path(path)
    if path.is_file():
        return "sha256:" + file_digest(path)
    listing = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        listing.update(f"{file.relative_to(path).as_posix()}\0{file_digest(file)}\n".encode())
    return "sha256:" + listing.hexdigest()


def file_digest(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_unit(target: Mapping[str, Any], path: str | os.PathLike) -> pathlib.Path:
    """What an export target writes under `path` as one piece: the file or folder, or
    for a SavedModel its version folder (`path/<version>`)."""
    path = pathlib.Path(path)
    return path / str(target["version"]) if target["format"] == "saved_model" else path


def provenance(target: Mapping[str, Any], run_dir: pathlib.Path) -> dict[str, Any]:
    """Where the checked export came from: `changed` when the run's own copy is no
    longer what the run wrote, and `published`: whether the spec's path still holds
    this run's export (`current`), else which later run replaced it and a `note` that
    says so. Nothing for the records of older runs, which kept no digest."""
    digest, published = target.get("digest"), target.get("published")
    if not digest or not published:
        return {}
    own, at = export_unit(target, target["path"]), export_unit(target, published)
    out: dict[str, Any] = {}
    if own.exists() and tree_digest(own) != digest:
        out["changed"] = True
    where = (f"{target['format']} {target['spec_path']}: the "
             f"{'folder' if own.is_dir() else 'file'} at {at}")
    checked = f"this run's own copy, the one checked, is {own}"
    now = tree_digest(at) if at.exists() else None
    if now == digest:
        out["published"] = {"path": str(at), "current": True}
    elif now is None:
        out["published"] = {"path": str(at), "current": False,
                            "note": f"{where} is gone; {checked}"}
    else:
        by = replaced_by(published, now, run_dir)
        who = (f"was replaced by run {by} after this run" if by else
               "was changed after this run, not by a run beside it")
        out["published"] = {"path": str(at), "current": False,
                            "replaced_by": str(by) if by else None,
                            "note": f"{where} {who} (digest differs); {checked}"}
    return out


def replaced_by(published: str, digest: str, run_dir: pathlib.Path) -> pathlib.Path | None:
    """The run that wrote `digest` at `published`: one beside `run_dir` (newest first),
    else one of any name in its runs folder (`runs/<name>/<time>/`); None when none did."""
    here = run_dir.absolute()
    siblings = sorted(here.parent.glob("*/exports.json"), key=_mtime, reverse=True)
    others = sorted(here.parent.parent.glob("*/*/exports.json"), key=_mtime, reverse=True)
    for record in [*siblings, *others]:
        if record.parent.resolve() == here.resolve():
            continue
        try:
            targets = json.loads(record.read_text(encoding="utf-8"))["targets"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a run's record
        if any(isinstance(t, dict) and t.get("published") == published
               and t.get("digest") == digest for t in targets):
            return record.parent
    return None


def _mtime(path: pathlib.Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def not_written(target: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a target that `export_all` recorded as not written: a failure."""
    first = (target["error"].strip().splitlines() or ["?"])[0]
    return {"format": target["format"], "written": False, "passed": False,
            "error": target["error"],
            "message": f"{target['format']} {target['spec_path']} was not written: {first}"}


class ExportMismatch(AssertionError):
    """Exports that do not answer like the Keras model (`failures`: their reports)."""

    def __init__(self, failures: list[dict[str, Any]]):
        self.failures = failures
        super().__init__("; ".join(entry["message"] for entry in failures))


def parity(target: Mapping[str, Any], answers: Mapping[str, Any],
           expected: Arrays) -> dict[str, Any]:
    """How far an export's answers are from the Keras model's, against its tolerance
    (absolute, scaled by the outputs' magnitude where that exceeds 1)."""
    missing = sorted(set(expected) - set(answers))
    if missing:
        raise ValueError(f"the {target['format']} export has no output {missing}")
    worst, mean, agree = 0.0, 0.0, []
    scale = 1.0
    for name, want in expected.items():
        got = np.asarray(answers[name], dtype="float64").reshape(want.shape)
        error = np.abs(got - want)
        worst = max(worst, float(error.max(initial=0.0)))
        mean = max(mean, float(error.mean()))
        scale = max(scale, float(np.abs(want).max(initial=0.0)))
        if want.ndim == 2 and want.shape[-1] > 1:  # class scores: compare the argmax
            agree.append(float(np.mean(got.argmax(-1) == want.argmax(-1))))
    limit = target["tolerance"] * scale
    passed = worst <= limit
    where = f"{target['format']} {target['spec_path']}"
    detail = f"mean {mean:.3g}" + (f", argmax agreement {100 * min(agree):.1f} %"
                                   if agree else "")
    if passed:
        message = (f"{where} answers like the Keras model: max abs error {worst:.3g} "
                   f"<= {limit:.3g} ({detail})")
    else:
        message = (f"{where} does not answer like the Keras model: max abs error "
                   f"{worst:.3g} > tolerance {limit:.3g} ({detail})")
    return {
        "format": target["format"],
        "path": target["path"],
        "max_abs_error": worst,
        "mean_abs_error": mean,
        "argmax_agreement": min(agree) if agree else None,
        "tolerance": limit,
        "passed": passed,
        "message": message,
    }


# -- each format's runtime: (target record, named inputs, output names) -> named answers --


def run_saved_model(target: Mapping[str, Any], inputs: Arrays,
                    outputs: Sequence[str]) -> Arrays:
    """The export's serving signature, loaded as TF Serving loads it."""
    loaded = tf.saved_model.load(str(pathlib.Path(target["path"]) / str(target["version"])))
    serve = loaded.signatures[target["signature"]]
    answers = serve(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in answers.items()}


def run_keras(target: Mapping[str, Any], inputs: Arrays, outputs: Sequence[str]) -> Arrays:
    """The `.keras` archive, loaded back into Keras."""
    model = keras.saving.load_model(target["path"], compile=False)
    return {name: value.numpy() for name, value in
            named_outputs(model(model_inputs(inputs), training=False), outputs).items()}


def run_tflite(target: Mapping[str, Any], inputs: Arrays, outputs: Sequence[str]) -> Arrays:
    """The flatbuffer in LiteRT, the TensorFlow Lite runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError("checking a tflite export runs it in LiteRT: "
                          + install_advice("tflite", "ai-edge-litert")) from None
    return without_litert_info(lambda: tflite_answers(Interpreter(target["path"]), inputs))


def without_litert_info(call: Callable[[], Any]) -> Any:
    """`call()`, without LiteRT's C++ `INFO: ...` lines (`Created TensorFlow Lite XNNPACK
    delegate for CPU.` when the default delegate is applied) on stderr: file descriptor 2
    goes to a file meanwhile, and every other line is written back."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        return call()
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            return call()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            for line in log.read().decode(errors="replace").splitlines(keepends=True):
                if not line.startswith("INFO: "):
                    sys.stderr.write(line)


def tflite_answers(interpreter: Any, inputs: Arrays) -> Arrays:
    """The interpreter's signature on named inputs; integer inputs and outputs are
    quantized and dequantized with the model's own scales."""
    runner = interpreter.get_signature_runner()
    feed = {}
    for name, detail in runner.get_input_details().items():
        value = inputs[name]
        scale, zero = detail["quantization"]
        if scale:
            info = np.iinfo(detail["dtype"])
            value = np.clip(np.round(value / scale + zero), info.min, info.max)
        feed[name] = value.astype(detail["dtype"])
    answers = runner(**feed)
    for name, detail in runner.get_output_details().items():
        scale, zero = detail["quantization"]
        if scale:
            answers[name] = (answers[name].astype("float32") - zero) * scale
    return answers


def run_tfjs(target: Mapping[str, Any], inputs: Arrays, outputs: Sequence[str]) -> Arrays:
    """The graph model in Node.js with @tensorflow/tfjs (`js/predict.js`): the runtime a
    web or Node app loads it in."""
    if shutil.which("node") is None:
        raise RuntimeError("checking a tfjs export runs it in Node.js: install node")
    with tempfile.TemporaryDirectory() as scratch:
        feed = pathlib.Path(scratch) / "inputs.json"
        feed.write_text(json.dumps({
            name: {"dtype": str(value.dtype), "shape": list(value.shape),
                   "data": value.ravel().tolist()}
            for name, value in inputs.items()
        }))
        done = subprocess.run(["node", str(PREDICT_JS), target["path"], str(feed)],
                              capture_output=True, text=True)
    if done.returncode:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        if "Cannot find module '@tensorflow/tfjs'" in done.stderr:
            how = (f"npm ci --prefix {PREDICT_JS.parent}" if VENDORED else
                   "run tools/install-tfjs")
            why = (f"@tensorflow/tfjs is not installed: {how}, or set NODE_PATH to the "
                   "node_modules that holds it")
        raise RuntimeError(f"TF.js in Node.js could not run the export: {why}")
    answers = json.loads(done.stdout)
    return {name: np.asarray(value["data"], dtype="float32").reshape(value["shape"])
            for name, value in answers.items()}


def run_onnx(target: Mapping[str, Any], inputs: Arrays, outputs: Sequence[str]) -> Arrays:
    """The ONNX model in onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("checking an onnx export runs it in onnxruntime: "
                          + install_advice("onnx", "onnxruntime")) from None
    session = onnxruntime.InferenceSession(target["path"],
                                           providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    # the batch keeps strings as bytes, which onnxruntime misreads (a lookup then finds
    # no token): it takes text, as a client sends it
    feed = {item.name: np.char.decode(inputs[item.name], "utf-8").astype(object)
            if inputs[item.name].dtype.kind == "S" else inputs[item.name]
            for item in session.get_inputs()}
    return dict(zip(names, session.run(names, feed), strict=True))


# Each format's own runtime, as `verify_exports` runs it.
RUNTIMES: dict[str, Callable[[Mapping[str, Any], Arrays, Sequence[str]], Arrays]] = {
    "saved_model": run_saved_model,
    "keras": run_keras,
    "tflite": run_tflite,
    "tfjs": run_tfjs,
    "onnx": run_onnx,
}
