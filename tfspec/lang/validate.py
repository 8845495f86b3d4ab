"""The checking pipeline: read (DSL or JSON) -> schema -> catalog and semantics.

This is what `tfspec validate` runs. It never imports TensorFlow or Keras
(`tests/test_no_tensorflow.py` guards that), so it stays fast enough for
pre-commit hooks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import check_semantics
from .diagnostics import Diagnostics, Span
from .jsonreader import parse_json
from .located import Positions
from .parser import Parsed, parse_dsl
from .schema import check_schema
from .textfile import Layout, NotUTF8, decode, normalize

SPEC_SUFFIXES = (".tfspec", ".tfspec.json")


@dataclass
class Result:
    """A checked spec: its text, IR (None if unreadable), positions and diagnostics."""

    file: str
    source: str
    ir: dict[str, Any] | None
    positions: Positions
    diagnostics: Diagnostics
    overrides: dict[str, Any] = field(default_factory=dict)  # checked `--set` values
    # the file's line endings and byte-order mark (`source` has neither): `fmt` keeps them
    layout: Layout = field(default_factory=Layout)

    @property
    def ok(self) -> bool:
        return self.ir is not None and not self.diagnostics.has_errors


def is_json(filename: str) -> bool:
    return filename.endswith(".json")


def read(text: str, filename: str, diags: Diagnostics) -> Parsed:
    """Parse `text` as JSON or DSL by its file name."""
    try:
        if is_json(filename):
            return parse_json(text, diags)
        return parse_dsl(text, diags)
    except RecursionError:
        diags.add("E101" if is_json(filename) else "E100",
                  "the spec is nested too deeply to read", Span.point(1, 1))
        return Parsed(None, Positions(), text)


def validate_text(text: str, filename: str = "<spec>",
                  overrides: dict[str, Any] | None = None,
                  allow_modules: tuple[str, ...] = ()) -> Result:
    """Check a spec given as text; `filename` decides the syntax (`.json` or DSL).

    A leading byte-order mark is skipped and any line endings are read as `\n`
    (`Result.layout` says what the text had), so positions are the same for all.
    `allow_modules`: Python modules a `generator("module:function")` source may
    import (docs/architecture.md, rule 5: a spec never runs code the user did not allow).
    """
    text, layout = normalize(text)
    diags = Diagnostics(filename)
    parsed = read(text, filename, diags)
    if parsed.ir is not None:
        check_schema(parsed.ir, parsed.positions, diags)
        try:
            check_semantics(parsed.ir, parsed.positions, diags, overrides, allow_modules)
        except RecursionError:
            diags.add("E406", "the spec is nested too deeply to check", Span.point(1, 1))
    diags.items = _one_per_place(diags.sorted())
    return Result(filename, text, parsed.ir, parsed.positions, diags, dict(overrides or {}),
                  layout)


def _one_per_place(items: list) -> list:
    """Keep the first error at each exact span: a later stage's view of the same
    mistake (an undefined name that the schema already rejected) only adds noise."""
    seen: set = set()
    out = []
    for d in items:
        key = (d.span, d.is_error)
        if d.span is not None and key in seen:
            continue
        seen.add(key)
        out.append(d)
    return out


def validate_file(path: str | os.PathLike[str],
                  overrides: dict[str, Any] | None = None,
                  allow_modules: tuple[str, ...] = ()) -> Result:
    """Check one spec file (UTF-8; see `validate_text` for BOMs and line endings)."""
    name = str(path)
    diags = Diagnostics(name)
    try:
        text = decode(Path(path).read_bytes())
    except OSError as exc:
        diags.add("E103", f"cannot read the file: {exc.strerror or exc}")
        return Result(name, "", None, Positions(), diags)
    except NotUTF8 as exc:
        diags.add("E103", exc.message, exc.span, exc.hint)
        return Result(name, exc.shown, None, Positions(), diags)
    return validate_text(text, name, overrides, allow_modules)


IGNORE_FILE = ".tfspecignore"


def _ignored(root: Path) -> list[str]:
    """Glob patterns (relative to `root`) from its `.tfspecignore`, like .gitignore lines."""
    try:
        lines = (root / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def find_specs(paths: list[str]) -> list[Path]:
    """Files named on the command line, and specs found under named directories.

    Directory walks skip what a `.tfspecignore` in the named directory lists
    (e.g. `invalid` for a folder of deliberately broken specs); files named
    explicitly are always checked.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            found.append(path)
            continue
        patterns = _ignored(path)
        for p in sorted(path.rglob("*")):
            if not (p.is_file() and p.name.endswith(SPEC_SUFFIXES)):
                continue
            rel = p.relative_to(path)
            if any(rel.match(pat) or any(part.match(pat) for part in rel.parents
                                         if str(part) != ".")
                   for pat in patterns):
                continue
            found.append(p)
    return found


def parse_override(text: str) -> tuple[str, Any]:
    """`name=value` from `--set`; the value is a tfspec/JSON literal, else a string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ValueError(f"expected name=value. Received: {text!r}")
    raw = raw.strip()
    literal = {"true": True, "false": False, "null": None, "None": None}
    if raw in literal:
        return name, literal[raw]
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw
