"""One access layer for the IR: JSON pointers into it and its statements' kinds.

The IR is plain JSON (dicts, lists, scalars); its positions are keyed by JSON
pointer (RFC 6901: `/model/body/3`, with `~` written `~0` and `/` written `~1`).
Every stage that builds, splits or follows a pointer, or asks which statement a
body item is, does it here, so they all read the IR the same way.
"""

from __future__ import annotations

from typing import Any, Literal

StatementKind = Literal["input", "layer", "node", "output", "output_ref", "add"]

# The key that says a statement's kind, in the order they are tried: a
# schema-invalid statement with several of them is the first one's kind.
_KIND_KEYS = ("input", "layer", "node", "output", "add")
# both kinds of output: `output y = …` and `output x`
OUTPUTS: tuple[StatementKind, ...] = ("output", "output_ref")


def escape(token: str | int) -> str:
    """One pointer part: `~` -> `~0`, `/` -> `~1`."""
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape(part: str) -> str:
    """A pointer part back to its key (`~1` before `~0`, as RFC 6901 says)."""
    return part.replace("~1", "/").replace("~0", "~")


def pointer(*parts: str | int) -> str:
    """The pointer of the path `parts`: `pointer("model", "body", 3)` -> `/model/body/3`."""
    return "".join("/" + escape(p) for p in parts)


def parts(at: str) -> list[str]:
    """The keys of a pointer, unescaped: `/a~1b/0` -> `["a/b", "0"]`; `""` -> `[]`."""
    return [unescape(p) for p in at.split("/")[1:]]


def resolve(ir: Any, at: str, default: Any = None) -> Any:
    """The value at pointer `at` in `ir` (`""` is `ir` itself), or `default` when a
    part is missing: a key its dict lacks, a list index that is not a decimal
    number or is past the end, or any step into a scalar."""
    node = ir
    for part in parts(at):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return default
    return node


def statement_kind(stmt: Any) -> tuple[StatementKind | None, Any]:
    """What a model or block body statement is, and the name it declares.

    `("input", name)` (`input x: …`), `("layer", name)` (`layer l = Dense(4)`),
    `("node", name)` (`x = …`), `("output", name)` (`output y = …`, with a value),
    `("output_ref", name)` (`output x`: marks an existing node, no value), or
    `("add", None)` (a bare call in a sequential body). The name is the IR's value
    as is (a str in a schema-valid spec). `(None, None)` for anything else.
    """
    if isinstance(stmt, dict):
        for key in _KIND_KEYS:
            if key in stmt:
                if key == "add":
                    return "add", None
                if key == "output" and "value" not in stmt:
                    return "output_ref", stmt[key]
                return key, stmt[key]
    return None, None


def declared(body: Any, *kinds: StatementKind) -> list[Any]:
    """The names `body`'s statements of `kinds` declare, in source order
    (`declared(body, *OUTPUTS)`: every output's); `[]` when `body` is not a list."""
    if not isinstance(body, list):
        return []
    out = []
    for stmt in body:
        kind, name = statement_kind(stmt)
        if kind in kinds:
            out.append(name)
    return out
