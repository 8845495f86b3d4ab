"""A fast yes/no JSON Schema check for the keywords tfspec's schema uses.

`jsonschema` walks the schema generically and costs ~4 ms per example spec —
more than everything else in `tfspec validate` together. This module compiles
the schema once into nested closures that only answer "valid or not" (~20×
faster). Valid specs, the common case, never touch `jsonschema`; an invalid one
is re-checked with `jsonschema` to explain every error (see `schema.py`).
`tests/test_fastschema.py` checks that both always agree.

Unknown keywords raise at compile time, so a schema change cannot silently
loosen the check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .ir import unescape

Check = Callable[[Any], bool]

# Keywords that only annotate (they never make an instance invalid).
_ANNOTATIONS = {
    "$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples",
    "enumDescriptions", "markdownDescription", "deprecated", "readOnly", "writeOnly", "format",
    "x-message",  # tfspec's own: the message for an error raised by this subschema
}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _is_number,
    "integer": lambda x: _is_number(x) and (isinstance(x, int) or float(x).is_integer()),
}


def equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


class Compiler:
    def __init__(self, root: dict[str, Any]):
        self.root = root
        self.refs: dict[str, Check] = {}

    def ref(self, pointer: str) -> Check:
        refs = self.refs
        if pointer not in refs:
            if not pointer.startswith("#/"):
                raise ValueError(f"only local $refs are supported: {pointer}")
            node: Any = self.root
            for part in pointer[2:].split("/"):
                node = node[unescape(part)]
            refs[pointer] = lambda x: True  # placeholder while a recursive schema compiles
            refs[pointer] = self.compile(node)
        return lambda x: refs[pointer](x)

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        checks: list[Check] = []
        for key, value in schema.items():
            if key in _ANNOTATIONS or key in ("then", "else"):
                continue
            method = getattr(self, "kw_" + key.lstrip("$"), None)
            if method is None:
                raise ValueError(f"fastschema does not support the keyword {key!r}")
            checks.append(method(value, schema))
        return _all(checks)

    # -- keywords, one method each ---------------------------------------------------------

    def kw_ref(self, value: str, schema: dict) -> Check:
        return self.ref(value)

    def kw_type(self, value: str | list[str], schema: dict) -> Check:
        tests = [_TYPES[t] for t in ([value] if isinstance(value, str) else value)]
        if len(tests) == 1:
            return tests[0]
        return _any(tests)

    def kw_enum(self, value: list[Any], schema: dict) -> Check:
        return lambda x: any(equal(x, v) for v in value)

    def kw_const(self, value: Any, schema: dict) -> Check:
        return lambda x: equal(x, value)

    def kw_properties(self, value: dict[str, Any], schema: dict) -> Check:
        props = {k: self.compile(v) for k, v in value.items()}

        def check(x: Any) -> bool:
            if isinstance(x, dict):
                for k, v in x.items():
                    c = props.get(k)
                    if c is not None and not c(v):
                        return False
            return True
        return check

    def kw_additionalProperties(self, value: Any, schema: dict) -> Check:
        known = set(schema.get("properties", ()))
        patterns = [re.compile(p) for p in schema.get("patternProperties", ())]
        extra = self.compile(value)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            return all(
                extra(v) for k, v in x.items()
                if k not in known and not any(p.search(k) for p in patterns)
            )
        return check

    def kw_patternProperties(self, value: dict[str, Any], schema: dict) -> Check:
        pats = [(re.compile(p), self.compile(s)) for p, s in value.items()]

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            return all(s(v) for k, v in x.items() for p, s in pats if p.search(k))
        return check

    def kw_required(self, value: list[str], schema: dict) -> Check:
        if len(value) == 1:  # the common case: a discriminating key
            key = value[0]
            return lambda x: not isinstance(x, dict) or key in x
        keys = frozenset(value)
        return lambda x: not isinstance(x, dict) or x.keys() >= keys

    def kw_propertyNames(self, value: Any, schema: dict) -> Check:
        names = self.compile(value)
        return lambda x: not isinstance(x, dict) or all(names(k) for k in x)

    def kw_minProperties(self, value: int, schema: dict) -> Check:
        return lambda x: not isinstance(x, dict) or len(x) >= value

    def kw_maxProperties(self, value: int, schema: dict) -> Check:
        return lambda x: not isinstance(x, dict) or len(x) <= value

    def kw_items(self, value: Any, schema: dict) -> Check:
        item = self.compile(value)
        skip = len(schema.get("prefixItems", ()))

        def check(x: Any) -> bool:
            if isinstance(x, list):
                for v in x[skip:] if skip else x:
                    if not item(v):
                        return False
            return True
        return check

    def kw_prefixItems(self, value: list[Any], schema: dict) -> Check:
        items = [self.compile(v) for v in value]
        return lambda x: not isinstance(x, list) or all(
            c(v) for c, v in zip(items, x, strict=False)
        )

    def kw_minItems(self, value: int, schema: dict) -> Check:
        return lambda x: not isinstance(x, list) or len(x) >= value

    def kw_maxItems(self, value: int, schema: dict) -> Check:
        return lambda x: not isinstance(x, list) or len(x) <= value

    def kw_uniqueItems(self, value: bool, schema: dict) -> Check:
        if not value:
            return lambda x: True

        def check(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            return not any(equal(a, b) for i, a in enumerate(x) for b in x[i + 1:])
        return check

    def kw_minLength(self, value: int, schema: dict) -> Check:
        return lambda x: not isinstance(x, str) or len(x) >= value

    def kw_maxLength(self, value: int, schema: dict) -> Check:
        return lambda x: not isinstance(x, str) or len(x) <= value

    def kw_pattern(self, value: str, schema: dict) -> Check:
        regex = re.compile(value)
        return lambda x: not isinstance(x, str) or regex.search(x) is not None

    def _bound(self, test: Callable[[Any], bool]) -> Check:
        return lambda x: not _is_number(x) or test(x)

    def kw_minimum(self, value: float, schema: dict) -> Check:
        return self._bound(lambda x: x >= value)

    def kw_maximum(self, value: float, schema: dict) -> Check:
        return self._bound(lambda x: x <= value)

    def kw_exclusiveMinimum(self, value: float, schema: dict) -> Check:
        return self._bound(lambda x: x > value)

    def kw_exclusiveMaximum(self, value: float, schema: dict) -> Check:
        return self._bound(lambda x: x < value)

    def kw_allOf(self, value: list[Any], schema: dict) -> Check:
        return _all([self.compile(s) for s in value])

    def kw_anyOf(self, value: list[Any], schema: dict) -> Check:
        return _any([self.compile(s) for s in value])

    def kw_oneOf(self, value: list[Any], schema: dict) -> Check:
        subs = [self.compile(s) for s in value]
        return lambda x: sum(1 for s in subs if s(x)) == 1

    def kw_not(self, value: Any, schema: dict) -> Check:
        sub = self.compile(value)
        return lambda x: not sub(x)

    def kw_if(self, value: Any, schema: dict) -> Check:
        cond = self.compile(value)
        then = self.compile(schema.get("then", True))
        other = self.compile(schema.get("else", True))
        return lambda x: then(x) if cond(x) else other(x)


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for c in checks:
            if not c(x):
                return False
        return True
    return check


def _any(checks: list[Check]) -> Check:
    def check(x: Any) -> bool:
        for c in checks:
            if c(x):
                return True
        return False
    return check


def compile_schema(schema: dict[str, Any]) -> Check:
    """A function telling whether an instance is valid against `schema`."""
    return Compiler(schema).compile(schema)
