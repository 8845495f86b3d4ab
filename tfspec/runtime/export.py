"""A spec's export targets written after training, each atomically.

`export_all` writes the program's targets in the spec's order: a SavedModel in TF
Serving's layout, a `.keras` archive, and TFLite, TF.js and ONNX models converted
from one serving SavedModel. It keeps the batch `verify.verify_exports` checks them
on and records them in `exports.json`. Each target is written in the run directory
(`RUN_DIR/exports/<index>/<name>`: the run's own copy, which `verify` checks and
`tfspec serve RUN` serves), then copied to the spec's path (`publish`), with its
digest recorded. Each writer writes a temporary path beside its destination and
renames it into place (`write_atomically`): a failed or killed export leaves the
previous one, never part of one.

A target is a dict as the program's table holds it: `format`, `path` (relative to
the spec's folder), the format's options (`version`, `signature`, `quantize`,
`integer_io`, `representative_samples`, `opset`) and the check's (`tolerance`,
`verify`). The converters (tensorflowjs, tf2onnx) are imported or run only when a
target needs them.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf

from . import verify
from .signature import Inputs, by_name, input_specs, model_inputs, serving_function

# the formats converted from the serving SavedModel
CONVERTED = {"tflite", "tfjs", "onnx"}


def export_all(model: Any, run_dir: str | os.PathLike, datasets: Mapping[str, tf.data.Dataset],
               targets: Sequence[Mapping[str, Any]], inputs: Inputs, outputs: Sequence[str],
               *, name: str, spec_dir: str | os.PathLike,
               rebuild: Callable[[], Any] | None = None) -> list[dict[str, Any]]:
    """Write every target, keep the batch that `verify.verify_exports` checks them on
    (`verify_batch.npz`) and record them in `run_dir/exports.json` under the spec's
    `name`; the records. `rebuild`: for a mixed-precision model, builds the model
    again (the program's `build_model`): TFLite, TF.js and ONNX are converted from a
    float32 copy. A target that cannot be written is recorded as such (`written`:
    false, and its `error`) and the others are still written: `verify_exports`
    reports it as a failure, and a run's SavedModel stays servable."""
    run_dir = pathlib.Path(run_dir)
    verify.save_verify_batch(model, datasets, run_dir, inputs, outputs)
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        serving = pathlib.Path(scratch) / "serving"
        if any(target["format"] in CONVERTED for target in targets):
            source = float32_model(model, rebuild) if rebuild else model
            write_saved_model(source, serving, inputs, outputs)
        for index, target in enumerate(targets):
            try:
                written = export_target(model, serving, target, spec_dir, datasets, inputs,
                                        outputs, name, run_dir=run_dir, index=index)
            except Exception as exc:  # the failure is the record's; verify reports it
                written = failed_target(target, exc)
            checks = {key: target[key] for key in ("tolerance", "verify") if key in target}
            records.append({**written, **checks, "spec_path": target["path"]})
    record = {"name": name, "targets": records}
    (run_dir / "exports.json").write_text(json.dumps(record, indent=2) + "\n")
    return records


def failed_target(target: Mapping[str, Any], exc: BaseException) -> dict[str, Any]:
    """The record of a target that could not be written: its `error`, as the converter
    or the file system said it (the first 2000 characters)."""
    error = str(exc).strip() or type(exc).__name__
    return {"format": target["format"], "written": False, "error": error[:2000]}


def export_target(model: Any, serving: pathlib.Path, target: Mapping[str, Any],
                  spec_dir: str | os.PathLike, datasets: Mapping[str, tf.data.Dataset],
                  inputs: Inputs, outputs: Sequence[str], name: str, *,
                  run_dir: str | os.PathLike, index: int) -> dict[str, Any]:
    """Write target `index` as the run's own copy, `run_dir/exports/<index>/<name>`
    (`serving`: the SavedModel the converted formats start from), then publish it at
    the spec's path; what its record says of it: `path` (the own copy, relative to the
    run directory), `published` (absolute) and the `digest` of what the run wrote."""
    published = pathlib.Path(spec_dir) / target["path"]
    own = pathlib.Path("exports") / str(index) / (published.name or target["format"])
    written = write_target(model, serving, target, pathlib.Path(run_dir) / own, datasets,
                           inputs, outputs, name)
    unit = verify.export_unit(written, pathlib.Path(run_dir) / own)
    publish(unit, verify.export_unit(written, published))
    return {**written, "path": own.as_posix(), "published": str(published),
            "digest": verify.tree_digest(unit)}


def publish(own: pathlib.Path, published: pathlib.Path) -> None:
    """Copy the run's own export to the spec's path, atomically. A copy, not a link: a
    later run's export, or a tool that rewrites the published file in place, leaves
    this run's copy as the run wrote it."""
    if own.resolve() == published.resolve():
        return
    write_atomically(published, lambda tmp: shutil.copytree(own, tmp) if own.is_dir()
                     else shutil.copy2(own, tmp))


def write_target(model: Any, serving: pathlib.Path, target: Mapping[str, Any],
                 path: pathlib.Path, datasets: Mapping[str, tf.data.Dataset],
                 inputs: Inputs, outputs: Sequence[str], name: str) -> dict[str, Any]:
    """Write one target at `path` in its format; what its record says of it."""
    fmt = target["format"]
    if fmt == "saved_model":
        return export_saved_model(model, path, inputs, outputs, name=name,
                                  version=target.get("version", 1),
                                  signature=target.get("signature", "serving_default"))
    if fmt == "keras":
        return export_keras(model, path)
    if fmt == "tflite":
        quantize = target.get("quantize", "none")
        representative = None
        if quantize == "int8":
            representative = representative_data(
                datasets, inputs, target.get("representative_samples", 100))
        return export_tflite(serving, path, quantize, representative,
                             target.get("integer_io", False))
    if fmt == "tfjs":
        return export_tfjs(serving, path, target.get("quantize", "none"))
    if fmt == "onnx":
        return export_onnx(serving, path, target.get("opset"))
    raise ValueError(f"unknown export format {fmt!r}")


def write_atomically(path: str | os.PathLike,
                     write: Callable[[pathlib.Path], Any]) -> pathlib.Path:
    """Write `path` (a file or a folder) with `write(temporary_path)` beside it, then
    rename it into place: a failed or killed export leaves the previous export (or
    nothing) at `path`, never part of one."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        write(scratch / path.name)
        if path.is_dir():
            os.replace(path, scratch / "previous")  # a folder cannot replace a folder
        os.replace(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def write_saved_model(model: Any, path: str | os.PathLike, inputs: Inputs,
                      outputs: Sequence[str], signature: str = "serving_default") -> None:
    """A SavedModel whose `signature` takes and gives the spec's names, plus the
    positional `serve` endpoint that `model.export` writes (what TFSMLayer calls)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(signature, serving_function(model, inputs, outputs))
    archive.add_endpoint(
        "serve",
        lambda inputs: model(inputs, training=False),  # the argument's name as ever
        input_signature=[model_inputs(input_specs(inputs))],
    )
    archive.write_out(str(path), verbose=False)


def float32_model(model: Any, build_model: Callable[[], Any]) -> Any:
    """The trained model computing in float32: TFLite, TF.js and ONNX lack 16-bit
    kernels for most ops, so a mixed-precision model is converted in float32."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clone = build_model()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    clone.set_weights(model.get_weights())
    return clone


def export_saved_model(model: Any, base: str | os.PathLike, inputs: Inputs,
                       outputs: Sequence[str], *, name: str, version: int = 1,
                       signature: str = "serving_default") -> dict[str, Any]:
    """A SavedModel in TF Serving's layout, `base/<version>/`, with the spec's `name` in
    its `assets.extra/tfspec.json`: `tfspec serve` serves the model under that name, and
    TF Serving and the SavedModel loader leave the file alone."""

    def write(path: pathlib.Path) -> None:
        write_saved_model(model, path, inputs, outputs, signature)
        (path / "assets.extra").mkdir()
        (path / "assets.extra" / "tfspec.json").write_text(json.dumps({"name": name}) + "\n")

    write_atomically(pathlib.Path(base) / str(version), write)
    return {"format": "saved_model", "path": str(base), "version": version,
            "signature": signature}


def export_keras(model: Any, path: str | os.PathLike) -> dict[str, Any]:
    """A `.keras` archive: the model, its weights and its optimizer state."""
    write_atomically(path, model.save)
    return {"format": "keras", "path": str(path)}


def export_tflite(saved_model: str | os.PathLike, path: str | os.PathLike,
                  quantize: str = "none", representative: Callable[[], Iterator] | None = None,
                  integer_io: bool = False) -> dict[str, Any]:
    """A TensorFlow Lite flatbuffer converted from the serving SavedModel."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    flatbuffer = converter.convert()
    write_atomically(path, lambda tmp: tmp.write_bytes(flatbuffer))
    return {"format": "tflite", "path": str(path), "quantize": quantize}


def representative_data(datasets: Mapping[str, tf.data.Dataset], inputs: Inputs,
                        samples: int) -> Callable[[], Iterator[dict[str, tf.Tensor]]]:
    """`samples` training examples, one at a time, to calibrate int8 quantization."""
    examples = datasets["train"].unbatch().take(samples)

    def generate() -> Iterator[dict[str, tf.Tensor]]:
        for features, _ in examples:
            features = by_name(features, inputs)
            yield {name: tf.expand_dims(tf.cast(features[name], inputs[name][1]), 0)
                   for name in inputs}

    return generate


def export_tfjs(saved_model: str | os.PathLike, path: str | os.PathLike,
                quantize: str = "none") -> dict[str, Any]:
    """A TensorFlow.js graph model converted from the serving SavedModel."""
    # tensorflowjs imports TF Decision Forests only to convert TF-DF models, and no
    # TF-DF release installs beside this TensorFlow: an empty stand-in is enough.
    sys.modules.setdefault("tensorflow_decision_forests",
                           types.ModuleType("tensorflow_decision_forests"))
    try:
        from tensorflowjs.converters import tf_saved_model_conversion_v2
    except ImportError:
        raise ImportError(
            "a tfjs export needs the TensorFlow.js converter: " + (
                # tools/install-tfjs's two steps: tensorflowjs's own pins would
                # downgrade TensorFlow
                f"pip install tensorflow-hub tf-keras~={tf.__version__} jax packaging "
                "importlib_resources, then pip install --no-deps tensorflowjs==4.22.0"
                if verify.VENDORED else "run tools/install-tfjs from the tfspec repository")
        ) from None
    quantization = {} if quantize == "none" else {quantize: "*"}
    write_atomically(path, lambda tmp: tf_saved_model_conversion_v2.convert_tf_saved_model(
        str(saved_model), str(tmp), quantization_dtype_map=quantization))
    return {"format": "tfjs", "path": str(path), "quantize": quantize}


def export_onnx(saved_model: str | os.PathLike, path: str | os.PathLike,
                opset: int | None = None) -> dict[str, Any]:
    """An ONNX model converted from the serving SavedModel by tf2onnx (in a process
    of its own)."""

    def convert(tmp: pathlib.Path) -> None:
        command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
                   "--output", str(tmp)]
        if opset is not None:
            command += ["--opset", str(opset)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            lines = [line for line in done.stderr.splitlines() if "Error" in line]
            why = lines[-1] if lines else done.stderr.strip()[-300:]
            if "No module named tf2onnx" in done.stderr:
                why = "tf2onnx is not installed: " + verify.install_advice(
                    "onnx", "tf2onnx onnxruntime")
            raise RuntimeError(f"tf2onnx could not convert the model: {why}")

    write_atomically(path, convert)
    return {"format": "onnx", "path": str(path)}
