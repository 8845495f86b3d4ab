"""Completion: from the tokens before the cursor (`scan`), the catalog and schema
(`vocab`) and the names of the last analysis that parsed (`names`).

What is offered where:
- top level: the statements and sections (`param`, `model`, `data { … }` …);
- in a section: its keys from the schema, with their descriptions;
- after `key =` in a section: the key's allowed strings, Keras calls of its kind
  (`optimizer =` -> the optimizers), params;
- in a model or block body: layers (as snippets with their required arguments,
  documented with Keras's docstring summary and the signature), blocks, and the
  names in scope;
- in a call's parentheses: its keyword arguments with types and defaults (and
  Keras's `Args:` text as documentation), then names in scope; after
  `activation = "` the activations, after `padding = "` the allowed values;
- in a string after a section key (`loop = "`): the allowed values.
"""

from __future__ import annotations

import re
from typing import Any

from lsprotocol import types

from ..lang import catalog
from . import names as namesmod
from . import scan, vocab
from .documents import Document

Item = types.CompletionItem
Kind = types.CompletionItemKind
TOP = ["tfspec", "name", "param", "model", "block", "data", "train", "distribute", "tune",
       "export"]
SECTION_SNIPPETS = {"data": "data {\n  $0\n}", "train": "train {\n  $0\n}",
                    "distribute": "distribute {\n  $0\n}", "export": "export {\n  $0\n}",
                    "tune": "tune {\n  $0\n}",
                    "model": "model ${1:Net} ${2|functional,sequential,subclass|} {\n  $0\n}",
                    "block": "block ${1:Name}(${2:x}) {\n  input x\n  $0\n}",
                    "param": "param ${1:name} = ${2:1}", "name": 'name "${1}"',
                    "tfspec": "tfspec 1"}


def completions(doc: Document, pos: types.Position, snippets: bool = True) -> list[Item]:
    """The items at `pos`; `snippets` False (the client declared no snippet support):
    plain text, placeholders replaced by their names (`Conv2D(filters, kernel_size)`)."""
    items = _completions(doc, pos)
    return items if snippets else [_plain_item(i) for i in items]


# `$0`, `$1`, `${1}`, `${1:name}`, `${2|a,b|}`: all the snippet syntax the items use
_PLACEHOLDER = re.compile(r"\$(?:\d+|\{\d+(?::([^}]*)|\|([^|}]*)\|)?\})")


