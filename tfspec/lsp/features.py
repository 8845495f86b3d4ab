"""Every request the server answers, registered on a `TfspecServer`.

Each handler finds its document, computes its answer in the module that owns the
feature, and is guarded: an internal error answers with nothing and is logged.
Completion and signature help read the current text as it is (they work mid-edit);
the others first bring the document's analysis up to date (`fresh`).
"""

from __future__ import annotations

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from . import complete, edits, hover, navigate
from .core import TfspecServer, _report, fresh, guarded

REQUEST_FAILED = -32803  # LSP's RequestFailed: the client shows the message


def register(server: TfspecServer) -> None:  # noqa: C901 - one small handler per feature
    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT,
                    types.InlayHintOptions(resolve_provider=False))
    def inlay_hints(ls: TfspecServer, params: types.InlayHintParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return []
        return guarded(ls, "inlayHint", lambda: ls.shapes.inlay_hints(doc, params.range), [])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(
        trigger_characters=['"', "(", ",", "=", "|"], resolve_provider=True))
    def completion(ls: TfspecServer, params: types.CompletionParams):
        doc = ls.documents.get(params.text_document.uri)
        if doc is None:
            return None
        items = guarded(ls, "completion", lambda: complete.completions(doc, params.position),
                        [])
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.COMPLETION_ITEM_RESOLVE)
    def completion_resolve(ls: TfspecServer, item: types.CompletionItem):
        return guarded(ls, "completionItem/resolve", lambda: complete.resolve(item), item)

    @server.feature(types.TEXT_DOCUMENT_SIGNATURE_HELP, types.SignatureHelpOptions(
        trigger_characters=["(", ","], retrigger_characters=[",", "="]))
    def signature(ls: TfspecServer, params: types.SignatureHelpParams):
        doc = ls.documents.get(params.text_document.uri)
        if doc is None or doc.is_json:
            return None
        return guarded(ls, "signatureHelp", lambda: hover.signature_help(doc, params.position))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: TfspecServer, params: types.HoverParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return None
        return guarded(ls, "hover", lambda: hover.hover(doc, params.position, ls.shapes))

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: TfspecServer, params: types.DefinitionParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return None
        return guarded(ls, "definition", lambda: navigate.definition(doc, params.position))

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def references(ls: TfspecServer, params: types.ReferenceParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return []
        return guarded(ls, "references", lambda: navigate.references(
            doc, params.position, params.context.include_declaration), [])

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    def prepare_rename(ls: TfspecServer, params: types.PrepareRenameParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return None
        return guarded(ls, "prepareRename", lambda: navigate.prepare_rename(doc, params.position))

    @server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
    def rename(ls: TfspecServer, params: types.RenameParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return None
        try:
            return navigate.rename(doc, params.position, params.new_name)
        except navigate.RenameError as exc:  # the client shows the message
            raise JsonRpcException(str(exc), REQUEST_FAILED) from None
        except Exception:
            _report(ls, "rename")
            return None

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: TfspecServer, params: types.DocumentSymbolParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return []
        return guarded(ls, "documentSymbol", lambda: navigate.document_symbols(doc), [])

    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    def folding(ls: TfspecServer, params: types.FoldingRangeParams):
        doc = ls.documents.get(params.text_document.uri)
        if doc is None:
            return []
        return guarded(ls, "foldingRange", lambda: navigate.folding_ranges(doc), [])

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: TfspecServer, params: types.DocumentFormattingParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return None
        return guarded(ls, "formatting", lambda: edits.formatting(doc))

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls: TfspecServer, params: types.CodeActionParams):
        doc = fresh(ls, params.text_document.uri)
        if doc is None:
            return []
        return guarded(ls, "codeAction", lambda: edits.code_actions(
            doc, params.range, list(params.context.diagnostics)), [])
