"""Every request the server answers, registered on a `TfspecServer`.

Each handler finds its document, computes its answer in the module that owns the
feature, and is guarded: an internal error answers with nothing and is logged.
"""

from __future__ import annotations

from lsprotocol import types

from .server import TfspecServer, fresh, guarded


def register(server: TfspecServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT,
                    types.InlayHintOptions(resolve_provider=False))
    def inlay_hints(ls: TfspecServer, params: types.InlayHintParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return []
        return guarded(ls, "inlayHint", lambda: ls.shapes.inlay_hints(doc, params.range), [])