def plain(snippet: str) -> str:
    """A snippet as plain text: each placeholder its default, a choice its first."""
    def text(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return m.group(1)
        return m.group(2).split(",")[0] if m.group(2) is not None else ""
    return _PLACEHOLDER.sub(text, snippet)


def _plain_item(item: Item) -> Item:
    if item.insert_text_format == types.InsertTextFormat.Snippet:
        item.insert_text = plain(item.insert_text or item.label)
        if isinstance(item.text_edit, (types.TextEdit, types.InsertReplaceEdit)):
            item.text_edit.new_text = plain(item.text_edit.new_text)
        item.insert_text_format = types.InsertTextFormat.PlainText
    return item


def _completions(doc: Document, pos: types.Position) -> list[Item]:
    offset = doc.offset(pos)
    ctx = scan.context(doc.text, offset)
    if ctx.in_comment:
        return []
    if doc.is_json:
        return _json(doc, ctx)
    index = namesmod.index_of(doc.good)  # the last text that parsed: the user is typing
    scope = _scope(doc, ctx)
    if ctx.string is not None:
        return _strings(ctx)
    frame = ctx.frame
    if frame is None:
        return _top(ctx)
    if frame.bracket == "(" and frame.callee:
        return _call_args(doc, ctx, frame, index, scope)
    if frame.bracket == "[":
        key = ctx.key()
        return _values(key, ctx, index, scope, quoted=False)
    # in `{ }`
    path = ctx.section_path()
    if path and path[0] in ("model", "block"):
        return _body(ctx, index, scope)
    key = ctx.key()
    if key is not None:
        return _values(key, ctx, index, scope, quoted=False, path=path + [key])
    toks = ctx.current()
    if toks and not (toks[-1].text in (")", "]", "}") or toks[-1].kind in ("string", "number")
                     ) or toks and "\n" not in doc.text[toks[-1].end:offset]:
        return []  # mid-entry (`batch 3|`): nothing sensible to offer
    return _keys(path)




def _scope(doc: Document, ctx: scan.Context) -> str:
    """The body the cursor is in, as the last good analysis names it."""
    for f in ctx.frames:
        head = [t.text for t in f.head]
        if f.bracket == "{" and head and head[0] == "model":
            return "/model"
        if f.bracket == "{" and head and head[0] == "block" and len(head) > 1:
            good = doc.good
            blocks = (good.ir or {}).get("blocks") if good else None
            for i, b in enumerate(blocks or []):
                if isinstance(b, dict) and b.get("name") == head[1]:
                    return f"/blocks/{i}"
    return ""


def _top(ctx: scan.Context) -> list[Item]:
    if ctx.current():
        return []
    return [Item(label=k, kind=Kind.Keyword, insert_text=SECTION_SNIPPETS.get(k, k),
                 insert_text_format=types.InsertTextFormat.Snippet) for k in TOP]


def _keys(path: list[str]) -> list[Item]:
    out = []
    for key, node in vocab.section_keys(path).items():
        if key == "comments":
            continue
        props = node.get("properties")
        is_target = path == ["export"]
        if is_target:
            text = f'{key} "${{1:path}}"'
        elif props is not None and node.get("type") == "object":
            text = f"{key} {{\n  $0\n}}"
        else:
            text = f"{key} = $0"
        detail = None
        if "default" in node:
            detail = f"default {vocab.show_value(node['default'])}"
        out.append(Item(label=key, kind=Kind.Property, detail=detail,
                        documentation=_md(node.get("description")),
                        insert_text=text, insert_text_format=types.InsertTextFormat.Snippet))
    return out


def _md(text: str | None) -> types.MarkupContent | None:
    if not text:
        return None
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=text)


def _strings(ctx: scan.Context) -> list[Item]:
    """Inside a string: the allowed values of the key or argument it belongs to."""
    key = ctx.key()
    if key is None:
        return []
    values: list[tuple[str, str | None]] = []
    frame = ctx.frame
    if frame is not None and frame.bracket == "(" and frame.callee and frame.callee != "()":
        found = vocab.callable_entry(frame.callee)
        param = None
        if found:
            param = next((p for p in vocab.params_of(*found) if p["name"] == key), None)
        values = [(v, None) for v in vocab.string_values_for(param, key)]
    else:
        path = ctx.section_path()
        values = vocab.enum_values(vocab.schema_node(path + [key]))
        if not values and key in vocab.KEY_CATEGORY:
            category = vocab.KEY_CATEGORY[key]
            if category in vocab.STRING_CATEGORIES:
                values = [(v, None) for v in vocab.strings_of(category)]
        if not values:
            values = [(v, None) for v in vocab.string_values_for(None, key)]
    return [Item(label=v, kind=Kind.EnumMember, documentation=_md(d),
                 text_edit=None) for v, d in values]


def _callables(category: str, snippets: bool = True) -> list[Item]:
    out = []
    for name in vocab.entry_names(category):
        found = vocab.callable_entry(name, category)
        if not found:
            continue
        cat, entry = found
        params = vocab.params_of(cat, entry)
        required = [p for p in params if p.get("required")]
        text = name + "(" + ", ".join(f"${{{i}:{p['name']}}}"
                                      for i, p in enumerate(required, 1)) + ")$0"
        # the documentation comes with completionItem/resolve (`resolve`): a layer list
        # with every docstring is ~100 KiB, sent again at each keystroke
        out.append(Item(label=name, kind=Kind.Class if entry.get("kind") == "class"
                        else Kind.Function,
                        detail=f"{vocab.namespace(cat)}.{entry['name']}",
                        insert_text=text if snippets else name,
                        insert_text_format=types.InsertTextFormat.Snippet,
                        data={"category": category, "name": name}))
    return out


