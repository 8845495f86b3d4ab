"""IR -> canonical `.tfspec` text (what `tfspec fmt` and `convert --to tfspec` print).

The output is a pure function of the IR, so formatting is idempotent and a JSON
spec converts to the same text as its DSL twin. Layout rules: two-space indent;
a construct stays on one line when it fits in `WIDTH` columns and holds no
comment, otherwise it breaks one element per line with trailing commas; pipes
with more than two layers always break, one `|>` stage per line. Comments are
printed where the IR's `comments` table anchors them.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from .diagnostics import TfspecError
from .ir import escape, statement_kind

WIDTH = 88
INDENT = "  "
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3}


class FormatError(TfspecError, ValueError):
    """The IR holds something the DSL cannot express (the checker reports why)."""


def format_spec(ir: dict[str, Any]) -> str:
    """The canonical DSL text of a (schema-valid) IR."""
    return _Formatter(ir.get("comments") or []).spec(ir)


def inline(value: Any) -> str:
    """One value as DSL text on one line (used in messages)."""
    return _Formatter([]).inline(value)


class _Formatter:
    def __init__(self, comments: list[dict[str, Any]]):
        self.leading: dict[str, list[str]] = defaultdict(list)
        self.trailing: dict[str, list[str]] = defaultdict(list)
        self.ends: dict[str, list[str]] = defaultdict(list)
        for c in comments:
            text = c["text"] if c["text"].startswith("#") else "# " + c["text"]
            if c.get("end"):
                table = self.ends
            else:
                table = self.trailing if c.get("trailing") else self.leading
            table[c["at"]].append(text)
        self.anchors = set(self.leading) | set(self.trailing) | set(self.ends)

    # -- helpers -------------------------------------------------------------------

    def has_comments(self, at: str) -> bool:
        """Whether any comment is anchored inside `at` (not on `at` itself)."""
        return any(a.startswith(at + "/") for a in self.anchors)

    def lead(self, at: str, indent: str) -> list[str]:
        return [indent + text for text in self.leading.get(at, ())]

    def trail(self, at: str) -> str:
        texts = self.trailing.get(at)
        return "  " + " ".join(texts) if texts else ""

    def end(self, at: str, indent: str) -> list[str]:
        return [indent + text for text in self.ends.get(at, ())]

    # -- the spec --------------------------------------------------------------------

    def spec(self, ir: dict[str, Any]) -> str:
        out: list[str] = []
        prev = None
        for key, value in ir.items():
            if key == "comments":
                continue
            at = "/" + escape(key)
            if key == "params":
                for i, (name, pvalue) in enumerate(value.items()):
                    pat = f"{at}/{escape(name)}"
                    if i == 0 and prev is not None:
                        out.append("")
                    out += self.lead(pat, "")
                    out += self.lines(f"param {name} = ", pvalue, pat, "", self.trail(pat))
                prev = key
                continue
            if key == "blocks":
                for i, block in enumerate(value):
                    if prev is not None:
                        out.append("")
                    out += self.block(block, f"{at}/{i}")
                    prev = key
                continue
            if prev is not None and not (key == "name" and prev == "tfspec"):
                out.append("")
            out += self.lead(at, "")
            if key == "tfspec":
                out.append(f"tfspec {value}{self.trail(at)}")
            elif key == "name":
                out.append(f"name {_string(value)}{self.trail(at)}")
            elif key == "model":
                out += self.model(value, at)
            elif key == "export":
                out += self.export(value, at)
            elif isinstance(value, dict):
                out += self.section(key, value, at, "")
            else:
                out += self.lines(f"{key} = ", value, at, "", self.trail(at))
            prev = key
        tail = self.end("", "")
        if tail:
            out += [""] + tail
        return "\n".join(out) + "\n"

    def section(self, key: str, obj: dict[str, Any], at: str, indent: str) -> list[str]:
        head = f"{indent}{key} {{"
        inline = self.inline_object(obj, at)
        if inline is not None and len(head) + len(inline) + 3 <= WIDTH:
            return [f"{head} {inline} }}{self.trail(at)}"]
        out = [head]
        out += self.entries(obj, at, indent + INDENT)
        out += self.end(at, indent + INDENT)
        out.append(indent + "}" + self.trail(at))
        return out

    def inline_object(self, obj: dict[str, Any], at: str) -> str | None:
        """`a = 1, b = 2` for a small object of scalars with no comments inside."""
        if not obj or self.has_comments(at) or self.ends.get(at) or len(obj) > 4:
            return None
        parts = []
        for key, value in obj.items():
            if isinstance(value, (dict, list)):
                return None
            parts.append(f"{key} = {self.inline(value)}")
        return ", ".join(parts)

    def entries(self, obj: dict[str, Any], at: str, indent: str) -> list[str]:
        out: list[str] = []
        for key, value in obj.items():
            kat = f"{at}/{escape(key)}"
            out += self.lead(kat, indent)
            if isinstance(value, dict) and not _is_expr(value):
                out += self.section(_key(key), value, kat, indent)
            else:
                out += self.lines(f"{_key(key)} = ", value, kat, indent, self.trail(kat))
        return out

    def export(self, targets: list[dict[str, Any]], at: str) -> list[str]:
        out = ["export {"]
        for i, target in enumerate(targets):
            tat = f"{at}/{i}"
            out += self.lead(tat, INDENT)
            rest = {k: v for k, v in target.items() if k not in ("format", "path")}
            head = f"{INDENT}{target['format']} {_string(target['path'])}"
            if not rest and not self.ends.get(tat):
                out.append(head + self.trail(tat))
            else:
                out += self.section_body(head, rest, tat, INDENT)
        out += self.end(at, INDENT)
        out.append("}" + self.trail(at))
        return out

    def section_body(self, head: str, obj: dict[str, Any], at: str, indent: str) -> list[str]:
        inline = self.inline_object(obj, at)
        if inline is not None and len(head) + len(inline) + 5 <= WIDTH:
            return [f"{head} {{ {inline} }}{self.trail(at)}"]
        out = [f"{head} {{"]
        out += self.entries(obj, at, indent + INDENT)
        out += self.end(at, indent + INDENT)
        out.append(indent + "}" + self.trail(at))
        return out

    # -- models and blocks ---------------------------------------------------------------

    def model(self, model: dict[str, Any], at: str) -> list[str]:
        out = [f"model {model['name']} {model['kind']} {{"]
        out += self.body(model.get("body", []), f"{at}/body", INDENT)
        out += self.end(at, INDENT)
        out.append("}" + self.trail(at))
        return out

    def block(self, block: dict[str, Any], at: str) -> list[str]:
        params = []
        for p in block.get("params", []):
            params.append(
                p["name"] if "default" not in p else f"{p['name']} = {self.inline(p['default'])}"
            )
        out = self.lead(at, "")
        out.append(f"block {block['name']}({', '.join(params)}) {{")
        out += self.body(block.get("body", []), f"{at}/body", INDENT)
        out += self.end(at, INDENT)
        out.append("}" + self.trail(at))
        return out

    def body(self, stmts: list[dict[str, Any]], at: str, indent: str) -> list[str]:
        out: list[str] = []
        for i, stmt in enumerate(stmts):
            sat = f"{at}/{i}"
            out += self.lead(sat, indent)
            trail = self.trail(sat)
            kind, name = statement_kind(stmt)
            if kind == "input":
                text = f"input {name}"
                if "shape" in stmt:
                    dims = ", ".join("None" if d is None else d["ref"] if isinstance(d, dict)
                                     else str(d) for d in stmt["shape"])
                    dtype = stmt.get("dtype")
                    text += f": {dtype}[{dims}]" if dtype else f": [{dims}]"
                elif "dtype" in stmt:
                    raise FormatError("an input with a dtype needs a shape")
                out.append(indent + text + trail)
            elif kind == "layer":
                out += self.lines(f"layer {name} = ", stmt["value"], f"{sat}/value",
                                  indent, trail)
            elif kind == "node":
                out += self.lines(f"{name} = ", stmt["value"], f"{sat}/value", indent, trail)
            elif kind == "output":
                out += self.lines(f"output {name} = ", stmt["value"], f"{sat}/value", indent,
                                  trail)
            elif kind == "output_ref":
                out.append(f"{indent}output {name}{trail}")
            elif kind == "add":
                out += self.lines("", stmt["add"], f"{sat}/add", indent, trail)
            else:
                raise FormatError(f"unknown statement {sorted(stmt)}")
        return out

    # -- values ------------------------------------------------------------------------

    def lines(self, prefix: str, value: Any, at: str, indent: str, trail: str) -> list[str]:
        """`prefix` + value at `indent`, broken over lines when needed; `trail` goes last."""
        if not self.has_comments(at):
            text = self.inline(value)
            # a trailing comment may run past WIDTH: it never breaks the value it follows
            if len(indent) + len(prefix) + len(text) <= WIDTH and not (
                _is_pipe(value) and len(value["pipe"]) > 3
            ):
                return [indent + prefix + text + trail]
        lines = self.broken(value, at, indent)
        lines[0] = indent + prefix + lines[0]
        lines[-1] += trail
        return lines

    def broken(self, value: Any, at: str, indent: str) -> list[str]:
        """Value text over several lines: the first line has no indent, the rest do."""
        inner = indent + INDENT
        if isinstance(value, list):
            out = ["["]
            for i, item in enumerate(value):
                iat = f"{at}/{i}"
                out += self.lead(iat, inner)
                sub = self.lines("", item, iat, inner, "")
                sub[-1] += "," + self.trail(iat)
                out += sub
            out.append(indent + "]")
            return out
        if _is_pipe(value):
            stages = value["pipe"]
            first = self.lines("", stages[0], f"{at}/pipe/0", indent, self.trail(f"{at}/pipe/0"))
            first[0] = first[0][len(indent):]
            out = first
            pipe_indent = indent + INDENT
            for i, stage in enumerate(stages[1:], 1):
                sat = f"{at}/pipe/{i}"
                out += self.lead(sat, pipe_indent)
                out += self.lines("|> ", stage, sat, pipe_indent, self.trail(sat))
            return out
        callee = value.get("call") if isinstance(value, dict) else None
        if _is_call(callee) and (callee.get("args") or callee.get("kwargs")) and not (
            self.has_comments(f"{at}/args") or self.has_comments(f"{at}/kwargs")
        ):
            # `Dense(…long…)(x)`: break the layer's arguments and keep `(x)` on its `)`
            lines = self.broken(callee, f"{at}/call", indent)
            parts = [self.inline(a) for a in value.get("args", [])]
            parts += [f"{k} = {self.inline(v)}" for k, v in value.get("kwargs", {}).items()]
            lines[-1] += f"({', '.join(parts)})"
            return lines
        if _is_call(value) and (value.get("args") or value.get("kwargs")):
            callee = value["call"]
            head = self.inline(callee) if isinstance(callee, dict) else callee
            out = [head + "("]
            for i, arg in enumerate(value.get("args", [])):
                aat = f"{at}/args/{i}"
                sub = self.lines("", arg, aat, inner, "")
                sub[-1] += ","
                out += sub
            for key, arg in value.get("kwargs", {}).items():
                kat = f"{at}/kwargs/{escape(key)}"
                sub = self.lines(f"{key} = ", arg, kat, inner, "")
                sub[-1] += ","
                out += sub
            out.append(indent + ")")
            return out
        return [self.inline(value)]

    def inline(self, value: Any, parent: int = 0, right: bool = False) -> str:
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise FormatError(f"{value} has no literal in tfspec")
            return repr(value)
        if isinstance(value, str):
            return _string(value)
        if isinstance(value, list):
            return "[" + ", ".join(self.inline(v) for v in value) + "]"
        if isinstance(value, dict):
            if "ref" in value and isinstance(value["ref"], str):
                return value["ref"]
            if _is_call(value):
                callee = value["call"]
                head = self.inline(callee) if isinstance(callee, dict) else callee
                parts = [self.inline(a) for a in value.get("args", [])]
                parts += [f"{k} = {self.inline(v)}" for k, v in value.get("kwargs", {}).items()]
                return f"{head}({', '.join(parts)})"
            if _is_pipe(value):
                text = " |> ".join(self.inline(s) for s in value["pipe"])
                return f"({text})" if parent else text
            if "op" in value and isinstance(value.get("args"), list):
                op, args = value["op"], value["args"]
                prec = _PRECEDENCE.get(op)
                if prec is None or len(args) != (1 if op == "neg" else 2):
                    raise FormatError(f"bad expression operator {op!r}")
                if op == "neg":
                    text = "-" + self.inline(args[0], prec)
                else:
                    text = (
                        f"{self.inline(args[0], prec)} {op} {self.inline(args[1], prec, True)}"
                    )
                needs = prec < parent or (right and prec == parent)
                return f"({text})" if needs else text
        raise FormatError(f"cannot write {value!r} in tfspec syntax")


def _is_call(value: Any) -> bool:
    return isinstance(value, dict) and "call" in value


def _is_pipe(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("pipe"), list)


def _is_expr(value: dict[str, Any]) -> bool:
    return any(k in value for k in ("call", "ref", "op", "pipe"))


def _key(key: str) -> str:
    if not _NAME.match(key):
        raise FormatError(f"`{key}` is not a valid key name")
    return key


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
