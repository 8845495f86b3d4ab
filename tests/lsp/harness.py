"""Drive the real `tfspec lsp` process over stdio with pygls's own LSP client, from
plain synchronous code (tests and benchmarks/lsp_latency.py).

`Session` owns an asyncio event loop in a thread; each method sends through the
client on that loop and waits for the answer. Diagnostics the server publishes are
kept per URI with their version and arrival time; `stderr` collects what the
server writes there (tracebacks, `-X importtime` lines), `logs` its
window/logMessage notifications.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[2]
MARKER = "‸"  # the cursor in fixture texts


def uri_of(path: str | Path) -> str:
    return Path(path).resolve().as_uri()


LINE_END = re.compile(r"\r\n|\r|\n")  # LSP's line ends, and only those


def offset(text: str, pos: types.Position) -> int:
    """The index in `text` of an LSP position (UTF-16 columns, LSP's line ends)."""
    starts = [0] + [m.end() for m in LINE_END.finditer(text)]
    lines = LINE_END.split(text)
    if pos.line >= len(lines):
        return len(text)
    units = 0
    for i, c in enumerate(lines[pos.line]):
        if units >= pos.character:
            return starts[pos.line] + i
        units += 2 if ord(c) > 0xFFFF else 1
    return starts[pos.line] + len(lines[pos.line])


def cursor(text: str, marker: str = MARKER) -> tuple[str, types.Position]:
    """The text without its cursor marker, and the marker's LSP position (UTF-16)."""
    at = text.index(marker)
    before = text[:at]
    line = before.count("\n")
    col_text = before[before.rfind("\n") + 1:]
    col = len(col_text.encode("utf-16-le")) // 2
    return text[:at] + text[at + len(marker):], types.Position(line, col)


class Session:
    """One server process and a client talking to it."""

    def __init__(self, *python_flags: str, env: dict[str, str] | None = None,
                 capabilities: types.ClientCapabilities | None = None,
                 initialization_options: Any = None):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = LanguageClient("tfspec-tests", "1")
        self.diagnostics: dict[str, list[tuple[int | None, list[types.Diagnostic], float]]] = {}
        self.logs: list[types.LogMessageParams] = []
        self.stderr = bytearray()
        self._changed = threading.Condition()
        self.version: dict[str, int] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            with self._changed:
                self.diagnostics.setdefault(params.uri, []).append(
                    (params.version, params.diagnostics, time.perf_counter()))
                self._changed.notify_all()

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams) -> None:
            self.logs.append(params)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_show(params: types.ShowMessageParams) -> None:
            self.logs.append(types.LogMessageParams(type=params.type, message=params.message))

        full_env = {**os.environ, **(env or {})}
        self.run(self.client.start_io(sys.executable, *python_flags, "-m", "tfspec", "lsp",
                                      cwd=str(ROOT), env=full_env))
        self.process = self.client._server
        self._drain = asyncio.run_coroutine_threadsafe(self._read_stderr(), self.loop)
        self.initialized = self.request(self.client.initialize_async(types.InitializeParams(
            process_id=os.getpid(), root_uri=uri_of(ROOT),
            capabilities=capabilities or types.ClientCapabilities(),
            initialization_options=initialization_options)))
        self.notify(self.client.initialized, types.InitializedParams())

    async def _read_stderr(self) -> None:
        stream = self.process.stderr
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            self.stderr.extend(chunk)

    # -- running on the loop ------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def request(self, awaitable: Any, timeout: float = 30) -> Any:
        async def wait() -> Any:
            return await awaitable
        return self.run(wait(), timeout)

    def call(self, name: str, params: Any, timeout: float = 30) -> Any:
        """`text_document_<name>_async(params)`, answered."""
        method = getattr(self.client, f"text_document_{name}_async")

        async def go() -> Any:
            return await method(params)
        return self.run(go(), timeout)

    def notify(self, fn: Any, params: Any) -> None:
        self.loop.call_soon_threadsafe(fn, params)

    # -- documents ----------------------------------------------------------------------

    def open(self, uri: str, text: str, language: str = "tfspec") -> None:
        self.version[uri] = 1
        self.notify(self.client.text_document_did_open, types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)))

    def replace(self, uri: str, text: str) -> int:
        """Send the whole new text; returns its version."""
        self.version[uri] += 1
        self.notify(self.client.text_document_did_change, types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=self.version[uri]),
            [types.TextDocumentContentChangeWholeDocument(text=text)]))
        return self.version[uri]

    def edit(self, uri: str, rng: types.Range, text: str) -> int:
        """Send one ranged change; returns the new version."""
        self.version[uri] += 1
        self.notify(self.client.text_document_did_change, types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=self.version[uri]),
            [types.TextDocumentContentChangePartial(range=rng, text=text)]))
        return self.version[uri]

    def close(self, uri: str) -> None:
        self.notify(self.client.text_document_did_close, types.DidCloseTextDocumentParams(
            types.TextDocumentIdentifier(uri=uri)))

    def wait_diagnostics(self, uri: str, version: int | None = None,
                         timeout: float = 30) -> list[types.Diagnostic]:
        """The diagnostics published for `uri` at `version` (the newest when None)."""
        version = self.version.get(uri) if version is None else version
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for v, items, _ in reversed(self.diagnostics.get(uri, [])):
                    if v == version:
                        return items
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no diagnostics for {uri} version {version}")
                self._changed.wait(left)

    def published_at(self, uri: str, version: int, timeout: float = 30) -> float:
        """When the diagnostics of `version` arrived (perf_counter seconds)."""
        self.wait_diagnostics(uri, version, timeout)
        return next(t for v, _, t in self.diagnostics[uri] if v == version)

    # -- the end ------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def errors(self) -> list[str]:
        """Internal errors the server logged (it logs each one it survives)."""
        return [m.message for m in self.logs if m.type == types.MessageType.Error]

    def shutdown(self) -> int | None:
        try:
            if self.alive:
                self.request(self.client.shutdown_async(None), timeout=10)
                self.notify(self.client.exit, None)
                self.loop.call_soon_threadsafe(self.process.stdin.close)
                try:
                    self.run(asyncio.wait_for(self.process.wait(), 10), timeout=15)
                except TimeoutError:
                    self.process.kill()
                    self.run(self.process.wait(), timeout=10)
                    return None  # it did not exit by itself
        finally:
            try:
                self.run(self.client.stop(), timeout=10)
            except Exception:
                if self.process.returncode is None:
                    self.process.kill()
            try:
                self._drain.result(5)
            except Exception:  # noqa: S110 - the stream closed with the process
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        return self.process.returncode
