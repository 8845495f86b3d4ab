"""A small writer for generated Python that remembers where each line came from.

Like Jinja2's `CodeGenerator.writeline(x, node)`: every line can carry the spec
span it was generated for, so an exception raised by a generated line can be
reported at the spec's `file:line:col` (see `jobs/build.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..lang.diagnostics import Span

LINE_LENGTH = 100
INDENT = "    "


class CodeWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0
        self.origins: dict[int, Span] = {}  # generated line (1-based) -> spec span

    def line(self, text: str = "", span: Span | None = None) -> None:
        """Write one line (or several, for a `text` holding newlines) at this indent."""
        for part in text.split("\n"):
            self.lines.append(INDENT * self.level + part if part else "")
            if span is not None:
                self.origins[len(self.lines)] = span

    def blank(self, count: int = 1) -> None:
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        self.lines.extend([""] * count)

    @contextmanager
    def indented(self) -> Iterator[None]:
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    @property
    def width(self) -> int:
        """Columns left on a line at the current indent: programs are written for 100
        columns, tfspec's own line length (ruff's `line-length = 100`)."""
        return LINE_LENGTH - len(INDENT) * self.level

    def extend(self, other: CodeWriter) -> None:
        """Append another writer's lines (and where they came from)."""
        offset = len(self.lines)
        self.lines.extend(other.lines)
        for line, span in other.origins.items():
            self.origins[line + offset] = span

    def text(self) -> str:
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n"
