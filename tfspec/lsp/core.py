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
import codecs
import logging
import sys
import time
import traceback
from collections.abc import Callable, Generator
from typing import Any, BinaryIO, Protocol

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from ..version import __version__
from . import diagnostics as lspdiag
from .documents import Document

log = logging.getLogger("tfspec.lsp")

# the longest an edit waits for its check while the user keeps typing (a large spec)
MAX_DELAY = 0.5


class Shapes(Protocol):
    """What the server asks of the shape service (`shapes.ShapeService`); every call is quick."""

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


# -- what pygls does not get to do ---------------------------------------------------------


def _bytewise(exc: UnicodeError) -> tuple[str, int]:
    # one U+FFFD per bad byte (codecs' "replace" gives one per bad sequence): Neovim
    # counts each byte that is not UTF-8 as one column, so later edits still line up
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.start + 1


codecs.register_error("tfspec.bytewise", _bytewise)


class Utf8Input:
    """stdin for pygls's reader, which hands each message body (one `read(n)`) to
    `json.loads`: a body that is not UTF-8 would raise there and be dropped, so it is
    decoded with each bad byte as U+FFFD instead; `repaired` counts such bodies."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.repaired = 0  # bodies repaired since the protocol last looked

    def readline(self) -> bytes:
        return self.raw.readline()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data.isascii():
            return data
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            data = data.decode("utf-8", "tfspec.bytewise").encode("utf-8")
            self.repaired += 1
        return data


class TfspecProtocol(LanguageServerProtocol):
    """pygls's protocol without its copy of the documents: pygls applies didChange
    with `str.splitlines` lines (which also end at form feeds, U+2028 …) and clamps
    the client's positions in place, so the server's own `Document` would get the
    edit at the wrong place. The server keeps the only copy (`TfspecServer.documents`)."""

    _server: TfspecServer

    def handle_message(self, message: Any) -> None:
        stdin = self._server.input
        if stdin is not None and stdin.repaired:  # this message's body was repaired
            stdin.repaired = 0
            self._server.invalid_utf8(getattr(message, "method", None))
        super().handle_message(message)

    def _user(self, method: str, params: Any) -> Generator[Any, Any, None]:
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams
                                    ) -> Generator[Any, Any, None]:
        yield from self._user(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams
                                      ) -> Generator[Any, Any, None]:
        yield from self._user(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams
                                     ) -> Generator[Any, Any, None]:
        yield from self._user(types.TEXT_DOCUMENT_DID_CLOSE, params)


class Refused(JsonRpcException):
    """A request the server declines (the client shows the message): the handler logs
    it as one line, and pygls's traceback for it is left out."""


def _not_refused(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, Refused)


class TfspecServer(LanguageServer):
    """pygls's server plus the open documents, their pending checks and the shapes."""

    def __init__(self) -> None:
        super().__init__("tfspec", __version__, protocol_cls=TfspecProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.documents: dict[str, Document] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.finished: dict[str, float] = {}  # uri -> when its last check ended
        self.shapes: Shapes = NoShapes()
        self.checked = 0  # checks run (the tests read it through their timing only)
        self.input: Utf8Input | None = None  # stdin, once `start_io` serves it
        self.invalid = 0  # messages that came with bytes that are not UTF-8
        # pygls logs a failed request with its traceback: a refusal is no failure
        logging.getLogger("pygls.protocol.json_rpc").addFilter(_not_refused)

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
                 ) -> None:
        self.input = Utf8Input(stdin or sys.stdin.buffer)
        super().start_io(self.input, stdout)  # type: ignore[arg-type]

    def invalid_utf8(self, method: str | None) -> None:
        """A message whose bytes were not all UTF-8 was read with U+FFFD for them and
        handled as usual (so an edit is applied, and the copy stays the editor's);
        the user is told the first time."""
        self.invalid += 1
        if self.invalid > 1:
            return
        text = (f"tfspec: the editor sent text that is not UTF-8 (in {method or 'a message'}); "
                "each such byte is read as U+FFFD (\ufffd). Save the file as UTF-8 "
                "(Neovim: `:set fileencoding=utf-8`); this is said once.")
        log.warning("%s", text)
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning,
                                                         message=text))

    @property
    def snippets(self) -> bool:
        """Whether the client takes snippet syntax in completion items."""
        caps = getattr(self.protocol, "client_capabilities", None)
        document = caps.text_document if caps else None
        completion = document.completion if document else None
        item = completion.completion_item if completion else None
        return bool(item and item.snippet_support)

    @property
    def encoding(self) -> str:
        caps = self.protocol.server_capabilities if hasattr(
            self.protocol, "server_capabilities") else None
        return (caps.position_encoding if caps and caps.position_encoding
                else types.PositionEncodingKind.Utf16)


# -- publishing and checking -----------------------------------------------------------


def published(server: TfspecServer, doc: Document) -> list[types.Diagnostic]:
    """The document's diagnostics as `publish` sends them: the checker's for its
    current analysis plus `server.shapes.diagnostics(uri)`."""
    return lspdiag.for_document(doc) + list(server.shapes.diagnostics(doc.uri))


def publish(server: TfspecServer, uri: str) -> None:
    """Send the document's diagnostics (`published`). Nothing for a closed or
    unchecked document."""
    doc = server.documents.get(uri)
    if doc is None or doc.result is None:
        return
    server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
        uri=uri, diagnostics=published(server, doc), version=doc.analysed))


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


