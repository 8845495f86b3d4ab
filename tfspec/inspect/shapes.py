"""Shapes for the editor and for CI: what Keras makes of each statement of a spec.

`spec_shapes` builds the model of a checked spec exactly as `compile --check` does
(the real program's `build_model()`, no data: layers that adapt stay unadapted) and
reports, per model and block statement, the output shape of the tensor it binds and
the parameters of the layers it creates, the model's total, and the located errors
of a model Keras cannot build (E500, the same text as `compile --check`).

Where a statement's tensor comes from: functional code binds each statement's
tensor to a local variable of a generated function (`Generator.bindings`); the
build runs with a trace function that keeps those functions' locals when they
return (or raise, so the statements before a failing layer keep their shapes).
A block's function returns once per use, so a block statement has one shape per
use. A sequential model's statement is one layer, read from the model (or, when
the build fails, from the `layers` list being built). A subclassed model hides its
dataflow in `call()`: its statements' shapes come from its functional twin
(`plan.functional_twin`, which fails at the same layer); its total and its errors
from the real subclassed model. Parameters are counted per Keras layer and
attributed to the statement that constructs it (`plan.Locator`), and, for a layer
inside a block, to each statement of a use on the way up.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from ..codegen.program import API, Compiled, compile_result
from ..lang.diagnostics import Diagnostic, Span, SpecError
from ..lang.ir import resolve, statement_kind
from ..lang.validate import Result, validate_text
from .plan import Locator, functional_twin, shape_text


@dataclass
class Use:
    """A statement's tensor in one use: the model's, or one block use's."""

    shape: Any  # Keras's shape (a tuple; a list of tuples for several tensors); None: unknown
    params: int = 0  # weights of the layers the statement creates (in this use)
    use: str | None = None  # the block use's Keras name (None in the model)
    span: Span | None = None  # where the block is used


@dataclass
class Statement:
    """A model or block statement and what Keras made of it."""

    at: str  # its JSON pointer: /model/body/N or /blocks/K/body/N
    span: Span | None
    uses: list[Use] = field(default_factory=list)
    name: str | None = None  # the input, node, output or layer it declares


@dataclass
class Shapes:
    """The statements' shapes, the model's total and the errors Keras raised."""

    statements: list[Statement] = field(default_factory=list)
    params: int | None = None  # the model's total (count_params()), when it builds
    trainable: int | None = None
    model_span: Span | None = None  # the model's name in its header
    diagnostics: list[Diagnostic] = field(default_factory=list)


def text_shapes(text: str, filename: str = "<spec>") -> Shapes:
    """The shapes of a spec's text (`filename` tells DSL from JSON and where its files
    are); nothing when the checker rejects it (its own diagnostics say why)."""
    return spec_shapes(validate_text(text, filename))


def spec_shapes(result: Result) -> Shapes:
    """The shapes of a checked spec: build its model with Keras (see the module's text)."""
    from ..jobs.build import BuildError, build_model, load_program

    if not result.ok or result.ir is None or not isinstance(result.ir.get("model"), dict):
        return Shapes()
    compiled = compile_result(result)
    shapes = Shapes(model_span=compiled.positions.value("/model/name"))
    try:
        namespace = load_program(compiled)
    except SpecError as error:  # a file the model loads is missing; the program fails
        shapes.diagnostics = list(error.diagnostics)
        return shapes
    kind = compiled.ir["model"].get("kind")
    model = None
    with _Returns(compiled) as returns:
        try:
            model = build_model(compiled, namespace)
        except BuildError as error:
            shapes.diagnostics = list(error.diagnostics)
    if model is not None and model.built:
        shapes.params = int(model.count_params())
        shapes.trainable = _count(model.trainable_weights)
    detail, detail_model = compiled, model
    if kind == "subclass":  # its dataflow, and its layers, from its functional twin
        detail = functional_twin(compiled, compiled.overrides)
        detail_model = None
        with _Returns(detail) as returns:
            try:
                detail_model = build_model(detail, load_program(detail, builds_model=False))
            except BuildError:
                pass  # it fails where the real model did: that error is reported
    if kind == "sequential":
        layers = _sequential_layers(detail_model, returns)
        _sequential_shapes(shapes, detail, layers)
        built = [x for x in layers if _has_weights(x)]
    else:
        _functional_shapes(shapes, detail, returns)
        built = _functional_layers(returns)
    _add_params(shapes, detail, built)
    for stmt in shapes.statements:
        # a data.preprocess item is a call: it declares no name
        name = statement_kind(resolve(compiled.ir, stmt.at))[1]
        stmt.name = name if isinstance(name, str) else None
    return shapes


# -- the locals of generated functions as they return ------------------------------------------


@dataclass
class _Return:
    function: str
    locals: dict[str, Any]
    caller_line: int | None  # the generated line that called it (for a block: the use)


