"""Open documents: their text as the editor has it, positions, and the checker's view.

The editor counts positions in LSP units (0-based lines; columns in UTF-16 code
units unless the client negotiated another encoding) and its lines end at `\\n`,
`\\r\\n` or `\\r` — nothing else. The checker counts 1-based lines and columns in
characters of the normalized text (`tfspec.lang.textfile.normalize`: no BOM,
lines ending in `\\n`). `LineIndex` converts between the two; the server keeps
its own text for each document (pygls's workspace copy, which splits lines at form
feeds and U+2028 too, is switched off: `core.TfspecProtocol`) so both sides agree
on every line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types

from ..lang.diagnostics import Diagnostic, Span
from ..lang.located import Positions
from ..lang.validate import Result, validate_text

_LINE_END = re.compile(r"\r\n|\r|\n")


def _units_utf16(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _units_utf8(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


_UNITS = {
    types.PositionEncodingKind.Utf16: _units_utf16,
    types.PositionEncodingKind.Utf8: _units_utf8,
    types.PositionEncodingKind.Utf32: len,
}


class LineIndex:
    """The lines of one text, and conversions between LSP positions, text offsets and
    the checker's 1-based line:col (which counts lines of the BOM-less text)."""

    def __init__(self, text: str, encoding: str = types.PositionEncodingKind.Utf16):
        self.text = text
        self.units = _UNITS.get(encoding, _units_utf16)  # type: ignore[call-overload]
        self.starts = [0]  # offset where each line starts
        self.lines: list[str] = []  # each line without its ending
        pos = 0
        for m in _LINE_END.finditer(text):
            self.lines.append(text[pos:m.start()])
            pos = m.end()
            self.starts.append(pos)
        self.lines.append(text[pos:])
        self.bom = text.startswith("\ufeff")

    # -- LSP position <-> offset in the text ---------------------------------------

    def offset(self, pos: types.Position) -> int:
        """The offset in the text of an LSP position (clamped to the text, as LSP says:
        a column past the end of its line means the line's end)."""
        if pos.line < 0:
            return 0
        if pos.line >= len(self.lines):
            return len(self.text)
        line = self.lines[pos.line]
        return self.starts[pos.line] + self._chars(line, pos.character)

    def _chars(self, line: str, units: int) -> int:
        """How many characters of `line` its first `units` code units cover."""
        if units <= 0:
            return 0
        if line.isascii() or self.units is len:
            return min(units, len(line))
        count = 0
        for i, c in enumerate(line):
            if count >= units:
                return i
            count += self.units(c)
        return len(line)

    def position(self, offset: int) -> types.Position:
        """The LSP position of an offset in the text."""
        offset = max(0, min(offset, len(self.text)))
        line = _bisect(self.starts, offset)
        start = self.starts[line]
        col = min(offset - start, len(self.lines[line]))
        return types.Position(line, self.units(self.lines[line][:col]))

    # -- the checker's line:col <-> LSP ---------------------------------------------

    def spec_to_offset(self, line: int, col: int) -> int:
        """The offset of a checker position (1-based, in the normalized text)."""
        if line < 1:
            return 0
        if line > len(self.lines):
            return len(self.text)
        shift = 1 if (line == 1 and self.bom) else 0
        text = self.lines[line - 1]
        return self.starts[line - 1] + min(max(col - 1 + shift, shift), len(text))

    def spec_position(self, line: int, col: int) -> types.Position:
        return self.position(self.spec_to_offset(line, col))

    def spec_range(self, span: Span | None) -> types.Range:
        """The LSP range of a checker span (a span-less diagnostic: the first line)."""
        if span is None:
            return types.Range(types.Position(0, 0), types.Position(0, 0))
        start = self.spec_position(span.line, span.col)
        end = self.spec_position(span.end_line, span.end_col)
        if (end.line, end.character) < (start.line, start.character):
            end = start
        return types.Range(start, end)

    def to_spec(self, pos: types.Position) -> tuple[int, int]:
        """The checker's (line, col), 1-based, of an LSP position."""
        offset = self.offset(pos)
        line = _bisect(self.starts, offset)
        col = offset - self.starts[line] + 1
        if line == 0 and self.bom:
            col = max(1, col - 1)
        return line + 1, col

    def range_offsets(self, rng: types.Range) -> tuple[int, int]:
        start, end = self.offset(rng.start), self.offset(rng.end)
        return (start, end) if start <= end else (end, start)

    def end(self) -> types.Position:
        return self.position(len(self.text))


