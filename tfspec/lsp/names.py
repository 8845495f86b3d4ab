"""The names a spec declares and where each is used: params, blocks (and their
parameters), model and block inputs, nodes and named layers.

Built from the checked IR and its positions (the same for the DSL and JSON): a
declaration is the span of its name; a use is every `{"ref": name}` and every call
of a block or named layer (`Residual(…)`, `shared(x)`) that resolves to it — a
name in a model or block body resolves to that body's declaration first, else to
a param. Go to definition, references, rename, hover and the outline read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..lang.diagnostics import Span
from ..lang.ir import escape, statement_kind
from ..lang.located import Positions

KINDS = ("param", "block", "block param", "input", "node", "layer", "output")


@dataclass
class Symbol:
    name: str
    kind: str  # one of KINDS
    scope: str  # "" for params and blocks; "/model" or "/blocks/<i>" for a body
    at: str  # JSON pointer of the declaration
    span: Span  # the declared name
    refs: list[Span] = field(default_factory=list)


@dataclass
class Index:
    symbols: list[Symbol] = field(default_factory=list)
    # (scope, name) -> symbol; scope "" holds params and blocks
    table: dict[tuple[str, str], Symbol] = field(default_factory=dict)

    def add(self, sym: Symbol) -> None:
        self.symbols.append(sym)
        self.table.setdefault((sym.scope, sym.name), sym)

    def resolve(self, name: str, scope: str) -> Symbol | None:
        return self.table.get((scope, name)) or self.table.get(("", name))

    def at(self, line: int, col: int) -> tuple[Symbol, Span] | None:
        """The symbol whose declaration or use covers the 1-based position."""
        for sym in self.symbols:
            for span in [sym.span, *sym.refs]:
                if _covers(span, line, col):
                    return sym, span
        return None

    def in_scope(self, scope: str) -> list[Symbol]:
        """Names usable in a body: its own, then params and blocks."""
        own = [s for s in self.symbols if s.scope == scope and scope]
        return own + [s for s in self.symbols if s.scope == ""]


def index_of(result: Any) -> Index:
    """The names of a checked spec (`validate`'s Result), built once per result: every
    completion, hover and rename asks for them. Empty when the text did not parse."""
    if result is None or result.ir is None:
        return Index()
    cached = getattr(result, "_lsp_index", None)
    if cached is None:
        cached = build(result.ir, result.positions)
        result._lsp_index = cached  # kept with the result it describes
    return cached


def _covers(span: Span, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def build(ir: dict[str, Any] | None, pos: Positions) -> Index:
    index = Index()
    if not isinstance(ir, dict):
        return index

    def declare(name: Any, kind: str, scope: str, at: str, key: bool = False) -> None:
        span = pos.keys.get(at) if key else pos.values.get(at)
        if isinstance(name, str) and span is not None:
            index.add(Symbol(name, kind, scope, at, span))

    params = ir.get("params")
    if isinstance(params, dict):
        for name in params:
            declare(name, "param", "", f"/params/{escape(name)}", key=True)
    blocks = ir.get("blocks") if isinstance(ir.get("blocks"), list) else []
    for i, block in enumerate(blocks):
        if isinstance(block, dict):
            declare(block.get("name"), "block", "", f"/blocks/{i}/name")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        scope = f"/blocks/{i}"
        for j, p in enumerate(block.get("params") or []):
            if isinstance(p, dict):
                declare(p.get("name"), "block param", scope, f"{scope}/params/{j}/name")
        _body(block.get("body"), scope, declare)
    model = ir.get("model")
    if isinstance(model, dict):
        _body(model.get("body"), "/model", declare)
    # uses
    _uses(ir, "", "", pos, index)
    return index


def _body(body: Any, scope: str, declare: Any) -> None:
    if not isinstance(body, list):
        return
    for i, stmt in enumerate(body):
        kind, name = statement_kind(stmt)
        if kind is None or kind == "add":
            continue  # a bare layer declares no name
        key = "output" if kind == "output_ref" else kind  # the symbol kind and the IR key
        declare(name, key, scope, f"{scope}/body/{i}/{key}")


def _scope_of(at: str) -> str:
    if at.startswith("/model/"):
        return "/model"
    if at.startswith("/blocks/"):
        parts = at.split("/")
        return "/".join(parts[:3])
    return ""


def _uses(value: Any, at: str, scope: str, pos: Positions, index: Index) -> None:
    if isinstance(value, dict):
        scope = _scope_of(at) if at else ""
        ref = value.get("ref")
        if isinstance(ref, str) and len(value) == 1:
            sym = index.resolve(ref, scope)
            span = pos.values.get(f"{at}/ref")
            if sym is not None and span is not None:
                sym.refs.append(span)
            return
        callee = value.get("call")
        if isinstance(callee, str):
            sym = index.resolve(callee, scope)
            span = pos.values.get(f"{at}/call")
            if sym is not None and span is not None and sym.kind in ("block", "layer"):
                sym.refs.append(span)
        for key, item in value.items():
            if key == "comments":
                continue
            _uses(item, f"{at}/{escape(key)}", scope, pos, index)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _uses(item, f"{at}/{i}", scope, pos, index)
