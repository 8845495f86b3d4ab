"""The language server: document sync (the server's own copy of each document;
`core.TfspecProtocol` keeps pygls's out of it) and the wiring of every feature
(pygls 2.x over stdio; `tfspec lsp`). The server object, checking and publishing live in
`core` (`publish`, `NoShapes` and `TfspecServer` are re-exported here).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from lsprotocol import types

from . import features
from .core import NoShapes, Shapes, TfspecServer, analyse, guarded, publish, schedule
from .documents import Document

__all__ = ["NoShapes", "Shapes", "TfspecServer", "create_server", "main", "publish"]


# -- the server --------------------------------------------------------------------------


def create_server() -> TfspecServer:
    """A server with every feature registered (not started: `main()` serves stdio)."""
    server = TfspecServer()
    from .shapes import ShapeService

    server.shapes = ShapeService(server, publish)
    _register_sync(server)
    features.register(server)
    return server


def _register_sync(server: TfspecServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: TfspecServer, params: types.InitializeParams) -> None:
        # `{"shapes": false}`: no Keras worker (a slow machine, a laptop on battery)
        options = params.initialization_options
        if isinstance(options, dict) and options.get("shapes") is False:
            ls.shapes = NoShapes()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TfspecServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        doc = Document(item.uri, item.version, item.text, encoding=ls.encoding)
        ls.documents[item.uri] = doc
        guarded(ls, "didOpen", lambda: analyse(ls, doc))

    @server.feature(types.EXIT)
    def on_exit(ls: TfspecServer, *args: Any) -> None:
        # pygls then exits, but waits for its reader thread, which blocks on stdin until
        # the client closes it: make sure the process ends even with a client that does not
        code = 0 if getattr(ls.protocol, "_shutdown", False) else 1
        timer = threading.Timer(2.0, os._exit, (code,))
        timer.daemon = True
        timer.start()

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TfspecServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = ls.documents.get(params.text_document.uri)
        if doc is None:
            return
        guarded(ls, "didChange",
                lambda: doc.apply(params.content_changes, params.text_document.version))
        schedule(ls, doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TfspecServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        handle = ls.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        ls.documents.pop(uri, None)
        ls.finished.pop(uri, None)
        guarded(ls, "shapes.closed", lambda: ls.shapes.closed(uri))
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def main() -> None:
    """Serve the language server over stdin/stdout until the client exits."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="tfspec lsp: %(levelname)s: %(message)s")
    create_server().start_io()