def _bisect(starts: list[int], offset: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo


def uri_path(uri: str) -> Path | None:
    """The file behind a `file:` URI, else None (an unsaved buffer)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def uri_is_json(uri: str) -> bool:
    """`.json` documents are read as the JSON form; everything else as the DSL."""
    return urlparse(uri).path.endswith(".json")


@dataclass
class Document:
    """One open document and the checker's view of its current text.

    uri          the document's URI, as the client sent it
    version      the client's version number of `text`
    text         the full text as the editor has it (BOM and line endings kept)
    path         the file behind a `file:` URI (pathlib.Path), else None
    is_json      read as the JSON form (`*.json`), else as the `.tfspec` DSL
    lines        a `LineIndex` of `text`: LSP positions (0-based, UTF-16 by default)
                 <-> text offsets <-> the checker's 1-based line:col
                 (`lines.spec_range(span)`, `lines.to_spec(position)`)
    result       the checker's `Result` for `text` (`tfspec.lang.validate`): source
                 (normalized), ir (None when the text does not parse), positions
                 (JSON pointer -> Span), diagnostics; None until analysed
    analysed     the version `result` belongs to (== version when current)
    good         the last `Result` whose text parsed (its IR and positions), so that
                 completion can name params and nodes while the text is mid-edit
    good_lines   the `LineIndex` of `good`'s text
    seconds      how long the last analysis took (the adaptive debounce reads it)
    """

    uri: str
    version: int
    text: str
    encoding: str = types.PositionEncodingKind.Utf16
    path: Path | None = None
    is_json: bool = False
    lines: LineIndex = field(init=False)
    result: Result | None = None
    analysed: int | None = None
    good: Result | None = None
    good_lines: LineIndex | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.path = uri_path(self.uri)
        self.is_json = uri_is_json(self.uri)
        self.lines = LineIndex(self.text, self.encoding)

    # -- the checker's view ---------------------------------------------------------

    @property
    def current(self) -> bool:
        return self.result is not None and self.analysed == self.version

    @property
    def ir(self) -> dict[str, Any] | None:
        return self.result.ir if self.result else None

    @property
    def positions(self) -> Positions:
        return self.result.positions if self.result else Positions()

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return list(self.result.diagnostics) if self.result else []

    @property
    def filename(self) -> str:
        """The name the checker reports and decides the syntax by."""
        if self.path is not None:
            return str(self.path)
        return "<spec>.json" if self.is_json else "<spec>"

    def analyse(self) -> Result:
        """Check the current text (what `tfspec validate` runs) and remember the result."""
        import time

        start = time.perf_counter()
        self.result = validate_text(self.text, self.filename)
        self.seconds = time.perf_counter() - start
        self.analysed = self.version
        if self.result.ir is not None:
            self.good, self.good_lines = self.result, self.lines
        return self.result

    # -- editing -----------------------------------------------------------------------

    def set_text(self, text: str, version: int) -> None:
        self.text, self.version = text, version
        self.lines = LineIndex(text, self.encoding)

    def apply(self, changes: list[Any], version: int) -> None:
        """Apply didChange content changes in order (ranged or whole-text)."""
        for change in changes:
            rng = getattr(change, "range", None)
            if rng is None:
                self.set_text(change.text, version)
            else:
                start, end = self.lines.range_offsets(rng)
                self.set_text(self.text[:start] + change.text + self.text[end:], version)
        self.version = version

    # -- positions ---------------------------------------------------------------------

    def offset(self, pos: types.Position) -> int:
        return self.lines.offset(pos)

    def range(self, span: Span | None) -> types.Range:
        return self.lines.spec_range(span)
