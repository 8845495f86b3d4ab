"""Go to definition, references, rename, the outline and folding ranges."""

from __future__ import annotations

from lsprotocol import types

from ..lang import catalog
from ..lang.diagnostics import Span, TfspecError
from . import names as namesmod
from . import scan
from .documents import Document

RESERVED = {"tfspec", "name", "param", "model", "block", "input", "layer", "output", "true",
            "false", "null", "None"}


def index(doc: Document) -> namesmod.Index:
    """The names of the document's current analysis."""
    return namesmod.index_of(doc.result)


def name_range(doc: Document, span: Span) -> types.Range:
    """The range of a name (a JSON string's without its quotes)."""
    start = doc.lines.spec_to_offset(span.line, span.col)
    end = doc.lines.spec_to_offset(span.end_line, span.end_col)
    if doc.text[start:start + 1] == '"' and end - start >= 2:
        start, end = start + 1, end - 1
    return types.Range(doc.lines.position(start), doc.lines.position(end))


def symbol_at(doc: Document, pos: types.Position):
    line, col = doc.lines.to_spec(pos)
    return index(doc).at(line, col)


def definition(doc: Document, pos: types.Position) -> types.Location | None:
    found = symbol_at(doc, pos)
    if found is None:
        return None
    return types.Location(uri=doc.uri, range=name_range(doc, found[0].span))


def references(doc: Document, pos: types.Position, declaration: bool) -> list[types.Location]:
    found = symbol_at(doc, pos)
    if found is None:
        return []
    sym = found[0]
    spans = ([sym.span] if declaration else []) + sym.refs
    return [types.Location(uri=doc.uri, range=name_range(doc, s)) for s in spans]


def prepare_rename(doc: Document, pos: types.Position) -> types.Range | None:
    found = symbol_at(doc, pos)
    return name_range(doc, found[1]) if found else None


class RenameError(TfspecError, ValueError):
    """A rename that would break the spec; the message says why."""


def rename(doc: Document, pos: types.Position, new: str) -> types.WorkspaceEdit | None:
    found = symbol_at(doc, pos)
    if found is None:
        return None
    sym = found[0]
    if new == sym.name:
        return types.WorkspaceEdit(changes={doc.uri: []})
    if not new.isidentifier() or not new.isascii():
        raise RenameError(f"`{new}` is not a name: use letters, digits and _, "
                          "not starting with a digit")
    if new in RESERVED:
        raise RenameError(f"`{new}` is a keyword of the language")
    idx = index(doc)
    clash = _clash(idx, sym, new)
    if clash is not None:
        raise RenameError(f"cannot rename `{sym.name}` to `{new}`: {clash}")
    text = new
    edits = [types.TextEdit(range=name_range(doc, s), new_text=text)
             for s in [sym.span, *sym.refs]]
    return types.WorkspaceEdit(changes={doc.uri: edits})


def _clash(idx: namesmod.Index, sym: namesmod.Symbol, new: str) -> str | None:
    for other in idx.symbols:
        if other.name != new:
            continue
        same_scope = other.scope == sym.scope
        visible = (other.scope == "" or sym.scope == "" or same_scope)
        if visible:
            line = other.span.line
            return f"{other.kind} `{new}` is already declared at line {line}"
    if sym.kind in ("block", "layer") and catalog.lookup("layers", new) is not None:
        return f"`{new}` is a Keras layer"
    return None


# -- outline and folding ------------------------------------------------------------------

SK = types.SymbolKind
_SYMBOL_KIND = {"param": SK.Constant, "block": SK.Class, "block param": SK.TypeParameter,
                "input": SK.Variable, "node": SK.Variable, "layer": SK.Field,
                "output": SK.Event}


