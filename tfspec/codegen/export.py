"""Writes the program's exports and parity checks from the spec's `export { … }`.

`export_all(model, run_dir, datasets)` writes every target, each atomically (a
temporary path beside the destination, renamed into place), keeps a fixed batch of
the spec's data with the Keras model's answers (`verify_batch.npz`), and records
the targets in `exports.json`. `verify_exports(run_dir)` loads each target in its
own runtime — `tf.saved_model.load`, `keras.saving.load_model`, LiteRT, TF.js in
Node.js, onnxruntime — runs that batch and compares, writing `verify.json`. The
runner calls both after training; `tfspec export` and `tfspec verify` call them on
a finished run, so the parity checks that run are always the program's own.

The helpers are fixed text (`_HELPERS`), written only for the formats a spec uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .pytext import Scope, py_string
from .writer import CodeWriter

if TYPE_CHECKING:
    from .model import Generator

# The largest output difference each target accepts unless its `tolerance` says
# otherwise, by format and quantization: float32 runtimes differ only by rounding;
# quantized ones by their precision. Documented in docs/export.md.
# Under mixed precision the Keras model itself computes in 16 bits: no export can
# come closer to it than that precision.
MIXED_TOLERANCES = {"mixed_bfloat16": 2e-2, "mixed_float16": 5e-3}
TOLERANCES: dict[tuple[str, str], float] = {
    ("saved_model", "none"): 1e-5,
    ("keras", "none"): 1e-6,
    ("tflite", "none"): 1e-4,
    ("tflite", "float16"): 1e-2,
    ("tflite", "dynamic"): 5e-2,
    ("tflite", "int8"): 1e-1,
    ("tfjs", "none"): 1e-4,
    ("tfjs", "float16"): 1e-2,
    ("tfjs", "uint16"): 1e-2,
    ("tfjs", "uint8"): 5e-2,
    ("onnx", "none"): 1e-4,
}

# tfspec/js/ (beside this package) holds the script and its package.json
JS_PREDICT = Path(__file__).resolve().parents[1] / "js" / "predict.js"

_HELPERS: dict[str, str] = {
    "common": '''
def input_specs():
    """The spec's inputs as tf.TensorSpecs of any batch size, by name."""
    return {
        name: tf.TensorSpec((None, *shape), dtype, name=name)
        for name, (shape, dtype) in INPUTS.items()
    }


def model_inputs(named):
    """Inputs given by name as the model takes them: the dict, or its one value."""
    return named if len(named) > 1 else named[next(iter(INPUTS))]


def by_name(features):
    """A batch's features by input name (a one-input pipeline yields a tensor)."""
    return features if isinstance(features, dict) else {next(iter(INPUTS)): features}


def serving_function(model):
    """The model as a tf.function from named inputs to named outputs: the signature
    that every export shares (floating outputs as float32, what clients expect)."""

    @tf.function(input_signature=[input_specs()])
    def serve(inputs):
        return named_outputs(model(model_inputs(inputs), training=False))

    return serve


def named_outputs(outputs):
    """A model's outputs as a dict keyed by the spec's output names."""
    if not isinstance(outputs, dict):
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        outputs = dict(zip(OUTPUTS, outputs, strict=True))
    return {
        name: tf.cast(value, tf.float32) if value.dtype.is_floating else value
        for name, value in outputs.items()
    }


