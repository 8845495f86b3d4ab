"""Hover and signature help.

Hover on a Keras name shows its Keras path and Keras's docstring summary, then
its signature with defaults and each parameter's type; on a keyword argument,
its text from the docstring's `Args:`, type and default; on a section key, the
schema's description, default and allowed values; on a param, node, layer or
block name, its declaration (and the shape service's suffix, when it knows one).
Signature help carries the same texts.
"""

from __future__ import annotations

from lsprotocol import types

from . import complete, scan, vocab
from .documents import Document


def _md(text: str, rng: types.Range | None = None) -> types.Hover:
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                                    value=text), range=rng)


def _callable_md(name: str, doc: Document) -> str | None:
    params, block = complete._call_params(doc, name)
    if block is not None:
        return f"```tfspec\n{vocab.signature(name, params)}\n```\nblock of this spec"
    found = vocab.callable_entry(name)
    if not found:
        return None
    category, entry = found
    params = vocab.params_of(category, entry)
    head = f"`{vocab.namespace(category)}.{entry['name']}`"
    if entry.get("alias"):
        head += f" (alias of `{entry['name']}`)"
    summary = vocab.summary(category, entry)
    lines = [f"{head}: {summary}" if summary else head,
             f"```tfspec\n{vocab.signature(name, params)}\n```"]
    rows = [f"- `{p['name']}`: {vocab.param_doc(p)}" for p in params if vocab.param_doc(p)]
    if rows:
        lines.append("\n".join(rows))
    return "\n\n".join(lines)


def hover(doc: Document, pos: types.Position, shapes: object) -> types.Hover | None:
    offset = doc.offset(pos)
    toks = scan.tokens(doc.text)
    tok = next((t for t in toks if t.start <= offset < t.end or
                (t.end == offset and t.kind == "name")), None)
    if tok is None or tok.kind not in ("name", "string"):
        return None
    rng = types.Range(doc.lines.position(tok.start), doc.lines.position(tok.end))
    # a declared name (params, nodes, layers, blocks)
    if doc.result is not None and doc.result.ir is not None:
        found = _symbol(doc, pos)
        if found is not None:
            sym, _ = found
            text = _declaration(doc, sym)
            suffix = None
            try:
                suffix = shapes.hover_suffix(doc, sym.name)  # type: ignore[attr-defined]
            except Exception:  # the shapes are extra
                suffix = None
            return _md(text + (f"\n\n{suffix}" if suffix else ""), rng)
    if tok.kind == "string":
        return None
    ctx = scan.context(doc.text, tok.start, toks)
    i = toks.index(tok)
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    if nxt is not None and nxt.text == "(":
        text = _callable_md(tok.text, doc)
        return _md(text, rng) if text else None
    if nxt is not None and nxt.text == "=" and ctx.frame is not None \
            and ctx.frame.bracket == "(" and ctx.frame.callee not in (None, "()"):
        params, _ = complete._call_params(doc, ctx.frame.callee or "")
        param = next((p for p in params if p["name"] == tok.text), None)
        if param is None:
            return None
        text = f"`{ctx.frame.callee}` argument `{tok.text}`: "
        said = _arg_text(doc, ctx.frame.callee or "", tok.text)
        return _md(text + (f"{said}\n\n{vocab.param_doc(param)}" if said
                           else vocab.param_doc(param)), rng)
    path = ctx.section_path()
    if nxt is not None and (nxt.text in ("=", "{") or nxt.kind == "string") and path != [] \
            and path[0] not in ("model", "block"):
        node = vocab.schema_node(path + [tok.text])
        if path == ["export"]:
            node = vocab.section_keys(["export"]).get(tok.text)
        return _md(_key_md(path + [tok.text], node), rng) if node else None
    if not ctx.frames and tok.text in vocab.section_keys([]):
        node = vocab.section_keys([]).get(tok.text)
        return _md(_key_md([tok.text], node), rng) if node else None
    return None


def _summary_md(found: tuple[str, dict] | None) -> types.MarkupContent | None:
    summary = vocab.summary(*found) if found else None
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=summary) if summary \
        else None


def _arg_text(doc: Document, callee: str, name: str) -> str | None:
    """Keras's `Args:` text for a keyword of a Keras call (a spec's block has none)."""
    if complete._call_params(doc, callee)[1] is not None:
        return None
    found = vocab.callable_entry(callee)
    return vocab.arg_text(*found, name) if found else None


def _key_md(path: list[str], node: dict) -> str:
    lines = [f"`{'.'.join(path)}`"]
    if node.get("description"):
        lines.append(node["description"])
    if "default" in node:
        lines.append(f"default: `{vocab.show_value(node['default'])}`")
    values = vocab.enum_values(node)
    if values:
        lines.append("one of: " + ", ".join(f'`"{v}"`' for v, _ in values))
    return "\n\n".join(lines)


def _symbol(doc: Document, pos: types.Position):
    from .navigate import symbol_at

    return symbol_at(doc, pos)


def _declaration(doc: Document, sym) -> str:
    """The declaration's source line(s), as written."""
    first = sym.span.line
    stmt = doc.positions.value(sym.at.rsplit("/", 1)[0]) if sym.kind not in (
        "param", "block", "block param") else None
    last = stmt.end_line if stmt and stmt.line == first else first
    last = min(last, first + 6)
    lines = doc.lines.lines[first - 1:last]
    code = "\n".join(line.strip() if len(lines) == 1 else line for line in lines)
    if sym.kind == "param":
        code = code if code.lstrip().startswith("param") else code
    lang = "json" if doc.is_json else "tfspec"
    return f"{sym.kind} `{sym.name}`\n```{lang}\n{code}\n```"


def signature_help(doc: Document, pos: types.Position) -> types.SignatureHelp | None:
    offset = doc.offset(pos)
    ctx = scan.context(doc.text, offset)
    frame = next((f for f in reversed(ctx.frames) if f.bracket == "("), None)
    if frame is None or frame.callee in (None, "()") or ctx.in_comment:
        return None
    params, block = complete._call_params(doc, frame.callee or "")
    found = vocab.callable_entry(frame.callee or "") if block is None else None
    if not params and found is None:
        return None
    label = vocab.signature(frame.callee or "", params)
    infos = []
    start = len(frame.callee or "") + 1
    for p in params:
        piece = (p["name"] if p.get("required") or "default" not in p
                 else f"{p['name']} = {vocab.show_value(p['default'])}")
        said = vocab.arg_text(*found, p["name"]) if found else None
        text = "\n\n".join(t for t in (said, vocab.param_doc(p)) if t)
        infos.append(types.ParameterInformation(
            label=(start, start + len(piece)),
            documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text)
            if said else text or None))
        start += len(piece) + 2
    active = min(frame.commas, max(len(params) - 1, 0))
    key = ctx.key() if frame is ctx.frame else None
    toks = ctx.current() if frame is ctx.frame else []
    named = key or (toks[0].text if len(toks) >= 2 and toks[1].text == "=" else None)
    if named:
        active = next((i for i, p in enumerate(params) if p["name"] == named), active)
    return types.SignatureHelp(
        signatures=[types.SignatureInformation(
            label=label, parameters=infos, documentation=_summary_md(found))],
        active_signature=0, active_parameter=active)
