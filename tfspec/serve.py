"""`tfspec serve`: TensorFlow Serving's REST API over a SavedModel export.

A client written for TF Serving works unchanged against it: the same URLs
(`/v1/models/NAME[/versions/N][:predict|/metadata]`), the same JSON (row and
columnar predict, `{"b64": ...}` strings, NaN/Infinity), the same error bodies
`{"error": "..."}` with TF Serving's messages and HTTP status codes (the few
differences are in docs/serve.md). It serves one
model (every version found) from the standard library's threading HTTP server,
calling the SavedModel's signature functions directly; for production, the same
export directory goes to `tensorflow_model_server` unchanged (docs/serve.md).

Finding the export never imports TensorFlow, so a bad PATH fails in milliseconds.
The module itself is callable: `tfspec.serve(path)` is `tfspec.serve.serve(path)`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import numpy as np

from . import __version__

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501  # TF Serving's REST port
DEFAULT_MAX_BODY = 32 * 1024 * 1024
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

# TF Serving's own URL patterns (http_rest_api_util.cc), case-insensitive like them
_PREDICT_URL = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE)
_MODEL_URL = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?",
    re.IGNORECASE)
_MAX_VERSION = 2**63 - 1
_SHOWN_CHARS = 200  # of a JSON value quoted in an error message


class ServeError(Exception):
    """PATH, the model name or the address cannot be served (one line for the user)."""


class ApiError(Exception):
    """A request TF Serving would refuse: its HTTP status and its error message."""

    def __init__(self, status: int, message: str, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.allow = allow  # for 405: the method this URL takes


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


# ---------------------------------------------------------------------------
# Finding the export (no TensorFlow)


@dataclass(frozen=True)
class Export:
    """What to serve: the model's name and its SavedModel directory per version."""

    name: str
    base: Path  # TF Serving's --model_base_path (or the one SavedModel)
    versions: dict[int, Path]


def find_export(path: str | os.PathLike[str], name: str | None = None) -> Export:
    """Resolve PATH: a TF Serving base directory (`<base>/<version>/saved_model.pb`),
    one SavedModel directory, or a run directory holding `exports.json`."""
    try:
        return _find_export(path, name)
    except OSError as exc:  # unreadable folders
        raise ServeError(f"{path}: {exc.strerror or exc}") from None


def _find_export(path: str | os.PathLike[str], name: str | None) -> Export:
    given = Path(path).expanduser()
    if not given.exists():
        raise ServeError(f"{path}: no such file or directory")
    if given.is_file():
        if given.name == "exports.json":
            return _from_run(given.parent, name)
        if given.name in ("saved_model.pb", "saved_model.pbtxt"):
            given = given.parent
        else:
            raise ServeError(_not_an_export(path))
    if _is_saved_model(given):
        return _single(given, name)
    if (given / "exports.json").is_file():
        return _from_run(given, name)
    versions = _versions(given)
    if versions:
        return Export(_model_name(name, given.resolve().name), given, versions)
    raise ServeError(_not_an_export(path))


def _not_an_export(path: str | os.PathLike[str]) -> str:
    return (f"{path} is not a SavedModel, a SavedModel base directory "
            "(<base>/<version>/saved_model.pb) or a run directory with exports.json")


def _is_saved_model(directory: Path) -> bool:
    return (directory / "saved_model.pb").is_file() or (
        directory / "saved_model.pbtxt").is_file()


def _versions(base: Path) -> dict[int, Path]:
    """TF Serving's versions: subfolders named by a number that hold a SavedModel."""
    found = {}
    for child in base.iterdir():
        if child.name.isdigit() and child.is_dir() and _is_saved_model(child):
            found.setdefault(int(child.name), child)
    return dict(sorted(found.items()))


def _single(directory: Path, name: str | None) -> Export:
    numbered = directory.name.isdigit()
    base = directory.parent if numbered else directory
    version = int(directory.name) if numbered else 1
    return Export(_model_name(name, base.resolve().name), base, {version: directory})