class _Returns(contextlib.AbstractContextManager):
    """Trace the generated functions of `compiled` (build_model and the block functions)
    and keep their locals when they return, in order; other code runs untraced."""

    def __init__(self, compiled: Compiled):
        self.filename = compiled.filename
        self.functions = {f for f, _ in compiled.bindings.values()} | {API.build_model}
        self.found: list[_Return] = []
        self._previous: Any = None

    def __enter__(self) -> list[_Return]:
        self._previous = sys.gettrace()
        sys.settrace(self._call)
        return self.found

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code.co_filename == self.filename and code.co_name in self.functions:
            return self._local
        return None  # untraced: Keras runs at full speed

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return":  # also when it raises (then `arg` is None)
            caller = frame.f_back
            line = caller.f_lineno if caller and caller.f_code.co_filename == self.filename \
                else None
            self.found.append(_Return(frame.f_code.co_name, dict(frame.f_locals), line))
        return self._local


def _functional_shapes(shapes: Shapes, compiled: Compiled, returns: list[_Return]) -> None:
    """Each bound statement's tensor: the model's from build_model's locals, a block's
    from each return of its function (a use)."""
    by_function: dict[str, list[_Return]] = {}
    for ret in returns:
        by_function.setdefault(ret.function, []).append(ret)
    for at, (function, var) in compiled.bindings.items():
        stmt = Statement(at, compiled.positions.value(at))
        model = function == API.build_model
        for ret in by_function.get(function, []):
            if var not in ret.locals:
                continue  # the build failed before this statement
            value = ret.locals[var]
            if model and at.startswith("/model/") and statement_kind(
                    resolve(compiled.ir, at))[0] == "input":
                value = _input_of(value)  # data.preprocess reassigns the input's variable
            use = None if model else ret.locals.get("name")
            span = None if model else compiled.spec_span(ret.caller_line)
            stmt.uses.append(Use(_shape(value), 0, use if isinstance(use, str) else None, span))
        if stmt.uses:
            shapes.statements.append(stmt)
    shapes.statements.sort(key=lambda s: _order(compiled, s.at))


def _functional_layers(returns: list[_Return]) -> list[Any]:
    """The layers the traced functions called, from their tensors' histories."""
    import keras

    layers: dict[int, Any] = {}
    stack = [v for ret in returns for v in ret.locals.values()]
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple)):
            stack += value
            continue
        if isinstance(value, dict):
            stack += value.values()
            continue
        if not isinstance(value, keras.KerasTensor) or id(value) in seen:
            continue
        seen.add(id(value))
        history = getattr(value, "_keras_history", None)
        if history is None:
            continue
        layer = history.operation
        if isinstance(layer, keras.Layer):  # not an op (`x != 0` is keras.ops' NotEqual)
            layers.setdefault(id(layer), layer)
        node = layer._inbound_nodes[history.node_index]
        stack += node.input_tensors
    return list(layers.values())


def _input_of(value: Any) -> Any:
    """The `keras.Input` tensor a tensor was computed from (one input: preprocessing)."""
    for _ in range(1000):
        history = getattr(value, "_keras_history", None)
        if history is None:
            return value
        node = history.operation._inbound_nodes[history.node_index]
        if node.is_input or not node.input_tensors:
            return value
        value = node.input_tensors[0]
    return value


# -- sequential models -------------------------------------------------------------------------


def _sequential_layers(model: Any, returns: list[_Return]) -> list[Any]:
    """The layers of a sequential program, its `keras.Input` first: the model's, or
    the `layers` list build_model() was making when Keras failed."""
    for ret in reversed(returns):
        if ret.function == API.build_model and isinstance(ret.locals.get("layers"), list):
            return ret.locals["layers"]
    return list(model.layers) if model is not None else []


def _sequential_shapes(shapes: Shapes, compiled: Compiled, layers: list[Any]) -> None:
    import keras

    by_name = {layer.name: layer for layer in layers if isinstance(layer, keras.Layer)}
    body = compiled.ir["model"].get("body") or []
    infos = {info.at: info for info in compiled.layers}
    for i, stmt in enumerate(body):
        at = f"/model/body/{i}"
        shape = None
        if statement_kind(stmt)[0] == "input":
            first = layers[0] if layers else None
            shape = _shape(first) if isinstance(first, keras.KerasTensor) else None
        elif (info := infos.get(f"{at}/add")) is not None and info.name in by_name:
            layer = by_name[info.name]
            if layer._inbound_nodes:  # Keras called it: it was built
                outputs = layer._inbound_nodes[0].outputs
                shape = _shape(outputs[0] if len(outputs) == 1 else outputs)
        if shape is not None:
            shapes.statements.append(Statement(at, compiled.positions.value(at),
                                               [Use(shape)]))


# -- parameters --------------------------------------------------------------------------------


