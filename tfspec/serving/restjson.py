"""TF Serving's REST JSON format: predict requests in, predictions and errors out.

Pure functions on a request's JSON, NumPy arrays and a `Signature`, no HTTP: the
row (`instances`) and columnar (`inputs`) formats with `{"b64": ...}` strings, refused
as TF Serving refuses them, with its messages (`ApiError`: an HTTP status and the
message); `run_signature` calls the SavedModel's function; `response_json` writes
`predictions` or `outputs` as TF Serving does; `error_body` is `{"error": "..."}`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from .servables import Input, Signature

DEFAULT_SIGNATURE = "serving_default"
_SHOWN_CHARS = 200  # of a JSON value quoted in an error message


class ApiError(Exception):
    """A request TF Serving would refuse: its HTTP status and its error message.

    Not a TfspecError: the server turns it into the HTTP response the client reads;
    it never reaches the command line (one that did would be a bug, status 2)."""

    def __init__(self, status: int, message: str, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.allow = allow  # for 405: the method this URL takes


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def error_body(message: str) -> bytes:
    """TF Serving's error response: `{"error": "..."}`."""
    return dumps({"error": message})


def dumps(value: Any, indent: int | None = None) -> bytes:
    """JSON as TF Serving writes it: NaN and Infinity as the bare tokens."""
    return json.dumps(value, indent=indent).encode()


# ---------------------------------------------------------------------------
# The request


def parse_request(body: bytes) -> dict[str, Any]:
    """A request body's JSON object, or TF Serving's parse error."""
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


def signature_for(request: dict[str, Any], signatures: Mapping[str, Signature]) -> Signature:
    """The signature a request names (`signature_name`; `serving_default` when empty)."""
    name = request.get("signature_name", "")
    if not isinstance(name, str):
        raise _bad(f"JSON Value: {_shown(request)} not formatted correctly. "
                   "'signature_name' key must be a string value.")
    name = name or DEFAULT_SIGNATURE
    if name not in signatures:
        raise _bad(f'Serving signature name: "{name}" not found in signature def')
    return signatures[name]


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
        return _string_array(value, spec, row)
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


def _string_array(value: Any, spec: Input, row: bool) -> np.ndarray:

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
