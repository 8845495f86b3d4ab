"""Run generated code, and report what Keras rejects at the spec's own lines.

This is the one place (with the commands that train and export) that imports
TensorFlow. Like Jinja2's `debug.py`, it reads the traceback of an exception
raised by generated code, finds the deepest generated line, and maps it through
the line table back to the spec: `model.tfspec:12:5: error[E500]: …`.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import re
import sys
import tempfile
import types
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..codegen.model import LayerInfo
from ..codegen.program import API, Compiled
from ..lang.diagnostics import Diagnostics, Span, SpecError
from ..lang.ir import declared, resolve
from ..lang.missing_files import missing_files
from ..lang.validate import Result


@contextlib.contextmanager
def diverted(fds: Iterable[int]) -> Iterator[IO[bytes]]:
    """Send what is written to these OS file descriptors (C++ logs included) to a
    temporary file for the block, which is yielded; descriptors that do not exist are
    left alone. Python's own streams are flushed first: what they held stays."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile() as sink:
        try:
            for fd in fds:
                try:
                    saved.append((fd, os.dup(fd)))
                except OSError:
                    continue
                os.dup2(sink.fileno(), fd)
            yield sink
        finally:
            for fd, copy in reversed(saved):
                os.dup2(copy, fd)
                os.close(copy)


def quiet_tensorflow() -> None:
    """Import Keras (and TensorFlow) without their C++ start-up chatter on stderr.

    TensorFlow's native libraries log before absl's logging is initialised, so
    TF_CPP_MIN_LOG_LEVEL cannot silence them: stderr is diverted during the
    import and replayed only if the import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured)
        import keras  # noqa: F401
        return
    failure = None
    with diverted([fd]) as log:
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # probes CUDA, which logs when absent
        except BaseException as exc:
            failure = exc
            log.seek(0)
            chatter = log.read().decode(errors="replace")
    if failure is not None:
        sys.stderr.write(chatter)  # the import failed: what it said explains why
        raise failure


def load_program(compiled: Compiled, builds_model: bool = True) -> dict[str, Any]:
    """Execute the generated module; returns its namespace.

    `builds_model`: whether the caller builds the model, whose files (`load_model`,
    `TFSMLayer`) are then looked for first, before TensorFlow starts."""
    if builds_model:
        missing = missing_files(compiled.spec_file, compiled.spec_source, compiled.ir,
                                compiled.positions, compiled.overrides)
        if missing is not None:
            raise missing
    quiet_tensorflow()
    module = types.ModuleType("tfspec_program")
    # AutoGraph (tf.data map functions) reads the program's source and module
    linecache.cache[compiled.filename] = (
        len(compiled.source), None, compiled.source.splitlines(True), compiled.filename)
    sys.modules[module.__name__] = module
    # the program finds data relative to its own file: run it as if beside the spec
    spec_dir = Path(compiled.spec_file).resolve().parent
    module.__file__ = str(spec_dir / "program.py")
    if str(spec_dir) not in sys.path:  # allowed generator modules live beside the spec
        sys.path.insert(0, str(spec_dir))
    code = compile(compiled.source, compiled.filename, "exec")
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        raise located_error(exc, compiled) from None
    return module.__dict__


class BuildError(SpecError):
    """E500: Keras cannot build the model. `built`: a Keras model of the layers it did
    build before the failing one, when the caller asked for it (else None)."""

    def __init__(self, error: SpecError, built: Any = None):
        super().__init__(error.diagnostics, error.source)
        self.built = built


def build_model(compiled: Compiled, namespace: dict[str, Any] | None = None,
                partial: bool = False) -> Any:
    """The Keras model of a compiled spec; Keras errors become located SpecErrors.

    `namespace`: the program, when the caller has loaded it already. `partial`: on
    an error, also make the model of the layers built before it (`BuildError.built`).
    """
    namespace = namespace or load_program(compiled)
    try:
        with quiet_failed_build():
            return namespace[API.build_model]()
    except Exception as exc:
        error = located_error(exc, compiled)
        raise BuildError(error, built_part(exc, compiled) if partial else None) from None


@contextlib.contextmanager
def quiet_failed_build() -> Iterator[None]:
    """Leave out the two warnings Keras gives before a subclassed model's `call()`
    fails on symbolic inputs: the located error that follows says what failed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Layer '.*' looks like it has unbuilt state")
        warnings.filterwarnings("ignore", message=r"`build\(\)` was called on layer '.*', however")
        yield