def _add_params(shapes: Shapes, compiled: Compiled, layers: list[Any]) -> None:
    """Add each layer's weights to the statement that constructs it, and, inside
    blocks, to the statement of each use on the way up (per use)."""
    locator = Locator(compiled)
    by_at = {s.at: s for s in shapes.statements}
    for layer in layers:
        count = _count(layer.weights)
        if not count:
            continue
        origin = locator.locate(layer.name)
        if origin.info is None:
            continue
        # (construction pointer, the use name of the scope it sits in) per level
        chain = origin.chain
        levels = [(info.at, chain[k - 1][0] if k else None) for k, (_, info) in
                  enumerate(chain)]
        levels.append((origin.info.at, chain[-1][0] if chain else None))
        for at, use in levels:
            stmt = by_at.get(_statement_of(at))
            if stmt is None:  # a `layer` statement (no tensor): its own entry
                stmt = by_at[_statement_of(at)] = Statement(
                    _statement_of(at), compiled.positions.value(_statement_of(at)))
                shapes.statements.append(stmt)
            target = next((u for u in stmt.uses if u.use == use), None)
            if target is None:
                target = Use(None, 0, use)
                stmt.uses.append(target)
            target.params += count
    shapes.statements.sort(key=lambda s: _order(compiled, s.at))


def _has_weights(layer: Any) -> bool:
    return bool(getattr(layer, "weights", None))


def _count(weights: list[Any]) -> int:
    seen: set[int] = set()
    total = 0
    for w in weights:
        if id(w) not in seen:
            seen.add(id(w))
            total += math.prod(w.shape)
    return total


# -- small helpers -----------------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """Keras's shape of a tensor (a tuple), of several (a list), else None."""
    if isinstance(value, (list, tuple)):
        inner = [_shape(v) for v in value]
        return None if any(s is None for s in inner) or not inner else inner
    if isinstance(value, dict):
        return _shape(list(value.values()))
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "dtype"):
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _statement_of(at: str) -> str:
    """The statement a pointer lies in: /model/body/N or /blocks/K/body/N."""
    parts = at.split("/")
    if parts[1] == "model":
        return "/".join(parts[:4])
    return "/".join(parts[:5]) if parts[1] == "blocks" else at  # data.preprocess: the item


def _order(compiled: Compiled, at: str) -> tuple[int, int]:
    span = compiled.positions.value(at)
    return (span.line, span.col) if span else (0, 0)


# -- as text: Keras's notation -----------------------------------------------------------------


def params_text(count: int) -> str:
    return f"{count:,} param{'s' * (count != 1)}"


def use_text(use: Use) -> str:
    """`(None, 8, 8, 16), 160 params` (the shape, then the weights when there are some)."""
    parts = [shape_text(use.shape)] if use.shape is not None else []
    if use.params:
        parts.append(params_text(use.params))
    return ", ".join(parts)


def statement_label(stmt: Statement) -> str:
    """What an inlay hint after the statement says: its shape and its parameters. A
    block statement lists the shapes of its uses, each once, in use order (`a | b`:
    the same shape at every use reads as one), and its parameters as one count when
    every use has as many, else as the range (the tooltip has each use's)."""
    shapes: list[str] = []
    for use in stmt.uses:
        if use.shape is not None and shape_text(use.shape) not in shapes:
            shapes.append(shape_text(use.shape))
    parts = [" | ".join(shapes)] if shapes else []
    counts = [u.params for u in stmt.uses]
    if any(counts):
        low, high = min(counts), max(counts)
        parts.append(params_text(high) if low == high else f"{low:,}–{high:,} params")
    return ", ".join(parts)


def statement_tooltip(stmt: Statement) -> str | None:
    """Per use of a block statement: where the block is used, and what it makes there."""
    uses = [u for u in stmt.uses if u.use is not None]
    if len(uses) < 2:
        return None
    lines = [f"- `{u.use}`" + (f" (line {u.span.line})" if u.span else "") + f": {use_text(u)}"
             for u in uses]
    return "Per use of the block:\n" + "\n".join(lines)


def to_json(shapes: Shapes) -> dict[str, Any]:
    """A JSON-ready form (the shape worker's answer): positions are the checker's
    (1-based line:col of the normalized text)."""

    def span(s: Span | None) -> list[int] | None:
        return list(s) if s else None

    return {
        "statements": [
            {"at": s.at, "name": s.name, "span": span(s.span), "label": statement_label(s),
             "tooltip": statement_tooltip(s),
             "uses": [{"shape": u.shape, "params": u.params, "use": u.use,
                       "span": span(u.span)} for u in s.uses]}
            for s in shapes.statements
        ],
        "params": shapes.params,
        "trainable": shapes.trainable,
        "model_span": span(shapes.model_span),
        "diagnostics": [d.to_dict() for d in shapes.diagnostics],
    }


def check_shapes(result: Result) -> list[Diagnostic]:
    """`validate --shapes`: the errors Keras raises building a checked spec's model."""
    return spec_shapes(result).diagnostics
