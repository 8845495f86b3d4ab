"""YAML text for the manifests tfspec writes (Kubernetes reads YAML; people read it too).

A small emitter for JSON-like data (dicts, lists, strings, integers, floats, booleans,
None) in block style, so the light core needs no YAML library. Strings stay plain
where YAML would read them back as the same string, multi-line ones become literal
blocks (`|`), and anything else is a double-quoted JSON string, which is valid YAML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

INDENT = "  "

# what a plain scalar may hold; which ones YAML would read as something else is below
_PLAIN_CHARS = re.compile(r"[A-Za-z0-9 _./$@%+=()~^:-]+")
# what YAML 1.1 (PyYAML; go-yaml, which kubectl uses, in places) reads as a boolean or null
_SPECIAL = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "=", "<<"}
# numbers, YAML 1.1's too (0x1f, 0o7, 1_000, 1:30, .inf) and timestamps (2025-01-31)
_NUMBERISH = re.compile(r"[-+]?(\.?[0-9][0-9a-fA-FxXoO_.:+eE-]*|\.(inf|nan))", re.IGNORECASE)


def documents(docs: Iterable[Any]) -> str:
    """Several documents, each starting with `---` (what `kubectl apply -f` reads)."""
    return "".join("---\n" + dump(doc) for doc in docs)


def dump(value: Any) -> str:
    """One value as a YAML document (ending with a newline)."""
    return "\n".join(_block(value, 0)) + "\n"


def scalar(value: Any) -> str:
    """A scalar on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        if _plain(value):
            return value
        # a line break YAML knows and Python does not (NEL, U+2028) must be escaped
        return json.dumps(value, ensure_ascii=not value.isprintable())
    raise TypeError(f"no YAML for {type(value).__name__}")


def _plain(text: str) -> bool:
    """Whether YAML reads `text` unquoted as this very string."""
    return (bool(_PLAIN_CHARS.fullmatch(text)) and text == text.strip()
            and text.lower() not in _SPECIAL and not _NUMBERISH.fullmatch(text)
            and text[0] not in ":%@" and not text.startswith(("- ", "-:"))
            and text != "-" and ": " not in text and not text.endswith(":"))


def _block(value: Any, level: int) -> list[str]:
    pad = INDENT * level
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        lines = []
        for key, item in value.items():
            lines += _entry(pad + scalar(str(key)) + ":", item, level)
        return lines
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            # a list item's mapping starts on the dash's line: `- name: x`
            inner = _block(item, level + 1)
            lines.append(pad + "- " + inner[0][len(pad) + len(INDENT):])
            lines += inner[1:]
        return lines
    if isinstance(value, str) and "\n" in value and _literal_ok(value):
        return [pad + _header(value)] + _literal_lines(value, level + 1)
    return [pad + scalar(value)]


def _entry(head: str, item: Any, level: int) -> list[str]:
    """`key: value` for a scalar, `key:` and an indented block for the rest."""
    if isinstance(item, dict) and item:
        return [head] + _block(item, level + 1)
    if isinstance(item, list) and item:
        return [head] + _block(item, level)  # Kubernetes style: dashes under the key
    if isinstance(item, str) and "\n" in item and _literal_ok(item):
        return [f"{head} {_header(item)}"] + _literal_lines(item, level + 1)
    return [f"{head} {_block(item, 0)[0]}"]


def _literal_ok(text: str) -> bool:
    """Whether a literal block keeps `text` exactly: printable (no carriage return),
    and its first line does not start with a blank (that line sets the indentation)."""
    if not all(c.isprintable() or c in "\n\t" for c in text):
        return False
    first = next((line for line in text.split("\n") if line), "")
    return bool(first) and not first[:1].isspace()


def _header(text: str) -> str:
    """`|` (one final newline), `|-` (none) or `|+` (several): the chomping indicator."""
    if not text.endswith("\n"):
        return "|-"
    return "|+" if text.endswith("\n\n") else "|"


def _literal_lines(text: str, level: int) -> list[str]:
    body = text[:-1] if text.endswith("\n") else text
    return [(INDENT * level + line) if line else "" for line in body.split("\n")]
