"""The DSL front end: `.tfspec` text -> IR (plain JSON values) + positions.

lark parses with the LALR grammar in `grammars/tfspec.lark`; a `Transformer`
builds located `Node`s so that lark trees never leave this module. Syntax errors
become one E100 diagnostic with a friendly message; shape errors that the
grammar allows but the IR cannot hold (a duplicate key, a bad string escape)
are collected as they are found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .diagnostics import Diagnostics, Span, did_you_mean
from .located import Node, Positions, unwrap
from .resources import resource_path

LANGUAGE_VERSION = 1
TOP_LEVEL_SECTIONS = ("data", "train", "distribute", "export")


@dataclass
class Parsed:
    """The result of reading a spec: the IR (None when unreadable) and positions."""

    ir: dict[str, Any] | None
    positions: Positions
    source: str


@lru_cache(maxsize=1)
def grammar() -> Lark:
    return Lark(
        resource_path("grammars", "tfspec.lark").read_text(),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _on_comment},
    )


# Comments are %ignored by the grammar; the lexer hands each one to `_on_comment`,
# which appends it to the list of the parse in progress (parses do not nest).
_COMMENTS: list[list[Token]] = []


def _on_comment(tok: Token) -> Token:
    if _COMMENTS:
        _COMMENTS[-1].append(tok)
    return tok


def tok_span(tok: Token) -> Span:
    return Span(tok.line, tok.column, tok.end_line, tok.end_column)


def meta_span(meta: Any) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def item(node: Node) -> Node:
    node.item = True
    return node


@v_args(meta=True)
class _ToIR(Transformer):
    """lark tree -> `Node` tree, collecting IR-shape errors as it goes."""

    def __init__(self, diags: Diagnostics):
        super().__init__()
        self.diags = diags

    # -- literals and expressions ------------------------------------------------

    def number(self, meta, children):
        (tok,) = children
        text = str(tok)
        value: int | float = int(text) if text.isdigit() else float(text)
        return Node(value, tok_span(tok))

    def string(self, meta, children):
        (tok,) = children
        try:
            value = json.loads(tok)
        except json.JSONDecodeError as exc:
            self.diags.add(
                "E100",
                f"invalid escape in string: {exc.msg}. Received: {tok}",
                tok_span(tok),
                hint='strings use JSON escapes: \\" \\\\ \\n \\t \\uXXXX',
            )
            value = str(tok)[1:-1]
        return Node(value, tok_span(tok))

    def true(self, meta, children):
        return Node(True, meta_span(meta))

    def false(self, meta, children):
        return Node(False, meta_span(meta))

    def null(self, meta, children):
        return Node(None, meta_span(meta))

    def list(self, meta, children):
        items = [item(c) for c in children if c is not None]
        return Node(items, meta_span(meta))

    def ref(self, meta, children):
        (tok,) = children
        return Node({"ref": Node(str(tok), tok_span(tok))}, tok_span(tok))

    def call(self, meta, children):
        callee, *args = children
        if isinstance(callee, Token):
            callee = Node(str(callee), tok_span(callee))
        positional: list[Node] = []
        keywords: dict[str, Node] = {}
        for arg in args:
            if arg is None:
                continue
            if isinstance(arg, tuple):
                key, value = arg
                if key in keywords:
                    self.diags.add(
                        "E304",
                        f"argument `{key}` is given twice",
                        value.key_span,
                        hint="remove one of them",
                    )
                    continue
                keywords[key] = value
            else:
                if keywords:
                    self.diags.add(
                        "E100",
                        "positional argument after keyword arguments",
                        arg.span,
                        hint="put positional arguments first, as in Python",
                    )
                positional.append(arg)
        value: dict[str, Node] = {"call": callee}
        span = meta_span(meta)
        if positional:
            value["args"] = Node(positional, positional[0].span)
        if keywords:
            first = next(iter(keywords.values()))
            value["kwargs"] = Node(keywords, first.key_span or first.span)
        return Node(value, span)

    def kwarg(self, meta, children):
        key, value = children
        value.key_span = tok_span(key)
        return (str(key), value)

    def _op(self, op: str, meta, args: list[Node]) -> Node:
        span = meta_span(meta)
        return Node({"op": Node(op, span), "args": Node(args, span)}, span)

    def add(self, meta, children):
        return self._op("+", meta, children)

    def sub(self, meta, children):
        return self._op("-", meta, children)

    def mul(self, meta, children):
        return self._op("*", meta, children)

    def div(self, meta, children):
        return self._op("/", meta, children)

    def neg(self, meta, children):
        (operand,) = children
        value = operand.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Node(-value, meta_span(meta))  # fold `-3` into the literal
        return self._op("neg", meta, [operand])

    def pipe_stage(self, meta, children):
        left, stage = children
        if isinstance(left.value, dict) and "pipe" in left.value and not left.item:
            stages = left.value["pipe"].value
        else:
            stages = [item(left)]
        stages = stages + [item(stage)]
        span = meta_span(meta)
        return Node({"pipe": Node(stages, span)}, span)

    # -- models and blocks ---------------------------------------------------------

    def dim(self, meta, children):
        (tok,) = children
        text = str(tok)
        if not text.isdigit():
            self.diags.add(
                "E201",
                f"a dimension must be a positive integer or None. Received: {text}",
                tok_span(tok),
            )
            return Node(None, tok_span(tok))
        return Node(int(text), tok_span(tok))

    def unknown_dim(self, meta, children):
        return Node(None, meta_span(meta))

    def shape(self, meta, children):
        return Node([c for c in children if c is not None], meta_span(meta))

    def input_type(self, meta, children):
        dtype, shape = children
        return (dtype, shape)

    def input_stmt(self, meta, children):
        name, typ = children
        value: dict[str, Node] = {"input": Node(str(name), tok_span(name))}
        if typ is not None:
            dtype, shape = typ
            if dtype is not None:
                value["dtype"] = Node(str(dtype), tok_span(dtype))
            value["shape"] = shape
        return item(Node(value, meta_span(meta)))

    def layer_stmt(self, meta, children):
        name, expr = children
        return item(Node({"layer": Node(str(name), tok_span(name)), "value": expr}, meta_span(meta)))

    def output_stmt(self, meta, children):
        name, expr = children
        value = {"output": Node(str(name), tok_span(name))}
        if expr is not None:
            value["value"] = expr
        return item(Node(value, meta_span(meta)))

    def node_stmt(self, meta, children):
        name, expr = children
        return item(Node({"node": Node(str(name), tok_span(name)), "value": expr}, meta_span(meta)))

    def add_stmt(self, meta, children):
        (call,) = children
        return item(Node({"add": call}, meta_span(meta)))

    def stmts(self, meta, children):
        span = meta_span(meta) if not meta.empty else Span(1, 1, 1, 1)
        return Node(list(children), span)

    def model_decl(self, meta, children):
        name, kind, body = children
        span = meta_span(meta)
        if meta.empty is False and body.span == Span(1, 1, 1, 1):
            body.span = span
        node = Node(
            {
                "name": Node(str(name), tok_span(name)),
                "kind": Node(str(kind), tok_span(kind)),
                "body": body,
            },
            span,
        )
        node.end = Span(span.end_line, span.end_col - 1, span.end_line, span.end_col)
        return ("model", Token("NAME", "model"), item(node), meta)

    def block_param(self, meta, children):
        name, default = children
        value: dict[str, Node] = {"name": Node(str(name), tok_span(name))}
        if default is not None:
            value["default"] = default
        return item(Node(value, meta_span(meta)))

    def block_decl(self, meta, children):
        name, *params, body = children
        span = meta_span(meta)
        params = [p for p in params if p is not None]
        if body.span == Span(1, 1, 1, 1):
            body.span = span
        node = Node(
            {
                "name": Node(str(name), tok_span(name)),
                "params": Node(params, params[0].span if params else tok_span(name)),
                "body": body,
            },
            span,
        )
        node.end = Span(span.end_line, span.end_col - 1, span.end_line, span.end_col)
        return ("block", name, item(node), meta)

    # -- sections --------------------------------------------------------------------

    def assign(self, meta, children):
        key, value = children
        return ("assign", key, value, meta)

    def subsection(self, meta, children):
        key, entries = children
        return ("subsection", key, self._object(entries, meta), meta)

    def target(self, meta, children):
        fmt, path, entries = children
        span = meta_span(meta)
        members = {"format": Node(str(fmt), tok_span(fmt))}
        members["format"].key_span = tok_span(fmt)
        members["path"] = self.string(meta, [path])
        members["path"].key_span = tok_span(path)
        if entries is not None:
            members.update(self._object(entries, meta).value)
        node = Node(members, span)
        if entries is not None:
            node.end = Span(span.end_line, span.end_col - 1, span.end_line, span.end_col)
        return ("target", fmt, node, meta)

    def entries(self, meta, children):
        return list(children)

    def _object(self, entries: list, meta) -> Node:
        members: dict[str, Node] = {}
        for kind, key, value, entry_meta in entries:
            name = str(key)
            if kind == "target":
                self.diags.add(
                    "E100",
                    f"`{name} \"…\"` declares an export target; it belongs in `export {{ … }}`",
                    tok_span(key),
                    hint=f"write `{name} = …` to set a value",
                )
                continue
            if name in members:
                self.diags.add(
                    "E205",
                    f"`{name}` is set twice",
                    tok_span(key),
                    hint=f"the first `{name}` is at line {members[name].key_span.line}",
                )
                continue
            value.key_span = tok_span(key)
            value.span = meta_span(entry_meta) if kind == "subsection" else value.span
            members[name] = item(value)
            if kind == "subsection":
                s = value.span
                value.end = Span(s.end_line, s.end_col - 1, s.end_line, s.end_col)
        span = meta_span(meta)
        return Node(members, span)

    def section(self, meta, children):
        key, entries = children
        name = str(key)
        span = meta_span(meta)
        if name == "export":
            targets = []
            for kind, tkey, value, entry_meta in entries:
                if kind != "target":
                    self.diags.add(
                        "E100",
                        f"expected an export target such as `saved_model \"path\"`, "
                        f"not `{tkey} {'=' if kind == 'assign' else '{'} …`",
                        tok_span(tkey),
                        hint='write `<format> "<path>" { options }`, e.g. `tflite "model.tflite"`',
                    )
                    continue
                targets.append(item(value))
            node = Node(targets, span)
        else:
            node = self._object(entries, meta)
        node.end = Span(span.end_line, span.end_col - 1, span.end_line, span.end_col)
        return ("section", key, item(node), meta)

    def name_decl(self, meta, children):
        (tok,) = children
        return ("name", Token("NAME", "name"), item(self.string(meta, [tok])), meta)

    def param_decl(self, meta, children):
        name, value = children
        return ("param", name, value, meta)

    def header(self, meta, children):
        (tok,) = children
        version = self.number(meta, [tok])
        if version.value != LANGUAGE_VERSION:
            self.diags.add(
                "E102",
                f"this tfspec understands language version {LANGUAGE_VERSION}. "
                f"Received: tfspec {tok}",
                tok_span(tok),
                hint=f"write `tfspec {LANGUAGE_VERSION}` or upgrade tfspec",
            )
        return version

    def start(self, meta, children):
        header, *items = children
        top: dict[str, Node] = {"tfspec": item(header)}
        header.key_span = header.span
        params: dict[str, Node] = {}
        blocks: list[Node] = []
        for kind, key, value, item_meta in items:
            span = meta_span(item_meta)
            name = str(key)
            if kind == "param":
                if name in params:
                    self.diags.add(
                        "E401",
                        f"param `{name}` is declared twice",
                        tok_span(key),
                        hint=f"the first declaration is at line {params[name].key_span.line}",
                    )
                    continue
                value.key_span = tok_span(key)
                params[name] = item(value)
                value.span = value.span
                if "params" not in top:
                    top["params"] = Node(params, span)
                continue
            if kind == "block":
                blocks.append(value)
                if "blocks" not in top:
                    top["blocks"] = Node(blocks, span)
                continue
            if name in top:
                where = top[name].key_span or top[name].span
                self.diags.add(
                    "E205",
                    f"`{name}` appears twice; a spec has one `{name}`",
                    tok_span(key) if kind == "section" else span,
                    hint=f"the first one is at line {where.line}",
                )
                continue
            value.key_span = tok_span(key) if kind == "section" else span
            value.span = span
            top[name] = value
        return Node(top, meta_span(meta))


# -- syntax errors ---------------------------------------------------------------------

_TOKEN_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "COLON": "`:`",
    "$END": "the end of the file",
}

# Common mistakes, recognised by the parser state they leave it in (lark's match_examples).
_EXAMPLES: dict[str, list[str]] = {
    "a spec starts with `tfspec 1`": ["name \"x\"", "data { }", "model M functional { }"],
    "expected `=` after the key": [
        "tfspec 1\ndata { batch 64 }",
        "tfspec 1\ntrain { epochs: 3 }",
        "tfspec 1\nparam lr 0.1",
    ],
    "missing `)` to close the argument list": [
        "tfspec 1\nmodel M functional { x = Dense(3 }",
        "tfspec 1\ntrain { optimizer = Adam(learning_rate = 0.1 }",
        "tfspec 1\nmodel M sequential { Dense(3 Dense(4) }",
    ],
    "missing `]` to close the list": [
        "tfspec 1\ntrain { metrics = [\"accuracy\" }",
        "tfspec 1\ntrain { metrics = [\"accuracy\", \"mae\" }",
    ],
    "missing `}` to close the block": [
        "tfspec 1\ndata { batch = 3 ",
        "tfspec 1\nmodel M functional { x = y",
    ],
    "a value is missing after `=`": [
        "tfspec 1\ndata { batch = }",
        "tfspec 1\nparam lr =",
        "tfspec 1\nmodel M functional { x = }",
    ],
    "a model is declared as `model Name sequential|functional|subclass { … }`": [
        "tfspec 1\nmodel functional { }",
        "tfspec 1\nmodel M { }",
    ],
}


def _expected(exc: UnexpectedInput) -> str:
    names = sorted({_TOKEN_NAMES.get(t, f"`{t.lower()}`" if t.isalpha() else t) for t in
                    getattr(exc, "expected", set()) or set() if not t.startswith("__")})
    if not names:
        return ""
    if len(names) > 6:
        names = names[:6] + ["…"]
    return "expected " + ", ".join(names)


def _syntax_error(exc: UnexpectedInput, text: str, diags: Diagnostics) -> None:
    line, col = exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1
    hint = None
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if char == "'":
            message = "strings use double quotes"
            end = text.find("'", exc.pos_in_stream + 1)
            hint = f'write "{text[exc.pos_in_stream + 1:end]}"' if end > 0 else None
        else:
            message = f"unexpected character `{char}`"
            allowed = _expected(exc)
            if allowed:
                message += f"; {allowed}"
        diags.add("E100", message, Span.point(line, col), hint)
        return
    token = getattr(exc, "token", None)
    label = exc.match_examples(
        lambda s: grammar().parse(s), _EXAMPLES, use_accepts=True
    ) if isinstance(exc, (UnexpectedToken, UnexpectedEOF)) else None
    if isinstance(exc, UnexpectedEOF) or (token is not None and token.type == "$END"):
        where = "the end of the file"
        line = text.count("\n") + 1
        col = len(text.rsplit("\n", 1)[-1]) + 1
        if text.endswith("\n"):
            line -= 1
            col = len(text.rstrip("\n").rsplit("\n", 1)[-1]) + 1
        span = Span.point(line, col)
    else:
        where = f"`{token}`"
        span = tok_span(token) if token is not None else Span.point(line, col)
        if token is not None and token.type == "NAME" and str(token) in ("True", "False"):
            hint = f"booleans are written `{str(token).lower()}`"
    message = label or f"unexpected {where}"
    allowed = _expected(exc)
    if label:
        message = f"{label} (found {where})"
    elif allowed:
        message += f"; {allowed}"
    diags.add("E100", message, span, hint)


# -- comments --------------------------------------------------------------------------


def _attach_comments(
    comments: list[Token], positions: Positions, items: list[str], text: str
) -> list[dict[str, Any]]:
    """Give each comment a place in the IR: before an item, after it, or at a block's end."""
    lines = text.splitlines()
    out: list[dict[str, Any]] = []
    starts = sorted(
        ((positions.values[p].line, positions.values[p].col, len(p), p) for p in items)
    )
    ends = sorted((s.line, s.col, p) for p, s in positions.ends.items())
    for tok in comments:
        line, col = tok.line, tok.column
        entry: dict[str, Any] = {"text": str(tok).rstrip()}
        before = lines[line - 1][: col - 1] if line - 1 < len(lines) else ""
        if before.strip():
            best = None
            for p in items:
                s = positions.values[p]
                if s.end_line == line and s.end_col <= col:
                    key = (s.end_col, -len(p))
                    if best is None or key > best[0]:
                        best = (key, p)
            if best is not None:
                out.append({"at": best[1], **entry, "trailing": True})
                continue
        nxt = next(((sl, sc, p) for sl, sc, _, p in starts if (sl, sc) > (line, col)), None)
        end = next(((el, ec, p) for el, ec, p in ends if (el, ec) > (line, col)), None)
        if end is not None and (nxt is None or end[:2] < nxt[:2]):
            out.append({"at": end[2], **entry, "end": True})
        elif nxt is not None:
            out.append({"at": nxt[2], **entry})
        else:
            out.append({"at": "", **entry, "end": True})
    return out