def resolve(item: Item) -> Item:
    """completionItem/resolve: a Keras callable's documentation, once it is shown."""
    data = item.data if isinstance(item.data, dict) else {}
    found = vocab.callable_entry(data.get("name", ""), data.get("category", ""))
    if found and item.documentation is None:
        cat, entry = found
        item.documentation = _md(_callable_doc(data["name"], cat, entry,
                                               vocab.params_of(cat, entry)))
    return item


def _callable_doc(name: str, category: str, entry: dict[str, Any],
                  params: list[dict[str, Any]]) -> str:
    """Keras's summary of the entry, then its signature."""
    code = "```\n" + vocab.signature(name, params) + "\n```"
    summary = vocab.summary(category, entry)
    return f"{summary}\n\n{code}" if summary else code


def _names(index: namesmod.Index, scope: str, kinds: tuple[str, ...] | None = None
           ) -> list[Item]:
    out = []
    seen = set()
    for sym in index.in_scope(scope):
        if sym.name in seen or (kinds and sym.kind not in kinds):
            continue
        seen.add(sym.name)
        kind = {"param": Kind.Constant, "block": Kind.Module, "layer": Kind.Field}.get(
            sym.kind, Kind.Variable)
        out.append(Item(label=sym.name, kind=kind, detail=sym.kind, sort_text="0" + sym.name))
    return out


def _body(ctx: scan.Context, index: namesmod.Index, scope: str) -> list[Item]:
    """A model or block body: statements, layers, blocks, names in scope."""
    toks = ctx.current()
    items = _names(index, scope, ("param", "input", "node", "layer", "output", "block",
                                  "block param"))
    layers = _callables("layers")
    if not toks:  # a statement starts here
        kws = [Item(label=k, kind=Kind.Keyword) for k in ("input", "layer", "output")]
        return kws + items + layers
    return items + layers


def _values(key: str | None, ctx: scan.Context, index: namesmod.Index, scope: str,
            quoted: bool, path: list[str] | None = None) -> list[Item]:
    """After `key =` (or in a list after it): allowed strings, calls of its kind, params."""
    out: list[Item] = []
    if path:
        for v, d in vocab.enum_values(vocab.schema_node(path)):
            out.append(Item(label=f'"{v}"', kind=Kind.EnumMember, documentation=_md(d),
                            filter_text=v))
    category = vocab.KEY_CATEGORY.get(key or "")
    if key == "source":
        out += _sources()
    elif category:
        out += _callables(category)
        if category in vocab.STRING_CATEGORIES:
            out += [Item(label=f'"{s}"', kind=Kind.EnumMember, filter_text=s)
                    for s in vocab.strings_of(category)]
    out += _names(index, scope, ("param", "block param", "input", "node", "layer", "output"))
    return out


def _sources() -> list[Item]:
    from ..lang.sources import SOURCES

    out = []
    for name, entry in SOURCES.items():
        params = entry["params"]
        required = [p for p in params if p.get("required")]
        text = name + "(" + ", ".join(f"${{{i}:{p['name']}}}"
                                      for i, p in enumerate(required, 1)) + ")$0"
        out.append(Item(label=name, kind=Kind.Function, detail="data source",
                        documentation=_md(entry.get("doc")), insert_text=text,
                        insert_text_format=types.InsertTextFormat.Snippet))
    return out


