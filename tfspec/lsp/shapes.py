"""Shapes in the editor: Keras's output shape and parameter count of each statement as
inlay hints, a model total, and the errors Keras raises as diagnostics at the layer.

The server never imports TensorFlow: `ShapeService` starts a worker process
(`python -m tfspec.inspect.shapeworker`, which imports Keras once) the first time
a document needs shapes, and talks to it over JSON lines, in the background of the
server's event loop — no request and no checker diagnostic waits for it.

- Coalescing: one text is computed at a time; while it is, each document keeps only
  its newest text to compute next (an edit replaces the text waiting, not adds one).
- Never stale: every answer carries the (uri, version) it was computed for; it is
  kept only if that is still the document's version, and hints and diagnostics are
  given only for the document's current version (an edit hides them until the new
  text's answer arrives; an edit back to an identical text keeps them).
- A closed document's queued work is dropped, and an answer arriving for it after
  the close is ignored: nothing is published for it.
- A worker that dies (or answers nothing for `TIMEOUT` seconds) is started again for
  the next text; the text it died on is tried once more, then given up.
- Without TensorFlow the service says once (window/showMessage) that shapes need
  `pip install "tfspec[tf]"`, and does nothing more; everything else works.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types

from ..lang.diagnostics import Diagnostic, Span
from .diagnostics import to_lsp
from .documents import Document

log = logging.getLogger("tfspec.lsp.shapes")

INSTALL_TF = 'pip install "tfspec[tf]"'
WORKER = [sys.executable, "-m", "tfspec.inspect.shapeworker"]
TIMEOUT = 120.0  # seconds one text may take before its worker is ended
STALE_AFTER = 10.0  # a text no longer wanted is waited for this long, then its worker ended
STARTS = 3  # worker starts that fail in a row before the service gives up


@dataclass
class _Answer:
    """The worker's shapes for one version of a document."""

    version: int
    text: str
    shapes: dict[str, Any]
    names: dict[str, str] = field(default_factory=dict)  # node/layer name -> hover text