def _collect(node: Node, at: str, items: list[str], ends: dict[str, Span]) -> None:
    """Record which pointers are comment anchors and where blocks close."""
    if node.item:
        items.append(at)
    if node.end is not None:
        ends[at] = node.end
    value = node.value
    if isinstance(value, dict):
        for k, v in value.items():
            _collect(v, f"{at}/{k.replace('~', '~0').replace('/', '~1')}", items, ends)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _collect(v, f"{at}/{i}", items, ends)


def parse_dsl(text: str, diags: Diagnostics) -> Parsed:
    """Parse `.tfspec` text; problems go to `diags`, the IR is None if unparsable."""
    comments: list[Token] = []
    positions = Positions()
    try:
        tree = _parse(text, comments)
    except UnexpectedInput as exc:
        _syntax_error(exc, text, diags)
        return Parsed(None, positions, text)
    root = _ToIR(diags).transform(tree)
    ir = unwrap(root, positions)
    items: list[str] = []
    _collect(root, "", items, positions.ends)
    ends = positions.ends
    ends[""] = Span.point(text.count("\n") + 2, 1)  # past the last line
    if comments:
        ir["comments"] = _attach_comments(comments, positions, items, text)
    return Parsed(ir, positions, text)


def _parse(text: str, comments: list[Token]):
    _COMMENTS.append(comments)
    try:
        return grammar().parse(text)
    finally:
        _COMMENTS.pop()


__all__ = ["Parsed", "parse_dsl", "grammar", "did_you_mean", "TOP_LEVEL_SECTIONS"]
