"""Every request the server answers, registered on a `TfspecServer`.

Each handler finds its document, computes its answer in the module that owns the
feature, and is guarded: an internal error answers with nothing and is logged.
Completion and signature help read the current text as it is (they work mid-edit);
the others first bring the document's analysis up to date (`fresh`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lsprotocol import types

from . import complete, edits, hover, navigate
from .core import Refused, TfspecServer, _report, fresh, guarded, log, published
from .documents import Document

REQUEST_FAILED = -32803  # LSP's RequestFailed: the client shows the message


Answer = Callable[[TfspecServer, Document, Any], Any]


def serve(server: TfspecServer, feature: str, options: Any, answer: Answer, *,
          empty: Any = None, current: bool = True, json: bool = True) -> None:
    """Answer `feature` with `answer(server, doc, params)`, guarded: `empty` when the
    document is unknown (or JSON, where `json` is False) or the answer failed.
    `current`: bring the document's analysis up to date first; completion-like
    features read the text as it is, mid-edit."""

    def handler(ls: TfspecServer, params: Any) -> Any:
        uri = params.text_document.uri
        doc = fresh(ls, uri) if current else ls.documents.get(uri)
        if doc is None or (doc.is_json and not json):
            return empty
        return guarded(ls, feature, lambda: answer(ls, doc, params), empty)

    server.feature(feature, options)(handler)


def _completion(ls: TfspecServer, doc: Document, params: types.CompletionParams):
    return types.CompletionList(is_incomplete=False,
                                items=complete.completions(doc, params.position,
                                                           snippets=ls.snippets))


def _references(ls: TfspecServer, doc: Document, params: types.ReferenceParams):
    return navigate.references(doc, params.position, params.context.include_declaration)


def _code_actions(ls: TfspecServer, doc: Document, params: types.CodeActionParams):
    return edits.code_actions(doc, params.range, list(params.context.diagnostics),
                              published(ls, doc))


def register(server: TfspecServer) -> None:
    t = types
    serve(server, t.TEXT_DOCUMENT_INLAY_HINT, t.InlayHintOptions(resolve_provider=False),
          lambda ls, doc, p: ls.shapes.inlay_hints(doc, p.range), empty=[])
    serve(server, t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(
        trigger_characters=['"', "(", ",", "=", "|"], resolve_provider=True),
        _completion, current=False)
    serve(server, t.TEXT_DOCUMENT_SIGNATURE_HELP, t.SignatureHelpOptions(
        trigger_characters=["(", ","], retrigger_characters=[",", "="]),
        lambda ls, doc, p: hover.signature_help(doc, p.position), current=False, json=False)
    serve(server, t.TEXT_DOCUMENT_HOVER, None,
          lambda ls, doc, p: hover.hover(doc, p.position, ls.shapes))
    serve(server, t.TEXT_DOCUMENT_DEFINITION, None,
          lambda ls, doc, p: navigate.definition(doc, p.position))
    serve(server, t.TEXT_DOCUMENT_REFERENCES, None, _references, empty=[])
    serve(server, t.TEXT_DOCUMENT_PREPARE_RENAME, None,
          lambda ls, doc, p: navigate.prepare_rename(doc, p.position))
    serve(server, t.TEXT_DOCUMENT_DOCUMENT_SYMBOL, None,
          lambda ls, doc, p: navigate.document_symbols(doc), empty=[])
    serve(server, t.TEXT_DOCUMENT_FOLDING_RANGE, None,
          lambda ls, doc, p: navigate.folding_ranges(doc), empty=[], current=False)
    serve(server, t.TEXT_DOCUMENT_FORMATTING, None, lambda ls, doc, p: edits.formatting(doc))
    serve(server, t.TEXT_DOCUMENT_CODE_ACTION, t.CodeActionOptions(
        code_action_kinds=[t.CodeActionKind.QuickFix]), _code_actions, empty=[])

    @server.feature(t.COMPLETION_ITEM_RESOLVE)
    def completion_resolve(ls: TfspecServer, item: types.CompletionItem):
        return guarded(ls, "completionItem/resolve", lambda: complete.resolve(item), item)

    @server.feature(t.TEXT_DOCUMENT_RENAME, t.RenameOptions(prepare_provider=True))
    def rename(ls: TfspecServer, params: types.RenameParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return None
        try:
            return navigate.rename(doc, params.position, params.new_name)
        except navigate.RenameError as exc:  # the client shows the message
            log.warning("rename refused: %s", exc)  # one line: the user's doing, no bug
            raise Refused(str(exc), REQUEST_FAILED) from None
        except Exception:
            _report(ls, "rename")
            return None
