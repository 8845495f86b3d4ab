"""The IR with its positions: plain JSON values plus a JSON-pointer -> span table.

Both front ends (`parser` for the DSL, `jsonreader` for JSON) build `Node`
trees — a value with its span, and for object members the span of the key —
and `unwrap` turns a tree into the plain IR and its `Positions`. Pointers
themselves (escape, resolve, …) are `ir`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Span
from .ir import escape


@dataclass(slots=True)
class Node:
    """A value (dict of str -> Node, list of Node, or a JSON scalar) and its span."""

    value: Any
    span: Span
    key_span: Span | None = None  # for object members: where the key is written
    item: bool = False  # a statement-like place a comment can attach to
    end: Span | None = None  # for blocks: where the closing brace is
    grouped: bool = False  # written in parentheses: `(a |> B()) |> C()` keeps its pipe


@dataclass
class Positions:
    """Where each part of the IR was written: JSON pointer -> span."""

    values: dict[str, Span] = field(default_factory=dict)
    keys: dict[str, Span] = field(default_factory=dict)
    # pointer of a container -> span of its closing brace (for end-of-block comments)
    ends: dict[str, Span] = field(default_factory=dict)
    # pointers of statement-like places (entries, statements, list items, pipe
    # stages) in source order: where comments can attach
    items: list[str] = field(default_factory=list)

    def value(self, pointer: str) -> Span | None:
        """The span of the value at `pointer`, or of its nearest ancestor."""
        while True:
            span = self.values.get(pointer)
            if span is not None or not pointer:
                return span
            pointer = pointer.rsplit("/", 1)[0]

    def key(self, pointer: str) -> Span | None:
        """The span of the key of the member at `pointer`, else of its value."""
        return self.keys.get(pointer) or self.value(pointer)


def unwrap(node: Node, positions: Positions, at: str = "") -> Any:
    positions.values[at] = node.span
    if node.key_span is not None:
        positions.keys[at] = node.key_span
    if node.item:
        positions.items.append(at)
    if node.end is not None:
        positions.ends[at] = node.end
    value = node.value
    if isinstance(value, dict):
        return {k: unwrap(v, positions, f"{at}/{escape(k)}") for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v, positions, f"{at}/{i}") for i, v in enumerate(value)]
    return value
