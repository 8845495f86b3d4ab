"""Structural checks: the IR against `spec/tfspec.schema.json`, as located diagnostics.

jsonschema reports errors by JSON path; each one is turned into a message a
Keras user can act on ("unknown key `epoch` in train; did you mean `epochs`?"),
placed at the key or value it is about.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

from .diagnostics import Diagnostic, Diagnostics, did_you_mean
from .fastschema import compile_schema
from .formatter import FormatError, inline
from .ir import escape, parts, pointer, resolve, statement_kind
from .located import Positions
from .resources import resource_path

_TYPE_WORDS = {
    "object": "a block `{ … }`",
    "array": "a list `[ … ]`",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "`true` or `false`",
    "null": "`null`",
}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resource_path("spec", "tfspec.schema.json").read_text())


@lru_cache(maxsize=1)
def is_valid():
    """The compiled yes/no check (fast path)."""
    return compile_schema(schema())


@lru_cache(maxsize=1)
def validator():
    """jsonschema's validator, imported only when a spec has structural errors."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def show(value: Any) -> str:
    """A value as the user would write it in the DSL, shortened."""
    if isinstance(value, dict) and isinstance(value.get("call"), str):
        return f"{value['call']}(…)"
    try:
        text = inline(value)
    except FormatError:
        text = "{ … }" if isinstance(value, dict) else json.dumps(value, default=str)
    return text if len(text) <= 48 else text[:45] + "…"


def _where(at: str) -> str:
    """`train.epochs`, `model.body[3]` — a path the user recognises."""
    out = ""
    for part in parts(at):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "the spec"


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = schema()
    for part in parts(ref.lstrip("#")):  # a local `#/$defs/…` (KeyError if absent)
        node = node[part]
    return node


def _expected(sub: dict[str, Any], depth: int = 0) -> list[str]:
    """Words for what a schema accepts, e.g. ["a positive integer", "a param name"]."""
    if depth > 4:
        return []
    if "$ref" in sub:
        target = _resolve(sub["$ref"])
        return [target["title"]] if "title" in target else _expected(target, depth + 1)
    if "title" in sub:
        return [sub["title"]]
    if "const" in sub:
        return [json.dumps(sub["const"])]
    if "enum" in sub:
        return [" or ".join(json.dumps(v) for v in sub["enum"])]
    if "anyOf" in sub or "oneOf" in sub:
        words: list[str] = []
        for alt in sub.get("anyOf", sub.get("oneOf", [])):
            for w in _expected(alt, depth + 1):
                if w not in words:
                    words.append(w)
        return words
    kind = sub.get("type")
    if isinstance(kind, list):
        # `[T, "object"]` is a scalar field that also takes a param reference or expression
        words = [_TYPE_WORDS.get(k, k) for k in kind if k != "object"]
        if "integer" in kind and sub.get("minimum") == 1:
            words = ["a positive integer" if w == "an integer" else w for w in words]
        return words + ["a param reference"] if "object" in kind and words else words
    if kind == "integer" and sub.get("minimum") == 1:
        return ["a positive integer"]
    if kind == "number" and sub.get("exclusiveMinimum") == 0:
        return ["a positive number"]
    if kind:
        return [_TYPE_WORDS.get(kind, kind)]
    return []


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return words[0] if words else "something else"
    return ", ".join(words[:-1]) + " or " + words[-1]