def built_part(exc: BaseException, compiled: Compiled) -> Any:
    """A Keras model of what the program built before `exc` (None if no layer was).

    It is read from the generated frames of the traceback: a sequential model's
    layers before the one that failed, or the tensors a functional program (and the
    block function it was in) computed so far, all of them outputs.
    """
    import keras

    tensors: list[Any] = []
    for frame, _ in _generated(exc, compiled):
        for value in frame.f_locals.values():
            items = value.values() if isinstance(value, dict) else (
                value if isinstance(value, (list, tuple)) else [value])
            tensors += [t for t in items if isinstance(t, keras.KerasTensor)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _kind(compiled) == "sequential":
                return _sequential_part(exc, compiled)
            return _functional_part(tensors, compiled)
    except Exception:  # what could be built is a help, not the error: never hide that
        return None


def _kind(compiled: Compiled) -> str | None:
    return (compiled.ir.get("model") or {}).get("kind")


def _sequential_layers(exc: BaseException, compiled: Compiled) -> list[Any] | None:
    """The `layers` list of a sequential program's `build_model()`, when `exc` was
    raised by its `keras.Sequential(layers, …)` (None otherwise)."""
    frames = _generated(exc, compiled)
    if _kind(compiled) != "sequential" or not frames or (
            frames[-1][0].f_code.co_name != API.build_model):
        return None
    layers = frames[-1][0].f_locals.get("layers")  # unset if a layer's construction raised
    return layers if isinstance(layers, list) else None


def _uncalled(layers: list[Any]) -> int | None:
    """The index of the first layer (input aside) that Keras did not get to call.

    Building a Sequential calls its layers in order, and a call that raises leaves no
    node on its layer: that layer is the one Keras could not build."""
    import keras

    for i, layer in enumerate(layers):
        if isinstance(layer, keras.Layer) and not isinstance(layer, keras.layers.InputLayer) and (
                not layer._inbound_nodes):
            return i
    return None


def _sequential_part(exc: BaseException, compiled: Compiled) -> Any:
    """The layers before the failing one, as a new `keras.Sequential`."""
    import keras

    layers = _sequential_layers(exc, compiled)
    index = _uncalled(layers) if layers else None
    if layers is None or index is None:
        return None
    built = layers[:index]
    if not any(isinstance(layer, keras.Layer) for layer in built):  # the input alone
        return None
    return keras.Sequential(built, name=compiled.ir["model"]["name"])


def _functional_part(tensors: list[Any], compiled: Compiled) -> Any:
    """A functional model from the inputs the tensors come from to the tensors."""
    import keras

    inputs: dict[int, Any] = {}
    seen: set[int] = set()
    stack = list(tensors)
    while stack:  # walk the graph back to its inputs
        tensor = stack.pop()
        history = getattr(tensor, "_keras_history", None)
        if history is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        node = history.operation._inbound_nodes[history.node_index]
        if node.is_input:
            inputs[id(tensor)] = tensor
        else:
            stack += node.input_tensors
    outputs = {id(t): t for t in tensors if id(t) not in inputs}
    if not inputs or not outputs:
        return None
    order = declared(compiled.ir["model"]["body"], "input")

    def rank(tensor: Any) -> int:
        name = tensor._keras_history.operation.name
        return order.index(name) if name in order else len(order)

    return keras.Model(sorted(inputs.values(), key=rank), list(outputs.values()),
                       name=compiled.ir["model"]["name"])


def _generated(exc: BaseException, compiled: Compiled) -> list[tuple[types.FrameType, int]]:
    """(frame, line) of each frame of generated code in the exception's traceback,
    outermost first (the runtime's frames are not: their errors belong to the program
    line that called it)."""
    found = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == compiled.filename:
            found.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return found


def generated_line(exc: BaseException, compiled: Compiled) -> int | None:
    """The deepest line of generated code in the exception's traceback."""
    frames = _generated(exc, compiled)
    return frames[-1][1] if frames else None


def one_line(text: str) -> str:
    """A Keras/TensorFlow message on one line: no ANSI colours, no "Exception
    encountered when calling …" or "Could not automatically infer …" preamble, no
    "Arguments received by …" dump."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = text.split("\n\nArguments received by")[0]
    # a subclassed model's `call()` failing on symbolic inputs: Keras wraps the
    # layer's own message in advice about `compute_output_spec()`, and in a preamble
    # per `call()` it went through
    preamble = (r"^(Exception encountered when calling [\w.]+\(\)\.|Could not automatically "
                r"infer the output shape / dtype of .*?Error encountered:)\s*")
    text = text.strip()
    while re.match(preamble, text, flags=re.S):
        text = re.sub(preamble, "", text, count=1, flags=re.S)
    text = text.replace(" with name 'None'", "")  # Keras 3's name for an unnamed tensor
    text = re.sub(r"\s*\n\s*", " ", text).strip()
    return text if len(text) <= 400 else text[:397] + "…"


def keras_message(exc: BaseException) -> str:
    """Keras's message, first paragraph, without the noise of its call-stack dump."""
    text = str(exc).strip() or type(exc).__name__
    text = text.split("\n\nArguments received by")[0]
    # TensorFlow wraps errors raised inside tf.data / tf.function with its plumbing
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)
    text = text.split("Traceback (most recent call last)")[0].strip()
    if "Detected at node" in text:
        # a graph-execution error: its cause is the last line that is not stack dump
        causes = [line.strip() for line in text.splitlines() if line.strip()
                  and not line.startswith((" ", "\t", "Detected at node", "Graph execution",
                                           "[["))]
        text = causes[-1] if causes else text
        text = re.sub(r"\s*\[\[\{\{node.*$", "", text)
    return one_line(text)