def _from_run(run_dir: Path, name: str | None) -> Export:
    """The first `saved_model` target that a run's `exports.json` lists."""
    record_file = run_dir / "exports.json"
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        targets = record["targets"]
        target = next(t for t in targets if t.get("format") == "saved_model")
        base = Path(target["path"])
    except StopIteration:
        raise ServeError(f"{record_file} lists no saved_model export") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ServeError(f"{record_file}: cannot read the exports: {exc}") from None
    base = base if base.is_absolute() else run_dir / base
    if base.is_dir() and _is_saved_model(base):
        export = _single(base, name or record.get("name"))
    elif base.is_dir() and _versions(base):
        export = Export(_model_name(name or record.get("name"), base.name), base,
                        _versions(base))
    else:
        raise ServeError(f"{record_file}: its saved_model export {base} holds no SavedModel "
                         "(<base>/<version>/saved_model.pb)")
    return export


def _model_name(name: Any, fallback: str) -> str:
    chosen = name if isinstance(name, str) and name else fallback
    # the name is one URL path segment: /v1/models/NAME:predict
    if not chosen or "/" in chosen or ":" in chosen:
        raise ServeError(f"invalid model name {chosen!r}: it may not be empty or hold '/' "
                         "or ':' (pass --name)")
    return chosen


# ---------------------------------------------------------------------------
# Loading (TensorFlow from here on)


@dataclass(frozen=True)
class Input:
    """One input of a signature: what JSON values it takes and its shape."""

    dtype: np.dtype[Any]
    dtype_name: str  # as TF Serving names it in errors: float, double, int32, string
    shape: tuple[int | None, ...] | None  # None: unknown rank

    @property
    def kind(self) -> str:
        return "S" if self.dtype == np.dtype(object) else self.dtype.kind


@dataclass(frozen=True)
class Signature:
    name: str
    function: Callable[..., Any]  # the SavedModel's ConcreteFunction
    inputs: dict[str, Input]
    method_name: str


@dataclass(frozen=True)
class Servable:
    """One loaded version: its signatures and TF Serving's JSON of them."""

    version: int
    path: Path
    signatures: dict[str, Signature]
    signature_defs: dict[str, Any]
    keep_alive: Any  # the loaded object, which owns the functions' variables


@dataclass(frozen=True)
class Model:
    name: str
    base: Path
    versions: dict[int, Servable]  # ascending

    @property
    def latest(self) -> Servable:
        return self.versions[max(self.versions)]


def load_model(export: Export) -> Model:
    """Load every version of the export, as TF Serving would."""
    from .build import quiet_tensorflow

    quiet_tensorflow()
    servables = {version: _load_version(version, path)
                 for version, path in sorted(export.versions.items())}
    return Model(export.name, export.base, servables)


def _load_version(version: int, path: Path) -> Servable:
    import tensorflow as tf
    from google.protobuf import json_format

    try:
        meta_graph = _serving_meta_graph(path)
        loaded = tf.saved_model.load(str(path), tags=list(meta_graph.meta_info_def.tags))
    except Exception as exc:  # a corrupt or foreign SavedModel: one line, no traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServeError(f"cannot load the SavedModel in {path}: {first}") from None
    defs = meta_graph.signature_def
    signatures = {
        key: Signature(key, function, _inputs(function), defs[key].method_name)
        for key, function in loaded.signatures.items() if key in defs
    }
    # as TF Serving prints a SignatureDef: proto field names, every field shown
    signature_defs = {
        key: json_format.MessageToDict(defs[key], preserving_proto_field_name=True,
                                       always_print_fields_with_no_presence=True)
        for key in sorted(defs)
    }
    return Servable(version, path, signatures, signature_defs, loaded)