def check_schema(ir: Any, positions: Positions, diags: Diagnostics) -> None:
    """Report every structural problem in `ir`."""
    if is_valid()(ir):
        return
    seen: set[tuple[str, str]] = set()
    errors = sorted(validator().iter_errors(ir), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        _report(error, ir, positions, diags, seen)


# -- the values params give ---------------------------------------------------------------

UNRESOLVED = object()  # an expression whose value is not known from the params given


def expression_value(value: Any, values: dict[str, Any]) -> Any:
    """The value of a param reference or of arithmetic over params and numbers, with
    `values` as the params' values; UNRESOLVED for anything else (a call, a name
    `values` lacks, a division by zero)."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("ref"), str):
        return values.get(value["ref"], UNRESOLVED)
    if not (isinstance(value, dict) and isinstance(value.get("args"), list)):
        return value if _is_number(value) else UNRESOLVED
    args = [expression_value(a, values) for a in value["args"]]
    if not all(_is_number(a) for a in args):
        return UNRESOLVED
    op = value.get("op")
    if op == "neg" and len(args) == 1:
        return -args[0]
    if len(args) != 2 or op not in ("+", "-", "*", "/") or (op == "/" and args[1] == 0):
        return UNRESOLVED
    a, b = args
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def param_places(value: Any, values: dict[str, Any], at: str = "") -> dict[str, Any]:
    """Each place outside calls (those the catalog types) and the tune section that
    holds a reference to a param of `values`, or arithmetic over them, -> the value
    that reaches it (`train.epochs = epochs`, `data.batch = bs * 2`)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if "call" in value or at == "/tune":
            return out
        if ("ref" in value and len(value) == 1) or "op" in value:
            if _refs_in(value) & values.keys():
                resolved = expression_value(value, values)
                if resolved is not UNRESOLVED:
                    out[at] = resolved
            return out
        for k, v in value.items():
            out.update(param_places(v, values, f"{at}/{escape(k)}"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(param_places(v, values, f"{at}/{i}"))
    return out


def _refs_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["ref"]} if isinstance(value.get("ref"), str) else set()
        for v in value.values():
            found |= _refs_in(v)
        return found
    if isinstance(value, list):
        return set().union(*(_refs_in(v) for v in value)) if value else set()
    return set()


def resolved_problems(ir: Any, positions: Positions,
                      values: dict[str, Any]) -> list[tuple[str, set[str], Diagnostic]]:
    """What the schema rejects once each place of `param_places` holds its value
    (`param epochs = 0` read where `train.epochs` wants a positive integer): each
    error at such a place, with its pointer and the params that reach it."""
    places = param_places(ir, values)
    if not places:
        return []
    substituted = copy.deepcopy(ir)
    for at, value in places.items():
        parent = resolve(substituted, at.rsplit("/", 1)[0])
        last = parts(at)[-1]
        if isinstance(parent, list):
            parent[int(last)] = value
        else:
            parent[last] = value
    if is_valid()(substituted):
        return []
    diags = Diagnostics()
    check_schema(substituted, positions, diags)
    spans = {positions.value(at): at for at in places}
    out = []
    for d in diags:
        at = spans.get(d.span) if d.span is not None else None
        if d.is_error and at is not None:  # the reference was valid there: this is new
            out.append((at, _refs_in(resolve(ir, at)), d))
    return out


def _report(
    error: Any,
    ir: Any,
    positions: Positions,
    diags: Diagnostics,
    seen: set[tuple[str, str]],
) -> None:
    kind = error.validator
    at = pointer(*error.absolute_path)
    where = _where(at)
    if (at, str(kind)) in seen:
        return
    seen.add((at, str(kind)))
    value = error.instance
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    if custom:
        code = "E202" if kind == "required" else "E203"
        diags.add(code, f"`{where}`: {custom}", positions.value(at))
        return
    if _report_input(error, at, positions, diags):
        return
    if kind == "enum" and "propertyNames" in error.relative_schema_path:
        _report_expression(at, where, ir, positions, diags)
        return
    if kind in ("anyOf", "oneOf"):
        _report_alternatives(error, at, where, ir, positions, diags, seen)
        return
    if kind == "additionalProperties":
        _report_unknown_keys(error, at, where, positions, diags)
        return
    if kind == "required":
        missing = [k for k in error.validator_value if isinstance(value, dict) and k not in value]
        for key in missing:
            diags.add("E202", f"{where} needs `{key}`", positions.key(at),
                      _required_hint(key))
        return
    if kind == "type":
        words = _expected(error.schema)
        diags.add("E201", f"`{where}` must be {_join(words)}. Received: {show(value)}",
                  positions.value(at))
        return
    if kind in ("enum", "const"):
        _report_choice(error, at, where, positions, diags)
        return
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {
            "minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<",
        }[kind]
        diags.add("E204", f"`{where}` must be {bound} {error.validator_value}. "
                  f"Received: {show(value)}", positions.value(at))
        return
    if kind in ("minItems", "maxItems", "minProperties", "maxProperties", "minLength"):
        diags.add("E204", f"`{where}` {error.message}", positions.value(at))
        return
    if kind in ("pattern", "propertyNames"):
        diags.add("E203", f"`{where}`: {error.message}", positions.value(at),
                  "names start with a letter or `_` and hold letters, digits and `_`")
        return
    diags.add("E201", f"`{where}`: {error.message}", positions.value(at))


def _report_input(error: Any, at: str, positions: Positions, diags: Diagnostics) -> bool:
    """An input statement typed in a block, or untyped in the model: the language's
    words for it rather than the schema's. False when `error` is neither."""
    kind, value = error.validator, error.instance
    if statement_kind(value)[0] != "input":
        return False
    if kind == "additionalProperties" and _BLOCK_STMT.match(at) and (
            {"dtype", "shape"} & set(value)):
        diags.add("E408", "block inputs take their shape from the caller",
                  positions.value(at), f"write `input {value['input']}`")
        return True
    if kind == "required" and "shape" in error.validator_value:
        name = value["input"]
        diags.add("E201", f"model input `{name}` needs a type and shape", positions.value(at),
                  f"write `input {name}: float32[…]`")
        return True
    return False


def _report_alternatives(error: Any, at: str, where: str, ir: Any, positions: Positions,
                         diags: Diagnostics, seen: set[tuple[str, str]]) -> None:
    """A value that fits none of an `anyOf`/`oneOf`."""
    # Prefer a specific error from the alternative that fits best, when one goes deeper.
    from jsonschema.exceptions import best_match

    inner = best_match(error.context) if error.context else None
    if inner is not None and len(inner.absolute_path) > len(error.absolute_path):
        _report(inner, ir, positions, diags, seen)
        return
    words = _expected(error.schema)
    diags.add(
        "E201",
        f"`{where}` must be {_join(words)}. Received: {show(error.instance)}",
        positions.value(at),
    )


def _report_unknown_keys(error: Any, at: str, where: str, positions: Positions,
                         diags: Diagnostics) -> None:
    """Each key of an object that its schema does not allow, at the key."""
    allowed = list(error.schema.get("properties", {}))
    for key in error.instance:
        if key in allowed:
            continue
        hint = did_you_mean(key, allowed)
        if hint is None and allowed:
            hint = "allowed here: " + ", ".join(f"`{k}`" for k in allowed)
        diags.add("E200", f"unknown key `{key}` in {where}",
                  positions.key(f"{at}/{escape(key)}"), hint)


def _report_choice(error: Any, at: str, where: str, positions: Positions,
                   diags: Diagnostics) -> None:
    """A value outside an `enum` (or not its `const`), with the nearest choice."""
    value = error.instance
    options = error.validator_value if error.validator == "enum" else [error.validator_value]
    strings = [o for o in options if isinstance(o, str)]
    hint = None
    if isinstance(value, str):
        hint = did_you_mean(value, strings, string=True)
    elif isinstance(value, dict) and isinstance(value.get("ref"), str):
        hint = f'write "{value["ref"]}" in quotes: a bare name is a reference to a param'
        close = did_you_mean(value["ref"], strings, string=True)
        if close:
            hint += f"; {close}"
    words = ", ".join(json.dumps(o) for o in options)
    diags.add("E203", f"`{where}` must be one of {words}. Received: {show(value)}",
              positions.value(at), hint)


_BLOCK_STMT = re.compile(r"^/blocks/\d+/body/\d+$")
_EXPRESSION_WORDS = {"call": "a call", "pipe": "a pipe `|>`", "op": "arithmetic",
                     "ref": "a reference"}


def _report_expression(at: str, where: str, ir: Any, positions: Positions,
                       diags: Diagnostics) -> None:
    """An expression object where this kind of expression is not allowed (`seed = Foo()`)."""
    node = resolve(ir, at)
    kind = next((k for k in _EXPRESSION_WORDS if isinstance(node, dict) and k in node), None)
    if kind is None:
        diags.add("E201", f"`{where}` is not a valid value. Received: {show(node)}",
                  positions.value(at))
        return
    diags.add("E201", f"`{where}` cannot be {_EXPRESSION_WORDS[kind]}. Received: {show(node)}",
              positions.value(at), "write a literal value or the name of a param")


def _required_hint(key: str) -> str | None:
    return {
        "tfspec": "a spec starts with `tfspec 1`",
        "path": 'write the target as `<format> "<path>"`',
    }.get(key)
