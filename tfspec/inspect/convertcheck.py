"""`tfspec plan --target tflite|tfjs|onnx`: will the model convert, before anyone trains it?

The untrained model is built exactly as the generated program builds it, exported
to a temporary SavedModel, and converted with the TensorFlow Lite converter
(builtin ops only), the TensorFlow.js converter and/or tf2onnx. Weights play no
part in which ops a graph needs, so what fails here fails after training too.
`tfspec run` asks the same before its first epoch (`export_errors`: each failure at
the export target that would fail).

When a converter refuses ops, each op is traced back to the Keras layer that made
it and reported at that layer's line in the spec (E505 TensorFlow Lite, E506
TensorFlow.js, E507 ONNX). Graph node names carry the layer's name scope, but TensorFlow
makes scopes unique per graph (Keras enters a layer's scope twice, so layer
`dense` runs in scope `dense_1` and layer `dense_1` in `dense_1_2`): the scope of
every layer call is therefore recorded while the model is exported, rather than
guessed from the names.

Nothing is written outside a temporary folder, which is always removed, and the
converters' chatter (C++ logs, prints, warnings) is swallowed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import types
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..codegen.program import Compiled, compile_result
from ..jobs.build import diverted, one_line, quiet_tensorflow
from ..lang.diagnostics import Diagnostic, Diagnostics, Span, SpecError
from ..lang.files import write_atomic
from ..lang.validate import validate_file
from .plan import Analysis, Locator, _call_inputs, analyze, human_bytes

TARGETS: dict[str, str] = {"tflite": "TensorFlow Lite", "tfjs": "TensorFlow.js",
                           "onnx": "ONNX"}
CODE = {"tflite": "E505", "tfjs": "E506", "onnx": "E507"}
INSTALL_TFJS = "tools/install-tfjs"
INSTALL_ONNX = "pip install \"tfspec[onnx]\""

# RNN layers whose loop the TFLite converter can only lower to builtin ops unrolled
_UNROLLABLE = {"LSTM", "GRU", "SimpleRNN"}
_PREPROCESSING = {"TextVectorization", "StringLookup", "IntegerLookup", "Hashing",
                  "HashedCrossing", "CategoryEncoding", "Discretization"}


@dataclass
class TargetResult:
    """How one target went: converted (with its size), or not."""

    target: str
    converts: bool
    size_bytes: int | None = None
    ops: int | None = None  # TF.js, ONNX: nodes in the converted graph
    errors: int = 0
    unchecked: str | None = None  # why the target could not be checked
    found: list[Diagnostic] = field(default_factory=list)  # this target's diagnostics

    def line(self) -> str:
        if self.unchecked:
            return f"{self.target}: not checked ({self.unchecked})"
        if not self.converts:
            n = self.errors
            return f"{self.target}: does not convert ({n} error{'s' * (n != 1)})"
        size = human_bytes(self.size_bytes or 0)
        if self.target == "tflite":
            return f"tflite: converts (builtin ops), {size}"
        if self.target == "onnx":
            return f"onnx: converts, {self.ops} nodes, {size}"
        return f"tfjs: converts, {self.ops} ops, {size}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "converts": self.converts}
        if self.unchecked:
            out["unchecked"] = self.unchecked
        if self.converts:
            out["bytes"] = self.size_bytes
            out["size"] = human_bytes(self.size_bytes or 0)
            if self.ops is not None:
                out["ops"] = self.ops
        return out


@dataclass
class ConversionReport:
    """The outcome of `check_targets`: one result per target, and the diagnostics."""

    compiled: Compiled
    results: list[TargetResult] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors

    def error(self) -> SpecError | None:
        """The diagnostics as a SpecError (spec order), or None when every target converts."""
        if self.ok:
            return None
        ordered = Diagnostics(self.diagnostics.file, self.diagnostics.sorted())
        return SpecError(ordered, self.compiled.spec_source)

    def render_text(self) -> str:
        return "".join(r.line() + "\n" for r in self.results)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.results]


# -- the public entry point ------------------------------------------------------------------


def check_targets(source: Compiled | Analysis, targets: Iterable[str]) -> ConversionReport:
    """Convert the untrained model of `source` to each of `targets` ("tflite", "tfjs",
    "onnx").

    `source` is a compiled spec, or the `plan.analyze` of one (its model is reused,
    and lookup layers waiting for `adapt` get a placeholder vocabulary). Raises
    `SpecError` when Keras cannot build the model; conversion failures (E505, E506,
    E507), a model that cannot be exported (E500) and a missing converter (E503) are
    in the report's diagnostics.
    """
    wanted = list(dict.fromkeys(targets))
    unknown = [t for t in wanted if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target {unknown[0]!r}: use one of {', '.join(TARGETS)}")
    analysis = source if isinstance(source, Analysis) else analyze(source)
    compiled = analysis.compiled
    report = ConversionReport(compiled, diagnostics=Diagnostics(compiled.spec_file))
    if not wanted:
        return report
    places = _Places(analysis)
    _placeholder_vocabularies(places.top.values())
    with tempfile.TemporaryDirectory(prefix="tfspec-convert-") as tmp:
        saved = Path(tmp) / "saved_model"
        with _quiet():
            failure = _export(analysis.model, saved, places)
        if failure is not None:
            layer, exc = failure
            what = f"`{layer.name}`" if layer is not None else "the model"
            report.diagnostics.add(
                "E500", f"Keras cannot run {what} in a traced graph (to export it): "
                        f"{one_line(str(exc))}", places.span(layer),
                hint="a graph cannot run it, so no converter can either; check the "
                     "layer's arguments against its input shape (`tfspec plan`)")
            report.results = [TargetResult(t, False, unchecked="Keras cannot export the model")
                              for t in wanted]
            return report
        graph = _GraphIndex(saved)
        for target in wanted:
            before = len(report.diagnostics)
            with _quiet():
                if target == "tflite":
                    result = _check_tflite(saved, graph, places, report.diagnostics)
                elif target == "onnx":
                    result = _check_onnx(saved, Path(tmp) / "model.onnx", graph, places,
                                         report.diagnostics)
                else:
                    result = _check_tfjs(saved, Path(tmp) / "tfjs", graph, places,
                                         report.diagnostics)
            result.found = report.diagnostics.items[before:]
            result.errors = len(result.found)
            report.results.append(result)
    return report


def check_exports(compiled: Compiled) -> None:
    """`tfspec run`'s check before its first epoch: `check_targets` for the converted
    formats among the spec's export targets; raises `SpecError` with each failure at
    every target of that format (the layer's line in its message), `plan --target`'s
    code and hint. A model Keras cannot build is left to the run, which reports it."""
    exports = compiled.ir.get("export") or []
    formats = [t["format"] for t in exports if t.get("format") in TARGETS]
    if not formats:
        return
    try:
        report = check_targets(compiled, formats)
    except SpecError:  # the run builds the model first and says why it cannot
        return
    if report.ok:
        return
    results = {r.target: r for r in report.results}
    shared = [d for d in report.diagnostics  # E500: the model cannot be exported at all
              if not any(d in r.found for r in results.values())]
    diags = Diagnostics(compiled.spec_file)
    for index, target in enumerate(exports):
        result = results.get(target.get("format"))
        if result is None:
            continue
        where = f"{target['format']} {target.get('path')}"
        for diag in result.found or shared:
            message = diag.message
            if diag.span is not None and " will not convert to " in message:
                message = message.replace(" will not convert to ",
                                          f" at line {diag.span.line} will not convert to ", 1)
            diags.add(diag.code, f"{where} cannot be exported: {message}",
                      compiled.positions.value(f"/export/{index}"), hint=diag.hint)
    raise SpecError(diags, compiled.spec_source)


def check_exports_apart(path: str, overrides: dict[str, Any],
                        allow_modules: tuple[str, ...] = ()) -> None:
    """`check_exports` of the spec at `path` in a process of its own (this module's
    `__main__`): the run's process must not start TensorFlow before its program
    configures the devices (a `mirrored` strategy splits the CPU into logical devices
    only while TensorFlow has not started), nor keep the converters' state.

    That process costs seconds (TensorFlow's import, the conversions), so it starts
    only for a spec with a converted target, and its answer is kept in the user's
    cache keyed by everything it depends on (`_cache_file`): running the same spec
    again reads it back."""
    result = validate_file(path, overrides, allow_modules)
    compiled = compile_result(result)  # text work, as the run did: no TensorFlow
    formats = sorted({t.get("format") for t in compiled.ir.get("export") or []} & set(TARGETS))
    if not formats:
        return
    cache = _cache_file(compiled, formats)
    found = _cached(cache)
    if found is None:
        found = _check_in_a_process(path, overrides, allow_modules)
        with contextlib.suppress(OSError):  # no cache (a read-only home): checked each run
            write_atomic(cache, json.dumps(found))
    if found:
        diags = Diagnostics(path, [Diagnostic.from_dict(item) for item in found])
        raise SpecError(diags, result.source)


def _check_in_a_process(path: str, overrides: dict[str, Any],
                        allow_modules: tuple[str, ...]) -> list[dict[str, Any]]:
    """The diagnostics of `check_exports` run by this module's `__main__` ([] if none)."""
    command = [sys.executable, "-m", __name__, path, json.dumps(overrides), *allow_modules]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0:
        return []
    if done.returncode != 1 or not lines:  # a bug of the check, not the user's input
        raise RuntimeError("the export check failed: "
                           + (done.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(lines[-1])


# What a check's answer depends on besides the program: the converters' versions
_CONVERTERS = ("tensorflow", "keras", "ai-edge-litert", "tensorflowjs", "tf2onnx",
               "onnxruntime")


def _cache_file(compiled: Compiled, formats: list[str]) -> Path:
    """Where the answer for this program and these formats is kept: a digest of the
    program's text (its model, its exports and its line map, so the answer's
    positions hold), the `--set` values, the spec's file name, the formats, the
    converters' versions and tfspec's own source (a changed check never reads an old
    answer)."""
    key = hashlib.sha256()
    overrides = json.dumps(compiled.overrides, sort_keys=True, default=str)  # `--set`
    for part in (compiled.source, overrides, compiled.spec_file, *formats,
                 *map(_version, _CONVERTERS)):
        key.update(part.encode() + b"\0")
    package = Path(__file__).resolve().parents[1]
    for source in sorted(package.rglob("*.py")):
        key.update(source.read_bytes())
    root = os.environ.get("TFSPEC_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfspec"
    return Path(root) / "export-checks" / f"{key.hexdigest()[:32]}.json"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _cached(path: Path) -> list[dict[str, Any]] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, list) else None


def _main(argv: list[str]) -> int:
    """`python -m tfspec.inspect.convertcheck SPEC OVERRIDES_JSON [MODULE …]`: status 1
    and the diagnostics as JSON (the last line of stdout) when an export cannot convert."""
    quiet_tensorflow()
    path, overrides, *modules = argv
    result = validate_file(path, json.loads(overrides), tuple(modules))
    try:
        check_exports(compile_result(result))
    except SpecError as exc:
        print(json.dumps(exc.to_json()))
        return 1
    return 0


def _lookup_layers(layers: Iterable[Any]) -> list[Any]:
    """The layers that own a vocabulary table (TextVectorization keeps a lookup layer)."""
    return [layer for layer in layers
            if hasattr(getattr(layer, "_lookup_layer", layer), "lookup_table")]


def _placeholder_vocabularies(layers: Iterable[Any]) -> None:
    """Give lookup layers still waiting for `adapt` a one-token vocabulary.

    The program adapts them on the training data; the converters then see a filled
    table, and an empty one converts differently (TFLite refuses an empty
    StringLookup table that it accepts filled), so the check fills it with a token.
    """
    import keras

    for layer in _lookup_layers(layers):
        try:
            if layer.get_vocabulary(include_special_tokens=False):
                continue
            token: Any = "tfspec"
            if isinstance(layer, keras.layers.IntegerLookup):
                token = 2**31 - 1  # not a mask or OOV token
            extra = {"idf_weights": [1.0]} if layer.output_mode == "tf_idf" else {}
            layer.set_vocabulary([token], **extra)
        except Exception:  # a layer configured in a way this does not know: as it is
            continue


# -- where a graph node comes from -----------------------------------------------------------


class _Places:
    """Maps graph node names to the model's top-level layers, and layers to spec spans."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        self.model = analysis.model
        self.top = {id(layer): layer for layer in self.model.layers}
        self.scopes: dict[str, Any] = {}  # name scope -> the layer that opened it
        self.recorded = False
        self.locator = Locator(analysis.detail_compiled)
        self.positions = analysis.compiled.positions

    def layer_of(self, node: str) -> Any | None:
        """The top-level layer whose call made graph node `node` (None: the model's own)."""
        parts = node.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if self.recorded:
                layer = self.scopes.get(prefix)
                if layer is not None and id(layer) in self.top:
                    return layer
            else:  # no recording (Keras moved its name_scope): guess from the names
                layer = self._by_name(parts[i - 1])
                if layer is not None:
                    return layer
        return None

    def _by_name(self, scope: str) -> Any | None:
        names = {layer.name: layer for layer in self.top.values()}
        stripped = re.sub(r"_\d+$", "", scope)  # the second entry of a scope: `<name>_1`
        return names.get(stripped) or names.get(scope)

    def describe(self, layer: Any) -> str:
        """"layer `name` (Class)", and the block use that made it."""
        out = f"layer `{layer.name}` ({type(layer).__name__})"
        chain = self.locator.locate(layer.name).chain
        if chain:
            use, info = chain[-1]
            span = self.positions.value(info.at)
            out += f" of {info.cls} `{use}`" + (f" (line {span.line})" if span else "")
        return out

    def span(self, layer: Any | None) -> Span | None:
        """The spec span that asked for `layer` (the model's name for None)."""
        if layer is not None:
            origin = self.locator.locate(layer.name)
            if origin.info is not None:
                span = self.positions.value(origin.info.at)
                if span is not None:
                    return span
        return self.positions.key("/model/name")

    def input_shape(self, layer: Any) -> tuple | None:
        """The shape `layer` is called on (from the model that lists the layers)."""
        try:
            twin = self.analysis.detail.get_layer(layer.name)
        except ValueError:
            return None
        for node in self.analysis.nodes.get(id(twin), []):
            inputs = _call_inputs(node)
            if inputs:
                return tuple(inputs[0].shape)
        return None


@contextlib.contextmanager
def _recording(places: _Places) -> Iterator[list[Any]]:
    """Record the name scope of every layer call, and the layers an exception left.

    Yields a list that collects, innermost first, the layers whose scope an
    exception propagated through.
    """
    failed: list[Any] = []
    try:
        from keras.src.backend.tensorflow import core

        scope_cls = core.name_scope
        enter, exit_ = scope_cls.__enter__, scope_cls.__exit__
    except (ImportError, AttributeError):
        yield failed
        return
    import tensorflow as tf

    def recording_enter(self: Any) -> Any:
        result = enter(self)
        caller = getattr(self, "caller", None)
        if caller is not None:
            places.scopes.setdefault(tf.get_current_name_scope(), caller)
        return result

    def recording_exit(self: Any, *exc: Any) -> Any:
        caller = getattr(self, "caller", None)
        if exc and exc[0] is not None and caller is not None and caller not in failed:
            failed.append(caller)
        return exit_(self, *exc)

    scope_cls.__enter__, scope_cls.__exit__ = recording_enter, recording_exit
    places.recorded = True
    try:
        yield failed
    finally:
        scope_cls.__enter__, scope_cls.__exit__ = enter, exit_


def _export(model: Any, path: Path, places: _Places) -> tuple[Any | None, Exception] | None:
    """Export `model` as a SavedModel; on failure, (the top-level layer that raised, error)."""
    with _recording(places) as failed:
        try:
            model.export(str(path), format="tf_saved_model", verbose=False)
        except Exception as exc:
            layer = next((lay for lay in failed if id(lay) in places.top), None)
            return layer, exc
    return None


class _GraphIndex:
    """The SavedModel's nodes (its functions' bodies included): (name, op type) pairs."""

    def __init__(self, saved: Path):
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((saved / "saved_model.pb").read_bytes())
        self.nodes_def: list[Any] = []
        for meta in proto.meta_graphs:
            self.nodes_def += list(meta.graph_def.node)
            for function in meta.graph_def.library.function:
                self.nodes_def += list(function.node_def)
        self.by_op: dict[str, list[str]] = {}
        for node in self.nodes_def:
            self.by_op.setdefault(node.op, []).append(node.name)

    def nodes(self, op: str) -> list[str]:
        return self.by_op.get(op, [])


# -- TensorFlow Lite ---------------------------------------------------------------------------

# why an op is refused: TFLite has it as a Select TF op, as no op at all (custom),
# or cannot lower a loop's tensor list; TF.js simply lacks it
_SELECT, _CUSTOM, _TENSOR_LIST, _MISSING = "select", "custom", "tensor list", "missing"
# ops that make and fill a vocabulary table
_TABLE_OPS = {"HashTableV2", "MutableHashTableV2", "MutableHashTableOfTensorsV2",
              "LookupTableImportV2", "LookupTableInsertV2", "InitializeTableV2",
              "InitializeTableFromTextFileV2"}
_TENSOR_LIST_FAILED = "Lowering tensor list ops is failed"


def _check_tflite(saved: Path, graph: _GraphIndex, places: _Places,
                  diags: Diagnostics) -> TargetResult:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    try:
        flatbuffer = converter.convert()
    except Exception as exc:
        text = str(exc)
    else:
        return TargetResult("tflite", True, size_bytes=len(flatbuffer))
    ops = _tflite_error_ops(text)
    # The converter stops at the first pass that fails (lowering tensor lists comes
    # first), so convert once more allowing everything, and read which ops the
    # flatbuffer then needs beyond the builtins: the complete list, with node names.
    for op, (kind, nodes) in _tflite_probe(saved, lower_lists=_TENSOR_LIST_FAILED not in text
                                           ).items():
        old_kind, old_nodes = ops.get(op, (kind, set()))
        ops[op] = (old_kind if old_kind == _TENSOR_LIST else kind, old_nodes | nodes)
    _report_ops("tflite", ops, graph, places, diags, _first_error(text))
    return TargetResult("tflite", False)


def _tflite_error_ops(text: str) -> dict[str, tuple[str, set[str]]]:
    """op type -> (why, node names) from the TFLite converter's error text."""
    ops: dict[str, tuple[str, set[str]]] = {}

    def add(op: str, kind: str, node: str | None = None) -> None:
        nodes = ops.setdefault(op, (kind, set()))[1]
        if node:
            nodes.add(node)

    for line in text.splitlines():
        listed = re.match(r"\s*(TF Select ops|Custom ops):\s*(.+)", line)
        if listed:
            kind = _SELECT if listed.group(1).startswith("TF") else _CUSTOM
            for op in re.findall(r"[A-Z]\w*", listed.group(2)):
                add(op, kind)
        elif "error:" in line:
            # `loc(callsite(fused["TensorListReserve:", "model_1/lstm_1/…@fn"] at …))`:
            # the first location of an error line is the op that failed
            named = re.search(r'fused\["([A-Z]\w*):", "([^"@]+)@', line)
            refused = re.search(r"'tf\.([A-Z]\w*)'", line)
            if refused:
                op = refused.group(1)
                kind = _TENSOR_LIST if op.startswith("TensorList") else _SELECT
                add(op, kind, named.group(2) if named and named.group(1) == op else None)
    return ops


def _tflite_probe(saved: Path, lower_lists: bool) -> dict[str, tuple[str, set[str]]]:
    """op type -> (why, node names) of the non-builtin ops of a permissive conversion."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    converter.allow_custom_ops = True
    converter._experimental_lower_tensor_list_ops = lower_lists
    try:
        from tensorflow.lite.tools import flatbuffer_utils

        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(converter.convert()))
    except Exception:  # the default conversion's error text is all there is
        return {}
    ops: dict[str, tuple[str, set[str]]] = {}
    codes = model.operatorCodes or []
    for subgraph in model.subgraphs or []:
        for op in subgraph.operators or []:
            custom = codes[op.opcodeIndex].customCode
            if not custom:
                continue
            name = custom.decode() if isinstance(custom, bytes) else str(custom)
            if name.startswith("Flex"):
                name, kind = name[4:], _SELECT
            else:
                kind = _CUSTOM
            if name.startswith("TensorList"):
                kind = _TENSOR_LIST
            nodes = ops.setdefault(name, (kind, set()))[1]
            for index in op.outputs if op.outputs is not None else []:
                tensor = subgraph.tensors[index].name
                tensor = tensor.decode() if isinstance(tensor, bytes) else str(tensor)
                # fused ops name their tensor after each node: `a/MatMul;a/BiasAdd`
                nodes.update(n for n in tensor.split(";") if "/" in n and ":" not in n)
    return ops


# -- TensorFlow.js -----------------------------------------------------------------------------


def _check_tfjs(saved: Path, out: Path, graph: _GraphIndex, places: _Places,
                diags: Diagnostics) -> TargetResult:
    # tensorflowjs imports TF Decision Forests only to convert TF-DF models, and no
    # TF-DF release installs beside this TensorFlow: an empty stand-in is enough
    sys.modules.setdefault("tensorflow_decision_forests",
                           types.ModuleType("tensorflow_decision_forests"))
    try:
        from tensorflowjs.converters import tf_saved_model_conversion_v2
    except Exception as exc:  # not installed, or installed without its dependencies
        missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        why = f"no module named `{missing}`" if missing else one_line(f"{exc}")
        diags.add("E503", f"cannot check `--target tfjs`: the TensorFlow.js converter is not "
                          f"installed ({why})", places.span(None),
                  hint=f"run `{INSTALL_TFJS}` from the tfspec repository to install it")
        return TargetResult("tfjs", False, unchecked="the TF.js converter is not installed")
    try:
        tf_saved_model_conversion_v2.convert_tf_saved_model(str(saved), str(out))
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}" if isinstance(exc, AssertionError) else str(exc)
        listed = re.search(r"Unsupported Ops in the model (?:before|after) optimization\s*"
                           r"(.*)", text, re.S)
        if listed:
            ops = {op: (_MISSING, set()) for op in re.findall(r"[A-Z]\w*", listed.group(1))}
        else:  # it failed before its own op check: run that check on the layers' nodes
            ops = _tfjs_unsupported(tf_saved_model_conversion_v2, graph, places)
        _report_ops("tfjs", ops, graph, places, diags, _first_error(text),
                    unreported=_lookup_tables(text, places))
        return TargetResult("tfjs", False)
    model_json = json.loads((out / "model.json").read_text(encoding="utf-8"))
    topology = model_json.get("modelTopology") or {}
    nodes = len(topology.get("node") or [])
    for function in (topology.get("library") or {}).get("function") or []:
        nodes += len(function.get("nodeDef") or [])
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return TargetResult("tfjs", True, size_bytes=size, ops=nodes)


# ops of a layer's graph that freezing turns into constants or removes
_PLUMBING = {"ReadVariableOp", "VarHandleOp", "AssignVariableOp", "StatefulPartitionedCall",
             "PartitionedCall", "NoOp"}


def _tfjs_unsupported(converter: Any, graph: _GraphIndex,
                      places: _Places) -> dict[str, tuple[str, set[str]]]:
    """op type -> (why, node names): the layers' ops TF.js has no kernel for."""
    from tensorflow.core.framework import graph_pb2

    owned = [n for n in graph.nodes_def
             if n.op not in _PLUMBING and places.layer_of(n.name) is not None]
    try:
        missing = converter.validate(graph_pb2.GraphDef(node=owned), False, False)
    except Exception:  # the converter's op list moved: nothing more to say
        return {}
    return {op: (_MISSING, {n.name for n in owned if n.op == op}) for op in sorted(missing)}


def _lookup_tables(text: str, places: _Places) -> dict[int, tuple[Any, str, str]]:
    """Lookup layers, when the TF.js converter failed freezing a vocabulary table.

    A table filled after the layer was made (by `adapt`, as training does, or
    `set_vocabulary`) makes tensorflowjs 4.22 fail with "… is not in graph"; a
    vocabulary given to the constructor converts.
    """
    if "is not in graph" not in text and "Failed to import metagraph" not in text:
        return {}
    why = f"the TF.js converter cannot freeze its vocabulary table ({_first_error(text)})"
    hint = ("a vocabulary given in the spec (`vocabulary = [...]`) converts, one from "
            "`adapt` does not; or do the lookup in the data pipeline, outside the model")
    return {id(layer): (layer, why, hint) for layer in _lookup_layers(places.top.values())}


# -- ONNX ------------------------------------------------------------------------------------

# `Tensorflow op [StatefulPartitionedCall/model_1/dense_1/Gelu/Erfc: Erfc] is not supported`
_ONNX_UNSUPPORTED = re.compile(r"Tensorflow op \[(.+?): ([A-Z]\w*)\] is not supported")
# the call nodes tf2onnx inlines the functions at, in front of their nodes' names
_CALL_PREFIX = re.compile(r"^((Stateful)?PartitionedCall(_\d+)?/)+")


def _check_onnx(saved: Path, out: Path, graph: _GraphIndex, places: _Places,
                diags: Diagnostics) -> TargetResult:
    """tf2onnx as the `onnx` export runs it (its own process), then onnxruntime.

    tf2onnx writes a graph even with ops it cannot convert, and exits 0: those
    ops stay as TensorFlow ops, which onnxruntime refuses to load ("No Op
    registered for Erfc"), so its log of unsupported ops is the verdict.
    """
    done = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model",
                           str(saved), "--output", str(out)], capture_output=True, text=True)
    if "No module named tf2onnx" in done.stderr:
        diags.add("E503", "cannot check `--target onnx`: tf2onnx is not installed",
                  places.span(None), hint=f"`{INSTALL_ONNX}` installs tf2onnx and onnxruntime")
        return TargetResult("onnx", False, unchecked="tf2onnx is not installed")
    ops: dict[str, tuple[str, set[str]]] = {}
    for node, op in _ONNX_UNSUPPORTED.findall(done.stderr):
        ops.setdefault(op, (_MISSING, set()))[1].add(_CALL_PREFIX.sub("", node))
    failure = None
    if done.returncode:
        errors = [line for line in done.stderr.splitlines() if "Error" in line]
        failure = _first_error(errors[-1] if errors else done.stderr.strip()[-300:])
    elif not ops:
        failure = _onnx_load_error(out)
    if ops or failure:
        tables = {}
        if failure and "lookup tables of type string<->int64" in failure:
            # tf2onnx maps strings to integers only (StringLookup): IntegerLookup's table
            why = f"tf2onnx cannot convert its vocabulary table ({failure})"
            hint = ("tf2onnx converts only string-to-integer tables (StringLookup): do this "
                    "lookup in the data pipeline, outside the model")
            tables = {id(layer): (layer, why, hint) for layer in places.top.values()
                      if type(layer).__name__ == "IntegerLookup"}
        _report_ops("onnx", ops, graph, places, diags, failure or "tf2onnx failed",
                    unreported=tables)
        return TargetResult("onnx", False)
    import onnx

    nodes = len(onnx.load(str(out)).graph.node)
    return TargetResult("onnx", True, size_bytes=out.stat().st_size, ops=nodes)


def _onnx_load_error(path: Path) -> str | None:
    """Why onnxruntime refuses the converted graph (None: it loads, or onnxruntime is not
    installed, which only the export's check needs)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    try:
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # any refusal is the verdict, in its own words
        return f"onnxruntime cannot load the converted graph: {one_line(str(exc))}"
    return None


# -- reporting ---------------------------------------------------------------------------------


def _report_ops(target: str, ops: dict[str, tuple[str, set[str]]], graph: _GraphIndex,
                places: _Places, diags: Diagnostics, fallback: str,
                unreported: dict[int, tuple[Any, str, str]] | None = None) -> None:
    """One diagnostic per layer that makes a refused op (the model's own ops: one more).

    `unreported`: layers known to fail for another reason (id -> (layer, why, hint)),
    reported unless their ops already were.
    """
    name = TARGETS[target]
    how = " with builtin ops" if target == "tflite" else ""
    per_layer: dict[int, tuple[Any | None, dict[str, str]]] = {}
    tables: dict[str, str] = {}
    for op, (kind, nodes) in sorted(ops.items()):
        layers = {id(lay): lay for lay in map(places.layer_of, nodes) if lay is not None}
        if not layers:  # no node names, or none in a layer: every node of that op type
            layers = {id(lay): lay for lay in map(places.layer_of, graph.nodes(op))
                      if lay is not None}
        if not layers and op in _TABLE_OPS:
            tables[op] = kind
            continue
        for layer in layers.values() or [None]:
            per_layer.setdefault(id(layer), (layer, {}))[1][op] = kind
    if tables:
        # a table is made and filled outside the calls of the layer that owns it: the
        # lookup layers already refused own the table ops, else every lookup layer
        owners = _lookup_layers(places.top.values())
        owners = [lay for lay in owners if id(lay) in per_layer] or owners or [None]
        for layer in owners:
            needs = per_layer.setdefault(id(layer), (layer, {}))[1]
            needs.update(tables)
            per_layer[id(layer)] = (layer, dict(sorted(needs.items())))
    order = {key: i for i, key in enumerate(places.top)}  # report in the model's order
    for key in sorted(per_layer, key=lambda k: order.get(k, len(order))):
        layer, needs = per_layer[key]
        what = "the model" if layer is None else places.describe(layer)
        diags.add(CODE[target], f"{what} will not convert to {name}{how}: needs "
                                f"{', '.join(needs)}",
                  places.span(layer), hint=_hint(target, layer, needs, places))
    for key, (layer, why, hint) in (unreported or {}).items():
        if key not in per_layer:
            diags.add(CODE[target], f"{places.describe(layer)} will not convert to {name}: "
                                    f"{why}", places.span(layer), hint=hint)
            per_layer[key] = (layer, {})
    if not per_layer:  # failed for another reason than missing ops
        diags.add(CODE[target], f"the model will not convert to {name}: {fallback}",
                  places.span(None))


def _hint(target: str, layer: Any | None, needs: dict[str, str], places: _Places) -> str:
    cls = type(layer).__name__ if layer is not None else ""
    inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
    rnn = cls if cls in _UNROLLABLE else type(inner).__name__
    config = layer.get_config() if layer is not None and hasattr(layer, "get_config") else {}
    if target == "tflite" and _TENSOR_LIST in needs.values() and rnn in _UNROLLABLE:
        call = f"{rnn}(..., unroll = true)"
        if cls != rnn:
            call = f"{cls}({call})"
        shape = places.input_shape(layer) if layer is not None else None
        fixed = "" if shape is None or len(shape) < 2 or shape[1] is not None else (
            "give the input a fixed sequence length (its timesteps are None) and ")
        return (f"{fixed}use `{call}`: an unrolled loop converts to builtin ops; otherwise "
                "the app needs TFLite's Select TF ops (Flex delegate)")
    if cls == "Resizing" and config.get("interpolation") not in (None, "bilinear", "nearest"):
        return 'use `interpolation = "bilinear"` (or "nearest"), which both runtimes have'
    if target == "tfjs" and {"Erf", "Erfc"} & set(needs) and config.get("activation") == "gelu":
        return ('TF.js has no erf/erfc, which the exact "gelu" needs: use another activation '
                '(e.g. "relu" or "silu")')
    if target == "onnx" and "Erfc" in needs and config.get("activation") == "gelu":
        return ('tf2onnx has no Erfc, which the exact "gelu" needs: use another activation '
                '(e.g. "relu" or "silu")')
    if target == "tflite" and _TENSOR_LIST in needs.values():
        return ("the layer's loop keeps its steps in a TensorList, which the converter turns "
                "into builtin ops only with static shapes: the app would need Select TF ops "
                "(Flex delegate)")
    if target == "tfjs":
        advice = "TF.js has no kernel for it"
    elif target == "onnx":
        advice = ("tf2onnx has no conversion for it: the ONNX graph would keep the TensorFlow "
                  "op, which onnxruntime refuses")
    elif _CUSTOM in needs.values():
        advice = ("TFLite has no kernel for it, not even with Select TF ops: the app would "
                  "need a custom op")
    else:
        advice = ("TFLite has no builtin kernel for it: the app would need Select TF ops "
                  "(Flex delegate, a larger binary)")
    if cls in _PREPROCESSING:
        return f"{advice}; or do this preprocessing in the data pipeline, outside the model"
    return f"{advice}; or use another layer"


def _first_error(text: str) -> str:
    """The converter's first error, without MLIR locations or Python plumbing."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("<unknown>:0: note", "Traceback")):
            continue
        line = re.sub(r"^(<unknown>:0: )?error: (loc\(.*?\)\)+: )?", "", line)
        return one_line(line)
    return "the converter failed"


# -- silence ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow what the converters print: C++ logs and prints on the process's stdout
    and stderr, Python prints, TensorFlow's Python logging, and warnings."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    try:
        with diverted((1, 2)), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            logger.setLevel(logging.ERROR)
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