def _serving_meta_graph(path: Path) -> Any:
    """The MetaGraphDef TF Serving loads: the one tagged `serve`."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    graphs = list(saved_model.meta_graphs)
    if not graphs:
        raise ValueError("it holds no MetaGraphDef")
    return next((g for g in graphs if "serve" in g.meta_info_def.tags), graphs[0])


def _inputs(function: Any) -> dict[str, Input]:
    specs = function.structured_input_signature[1]
    inputs = {}
    for key in sorted(specs):
        spec = specs[key]
        dtype = spec.dtype
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        np_dtype = np.dtype(object) if dtype.name == "string" else np.dtype(dtype.as_numpy_dtype)
        inputs[key] = Input(np_dtype, _TF_SERVING_DTYPE_NAMES.get(dtype.name, dtype.name), shape)
    return inputs


# TensorFlow's DataTypeString(), which TF Serving's messages use
_TF_SERVING_DTYPE_NAMES = {"float32": "float", "float64": "double"}


# ---------------------------------------------------------------------------
# The REST API, without HTTP: method + URL + body -> status + JSON


Response = tuple[int, bytes, list[tuple[str, str]]]


class RestApi:
    """TF Serving's REST handler (http_rest_api_handler.cc) for one model.

    `workers` predict requests run at once, the others wait their turn (status and
    metadata never wait). More at once only contend: JSON is parsed and written
    holding the GIL, and TensorFlow spreads each call over every core already. On 2
    CPUs, one at a time answered 8 concurrent clients ~1.7x faster than no limit
    (batches of 32, benchmarks/serve_load.py's model).
    """

    def __init__(self, model: Model, workers: int | None = None) -> None:
        self.model = model
        self.workers = workers or default_workers()
        self._turns = threading.BoundedSemaphore(self.workers)

    def handle(self, method: str, target: str, body: bytes) -> Response:
        try:
            return 200, self._route(method, urlsplit(target).path, body), []
        except ApiError as exc:
            headers = [("Allow", exc.allow)] if exc.allow else []
            return exc.status, error_body(exc.message), headers

    def _route(self, method: str, path: str, body: bytes) -> bytes:
        predict = _PREDICT_URL.fullmatch(path)
        model_url = _MODEL_URL.fullmatch(path)
        if method == "POST" and predict:
            name, version, label, verb = predict.groups()
            number = _version(version)
            with self._turns:
                request = _parse_json(body)  # first, as TF Serving: bad JSON wins over 404
                servable = self._servable(unquote(name), number, label)
                # JSON booleans hide in numeric lists ([true, 2] reads as [1, 2]): look
                # for them only when the body has any
                bools = b"true" in body or b"false" in body
                return self._predict(servable, verb.lower(), request, bools)
        if method in ("GET", "HEAD") and model_url:
            name, version, label, metadata = model_url.groups()
            if not name:
                raise _bad("Missing model name in request.")
            if metadata:
                servable = self._servable(unquote(name), _version(version), label)
                return self._metadata(servable)
            return self._status(unquote(name), _version(version), label)
        if predict or model_url:
            allow = "POST" if predict else "GET"
            raise ApiError(405, f"Malformed request: {method} {path} "
                                f"(this URL takes {allow} only)", allow)
        # TF Serving: 400 for a /v1/ URL it cannot parse, 404 for any other path
        status = 400 if path.lower().startswith("/v1/") else 404
        raise ApiError(status, f"Malformed request: {method} {path}")

    def _servable(self, name: str, version: int | None, label: str | None) -> Servable:
        if label is not None:  # no labels are configured, as in TF Serving by default
            raise _bad(f"Unrecognized servable version label: {unquote(label)}")
        if name == self.model.name:
            if version is None:
                return self.model.latest
            if version in self.model.versions:
                return self.model.versions[version]
        wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise ApiError(404, f"Servable not found for request: {wanted}")

    def _status(self, name: str, version: int | None, label: str | None) -> bytes:
        if label is not None:
            raise _bad(f"Unrecognized servable version label: {unquote(label)}")
        known = name == self.model.name
        if version is None:
            if not known:
                raise ApiError(404, f"Could not find any versions of model {name}")
            versions = sorted(self.model.versions, reverse=True)  # newest first, as TF Serving
        elif known and version in self.model.versions:
            versions = [version]
        else:
            raise ApiError(404, f"Could not find version {version} of model {name}")
        return _dumps({"model_version_status": [
            {"version": str(v), "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}
            for v in versions
        ]}, indent=1)

    def _metadata(self, servable: Servable) -> bytes:
        return _dumps({
            "model_spec": {"name": self.model.name, "signature_name": "",
                           "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
        }, indent=1)

    def _predict(self, servable: Servable, verb: str, request: dict[str, Any],
                 bools: bool = True) -> bytes:
        signature = _signature(servable, request)
        if verb != "predict":
            # Keras exports hold predict signatures only, which TF Serving refuses here
            if signature.method_name == PREDICT_METHOD:
                kind = "classification" if verb == "classify" else "regression"
                raise _bad(f"Expected {kind} signature method_name to be "
                           f"tensorflow/serving/{verb}. Was: {signature.method_name}")
            raise ApiError(501, f"tfspec serve does not implement :{verb}; "
                                "use tensorflow_model_server for it")
        arrays, row = request_tensors(request, signature, bools)
        outputs = run_signature(signature, arrays)
        return _dumps(response_json(outputs, row))


def default_workers() -> int:
    """Predict requests at once: one per two CPUs, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


def error_body(message: str) -> bytes:
    return _dumps({"error": message})


def _dumps(value: Any, indent: int | None = None) -> bytes:
    # NaN and Infinity are written as the bare tokens, like TF Serving
    return json.dumps(value, indent=indent).encode()


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    version = int(text)
    if version > _MAX_VERSION:
        raise _bad(f"Failed to convert version: {text} to numeric.")
    return version


def _parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise _bad("JSON Parse error: The document is empty")
    try:
        request = json.loads(body)
    except UnicodeDecodeError as exc:
        raise _bad(f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
                   ) from None
    except json.JSONDecodeError as exc:
        raise _bad(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from None
    if not isinstance(request, dict):
        raise _bad(f"JSON Value: {_shown(request)} Is not object")
    return request


def _signature(servable: Servable, request: dict[str, Any]) -> Signature:
    name = request.get("signature_name", "")
    if not isinstance(name, str):
        raise _bad(f"JSON Value: {_shown(request)} not formatted correctly. "
                   "'signature_name' key must be a string value.")
    name = name or DEFAULT_SIGNATURE
    if name not in servable.signatures:
        raise _bad(f'Serving signature name: "{name}" not found in signature def')
    return servable.signatures[name]


# ---------------------------------------------------------------------------
# JSON -> tensors


def request_tensors(request: dict[str, Any], signature: Signature,
                    bools: bool = True) -> tuple[dict[str, np.ndarray], bool]:
    """The input arrays of a predict request, and whether it used the row format
    (`bools`: whether the request may hold JSON booleans)."""
    if not signature.inputs:
        raise _bad(f"Failed to get input map for signature: {signature.name}")
    if "instances" in request and "inputs" in request:
        raise _bad(f"JSON Value: {_shown(request)} Not formatted correctly expecting only "
                   "one of 'inputs' or 'instances' keys to exist ")
    if "instances" in request:
        columns = _row_columns(request["instances"], request, signature)
        row = True
    elif "inputs" in request:
        columns = _named_columns(request["inputs"], signature)
        row = False
    else:
        raise _bad("Missing 'inputs' or 'instances' key")
    arrays = {}
    for key, value in columns.items():
        arrays[key] = _array(value, signature.inputs[key], row, bools)
        _check_shape(arrays[key], signature, key, row)
    return arrays, row


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _row_columns(instances: Any, request: dict[str, Any],
                 signature: Signature) -> dict[str, list[Any]]:
    """`instances` (one entry per example) regrouped as one list per input."""
    if not isinstance(instances, list):
        raise _bad(f"JSON Value: {_shown(request)} Excepting 'instances' to be an list/array")
    if not instances:
        raise _bad(f"JSON Value: {_shown(request)} No values in 'instances' array")
    names = list(signature.inputs)
    if not _is_named(instances[0]):
        if len(names) > 1:
            raise _bad("instances is a plain list, but expecting list of objects as multiple "
                       "input tensors required as per tensorinfo_map")
        for i, item in enumerate(instances):
            if _is_named(item):
                raise _bad(f"Expecting value/list but got object at item {i} of input list")
        return {names[0]: instances}
    columns: dict[str, list[Any]] = {key: [] for key in names}
    wanted = set(names)
    for i, item in enumerate(instances):
        if not _is_named(item):
            raise _bad(f"Expecting object but got list at item {i} of input list")
        if item.keys() != wanted:
            raise _bad(f"Failed to process element: {i} of 'instances' list. JSON object: "
                       f"{_shown(item)} must only have keys: {','.join(sorted(names))}")
        for key in names:
            columns[key].append(item[key])
    return columns


def _named_columns(inputs: Any, signature: Signature) -> dict[str, Any]:
    """`inputs`: one value for a one-input signature, else an object keyed by input."""
    names = list(signature.inputs)
    if not _is_named(inputs):
        if len(names) > 1:
            raise _bad("inputs is a plain value/list, but expecting an object as multiple "
                       "input tensors required as per tensorinfo_map")
        return {names[0]: inputs}
    columns = {}
    for key in names:
        if key not in inputs:
            raise _bad(f"Missing named input: {key} in 'inputs' object.")
        columns[key] = inputs[key]
    return columns


def _array(value: Any, spec: Input, row: bool, bools: bool = True) -> np.ndarray:
    """A JSON value as an array of the input's dtype, refusing what TF Serving refuses."""
    if spec.kind == "S":
        return _string_array(value, row)
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):  # ragged lists
        raise _bad(_dense_problem(value, row, spec)) from None
    if array.size and not _fits(array, spec):
        raise _bad(_type_problem(value, spec))
    if bools and spec.kind != "b" and array.dtype.kind != "b" and array.size:
        if _first(value, lambda v: not isinstance(v, bool)) is not _NONE:
            raise _bad(_type_problem(value, spec))
    return array.astype(spec.dtype, copy=False)


def _fits(array: np.ndarray, spec: Input) -> bool:
    """Whether NumPy's reading of the JSON holds only values of the input's dtype: JSON
    integers in range for integer inputs, numbers for floating ones, booleans for bool."""
    kind = array.dtype.kind
    if spec.kind in "iu":
        limits = np.iinfo(spec.dtype)
        return kind in "iu" and limits.min <= array.min() and array.max() <= limits.max
    if spec.kind == "b":
        return kind == "b"
    if kind not in "iuf":
        return False
    if spec.kind == "f" and kind == "f":
        finite = np.abs(array[np.isfinite(array)])
        return not finite.size or finite.max() <= np.finfo(spec.dtype).max
    return True


def _string_array(value: Any, row: bool) -> np.ndarray:
    spec = Input(np.dtype(object), "string", None)

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(x) for x in item]
        if isinstance(item, str):
            return item.encode()
        if _is_b64(item):
            try:
                return base64.b64decode(item["b64"], validate=True)
            except ValueError:
                raise _bad("Unable to base64 decode") from None
        raise _bad(_type_problem(item, spec))

    converted = convert(value)
    shape = _dense_shape(converted)
    if _find_ragged(converted, shape, 0) is not None:
        raise _bad(_dense_problem(value, row, spec))
    array = np.empty(shape, dtype=object)
    if shape:
        # NumPy would read nested lists of bytes as a bytes array: fill element by element
        for index, item in zip(np.ndindex(*shape), _leaves(converted), strict=True):
            array[index] = item
    else:
        array[()] = converted
    return array


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _dense_shape(value: Any) -> tuple[int, ...]:
    """The shape a nested list claims along its first elements (as TF Serving reads it)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _find_ragged(value: Any, shape: tuple[int, ...], level: int) -> str | None:
    """Where a nested list departs from `shape`: TF Serving's message, or None."""
    if not isinstance(value, list):
        if level != len(shape):
            return (f"JSON Value: {_shown(value)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {len(shape)}")
        return None
    if level >= len(shape):
        return f"Encountered list at unexpected level: {level} expected < {len(shape)}"
    if len(value) != shape[level]:
        return (f"Encountered list at unexpected size: {len(value)} at level: {level} "
                f"expected size: {shape[level]}")
    for item in value:
        problem = _find_ragged(item, shape, level + 1)
        if problem:
            return problem
    return None


