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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .compiler import HELPERS, Compiled
from .diagnostics import Diagnostics, SpecError
from .transfer import missing_files


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


def build_model(compiled: Compiled, namespace: dict[str, Any] | None = None) -> Any:
    """The Keras model of a compiled spec; Keras errors become located SpecErrors.

    `namespace`: the program, when the caller has loaded it already."""
    namespace = namespace or load_program(compiled)
    try:
        return namespace["build_model"]()
    except Exception as exc:
        raise located_error(exc, compiled) from None


def generated_line(exc: BaseException, compiled: Compiled) -> int | None:
    """The deepest line of generated code in the exception's traceback (the program's
    helper functions excepted: their errors belong to the line that called them)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == compiled.filename and code.co_name not in HELPERS:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def one_line(text: str) -> str:
    """A Keras/TensorFlow message on one line: no ANSI colours, no "Exception
    encountered when calling …" preamble, no "Arguments received by …" dump."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = text.split("\n\nArguments received by")[0]
    text = re.sub(r"^Exception encountered when calling [\w.]+\(\)\.\s*", "", text.strip())
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
                  what: str | None = None) -> SpecError:
    """A SpecError at the spec location of the generated line that raised `exc`.

    E500 (the default) words it as Keras failing to build a layer; other codes
    (E501, the data) give their own `what`.
    """
    diags = Diagnostics(compiled.spec_file)
    line = generated_line(exc, compiled)
    span = None
    if line is not None:
        # a multi-line statement raises at its first line, which is mapped
        for candidate in range(line, 0, -1):
            if candidate in compiled.origins:
                span = compiled.origins[candidate]
                break
    duplicate = re.search(r'name "([^"]+)" is used \d+ times', str(exc))
    for info in compiled.layers if duplicate else ():
        if info.name == duplicate.group(1) and not info.template:
            span = compiled.positions.value(info.at)  # the second layer of that name
    if code != "E500":
        diags.add(code, f"{what}: {keras_message(exc)}" if what else keras_message(exc), span,
                  hint=_tfsm_hint(exc))
        return SpecError(diags, compiled.spec_source)
    layer = _layer_at(compiled, span)
    what = f"`{layer}`" if layer else "the model"
    diags.add(
        "E500",
        f"Keras cannot build {what}: {keras_message(exc)}",
        span,
        hint=_hint(exc),
    )
    return SpecError(diags, compiled.spec_source)


def _layer_at(compiled: Compiled, span: Any) -> str | None:
    """The layer whose construction sits in `span` (the last one, for a pipe line)."""
    if span is None:
        return None
    found = None
    for info in compiled.layers:
        s = compiled.positions.value(info.at)
        if s is not None and (span.line, span.col) <= (s.line, s.col) and (
                (s.end_line, s.end_col) <= (span.end_line, span.end_col)):
            found = info.name
    return found


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
    if "incompatible with the layer" in text or "expected ndim" in text or "rank" in text:
        return "check the shapes flowing into this layer with `tfspec plan`"
    if "must be unique" in text or "unique" in text and "name" in text:
        return "give each layer its own `name`"
    return None
