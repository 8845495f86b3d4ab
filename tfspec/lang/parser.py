"""The DSL front end: `.tfspec` text -> IR (plain JSON values) + positions.

lark parses with the LALR grammar in `grammars/tfspec.lark`; a `Transformer`
builds located `Node`s so that lark trees never leave this module. Syntax errors
become one E100 diagnostic with a friendly message; shape errors that the
grammar allows but the IR cannot hold (a duplicate key, a bad string escape)
are collected as they are found.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from . import lexer
from .diagnostics import Diagnostics, Span, did_you_mean, number
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
    """The parser; its embedded transformer builds `Node`s while it parses (no tree)."""
    parser = Lark(
        _grammar_text(),
        parser="lalr",
        maybe_placeholders=True,
        transformer=_TRANSFORMER,
        # the LALR tables take ~0.2 s to build; lark caches them in the temp dir
        cache=True,
        lexer_callbacks={"COMMENT": _on_comment},
    )
    lexer.install(parser)  # the same tokens and errors, faster (see lexer.py)
    return parser


@lru_cache(maxsize=1)
def _grammar_text() -> str:
    return resource_path("grammars", "tfspec.lark").read_text()


@dataclass
class _ParseState:
    """What one parse collects: its diagnostics, and its comments (as tokens)."""

    diags: Diagnostics
    comments: list[Token] = field(default_factory=list)


# The parse in progress, per thread (and per asyncio task). The LALR parser is built
# once (`grammar()`) with its callbacks in it — the transformer and `_on_comment` —
# and they find the state of the parse that calls them here: so parses may run in
# several threads at once, or one inside another (each `set` is `reset` after it).
_STATE: ContextVar[_ParseState | None] = ContextVar("tfspec_parse_state", default=None)


def _on_comment(tok: Token) -> Token:
    """Comments are %ignored by the grammar: the lexer hands each one here."""
    state = _STATE.get()
    if state is not None:
        state.comments.append(tok)
    return tok


def tok_span(tok: Token) -> Span:
    return Span(tok.line, tok.column, tok.end_line, tok.end_column)


def span_of(x: Node | Token) -> Span:
    return x.span if isinstance(x, Node) else tok_span(x)


def join(first: Node | Token, last: Node | Token) -> Span:
    a, b = span_of(first), span_of(last)
    return Span(a.line, a.col, b.end_line, b.end_col)


def item(node: Node) -> Node:
    node.item = True
    return node


_LITERALS = {"KW_TRUE": True, "KW_FALSE": False, "KW_NULL": None, "KW_NONE": None}
# Binding strength of the binary operators; `|>` binds loosest.
_PRECEDENCE = {"|>": 0, "+": 1, "-": 1, "*": 2, "/": 2}


class _ToIR(Transformer):
    """Parser callbacks: tokens and children -> `Node`s, collecting IR-shape errors.

    Runs inside the LALR parser (lark's embedded transformer), so each method
    receives its rule's children: `Node`s for inner rules, `Token`s for terminals
    (an expression that is a single literal or name arrives as a bare token).
    """

    @property
    def diags(self) -> Diagnostics:
        """The diagnostics of the parse in progress (outside one: a list nobody reads)."""
        state = _STATE.get()
        return state.diags if state is not None else Diagnostics()

    # -- literals and expressions ------------------------------------------------

    def v(self, x: Any) -> Node:
        """A value: bare tokens (numbers, strings, names, literals) become `Node`s."""
        if isinstance(x, Node):
            return x
        kind = x.type
        span = tok_span(x)
        if kind == "NUMBER":
            value = number(str(x))
            if value is None:
                self.diags.add("E204", f"number out of range. Received: {str(x)[:24]}…"
                               if len(x) > 24 else f"number out of range. Received: {x}", span)
                value = 0
            return Node(value, span)
        if kind == "STRING":
            return self.string(x)
        if kind == "NAME":
            return Node({"ref": Node(str(x), span)}, span)
        return Node(_LITERALS[kind], span)

    def string(self, tok: Token) -> Node:
        if "\\" not in tok:  # no escapes: the common case needs no JSON decoder
            return Node(tok[1:-1], tok_span(tok))
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

    def list(self, children):
        lsqb, *items, rsqb = children
        values = [item(self.v(c)) for c in items if c is not None]
        return Node(values, join(lsqb, rsqb))

    def group(self, children):
        (inner,) = children
        node = self.v(inner)
        # `(x |> A())` is one unit: stop the enclosing pipe from flattening into it
        node.grouped = True
        return node

    def call(self, children):
        callee, *args, rpar = children
        callee = Node(str(callee), tok_span(callee)) if isinstance(callee, Token) else callee
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
                arg = self.v(arg)
                if keywords:
                    self.diags.add(
                        "E100",
                        "positional argument after keyword arguments",
                        arg.span,
                        hint="put positional arguments first, as in Python",
                    )
                positional.append(arg)
        value: dict[str, Node] = {"call": callee}
        if positional:
            value["args"] = Node(positional, positional[0].span)
        if keywords:
            first = next(iter(keywords.values()))
            value["kwargs"] = Node(keywords, first.key_span or first.span)
        return Node(value, join(callee, rpar))

    def kwarg(self, children):
        key, value = children
        value = self.v(value)
        value.key_span = tok_span(key)
        return (str(key), value)

    def binop(self, children):
        (tok,) = children
        return tok

    def neg(self, children):
        (operand,) = children
        operand = self.v(operand)
        value = operand.value
        span = operand.span  # the `-` is anonymous; widen by one column below
        span = Span(span.line, max(1, span.col - 1), span.end_line, span.end_col)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Node(-value, span)  # fold `-3` into the literal
        return Node({"op": Node("neg", span), "args": Node([operand], span)}, span)

    def expr(self, children):
        """`a op b op c …` -> a tree by precedence (all operators are left-associative)."""
        operands = [self.v(children[0])]
        ops: list[str] = []

        def reduce() -> None:
            op = ops.pop()
            right = operands.pop()
            left = operands.pop()
            operands.append(self.binary(op, left, right))

        for i in range(1, len(children), 2):
            op = str(children[i])
            while ops and _PRECEDENCE[ops[-1]] >= _PRECEDENCE[op]:
                reduce()
            ops.append(op)
            operands.append(self.v(children[i + 1]))
        while ops:
            reduce()
        return operands[0]

    def binary(self, op: str, left: Node, right: Node) -> Node:
        span = join(left, right)
        if op == "|>":
            if isinstance(left.value, dict) and "pipe" in left.value and not left.grouped:
                stages = left.value["pipe"].value
            else:
                # the pipe's input is not a comment anchor: a comment before it belongs
                # to the statement, one after it to the first stage
                stages = [left]
            stages = stages + [item(right)]
            return Node({"pipe": Node(stages, span)}, span)
        return Node({"op": Node(op, span), "args": Node([left, right], span)}, span)

    # -- models and blocks ---------------------------------------------------------

    def shape(self, children):
        lsqb, *dims, rsqb = children
        out = []
        for tok in dims:
            if tok is None:
                continue
            text = str(tok)
            if tok.type == "NAME":  # a param, resolved (and checked) by the checker
                out.append(Node({"ref": Node(text, tok_span(tok))}, tok_span(tok)))
                continue
            dim = number(text) if tok.type == "NUMBER" else None
            if tok.type == "NUMBER" and not isinstance(dim, int):
                self.diags.add(
                    "E201",
                    f"a dimension must be a positive integer or None. Received: {text[:24]}",
                    tok_span(tok),
                )
                dim = None
            out.append(Node(dim, tok_span(tok)))
        return Node(out, join(lsqb, rsqb))

    def input_stmt(self, children):
        kw, name, dtype, shape = children
        value: dict[str, Node] = {"input": Node(str(name), tok_span(name))}
        if dtype is not None:
            value["dtype"] = Node(str(dtype), tok_span(dtype))
        if shape is not None:
            value["shape"] = shape
        return item(Node(value, join(kw, shape or name)))

    def layer_stmt(self, children):
        kw, name, expr = children
        expr = self.v(expr)
        return item(Node({"layer": Node(str(name), tok_span(name)), "value": expr},
                         join(kw, expr)))

    def output_stmt(self, children):
        kw, name, expr = children
        value = {"output": Node(str(name), tok_span(name))}
        if expr is not None:
            value["value"] = expr = self.v(expr)
        return item(Node(value, join(kw, expr if expr is not None else name)))

    def node_stmt(self, children):
        name, expr = children
        expr = self.v(expr)
        return item(Node({"node": Node(str(name), tok_span(name)), "value": expr},
                         join(name, expr)))

    def add_stmt(self, children):
        (call,) = children
        return item(Node({"add": call}, call.span))

    def _body(self, stmts: list[Node], first: Token, rbrace: Token) -> Node:
        return Node(stmts, stmts[0].span if stmts else join(first, rbrace))

    def model_decl(self, children):
        kw, name, kind, *stmts, rbrace = children
        node = Node(
            {
                "name": Node(str(name), tok_span(name)),
                "kind": Node(str(kind), tok_span(kind)),
                "body": self._body(stmts, kind, rbrace),
            },
            join(kw, rbrace),
        )
        node.end = tok_span(rbrace)
        return ("model", kw, item(node))

    def block_param(self, children):
        name, default = children
        value: dict[str, Node] = {"name": Node(str(name), tok_span(name))}
        span = tok_span(name)
        if default is not None:
            value["default"] = default = self.v(default)
            span = join(name, default)
        return ("block_param", Node(value, span))

    def block_decl(self, children):
        kw, name, *rest = children
        rbrace = rest.pop()
        params = [c[1] for c in rest if isinstance(c, tuple)]
        stmts = [c for c in rest if isinstance(c, Node)]
        node = Node(
            {
                "name": Node(str(name), tok_span(name)),
                "params": Node(params, params[0].span if params else tok_span(name)),
                "body": self._body(stmts, name, rbrace),
            },
            join(kw, rbrace),
        )
        node.end = tok_span(rbrace)
        return ("block", name, item(node))

    # -- sections --------------------------------------------------------------------

    def assign(self, children):
        key, value = children
        value = self.v(value)
        return ("assign", key, value, join(key, value))

    def subsection(self, children):
        key, *entries, rbrace = children
        node = self._object(entries, join(key, rbrace))
        node.end = tok_span(rbrace)
        return ("subsection", key, node, join(key, rbrace))

    def target(self, children):
        fmt, path, *entries, rbrace = children
        members = {"format": Node(str(fmt), tok_span(fmt), key_span=tok_span(fmt))}
        members["path"] = self.string(path)
        members["path"].key_span = tok_span(path)
        end = rbrace if rbrace is not None else path
        if rbrace is not None:
            members.update(self._object(entries, join(fmt, rbrace)).value)
        node = Node(members, join(fmt, end))
        if rbrace is not None:
            node.end = tok_span(rbrace)
        return ("target", fmt, node, join(fmt, end))

    def _object(self, entries: list, span: Span) -> Node:
        members: dict[str, Node] = {}
        for kind, key, value, entry_span in entries:
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
            if kind == "subsection":
                value.span = entry_span
            members[name] = item(value)
        return Node(members, span)

    def section(self, children):
        key, *entries, rbrace = children
        name = str(key)
        span = join(key, rbrace)
        if name == "export":
            targets = []
            for kind, tkey, value, _ in entries:
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
            node = self._object(entries, span)
        node.end = tok_span(rbrace)
        return ("section", key, item(node), span)

    def name_decl(self, children):
        kw, tok = children
        return ("name", kw, item(self.string(tok)), join(kw, tok))

    def param_decl(self, children):
        kw, name, value = children
        value = self.v(value)
        return ("param", name, value, join(kw, value))

    def header(self, children):
        kw, tok = children
        version = self.v(tok)
        if version.value != LANGUAGE_VERSION:
            self.diags.add(
                "E102",
                f"this tfspec understands language version {LANGUAGE_VERSION}. "
                f"Received: tfspec {tok}",
                tok_span(tok),
                hint=f"write `tfspec {LANGUAGE_VERSION}` or upgrade tfspec",
            )
        version.key_span = join(kw, tok)
        return version

    def start(self, children):
        header, *items = children
        top: dict[str, Node] = {"tfspec": item(header)}
        params: dict[str, Node] = {}
        blocks: list[Node] = []
        for entry in items:
            if entry[0] in ("model", "block"):
                kind, key, value = entry
                span = value.span
            else:
                kind, key, value, span = entry
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
        return Node(top, join(header, items[-1][2] if items else header))


_TRANSFORMER = _ToIR()


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
    "MINUS": "`-`",
    "PLUS": "`+`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "QMARK": "`?`",
    "$END": "the end of the file",
}

# Common mistakes, recognised by the parser state they leave it in (lark's match_examples).
# What can follow an unfinished construct: a closing brace, the next entry, a string…
_NEXT = [" }", "\n  loss = 1 }", '\n  "x" }', "\n  3 }", "\n  output y }", "\n  y = x }"]

_EXAMPLES: dict[str, list[str]] = {
    "a spec starts with `tfspec 1`": ["name \"x\"", "data { }", "model M functional { }"],
    "expected `=` after the key": [
        *(f"tfspec 1\n{s} {{ {pre}batch 64 }}" for s in ("data", "train")
          for pre in ("", "a = 1\n", "a = f(1)\n", 'a = "x"\n', "a = [1]\n")),
        *(f"tfspec 1\n{s} {{ {pre}epochs: 3 }}" for s in ("data", "train")
          for pre in ("", "a = 1\n", "a = f(1)\n", 'a = "x"\n')),
        "tfspec 1\nparam lr 0.1",
    ],
    "missing `)` to close the argument list": [
        *(f"tfspec 1\ntrain {{ optimizer = Adam({arg}{nxt}" for arg in
          ("learning_rate = 0.1", "0.1", "x", '"x"', "f(1)", "[1]") for nxt in _NEXT),
        *(f"tfspec 1\nmodel M functional {{ x = Dense({arg}{nxt}" for arg in
          ("3", "units = 3", "a", '"x"') for nxt in _NEXT),
        "tfspec 1\nmodel M sequential { Dense(3 Dense(4) }",
    ],
    "missing `]` to close the list": [
        *(f"tfspec 1\ntrain {{ metrics = [{items}{nxt}" for items in
          ('"accuracy"', '"accuracy", "mae"', "AUC()", "x", "1") for nxt in _NEXT),
    ],
    "missing `}` to close the block": [
        "tfspec 1\ndata { batch = 3 ",
        "tfspec 1\nmodel M functional { x = y",
        "tfspec 1\nmodel M functional { x = y\n output x",
    ],
    "a value is missing after `=`": [
        "tfspec 1\ndata { batch = }",
        "tfspec 1\ndata { a = 1\nbatch = }",
        "tfspec 1\nparam lr =",
        "tfspec 1\nmodel M functional { x = }",
        "tfspec 1\nmodel M functional { input a: float32[1]\nx = }",
    ],
    "a model is declared as `model Name sequential|functional|subclass { … }`": [
        "tfspec 1\nmodel functional { }",
        "tfspec 1\nmodel M { }",
    ],
}


@lru_cache(maxsize=1)
def _example_states() -> list[tuple[Any, frozenset[str], str]]:
    """(LALR state, acceptable tokens, label) for every example mistake.

    Like lark's `match_examples`, but keyed on the state alone: lark also compares
    the depth of the parse stack, so a mistake would only be recognised at the
    nesting depth of its example.
    """
    # the examples' callbacks must not report to the parse that asked for a label
    token = _STATE.set(_ParseState(Diagnostics()))
    out = []
    try:
        for label, examples in _EXAMPLES.items():
            for text in examples:
                try:
                    grammar().parse(text)
                except UnexpectedInput as exc:
                    state = getattr(exc, "state", None)
                    if state is not None:
                        out.append((state.position, frozenset(exc.accepts or ()), label))
    finally:
        _STATE.reset(token)
    return out


def _label(exc: UnexpectedInput) -> str | None:
    state = getattr(exc, "state", None)
    if state is None:
        return None
    accepts = frozenset(getattr(exc, "accepts", None) or ())
    for position, ex_accepts, label in _example_states():
        if position == state.position and ex_accepts == accepts:
            return label
    return None


def _token_name(t: str) -> str:
    if t in _TOKEN_NAMES:
        return _TOKEN_NAMES[t]
    if t.startswith("KW_"):
        return "`None`" if t == "KW_NONE" else f"`{t[3:].lower()}`"
    return f"`{t.lower()}`" if t.isalpha() else t


def _expected(exc: UnexpectedInput) -> str:
    names = sorted({_token_name(t) for t in getattr(exc, "expected", set()) or set()
                    if not t.startswith("__")})
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
    label = _label(exc)
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
        if label.startswith("missing") and token is not None and token.type != "$END":
            span = _after_previous(text, token.start_pos) or span
    elif allowed:
        message += f"; {allowed}"
    diags.add("E100", message, span, hint)


def _after_previous(text: str, pos: int) -> Span | None:
    """Where something missing belongs: just after the code before `pos`, when that
    code is on an earlier line (the token that revealed the mistake is elsewhere)."""
    lines = text[:pos].split("\n")
    if len(lines) < 2 or lines[-1].strip():
        return None
    for back in range(len(lines) - 2, -1, -1):
        code = lines[back]
        hash_at = _comment_start(code)
        code = code[:hash_at].rstrip() if hash_at is not None else code.rstrip()
        if code:
            return Span.point(back + 1, len(code) + 1)
    return None


def _comment_start(line: str) -> int | None:
    in_string = escaped = False
    for i, ch in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "#":
            return i
    return None


# -- comments --------------------------------------------------------------------------


def _attach_comments(
    comments: list[Token], positions: Positions, items: list[str], text: str
) -> list[dict[str, Any]]:
    """Give each comment a place in the IR: before an item, after it, or at a block's end."""
    lines = text.splitlines()
    out: list[dict[str, Any]] = []
    starts = sorted(
        (positions.values[p].line, positions.values[p].col, len(p), p) for p in items
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

    def printed_at(c: dict[str, Any]) -> tuple[int, int, int]:
        # where `fmt` prints the comment, so that the IR lists comments in that order
        if c.get("end"):
            s = positions.ends.get(c["at"]) or Span.point(1 << 30, 0)
            return (s.line, s.col, -1)
        s = positions.values[c["at"]]
        return (s.end_line, s.end_col, 1) if c.get("trailing") else (s.line, s.col, 0)

    out.sort(key=printed_at)
    return out


def parse_dsl(text: str, diags: Diagnostics) -> Parsed:
    """Parse `.tfspec` text; problems go to `diags`, the IR is None if unparsable."""
    state = _ParseState(diags)
    positions = Positions()
    token = _STATE.set(state)
    try:
        root = grammar().parse(text)
    except UnexpectedInput as exc:
        _syntax_error(exc, text, diags)
        return Parsed(None, positions, text)
    finally:
        _STATE.reset(token)
    comments = state.comments
    ir = unwrap(root, positions)
    positions.ends[""] = Span.point(text.count("\n") + 2, 1)  # past the last line
    if comments:
        ir["comments"] = _attach_comments(comments, positions, positions.items, text)
    return Parsed(ir, positions, text)


__all__ = ["Parsed", "parse_dsl", "grammar", "did_you_mean", "TOP_LEVEL_SECTIONS"]
