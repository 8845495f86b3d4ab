"""The server object and what every feature shares: the open documents, checking
them as the user types, publishing diagnostics, the shapes hook, never dying.

Diagnostics are the checker's own (`tfspec.lang.validate.validate_text`, what
`tfspec validate` runs) plus, through `server.shapes`, the shape errors Keras
reports from a background worker (`tfspec/lsp/shapes.py`). The server process
itself never imports TensorFlow, Keras or NumPy.

Analysis is throttled per document rather than delayed by a fixed debounce: an
edit after a quiet moment is checked at once (the diagnostics arrive one check
after the keystroke), while during a burst of edits a document is checked again
only once it has been idle for as long as its last check took — so checking
never takes more than half the server's time, on any size of spec.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from ..version import __version__
from . import diagnostics as lspdiag
from .documents import Document

log = logging.getLogger("tfspec.lsp")

# the longest an edit waits for its check while the user keeps typing (a large spec)
MAX_DELAY = 0.5


class Shapes(Protocol):
    """What the server asks of the shape service (CONTRACTS.md); every call is quick."""

    def changed(self, doc: Document) -> None: ...
    def closed(self, uri: str) -> None: ...
    def inlay_hints(self, doc: Document, rng: types.Range) -> list[types.InlayHint]: ...
    def hover_suffix(self, doc: Document, name: str) -> str | None: ...
    def diagnostics(self, uri: str) -> list[types.Diagnostic]: ...


class NoShapes:
    """No shape service: no inlay hints, no shape diagnostics, nothing to add to hovers."""

    def changed(self, doc: Document) -> None:
        pass

    def closed(self, uri: str) -> None:
        pass

    def inlay_hints(self, doc: Document, rng: types.Range) -> list[types.InlayHint]:
        return []

    def hover_suffix(self, doc: Document, name: str) -> str | None:
        return None

    def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        return []


class TfspecServer(LanguageServer):
    """pygls's server plus the open documents, their pending checks and the shapes."""

    def __init__(self) -> None:
        super().__init__("tfspec", __version__,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.documents: dict[str, Document] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.finished: dict[str, float] = {}  # uri -> when its last check ended
        self.shapes: Shapes = NoShapes()
        self.checked = 0  # checks run (the tests read it through their timing only)

    @property
    def encoding(self) -> str:
        caps = self.protocol.server_capabilities if hasattr(
            self.protocol, "server_capabilities") else None
        return (caps.position_encoding if caps and caps.position_encoding
                else types.PositionEncodingKind.Utf16)


# -- publishing and checking -----------------------------------------------------------


def publish(server: TfspecServer, uri: str) -> None:
    """Send the document's diagnostics: the checker's for its current analysis plus
    `server.shapes.diagnostics(uri)`. Nothing for a closed or unchecked document."""
    doc = server.documents.get(uri)
    if doc is None or doc.result is None:
        return
    items = lspdiag.for_document(doc) + list(server.shapes.diagnostics(uri))
    server.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, diagnostics=items, version=doc.analysed))


def analyse(server: TfspecServer, doc: Document) -> None:
    """Check the document's text now, tell the shape service, publish."""
    handle = server.pending.pop(doc.uri, None)
    if handle is not None:
        handle.cancel()
    doc.analyse()
    server.checked += 1
    server.finished[doc.uri] = time.perf_counter()
    try:
        server.shapes.changed(doc)
    except Exception:  # the shapes are extra: the checker's diagnostics still go out
        _report(server, "shapes.changed")
    publish(server, doc.uri)


def fresh(server: TfspecServer, uri: str) -> Document | None:
    """The document with an analysis of its current text (checked now if it is stale)."""
    doc = server.documents.get(uri)
    if doc is not None and not doc.current:
        analyse(server, doc)
    return doc


def schedule(server: TfspecServer, doc: Document) -> None:
    """Check the document soon: at once after a quiet moment, else once it has been
    idle for as long as its last check took (see the module's docstring)."""
    if doc.uri in server.pending:
        return  # the check already waiting will read the newest text
    idle = time.perf_counter() - server.finished.get(doc.uri, 0.0)
    delay = max(0.0, min(doc.seconds, MAX_DELAY) - idle)
    loop = asyncio.get_running_loop()
    server.pending[doc.uri] = loop.call_later(delay, _scheduled, server, doc.uri)


def _scheduled(server: TfspecServer, uri: str) -> None:
    server.pending.pop(uri, None)
    doc = server.documents.get(uri)
    if doc is not None and not doc.current:
        guarded(server, "diagnostics", lambda: analyse(server, doc))


# -- never dying -------------------------------------------------------------------------


def _report(server: TfspecServer, what: str) -> None:
    """Log an internal error to the client's output (and stderr); the server goes on."""
    text = f"tfspec lsp: internal error in {what}:\n{traceback.format_exc()}"
    print(text, file=sys.stderr, flush=True)
    try:
        server.window_log_message(types.LogMessageParams(type=types.MessageType.Error,
                                                         message=text))
    except Exception:  # noqa: S110 - the stream may be gone; stderr has it
        pass


def guarded(server: TfspecServer, what: str, call: Callable[[], Any],
            default: Any = None) -> Any:
    """`call()`, or `default` after logging an internal error: a bug in one feature
    answers one request with nothing instead of ending the editor's session."""
    try:
        return call()
    except Exception:
        _report(server, what)
        return default