class _Worker:
    """One worker process: start it, ask it, end it."""

    def __init__(self, process: asyncio.subprocess.Process, pid: int):
        self.process, self.pid = process, pid
        self.next_id = 0

    @classmethod
    async def start(cls, command: list[str]) -> _Worker | str:
        """A ready worker, or the module missing for one (a string)."""
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 26)  # an answer is one line, however many statements it holds
        assert process.stdout is not None
        line = await process.stdout.readline()
        hello = json.loads(line) if line.strip() else {}
        if hello.get("unavailable"):
            await process.wait()
            return str(hello["unavailable"])
        if not hello.get("ready"):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise ConnectionError(f"the shape worker exited ({process.returncode}) "
                                  "before it was ready")
        return cls(process, int(hello.get("pid", process.pid)))

    async def send(self, request: dict[str, Any]) -> int:
        assert self.process.stdin is not None
        self.next_id += 1
        self.process.stdin.write((json.dumps({**request, "id": self.next_id}) + "\n").encode())
        await self.process.stdin.drain()
        return self.next_id

    async def receive(self) -> dict[str, Any] | None:
        """The next answer; None when the worker has died."""
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        return json.loads(line) if line.strip() else None

    def end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class ShapeService:
    """The server's `shapes` (`core.Shapes` is what it asks): all methods return at once.

    `publish(server, uri)` sends a document's diagnostics (the checker's plus ours);
    `command` starts a worker (tests may point it elsewhere)."""

    def __init__(self, server: Any, publish: Callable[[Any, str], None],
                 command: list[str] | None = None):
        self.server = server
        self.publish = publish
        self.command = command or WORKER
        self.wanted: dict[str, int] = {}  # open document -> the version whose shapes count
        self.queue: dict[str, dict[str, Any]] = {}  # document -> its newest text to compute
        self.answers: dict[str, _Answer] = {}  # document -> its newest answer
        self.worker: _Worker | None = None
        self.failed: tuple[str, int] | None = None  # the text the last worker died on
        self.failed_starts = 0
        self.unavailable: str | None = None  # why there are no shapes (said once)
        self._missing: str | None = None  # the TensorFlow module not installed ("": none)
        self._wake: asyncio.Event | None = None
        self._pump: asyncio.Task | None = None

    # -- what the server calls ------------------------------------------------------------

    def changed(self, doc: Document) -> None:
        uri, version = doc.uri, doc.version
        self.wanted[uri] = version
        self.queue.pop(uri, None)
        answer = self.answers.get(uri)
        if answer is not None and answer.text == doc.text:
            answer.version = version  # the same text again (an undone edit): still true
            return
        if self.unavailable is not None or doc.result is None or not doc.result.ok or (
                not isinstance((doc.result.ir or {}).get("model"), dict)):
            return  # no model to build, or the checker's errors first: they say why
        if not self._tensorflow_installed():
            return
        self.queue[uri] = {"uri": uri, "version": version, "text": doc.text,
                           "path": str(doc.path) if doc.path else None, "json": doc.is_json}
        self._start_pump()

    def closed(self, uri: str) -> None:
        self.wanted.pop(uri, None)
        self.queue.pop(uri, None)
        self.answers.pop(uri, None)

    def inlay_hints(self, doc: Document, rng: types.Range) -> list[types.InlayHint]:
        answer = self._current(doc.uri, doc.version)
        if answer is None:
            return []
        hints = []
        for stmt in answer.shapes.get("statements", []):
            span = _span(stmt.get("span"))
            if span is None or not stmt.get("label"):
                continue
            tooltip = stmt.get("tooltip")
            hints.append(types.InlayHint(
                position=doc.lines.spec_position(span.end_line, span.end_col),
                label=f"→ {stmt['label']}", kind=types.InlayHintKind.Type, padding_left=True,
                tooltip=types.MarkupContent(types.MarkupKind.Markdown, tooltip)
                if tooltip else None))
        header = _span(answer.shapes.get("model_span"))
        total = answer.shapes.get("params")
        if header is not None and total is not None and header.line <= len(doc.lines.lines):
            line = header.line - 1
            end = doc.lines.position(doc.lines.starts[line] + len(doc.lines.lines[line]))
            trainable = answer.shapes.get("trainable")
            label = f"{total:,} params" + (
                f" ({trainable:,} trainable)" if trainable is not None and trainable != total
                else "")
            hints.append(types.InlayHint(position=end, label=label, padding_left=True))
        return [h for h in hints if _inside(h.position, rng)]

    def hover_suffix(self, doc: Document, name: str) -> str | None:
        answer = self._current(doc.uri, doc.version)
        text = answer.names.get(name) if answer is not None else None
        return f"Keras: {text}" if text else None

    def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        doc = self.server.documents.get(uri)
        answer = self._current(uri, doc.version) if doc is not None else None
        if answer is None:
            return []
        return [to_lsp(doc, Diagnostic.from_dict(item))
                for item in answer.shapes.get("diagnostics", [])]

    # -- the background ---------------------------------------------------------------------

    def _current(self, uri: str, version: int) -> _Answer | None:
        answer = self.answers.get(uri)
        if answer is None or answer.version != version or self.wanted.get(uri) != version:
            return None
        return answer

    def _tensorflow_installed(self) -> bool:
        """Whether TensorFlow and Keras can be imported (looked up once, not imported)."""
        if self._missing is None:
            self._missing = next((m for m in ("tensorflow", "keras")
                                  if importlib.util.find_spec(m) is None), "")
        if self._missing:
            self._say_unavailable(self._missing)
        return not self._missing

    def _say_unavailable(self, module: str) -> None:
        """Once: shapes need TensorFlow (the rest of the server works without it)."""
        if self.unavailable is not None:
            return
        self.unavailable = module
        self.queue.clear()
        self.server.window_show_message(types.ShowMessageParams(
            type=types.MessageType.Info,
            message=f"tfspec: shapes in the editor need TensorFlow ({module} is not "
                    f"installed): {INSTALL_TF}"))

    def _start_pump(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not called from the server's loop: nothing can run
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._run())

    async def _run(self) -> None:
        """Compute queued texts one at a time, newest per document, until none is left."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue and self.unavailable is None:
                try:
                    await self._one()
                except Exception:  # never let the pump die: log it, go on
                    log.exception("shape service")
                    self._log(types.MessageType.Error, "tfspec: the shape service failed on "
                              "a text (see the server's stderr); it goes on")

    async def _one(self) -> None:
        worker = await self._ready_worker()
        if worker is None or not self.queue:
            return
        uri = next(iter(self.queue))  # the document waiting longest, at its newest text
        request = self.queue.pop(uri)
        key = (uri, request["version"])
        await worker.send(request)
        answer = await self._receive(worker, key)
        if answer is None:  # the worker died on this text, or took too long
            if self.worker is worker:
                self.worker = None
            worker.end()
            if self.wanted.get(uri) != request["version"]:
                return  # closed or changed meanwhile: nothing to try again
            if self.failed != key:
                self.failed = key  # once more, on a fresh worker
                self.queue.setdefault(uri, request)
            else:
                self._log(types.MessageType.Warning,
                          f"tfspec: no shapes for {uri}: the shape worker failed on it twice")
            return
        self.failed = None
        if "error" in answer:
            self._log(types.MessageType.Error,
                      f"tfspec: the shape worker failed on {uri}: {answer['error']}")
            return
        self._accept(request, answer)

    async def _receive(self, worker: _Worker, key: tuple[str, int]) -> dict[str, Any] | None:
        """The worker's answer to the text `key`; None if it dies, takes longer than
        TIMEOUT, or, once the text is no longer wanted, longer than STALE_AFTER."""
        reading = asyncio.ensure_future(worker.receive())
        start = time.monotonic()
        while True:
            done, _ = await asyncio.wait({reading}, timeout=0.5)
            if done:
                try:
                    return reading.result()
                except (ValueError, OSError):  # a torn line from a dying worker
                    return None
            waited = time.monotonic() - start
            stale = self.wanted.get(key[0]) != key[1]
            if waited > TIMEOUT or (stale and waited > STALE_AFTER):
                reading.cancel()
                return None

    def _accept(self, request: dict[str, Any], answer: dict[str, Any]) -> None:
        uri, version = request["uri"], request["version"]
        if answer.get("uri") != uri or answer.get("version") != version:
            return  # not the answer to this request: never show it
        if self.wanted.get(uri) != version:
            return  # closed, or changed since: a stale answer is dropped
        shapes = answer.get("shapes") or {}
        self.answers[uri] = _Answer(version, request["text"], shapes, _names(shapes))
        self.publish(self.server, uri)
        self._refresh_hints()

    async def _ready_worker(self) -> _Worker | None:
        """The running worker, or a new one (None: shapes are unavailable)."""
        if self.worker is not None and self.worker.process.returncode is None:
            return self.worker
        self.worker = None
        if self.failed_starts >= STARTS:
            return None
        started = time.perf_counter()
        try:
            worker = await _Worker.start(self.command)
        except (OSError, ValueError, ConnectionError) as exc:
            self.failed_starts += 1
            self._log(types.MessageType.Error, f"tfspec: the shape worker did not start: {exc}")
            if self.failed_starts >= STARTS:
                self.queue.clear()
                self._say_unavailable("a working shape worker")
            return None
        if isinstance(worker, str):
            self._say_unavailable(worker)
            return None
        self.failed_starts = 0
        self.worker = worker
        self._log(types.MessageType.Info, f"tfspec: shape worker started (pid {worker.pid}, "
                                          f"ready in {time.perf_counter() - started:.1f} s)")
        return worker

    def _refresh_hints(self) -> None:
        """Ask the client to ask for inlay hints again, when it can be asked."""
        caps = self.server.client_capabilities
        workspace = getattr(caps, "workspace", None) if caps else None
        inlay = getattr(workspace, "inlay_hint", None) if workspace else None
        if inlay is not None and inlay.refresh_support:
            self.server.workspace_inlay_hint_refresh(None)

    def _log(self, kind: types.MessageType, message: str) -> None:
        with contextlib.suppress(Exception):  # the client may be gone
            self.server.window_log_message(types.LogMessageParams(type=kind, message=message))

    def stop(self) -> None:
        """End the worker (the server is shutting down)."""
        if self.worker is not None:
            self.worker.end()
            self.worker = None


def _span(value: Any) -> Span | None:
    if not isinstance(value, (list, tuple)) or len(value) != 4 or not all(
            isinstance(v, int) for v in value):
        return None
    return Span(*value)


def _inside(pos: types.Position, rng: types.Range) -> bool:
    return (rng.start.line, rng.start.character) <= (pos.line, pos.character) <= (
        rng.end.line, rng.end.character)


def _names(shapes: dict[str, Any]) -> dict[str, str]:
    """Hover texts by name: the model's statements, then block statements whose name
    the model does not use."""
    names: dict[str, str] = {}
    statements = shapes.get("statements", [])
    for model in (True, False):
        for stmt in statements:
            name = stmt.get("name")
            if name and stmt.get("label") and stmt["at"].startswith("/model/") == model:
                names.setdefault(name, stmt["label"])
    return names