def document_symbols(doc: Document) -> list[types.DocumentSymbol]:
    ir = doc.ir
    if not isinstance(ir, dict):
        return []
    pos = doc.positions
    idx = index(doc)
    out: list[types.DocumentSymbol] = []

    def sym_of(s: namesmod.Symbol) -> types.DocumentSymbol:
        stmt = pos.value(s.at.rsplit("/", 1)[0]) if s.kind not in ("param",) else pos.key(s.at)
        full = doc.range(stmt or s.span)
        sel = name_range(doc, s.span)
        full = _enclose(full, sel)
        return types.DocumentSymbol(name=s.name, kind=_SYMBOL_KIND[s.kind], range=full,
                                    selection_range=sel, detail=s.kind)

    for key in ir:
        span = pos.value(f"/{key}")
        if span is None or key in ("comments", "tfspec"):
            continue
        rng = doc.range(span)
        key_span = pos.keys.get(f"/{key}")
        sel = doc.range(key_span) if key_span else types.Range(rng.start, rng.start)
        if key == "params":
            for s in idx.symbols:
                if s.kind == "param":
                    out.append(sym_of(s))
            continue
        if key == "blocks":
            for i, _block in enumerate(ir["blocks"] if isinstance(ir["blocks"], list) else []):
                bspan = pos.value(f"/blocks/{i}")
                named = [s for s in idx.symbols if s.at == f"/blocks/{i}/name"]
                if bspan is None or not named:
                    continue
                kids = [sym_of(s) for s in idx.symbols if s.scope == f"/blocks/{i}"]
                sel = name_range(doc, named[0].span)
                out.append(types.DocumentSymbol(
                    name=named[0].name, kind=SK.Class, range=_enclose(doc.range(bspan), sel),
                    selection_range=sel, detail="block", children=kids))
            continue
        if key == "model" and isinstance(ir["model"], dict):
            name = str(ir["model"].get("name") or "model")
            kids = [sym_of(s) for s in idx.symbols if s.scope == "/model"]
            nspan = pos.value("/model/name")
            sel = name_range(doc, nspan) if nspan else types.Range(rng.start, rng.start)
            out.append(types.DocumentSymbol(
                name=name, kind=SK.Class, range=_enclose(rng, sel), selection_range=sel,
                detail=f"model {ir['model'].get('kind', '')}".strip(), children=kids))
            continue
        out.append(types.DocumentSymbol(name=key, kind=SK.Namespace if isinstance(
            ir[key], (dict, list)) else SK.Property, range=_enclose(rng, sel),
            selection_range=sel))
    out.sort(key=lambda s: (s.range.start.line, s.range.start.character))
    return out


def _enclose(full: types.Range, sel: types.Range) -> types.Range:
    """`full` widened to contain `sel` (LSP requires it)."""
    start = min((full.start.line, full.start.character), (sel.start.line, sel.start.character))
    end = max((full.end.line, full.end.character), (sel.end.line, sel.end.character))
    return types.Range(types.Position(*start), types.Position(*end))


def folding_ranges(doc: Document) -> list[types.FoldingRange]:
    """Brackets that span lines, and runs of comment lines."""
    toks = scan.tokens(doc.text)
    out = []
    stack: list[scan.Token] = []
    comments: list[scan.Token] = []

    def flush() -> None:
        if len(comments) >= 2:
            a = doc.lines.position(comments[0].start).line
            b = doc.lines.position(comments[-1].start).line
            if b > a:
                out.append(types.FoldingRange(start_line=a, end_line=b,
                                              kind=types.FoldingRangeKind.Comment))
        comments.clear()

    for tok in toks:
        if tok.kind == "comment":
            if comments and doc.lines.position(tok.start).line != \
                    doc.lines.position(comments[-1].start).line + 1:
                flush()
            comments.append(tok)
            continue
        flush()
        if tok.text in scan.OPENERS:
            stack.append(tok)
        elif tok.text in scan.CLOSERS and stack and stack[-1].text == scan.CLOSERS[tok.text]:
            open_ = stack.pop()
            a = doc.lines.position(open_.start).line
            b = doc.lines.position(tok.start).line
            if b - 1 > a:
                out.append(types.FoldingRange(start_line=a, end_line=b - 1))
    flush()
    return out
