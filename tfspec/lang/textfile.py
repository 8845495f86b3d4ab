"""Spec text as editors write it: UTF-8 with or without a byte-order mark, any line endings.

Every reader of spec files goes through here (`validate_file` today, the language
server later): `decode` turns a file's bytes into text, or says where the first
byte that is not UTF-8 is; `normalize` drops a leading byte-order mark and makes
every line end in `\\n` — Python's universal newlines — so that the front ends and
the diagnostics count lines and columns the same way whatever the editor saved.
`Layout` remembers what the file had, so that `tfspec fmt` writes it back alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .diagnostics import Span, TfspecError

BOM = "\ufeff"
_NEWLINE = re.compile(r"\r\n?|\n")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Layout:
    """How a spec file was laid out: its line ending and whether it starts with a BOM."""

    newline: str = "\n"  # the first line ending in the file: "\n", "\r\n" or "\r"
    bom: bool = False
    mixed: bool = False  # the file's lines do not all end alike

    def apply(self, text: str) -> str:
        """`text` (lines ending in `\\n`) with this layout's line endings and BOM."""
        if self.newline != "\n":
            text = text.replace("\n", self.newline)
        return BOM + text if self.bom else text


def normalize(text: str) -> tuple[str, Layout]:
    """`text` without a leading BOM and with `\\n` line endings, and its layout."""
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    if "\r" not in text:  # the common case costs one scan
        return text, Layout(bom=bom)
    endings = _NEWLINE.findall(text)
    return _NEWLINE.sub("\n", text), Layout(endings[0], bom, len(set(endings)) > 1)


class NotUTF8(TfspecError, ValueError):
    """A file that is not UTF-8: where its first bad byte is, and the text to show there."""

    def __init__(self, message: str, span: Span, hint: str, shown: str):
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint
        self.shown = shown  # the file decoded leniently (and normalized), for the caret


def decode(data: bytes) -> str:
    """A spec file's bytes as text (normalize it next); raises NotUTF8 where they are not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(data, exc.start) from None


def _not_utf8(data: bytes, start: int) -> NotUTF8:
    hint = "save the file as UTF-8 (tfspec reads specs as UTF-8)"
    if data.startswith(_UTF16_BOMS):
        # Windows editors' "Unicode": show the text as it reads, the whole file is the problem
        try:
            shown = data.decode("utf-16")
        except UnicodeDecodeError:
            shown = data.decode("utf-8", errors="replace")
        return NotUTF8("the file is UTF-16 (it starts with a UTF-16 byte-order mark), "
                       "not UTF-8", Span.point(1, 1), hint, normalize(shown)[0])
    # everything before the first bad byte is UTF-8: count lines and columns in it
    before, _ = normalize(data[:start].decode("utf-8"))
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    shown, _ = normalize(data.decode("utf-8", errors="replace"))
    return NotUTF8(f"the file is not UTF-8: byte 0x{data[start]:02x} here cannot be decoded",
                   Span.point(line, col), hint, shown)
