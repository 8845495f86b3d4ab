"""The JSON front end: a small JSON reader that remembers where every value is.

Python's `json` module forgets positions, and a JSON user must get the same
located errors as a DSL user. This reader follows RFC 8259 (strings are decoded
with the stdlib's own `scanstring`) and builds the same `Node` trees as the DSL
parser. Duplicate keys, which `json` silently accepts, are an error here.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]

from .diagnostics import Diagnostics, Span, number
from .located import Node, Positions, unwrap
from .parser import Parsed

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")


class _Error(Exception):
    """Internal: stops the reader at the first problem, which `parse_json` turns into a
    located E101 (never leaves this module, so not a TfspecError)."""

    def __init__(self, message: str, pos: int, hint: str | None = None):
        super().__init__(message)
        self.message, self.pos, self.hint = message, pos, hint


class _Reader:
    def __init__(self, text: str, diags: Diagnostics):
        self.text = text
        self.diags = diags
        # offsets of line starts, to turn a position into line:col
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def loc(self, pos: int) -> tuple[int, int]:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, pos - self.line_starts[lo] + 1

    def span(self, start: int, end: int) -> Span:
        line, col = self.loc(start)
        end_line, end_col = self.loc(end)
        return Span(line, col, end_line, end_col)

    def ws(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()

    def value(self, pos: int) -> tuple[Node, int]:
        pos = self.ws(pos)
        text = self.text
        if pos >= len(text):
            raise _Error("unexpected end of the file; expected a value", pos)
        ch = text[pos]
        if ch == "{":
            return self.obj(pos)
        if ch == "[":
            return self.arr(pos)
        if ch == '"':
            return self.string(pos)
        for word, val in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                return Node(val, self.span(pos, pos + len(word))), pos + len(word)
        m = _NUMBER.match(text, pos)
        if m and m.end() > pos:
            raw = m.group(0)
            num = number(raw)
            if num is None:
                raise _Error(f"number out of range. Received: {raw[:24]}", pos)
            return Node(num, self.span(pos, m.end())), m.end()
        if ch == "'":
            raise _Error("JSON strings use double quotes", pos)
        for word, hint in (("True", "true"), ("False", "false"), ("None", "null")):
            if text.startswith(word, pos):
                raise _Error(f"unexpected `{word}`", pos, f"JSON writes it `{hint}`")
        raise _Error(f"unexpected `{ch}`; expected a value", pos)

    def string(self, pos: int) -> tuple[Node, int]:
        try:
            val, end = scanstring(self.text, pos + 1, True)
        except json.JSONDecodeError as exc:
            raise _Error(exc.msg, exc.pos) from None
        return Node(val, self.span(pos, end)), end

    def obj(self, start: int) -> tuple[Node, int]:
        members: dict[str, Node] = {}
        pos = self.ws(start + 1)
        if self.text.startswith("}", pos):
            return Node(members, self.span(start, pos + 1)), pos + 1
        comma = -1
        while True:
            pos = self.ws(pos)
            if not self.text.startswith('"', pos):
                if self.text.startswith("}", pos) and comma >= 0:
                    raise _Error(
                        "trailing comma before `}`", comma, "JSON allows no trailing comma"
                    )
                raise _Error("expected a key in double quotes", pos)
            key_node, pos = self.string(pos)
            key = key_node.value
            pos = self.ws(pos)
            if not self.text.startswith(":", pos):
                raise _Error(f"expected `:` after the key \"{key}\"", pos)
            value, pos = self.value(pos + 1)
            value.key_span = key_node.span
            if key in members:
                first = members[key].key_span
                self.diags.add(
                    "E205",
                    f"key \"{key}\" appears twice in this object",
                    key_node.span,
                    hint=f"the first one is at line {first.line}" if first else None,
                )
            else:
                members[key] = value
            pos = self.ws(pos)
            if self.text.startswith(",", pos):
                comma = pos
                pos += 1
                continue
            if self.text.startswith("}", pos):
                return Node(members, self.span(start, pos + 1)), pos + 1
            raise _Error("expected `,` or `}` after an object member", pos)

    def arr(self, start: int) -> tuple[Node, int]:
        items: list[Node] = []
        pos = self.ws(start + 1)
        if self.text.startswith("]", pos):
            return Node(items, self.span(start, pos + 1)), pos + 1
        while True:
            value, pos = self.value(pos)
            items.append(value)
            pos = self.ws(pos)
            if self.text.startswith(",", pos):
                nxt = self.ws(pos + 1)
                if self.text.startswith("]", nxt):
                    raise _Error("trailing comma before `]`", pos, "JSON allows no trailing comma")
                pos += 1
                continue
            if self.text.startswith("]", pos):
                return Node(items, self.span(start, pos + 1)), pos + 1
            raise _Error("expected `,` or `]` after a list item", pos)


def parse_json(text: str, diags: Diagnostics) -> Parsed:
    """Read a JSON spec; problems go to `diags`, the IR is None if unreadable."""
    positions = Positions()
    reader = _Reader(text, diags)
    try:
        root, pos = reader.value(0)
        pos = reader.ws(pos)
        if pos < len(text):
            raise _Error("unexpected text after the JSON value", pos)
    except _Error as err:
        line, col = reader.loc(min(err.pos, len(text)))
        diags.add("E101", err.message, Span.point(line, col), err.hint)
        return Parsed(None, positions, text)
    ir = unwrap(root, positions)
    if not isinstance(ir, dict):
        diags.add("E201", "a spec is a JSON object. Received: " + type(ir).__name__, root.span)
        return Parsed(None, positions, text)
    return Parsed(ir, positions, text)