def write_saved_model(model, path, signature="serving_default"):
    """A SavedModel whose `signature` takes and gives the spec's names, plus the
    positional `serve` endpoint that `model.export` writes (what TFSMLayer calls)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(signature, serving_function(model))
    archive.add_endpoint(
        "serve",
        lambda inputs: model(inputs, training=False),
        input_signature=[model_inputs(input_specs())],
    )
    archive.write_out(str(path), verbose=False)


def write_atomically(path, write):
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


def save_verify_batch(model, datasets, run_dir, size=32):
    """A fixed batch of the spec's data (the test split first) and the Keras model's
    answers to it: what `verify_exports` checks every export against."""
    split = next(name for name in ("test", "validation", "train") if name in datasets)
    features = by_name(next(iter(datasets[split].unbatch().batch(size).take(1)))[0])
    # in the declared dtypes, as a client sends them (a pipeline may hold int64 for int32)
    features = {name: features[name] if dtype == "string" else tf.cast(features[name], dtype)
                for name, (_, dtype) in INPUTS.items()}
    expected = named_outputs(model(model_inputs(features), training=False))
    # strings as fixed-width bytes: np.load refuses object arrays
    arrays = {f"input/{name}": value.numpy().astype(bytes) if value.dtype == tf.string
              else value.numpy() for name, value in features.items()}
    arrays.update({f"output/{name}": value.numpy() for name, value in expected.items()})
    np.savez(run_dir / "verify_batch.npz", **arrays)


def verify_exports(run_dir):
    """Run the kept batch through each export in its own runtime and compare with the
    Keras model's answers; writes verify.json and raises ExportMismatch on a failure."""
    run_dir = pathlib.Path(run_dir)
    record = json.loads((run_dir / "exports.json").read_text())
    with np.load(run_dir / "verify_batch.npz") as batch:
        inputs = {key[6:]: batch[key] for key in batch.files if key.startswith("input/")}
        expected = {key[7:]: batch[key] for key in batch.files if key.startswith("output/")}
    report = []
    for index, target in enumerate(record["targets"]):
        if not target.get("verify", True):
            continue
        try:
            answers = RUNTIMES[target["format"]](target, inputs)
            entry = parity(target, answers, expected)
        except Exception as exc:  # an export its runtime cannot load or run fails too
            where = f"{target['format']} {target['spec_path']}"
            entry = {"format": target["format"], "path": target["path"], "passed": False,
                     "message": f"{where} could not be checked: {exc}"}
        report.append({"index": index, **entry})
        print(f"verify: {entry['message']}")
    (run_dir / "verify.json").write_text(json.dumps(report, indent=2) + "\\n")
    failed = [entry for entry in report if not entry["passed"]]
    if failed:
        raise ExportMismatch(failed)
    return report


class ExportMismatch(AssertionError):
    """Exports that do not answer like the Keras model (`failures`: their reports)."""

    def __init__(self, failures):
        self.failures = failures
        super().__init__("; ".join(entry["message"] for entry in failures))


def parity(target, answers, expected):
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
''',
    "float32": '''
def float32_model(model):
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
''',
    "saved_model": '''
def export_saved_model(model, base, name, version=1, signature="serving_default",
                       **target):
    """A SavedModel in TF Serving's layout, `base/<version>/`, with the spec's `name` in
    its `assets.extra/tfspec.json`: `tfspec serve` serves the model under that name, and
    TF Serving and the SavedModel loader leave the file alone."""

    def write(path):
        write_saved_model(model, path, signature)
        (path / "assets.extra").mkdir()
        (path / "assets.extra" / "tfspec.json").write_text(json.dumps({"name": name}) + "\\n")

    write_atomically(pathlib.Path(base) / str(version), write)
    return {"format": "saved_model", "path": str(base), "version": version,
            "signature": signature, **target}


def run_saved_model(target, inputs):
    """The export's serving signature, loaded as TF Serving loads it."""
    loaded = tf.saved_model.load(str(pathlib.Path(target["path"]) / str(target["version"])))
    serve = loaded.signatures[target["signature"]]
    answers = serve(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in answers.items()}
''',
    "keras": '''
def export_keras(model, path, **target):
    """A `.keras` archive: the model, its weights and its optimizer state."""
    write_atomically(path, model.save)
    return {"format": "keras", "path": str(path), **target}


def run_keras(target, inputs):
    """The `.keras` archive, loaded back into Keras."""
    model = keras.saving.load_model(target["path"], compile=False)
    return {name: value.numpy() for name, value in
            named_outputs(model(model_inputs(inputs), training=False)).items()}
''',
    "tflite": '''
def export_tflite(saved_model, path, quantize="none", representative=None,
                  integer_io=False, **target):
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
    return {"format": "tflite", "path": str(path), "quantize": quantize, **target}


def representative_data(datasets, samples):
    """`samples` training examples, one at a time, to calibrate int8 quantization."""
    examples = datasets["train"].unbatch().take(samples)

    def generate():
        for features, _ in examples:
            features = by_name(features)
            yield {name: tf.expand_dims(tf.cast(features[name], INPUTS[name][1]), 0)
                   for name in INPUTS}

    return generate