def _call_args(doc: Document, ctx: scan.Context, frame: scan.Frame,
               index: namesmod.Index, scope: str) -> list[Item]:
    names_items = _names(index, scope, ("param", "block param", "input", "node", "layer",
                                        "output"))
    if frame.callee == "()":  # `Dense(4)(x|`: the tensors the layer is applied to
        return names_items
    toks = ctx.current()
    key = ctx.key()
    params, block = _call_params(doc, frame.callee or "")
    found = vocab.callable_entry(frame.callee or "") if block is None else None
    if key is not None:  # `Dense(4, activation = |`
        param = next((p for p in params if p["name"] == key), None)
        out = [Item(label=f'"{v}"', kind=Kind.EnumMember, filter_text=v)
               for v in vocab.string_values_for(param, key)]
        category = catalog.kind_for_param(key)
        if category and category != "activations":
            out += _callables(category)
        if param and param.get("type") == "bool":
            out += [Item(label=v, kind=Kind.Keyword) for v in ("true", "false")]
        return out + names_items
    if toks:
        return []  # mid-argument (`Dense(4 |`)
    given = _given_kwargs(ctx, frame)
    out = []
    for i, p in enumerate(params):
        if p["name"] in given:
            continue
        out.append(Item(label=f"{p['name']} =", kind=Kind.Property,
                        detail=vocab.param_doc(p) or None,
                        documentation=_md(vocab.arg_text(*found, p["name"]) if found else None),
                        insert_text=f"{p['name']} = ", filter_text=p["name"],
                        sort_text=f"{'0' if p.get('required') else '1'}{i:03d}"))
    return out + names_items


def _call_params(doc: Document, callee: str) -> tuple[list[dict[str, Any]], Any]:
    """The parameters of a called name: a block of the spec, else the catalog's."""
    good = doc.good
    for b in ((good.ir or {}).get("blocks") or []) if good else []:
        if isinstance(b, dict) and b.get("name") == callee:
            params = []
            for p in b.get("params") or []:
                if isinstance(p, dict) and isinstance(p.get("name"), str):
                    d = {"name": p["name"], "required": "default" not in p}
                    if "default" in p and not isinstance(p["default"], dict):
                        d["default"] = p["default"]
                    params.append(d)
            return params, b
    found = vocab.callable_entry(callee)
    if not found:
        return [], None
    return vocab.params_of(*found), None


def _given_kwargs(ctx: scan.Context, frame: scan.Frame) -> set[str]:
    toks = ctx.toks
    end = scan.matching(toks, frame.at)
    end = len(toks) if end is None else end
    given = set()
    depth = 0
    for j in range(frame.at + 1, end):
        t = toks[j].text
        if t in scan.OPENERS:
            depth += 1
        elif t in scan.CLOSERS:
            depth -= 1
        elif depth == 0 and t == "=" and j > 0 and toks[j - 1].kind == "name":
            given.add(toks[j - 1].text)
    return given


def _json(doc: Document, ctx: scan.Context) -> list[Item]:
    """JSON documents: Keras names inside `"call": "…"` and allowed strings after a
    known key (the DSL's keys, quoted)."""
    if ctx.string is None:
        return []
    before = [t for t in ctx.before if t is not ctx.string]
    if len(before) >= 2 and before[-1].text == ":" and before[-2].kind == "string":
        key = before[-2].text.strip('"')
        if key == "call":
            out = []
            for category in ("layers", "optimizers", "losses", "metrics", "callbacks",
                             "schedules"):
                out += [Item(label=n, kind=Kind.Class, detail=vocab.namespace(category))
                        for n in vocab.entry_names(category)]
            return out
        values = [(v, None) for v in vocab.string_values_for(None, key)]
        if key in vocab.KEY_CATEGORY and vocab.KEY_CATEGORY[key] in vocab.STRING_CATEGORIES:
            values += [(v, None) for v in vocab.strings_of(vocab.KEY_CATEGORY[key])]
        return [Item(label=v, kind=Kind.EnumMember) for v, _ in values]
    return []