def _dense_problem(value: Any, row: bool, spec: Input) -> str:
    """Why a JSON value is not a dense tensor, worded as TF Serving words it."""
    if row and isinstance(value, list) and value:
        first = _dense_shape(value[0])
        for i, item in enumerate(value):
            problem = _find_ragged(item, _dense_shape(item), 0)
            if problem is None and _dense_shape(item) != first:
                problem = (f"Expecting shape {_shape_text(first)} but got: "
                           f"{_shape_text(_dense_shape(item))}")
            if problem:
                return f"Failed to process element: {i} of 'instances' list. Error: {problem}"
    problem = _find_ragged(value, _dense_shape(value), 0)
    if problem:
        return problem
    return _type_problem(value, spec)


def _type_problem(value: Any, spec: Input) -> str:
    """TF Serving's message for the first JSON value the input's dtype cannot take."""
    if spec.kind in "iu":
        limits = np.iinfo(spec.dtype)
        culprit = _first(value, lambda v: _is_integer(v) and limits.min <= v <= limits.max)
    elif spec.kind == "b":
        culprit = _first(value, lambda v: isinstance(v, bool))
    elif spec.kind == "S":
        culprit = _first(value, lambda v: isinstance(v, str) or _is_b64(v))
    else:
        culprit = _first(value, _is_number)
        if culprit is _NONE and spec.kind == "f":
            biggest = float(np.finfo(spec.dtype).max)
            culprit = _first(value, lambda v: not abs(v) > biggest or abs(v) == float("inf"))
            if culprit is not _NONE:
                return (f"Cannot convert JSON value: {culprit} to {spec.dtype_name} "
                        "without loss of precision.")
    if culprit is _NONE:
        return f"JSON Value: {_shown(value)} cannot be read as {spec.dtype_name}"
    return (f"JSON Value: {_shown(culprit)} Type: {_json_type(culprit)} is not of expected "
            f"type: {spec.dtype_name}")


