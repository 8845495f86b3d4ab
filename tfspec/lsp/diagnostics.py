"""The checker's diagnostics as LSP diagnostics: same code, message, range and hint.

A diagnostic whose message or hint names a second place ("already declared at
line 4", "the first `batch` is at line 7") gets that place as related information:
the name's first occurrence on that line (the line's text when the name is not
on it).
"""

from __future__ import annotations

import re

from lsprotocol import types

from ..lang.diagnostics import Diagnostic
from .documents import Document

SOURCE = "tfspec"
_AT_LINE = re.compile(r"\bat line (\d+)\b")
_NAMED = re.compile(r"`([^`]+)`|\"([^\"]+)\"")


def to_lsp(doc: Document, diag: Diagnostic) -> types.Diagnostic:
    """One checker diagnostic at its LSP range; the hint follows the message, as
    `tfspec validate` prints it (`= hint: …`)."""
    message = diag.message + (f"\nhint: {diag.hint}" if diag.hint else "")
    severity = (types.DiagnosticSeverity.Error if diag.is_error
                else types.DiagnosticSeverity.Warning)
    tags = [types.DiagnosticTag.Unnecessary] if diag.code in ("W400", "W401") else None
    return types.Diagnostic(
        range=doc.range(diag.span),
        message=message,
        severity=severity,
        code=diag.code,
        source=SOURCE,
        tags=tags,
        related_information=related(doc, diag),
    )


def related(doc: Document, diag: Diagnostic) -> list[types.DiagnosticRelatedInformation] | None:
    """The second place a diagnostic names, if any."""
    text = diag.message + " " + (diag.hint or "")
    m = _AT_LINE.search(text)
    if not m:
        return None
    line = int(m.group(1))
    if not 1 <= line <= len(doc.lines.lines) or (diag.span and diag.span.line == line):
        return None
    name = next((a or b for a, b in _NAMED.findall(diag.message)), None)
    source = doc.lines.lines[line - 1]
    if line == 1 and doc.lines.bom:
        source = source[1:]  # the checker's columns do not count the byte-order mark
    col = _find_word(source, name) if name else -1
    if col >= 0:
        start = doc.lines.spec_position(line, col + 1)
        end = doc.lines.spec_position(line, col + 1 + len(name or ""))
    else:  # the line without its indentation
        stripped = len(source) - len(source.lstrip())
        start = doc.lines.spec_position(line, stripped + 1)
        end = doc.lines.spec_position(line, len(source) + 1)
    what = f"`{name}` is here" if name else "the first place"
    return [types.DiagnosticRelatedInformation(
        location=types.Location(uri=doc.uri, range=types.Range(start, end)), message=what)]


def _find_word(line: str, name: str) -> int:
    """The column (0-based) of `name` on `line` as a whole word, else -1."""
    for m in re.finditer(re.escape(name), line):
        before = line[m.start() - 1] if m.start() else " "
        after = line[m.end()] if m.end() < len(line) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return m.start()
    return -1


def for_document(doc: Document) -> list[types.Diagnostic]:
    """The checker's diagnostics of the document's current analysis."""
    return [to_lsp(doc, d) for d in doc.diagnostics]