def run_tflite(target, inputs):
    """The flatbuffer in LiteRT, the TensorFlow Lite runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError(
            "checking a tflite export runs it in LiteRT: pip install 'tfspec[tflite]' "
            "(ai-edge-litert)"
        ) from None
    return without_litert_info(lambda: tflite_answers(Interpreter(target["path"]), inputs))


def without_litert_info(call):
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


def tflite_answers(interpreter, inputs):
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
''',
    "tfjs": '''
def export_tfjs(saved_model, path, quantize="none", **target):
    """A TensorFlow.js graph model converted from the serving SavedModel."""
    # tensorflowjs imports TF Decision Forests only to convert TF-DF models, and no
    # TF-DF release installs beside this TensorFlow: an empty stand-in is enough.
    sys.modules.setdefault("tensorflow_decision_forests",
                           types.ModuleType("tensorflow_decision_forests"))
    try:
        from tensorflowjs.converters import tf_saved_model_conversion_v2
    except ImportError:
        raise ImportError(
            "a tfjs export needs the TensorFlow.js converter: run tools/install-tfjs "
            "from the tfspec repository"
        ) from None
    quantization = {} if quantize == "none" else {quantize: "*"}
    write_atomically(path, lambda tmp: tf_saved_model_conversion_v2.convert_tf_saved_model(
        str(saved_model), str(tmp), quantization_dtype_map=quantization))
    return {"format": "tfjs", "path": str(path), "quantize": quantize, **target}


def run_tfjs(target, inputs):
    """The graph model in Node.js with @tensorflow/tfjs (found through NODE_PATH):
    the runtime a web or Node app loads it in."""
    if shutil.which("node") is None:
        raise RuntimeError("checking a tfjs export runs it in Node.js: install node")
    with tempfile.TemporaryDirectory() as scratch:
        script = pathlib.Path(scratch) / "predict.js"
        script.write_text(TFJS_PREDICT)
        feed = pathlib.Path(scratch) / "inputs.json"
        feed.write_text(json.dumps({
            name: {"dtype": str(value.dtype), "shape": list(value.shape),
                   "data": value.ravel().tolist()}
            for name, value in inputs.items()
        }))
        done = subprocess.run(["node", str(script), target["path"], str(feed)],
                              capture_output=True, text=True)
    if done.returncode:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        if "Cannot find module '@tensorflow/tfjs'" in done.stderr:
            why = ("@tensorflow/tfjs is not installed: run tools/install-tfjs, or set "
                   "NODE_PATH to the node_modules that holds it")
        raise RuntimeError(f"TF.js in Node.js could not run the export: {why}")
    answers = json.loads(done.stdout)
    return {name: np.asarray(value["data"], dtype="float32").reshape(value["shape"])
            for name, value in answers.items()}
''',
    "onnx": '''
def export_onnx(saved_model, path, opset=None, **target):
    """An ONNX model converted from the serving SavedModel by tf2onnx."""

    def convert(tmp):
        command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
                   "--output", str(tmp)]
        if opset is not None:
            command += ["--opset", str(opset)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            lines = [line for line in done.stderr.splitlines() if "Error" in line]
            why = lines[-1] if lines else done.stderr.strip()[-300:]
            if "No module named tf2onnx" in done.stderr:
                why = "tf2onnx is not installed: pip install 'tfspec[onnx]'"
            raise RuntimeError(f"tf2onnx could not convert the model: {why}")

    write_atomically(path, convert)
    return {"format": "onnx", "path": str(path), **target}


def run_onnx(target, inputs):
    """The ONNX model in onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "checking an onnx export runs it in onnxruntime: pip install 'tfspec[onnx]'"
        ) from None
    session = onnxruntime.InferenceSession(target["path"],
                                           providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    feed = {item.name: inputs[item.name] for item in session.get_inputs()}
    return dict(zip(names, session.run(names, feed), strict=True))
''',
}


class ExportGenerator:
    """Writes `export_all` and `verify_exports` for the spec's export targets."""

    def __init__(self, gen: Generator, targets: list[dict[str, Any]]):
        self.gen = gen
        self.targets = targets
        self.formats = {t["format"] for t in targets}
        self.scope = Scope(values={})
        policy = (gen.ir.get("train") or {}).get("mixed_precision", "float32")
        # a param or `--set` value cannot change the precision: it is a literal
        self.mixed = MIXED_TOLERANCES.get(policy) if isinstance(policy, str) else None

    @property
    def converted(self) -> bool:
        """Whether a target is converted from a serving SavedModel."""
        return bool(self.formats & {"tflite", "tfjs", "onnx"})

    @property
    def imports(self) -> set[str]:
        names = {"json", "numpy", "os", "shutil", "tempfile", "tensorflow"}
        if self.formats & {"tfjs", "onnx"}:
            names |= {"subprocess", "sys"}
        if "tflite" in self.formats:
            names.add("sys")
        if "tfjs" in self.formats:
            names.add("types")
        return names

    def span(self, index: int):
        return self.gen.span(f"/export/{index}")

    def option(self, index: int, key: str, default: Any) -> str:
        """A target's option as Python (a param's constant where the spec names one)."""
        target = self.targets[index]
        if key not in target:
            return self.gen.literal(default)
        return self.gen.value(target[key], f"/export/{index}/{key}", self.scope)

    def emit(self, w: CodeWriter) -> None:
        if "tfjs" in self.formats:
            w.blank(2)
            w.line("# TF.js in Node.js runs the tfjs export with this script (tfspec/js/).")
            w.line('TFJS_PREDICT = r"""\n' + JS_PREDICT.read_text(encoding="utf-8").rstrip()
                   + '\n"""')
        extra = ("float32",) if self.mixed and self.converted else ()
        for name in ("common", *extra, *sorted(self.formats)):
            w.blank(2)
            w.line(_HELPERS[name].strip("\n"))
        w.blank(2)
        w.line("# Each format's own runtime, as `verify_exports` runs it.")
        w.line("RUNTIMES = {")
        with w.indented():
            for f in sorted(self.formats):
                w.line(f'"{f}": run_{f},')
        w.line("}")
        self.export_all(w)

    def export_all(self, w: CodeWriter) -> None:
        w.blank(2)
        w.line("def export_all(model, run_dir, datasets):", self.gen.span("/export"))
        with w.indented():
            w.line('"""Write every export target, each atomically, and record them in')
            w.line('exports.json with the batch that `verify_exports` checks them on."""')
            w.line("run_dir = pathlib.Path(run_dir)")
            name = self.gen.ir.get("name") or self.gen.ir["model"]["name"]
            w.line(f"name = {py_string(name)}  # the spec's name, recorded with the exports")
            w.line("save_verify_batch(model, datasets, run_dir)")
            w.line("targets = []")
            if self.converted:
                w.line("with tempfile.TemporaryDirectory() as scratch:")
                w.level += 1
                w.line("# tflite, tfjs and onnx convert the same serving SavedModel")
                w.line('saved_model = pathlib.Path(scratch) / "serving"')
                w.line("write_saved_model(float32_model(model), saved_model)" if self.mixed
                       else "write_saved_model(model, saved_model)")
            for i, target in enumerate(self.targets):
                self.target(w, i, target)
            if self.converted:
                w.level -= 1
            w.line('record = {"name": name, "targets": targets}')
            w.line('(run_dir / "exports.json").write_text(json.dumps(record, indent=2) + "\\n")')
            w.line("return targets")

    def target(self, w: CodeWriter, i: int, target: dict[str, Any]) -> None:
        fmt = target["format"]
        quantize = target.get("quantize", "none")
        source = "model" if fmt in ("saved_model", "keras") else "saved_model"
        args = [source, f"SPEC_DIR / {py_string(target['path'])}"]
        if fmt == "saved_model":
            args.append("name")
        for key in ("version", "signature", "quantize", "integer_io", "opset"):
            if key in target:
                args.append(f"{key}={self.option(i, key, None)}")
        if quantize == "int8":
            samples = self.option(i, "representative_samples", 100)
            args.append(f"representative=representative_data(datasets, {samples})")
        tolerance = TOLERANCES.get((fmt, quantize if isinstance(quantize, str) else "none"),
                                   1e-4)
        tolerance = max(tolerance, self.mixed or 0.0)
        args.append(f"tolerance={self.option(i, 'tolerance', tolerance)}")
        if "verify" in target:
            args.append(f"verify={self.option(i, 'verify', True)}")
        args.append(f"spec_path={py_string(target['path'])}")
        span = self.span(i)
        w.line(f"targets.append(export_{fmt}(", span)
        with w.indented():
            for arg in args:
                w.line(f"{arg},", span)
        w.line("))", span)