_NONE = object()


def _first(value: Any, accepts: Callable[[Any], bool]) -> Any:
    """The first leaf of a nested list that `accepts` refuses, or _NONE."""
    return next((v for v in _leaves(value) if not accepts(v)), _NONE)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "[" + ",".join(str(-1 if d is None else d) for d in shape) + "]"


def _check_shape(array: np.ndarray, signature: Signature, key: str, row: bool) -> None:
    """Refuse what the signature cannot take before TensorFlow does, with a clear message."""
    wanted = signature.inputs[key].shape
    if wanted is None:
        return
    got = array.shape
    if len(got) == len(wanted) and all(
            w is None or w == g for w, g in zip(wanted, got, strict=True)):
        return
    if row:
        raise _bad(f"input `{key}`: {got[0]} instance{'s' * (got[0] != 1)} of shape "
                   f"{_shape_text(got[1:])}, but "
                   f"signature `{signature.name}` takes {_shape_text(wanted)} (the batch "
                   "first; -1: any size)")
    raise _bad(f"input `{key}` has shape {_shape_text(got)}, but signature "
               f"`{signature.name}` takes {_shape_text(wanted)} (-1: any size)")


# ---------------------------------------------------------------------------
# Running the signature, and tensors -> JSON


def run_signature(signature: Signature, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call the SavedModel's signature function (thread-safe) on the arrays."""
    import tensorflow as tf

    try:
        results = signature.function(**arrays)
    except tf.errors.OpError as exc:
        status = 400 if isinstance(exc, (tf.errors.InvalidArgumentError,
                                         tf.errors.FailedPreconditionError,
                                         tf.errors.OutOfRangeError)) else 500
        raise ApiError(status, _first_line(exc.message)) from None
    except (TypeError, ValueError) as exc:  # inputs the function's specs refuse
        raise _bad(_first_line(str(exc))) from None
    return {key: value.numpy() for key, value in results.items()}


def _first_line(message: str) -> str:
    """TensorFlow's error without the graph's node names and stack."""
    line = message.strip().split("\n")[0]
    return re.sub(r"\{\{function_node [^}]*\}\}\s*", "", line)


def response_json(outputs: dict[str, np.ndarray], row: bool) -> dict[str, Any]:
    """TF Serving's response: `predictions` (row) or `outputs` (columnar); bare values
    for one output, objects keyed by output name for several."""
    names = sorted(outputs)
    if not row:
        values = {key: _json_values(key, outputs[key]) for key in names}
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    batch = None
    for key in names:
        array = outputs[key]
        if array.ndim == 0:
            raise _bad(f"Tensor name: {key} has no shape information ")
        if array.shape[0] < 1:
            raise _bad(f"Tensor name: {key} has invalid batch size: {array.shape[0]}")
        if batch is not None and array.shape[0] != batch:
            raise _bad(f"Tensor name: {key} has inconsistent batch size: {array.shape[0]} "
                       f"expecting: {batch}")
        batch = array.shape[0]
    columns = [_json_values(key, outputs[key]) for key in names]
    if len(names) == 1:
        return {"predictions": columns[0]}
    return {"predictions": [dict(zip(names, item, strict=True))
                            for item in zip(*columns, strict=True)]}


def _json_values(key: str, array: np.ndarray) -> Any:
    kind = array.dtype.kind
    if kind == "f":
        if array.dtype != np.float64:
            # float32's shortest decimal form (0.1, not 0.10000000149011612), as TF Serving
            # writes it; NaN and infinities survive the round trip through text
            array = array.astype(np.float32).astype(str).astype(np.float64)
        return array.tolist()
    if kind in "iub":
        return array.tolist()
    if kind in "OSU":
        # DT_STRING: text, or {"b64": ...} for outputs named *_bytes (TF Serving's rule)
        as_bytes = key.endswith("_bytes")
        if not array.ndim:
            return _string_value(array[()], as_bytes)
        return np.frompyfunc(lambda v: _string_value(v, as_bytes), 1, 1)(array).tolist()
    raise _bad(f"Failed to write JSON value for tensor type: {array.dtype}")


def _string_value(value: Any, as_bytes: bool) -> Any:
    raw = value if isinstance(value, bytes) else str(value).encode()
    if as_bytes:
        return {"b64": base64.b64encode(raw).decode("ascii")}
    return raw.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------
# HTTP


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every answer is JSON, errors included."""

    protocol_version = "HTTP/1.1"
    server_version = f"tfspec-serve/{__version__}"
    disable_nagle_algorithm = True  # small JSON answers must not wait for delayed ACKs
    timeout = 120  # an idle or stalled connection frees its thread
    unread_body = False
    server: ModelServer

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _answer(self) -> None:
        try:
            body = self._read_body()
            status, payload, headers = self.server.api.handle(self.command, self.path, body)
        except ApiError as exc:
            status, payload, headers = exc.status, error_body(exc.message), []
        except Exception as exc:  # a bug in tfspec: an answer, and one line on stderr
            print(f"tfspec serve: internal error on {self.command} {self.path}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            status, payload, headers = 500, error_body(f"Internal: {exc}"), []
        self._send(status, payload, headers)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._content_length()
        return self.rfile.read(length) if length else b""

    def _content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None:
            return 0
        try:
            length = int(text)
            if length < 0:
                raise ValueError(text)
        except ValueError:
            self.close_connection = self.unread_body = True
            raise _bad(f"Invalid Content-Length: {text}") from None
        self._check_size(length)
        return length

    def _check_size(self, length: int) -> None:
        limit = self.server.max_body_bytes
        if length > limit:
            # the body stays unread: answer, then end the connection (see _send)
            self.close_connection = self.unread_body = True
            raise ApiError(413, f"Request body of {length} bytes exceeds the limit of "
                                f"{limit} bytes")

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = self.unread_body = True
                raise _bad("Malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            self._check_size(total)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def handle_expect_100(self) -> bool:
        # refuse an oversized body before the client sends it (curl asks for big bodies)
        try:
            self._content_length()
        except ApiError as exc:
            self._send(exc.status, error_body(exc.message), [])
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        # malformed request lines and unknown methods: JSON too, not the default HTML
        self.close_connection = True
        self._send(code, error_body(message or self.responses.get(code, ("Error",))[0]), [])

    def _send(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers:
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if self.unread_body:
            self._discard_input()

    def _discard_input(self) -> None:
        """Closing a socket with unread input resets the connection, and the client may
        lose the answer with it: half-close, and drop what it still sends (for 2 s)."""
        self.unread_body = False
        deadline = time.monotonic() + 2
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            while time.monotonic() < deadline and self.connection.recv(1 << 16):
                pass
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)


class ModelServer(ThreadingHTTPServer):
    """A thread per connection, over one loaded model."""

    daemon_threads = True  # Ctrl-C does not wait for idle keep-alive connections
    request_queue_size = 128  # eight clients connecting at once must not overflow

    def __init__(self, address: tuple[str, int], api: RestApi,
                 max_body_bytes: int = DEFAULT_MAX_BODY, log_requests: bool = False) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn): slow offline
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that vanished mid-answer is not worth a traceback
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            print(f"tfspec serve: error while answering {client_address[0]}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def make_server(path: str | os.PathLike[str], host: str = DEFAULT_HOST,
                port: int = DEFAULT_PORT, name: str | None = None,
                max_body_bytes: int = DEFAULT_MAX_BODY, workers: int | None = None,
                log_requests: bool = False) -> ModelServer:
    """Load the export at `path` and bind (port 0: a free one); call `serve_forever()`
    on the result (in a thread, for tests) and `shutdown()` + `server_close()` after.
    `workers`: predict requests run at once (default: one per two CPUs)."""
    model = load_model(find_export(path, name))
    try:
        return ModelServer((host, port), RestApi(model, workers), max_body_bytes,
                           log_requests)
    except (OSError, OverflowError) as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from None


def serve(path: str | os.PathLike[str], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          name: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
          workers: int | None = None, log_requests: bool = False,
          out: TextIO | None = None) -> None:
    """Serve the export at `path` until Ctrl-C (or SIGTERM); raises ServeError when
    PATH, the name or the address cannot be served."""
    server = make_server(path, host, port, name, max_body_bytes, workers, log_requests)
    model = server.api.model
    versions = ", ".join(str(v) for v in model.versions)
    print(f"serving {model.name} (version{'s' * (len(model.versions) > 1)} {versions}, "
          f"default {model.latest.version}) from {model.base} at "
          f"{server.url}/v1/models/{model.name} - Ctrl-C to stop",
          file=out or sys.stdout, flush=True)
    previous = _stop_on_sigterm()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm() -> Any:
    """SIGTERM (docker stop, kill) ends the server as Ctrl-C does; the previous handler."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


class _CallableModule(types.ModuleType):
    """`import tfspec; tfspec.serve(path)`: the package attribute is this module (Python
    binds submodules there), so the module answers calls as the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        serve(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["ApiError", "Export", "Model", "ModelServer", "RestApi", "ServeError",
           "find_export", "load_model", "make_server", "serve"]