def located_error(exc: BaseException, compiled: Compiled, code: str = "E500",
                  what: str | None = None, origin: Result | None = None,
                  at: str | None = None) -> SpecError:
    """A SpecError at the spec location of the generated line that raised `exc`.

    E500 (the default) words it as Keras failing to build a layer; other codes
    (E501, the data) give their own `what`. An exception raised while the program
    builds the model is E500 whatever the caller expected: loading synthetic data
    and training call `build_model()` too. `origin`: the user's checked spec when
    `compiled` is a dry run's copy of it; the error is reported at the same place
    in the user's file (the copy is thrown away) where the copy did not change it.
    `at`: the JSON pointer of the spec node to report at, for an error of runtime code
    that no program line stands for (the backup callback's, raised inside `fit`).
    """
    span = _span(exc, compiled) if at is None else compiled.positions.value(at)
    if _building(exc, compiled):
        code = "E500"
    layer = _layer_name(_layer_at(compiled, span), exc, compiled) if code == "E500" else None
    spec_file, source = compiled.spec_file, compiled.spec_source
    mapped = _in_origin(span, compiled, origin) if origin else None
    if origin and mapped:
        span, spec_file, source = mapped, origin.file, origin.source
    diags = Diagnostics(spec_file)
    if code != "E500":
        diags.add(code, f"{what}: {keras_message(exc)}" if what else keras_message(exc), span,
                  hint=_tfsm_hint(exc))
        return SpecError(diags, source)
    what = f"`{layer}`" if layer else "the model"
    diags.add(
        "E500",
        f"Keras cannot build {what}: {keras_message(exc)}",
        span,
        hint=_hint(exc),
    )
    return SpecError(diags, source)


