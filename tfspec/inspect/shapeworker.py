"""`python -m tfspec.inspect.shapeworker`: shapes of spec texts, in a process that
imports Keras once (what `tfspec lsp` asks; see tfspec/lsp/shapes.py).

JSON lines over stdin/stdout, one request at a time:

    first line out   {"ready": true, "pid": 123}             Keras is imported
                     {"unavailable": "tensorflow", "pid": 123} it is not installed; exits 0
    a request        {"id": 7, "uri": "file:///…/a.tfspec", "version": 3, "text": "…",
                      "path": "/…/a.tfspec" or null, "json": false}
    its answer       {"id": 7, "uri": …, "version": 3, "shapes": {…}}   (shapes.to_json)
                     {"id": 7, "uri": …, "version": 3, "error": "…"}    an internal failure

The answer repeats the request's (uri, version) so that the client can drop the
answer to a text that has changed since. The protocol has the real stdout to
itself: everything else written to file descriptor 1 (a print, TensorFlow's C++
logs) goes to stderr. End of input ends the worker.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from pathlib import Path
from typing import IO, Any


def _protocol_stream() -> IO[str]:
    """The real stdout for the protocol; file descriptor 1 becomes stderr."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _filename(request: dict[str, Any]) -> str:
    """The spec's file (data and models load relative to it); an unsaved buffer's
    name only tells the syntax."""
    path = request.get("path")
    if isinstance(path, str) and path:
        return path
    return str(Path.cwd() / ("untitled.tfspec.json" if request.get("json") else "untitled.tfspec"))


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The shapes of one request's text (never raises)."""
    from .shapes import text_shapes, to_json

    tag = {"id": request.get("id"), "uri": request.get("uri"), "version": request.get("version")}
    try:
        shapes = text_shapes(str(request.get("text", "")), _filename(request))
        return {**tag, "shapes": to_json(shapes)}
    except Exception as exc:  # a bug in tfspec: the client logs it, the worker lives on
        return {**tag, "error": f"{type(exc).__name__}: {exc}"}


def main() -> int:
    out = _protocol_stream()

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        from ..jobs.build import quiet_tensorflow

        quiet_tensorflow()
        from . import shapes  # noqa: F401  (its imports too, before the first request)
    except ModuleNotFoundError as exc:
        send({"unavailable": exc.name or "tensorflow", "pid": os.getpid()})
        return 0
    # TensorFlow's and Keras's own objects live as long as the worker: out of the
    # collector's sight, the collection after each answer takes ms instead of 0.2 s
    gc.freeze()
    # builds are background work: the editor's own server (diagnostics as the user
    # types) gets the CPU first
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)
    send({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            send({"id": None, "uri": None, "version": None, "error": f"bad request: {exc}"})
            continue
        send(answer(request))
        gc.collect()  # the last build's layers, while the editor has the answer
    return 0


if __name__ == "__main__":
    sys.exit(main())