def _span(exc: BaseException, compiled: Compiled) -> Span | None:
    """The spec span of the generated line that raised `exc`; for `keras.Sequential(…)`,
    of the layer it failed on."""
    span = compiled.spec_span(generated_line(exc, compiled))
    layers = _sequential_layers(exc, compiled)
    index = _uncalled(layers) if layers else None
    if layers is not None and index is not None:
        span = next((compiled.positions.value(info.at) for info in compiled.layers
                     if info.name == layers[index].name), span)
    # a layer name used twice (Functional's message, then Sequential's)
    duplicate = re.search(r'name "([^"]+)" is used \d+ times|Name \'([^\']+)\' is already the '
                          r"name of a layer", str(exc))
    for info in compiled.layers if duplicate else ():
        if info.name in duplicate.groups() and not info.template:
            span = compiled.positions.value(info.at)  # the second layer of that name
    return span


def _building(exc: BaseException, compiled: Compiled) -> bool:
    """Whether `exc` was raised while the program built its model."""
    return any(f.f_code.co_name == API.build_model for f, _ in _generated(exc, compiled))


def _in_origin(span: Span | None, compiled: Compiled, origin: Result) -> Span | None:
    """The span in `origin` of the same part of the IR as `span` in `compiled` (a dry
    run's copy of it), or None where the copy changed what is there (its synthetic
    data, its list of callbacks): the user's file would point at something else."""
    pointers = [p for p, s in compiled.positions.values.items() if s == span]
    if span is None or not pointers:
        return None
    pointer = max(pointers, key=len)  # the innermost part
    copied = ("/model", "/blocks", "/params", "/data/preprocess", "/data/augment")
    if not pointer.startswith(copied):
        if pointer.startswith("/data"):
            return None
        parts = pointer.split("/")
        for i, part in enumerate(parts):  # a list item is the same only if its list is
            prefix = "/".join(parts[:i])
            if part.isdigit() and resolve(compiled.ir, prefix) != resolve(origin.ir, prefix):
                return None
    return origin.positions.value(pointer)


def _layer_at(compiled: Compiled, span: Any) -> LayerInfo | None:
    """The layer whose construction sits in `span` (the last one, for a pipe line)."""
    if span is None:
        return None
    found = None
    for info in compiled.layers:
        s = compiled.positions.value(info.at)
        if s is not None and (span.line, span.col) <= (s.line, s.col) and (
                (s.end_line, s.end_col) <= (span.end_line, span.end_col)):
            found = info
    return found


def _layer_name(info: LayerInfo | None, exc: BaseException, compiled: Compiled) -> str | None:
    """The name Keras knows the layer by: inside a block's function, the use's `name`
    (the function's argument) prefixes it."""
    if info is None or not info.template:
        return info.name if info else None
    frames = _generated(exc, compiled)
    use = frames[-1][0].f_locals.get("name") if frames else None
    if not isinstance(use, str):
        return info.name or None
    return f"{use}_{info.name}" if info.name else use


def _tfsm_hint(exc: BaseException) -> str | None:
    """Keras 3.15 names a TFSMLayer's weights `kernel:0`, a name that an optimizer's
    per-weight state (Adam's moments, momentum) cannot take."""
    if re.search(r"'[^']*:0_\w+' is not a valid scope name", str(exc)):
        return ("an optimizer with per-weight state cannot train a TFSMLayer's weights: "
                "write `TFSMLayer(…, trainable = false)`, or fine-tune the `.keras` model "
                "with `load_model(…)`")
    return None


def _hint(exc: BaseException) -> str | None:
    text = str(exc)
    if "must be unique" in text or "unique" in text and "name" in text:
        return "give each layer its own `name`"
    if "incompatible with the layer" in text or "ndim" in text or "rank" in text or (
            "shape" in text):
        return "check the shapes flowing into this layer with `tfspec plan`"
    return None
