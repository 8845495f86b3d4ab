"""Short documentation from Keras docstrings, for spec/catalog/docs/*.json.

tools/gen_catalog.py calls `summary` and `args` on each catalog entry's docstring.
Keras writes Google-style docstrings: a first paragraph that says what the object
is, then sections such as `Args:` with one `name: text` entry per argument
(continuation lines indented deeper). The editor shows these texts as Markdown in
hover and completion, so each is one line, escaped where Markdown would
misread it, and capped at a sentence end. Standard library only.
"""

from __future__ import annotations

import inspect
import re

LIMIT = 300  # characters; about three lines of a hover
_ARGS_HEADERS = ("Args:", "Arguments:")
_SECTION = re.compile(r"[A-Z][A-Za-z ]*:$")  # `Args:`, `Input shape:` …
# `name: text` or `name (type): text`; `*args`/`**kwargs` are matched to skip them
_ENTRY = re.compile(r"(\*{0,2}[A-Za-z_]\w*)(?:\s*\([^)]*\))?:(?:\s+(.*))?$")
# a sentence ends at . ! ? before a space; "e.g." and "i.e." do not end one
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bie)(?<!\betc)[.!?](?=\s)")
_ESCAPE = re.compile(r"[*<\\]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def summary(doc: str | None, limit: int = LIMIT) -> str | None:
    """The docstring's first paragraph, one Markdown line of at most `limit` chars."""
    if not doc or not doc.strip():
        return None
    first = inspect.cleandoc(doc).split("\n\n", 1)[0]
    head = first.lstrip().splitlines()[0]
    if _SECTION.match(head) or head.startswith((">>>", "```")):
        return None  # the docstring starts with a section or an example, not prose
    return shorten(first, limit) or None


def args(doc: str | None, limit: int = LIMIT) -> dict[str, str]:
    """Argument name -> its `Args:` entry as one Markdown line (first section only)."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() in _ARGS_HEADERS), None)
    if start is None:
        return {}
    header = _indent(lines[start])
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    entry_indent: int | None = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        indent = _indent(line)
        if indent <= header:
            break  # the next section (`Returns:`, `Example:` …) or prose
        if entry_indent is None:
            entry_indent = indent
        match = _ENTRY.match(line.strip()) if indent == entry_indent else None
        if match:
            current = found.setdefault(match.group(1), [])
            if match.group(2):
                current.append(match.group(2))
        elif indent < entry_indent:
            break
        elif current is not None:
            current.append(line.strip())
    out = {}
    for name, parts in found.items():
        text = shorten(" ".join(parts), limit) if not name.startswith("*") else ""
        if text:
            out[name] = text
    return out


def shorten(text: str, limit: int = LIMIT) -> str:
    """Whitespace-normalized, Markdown-escaped outside code spans, capped at a sentence."""
    text = " ".join(text.split()).replace("]( ", "](")  # a link wrapped after its "("
    if len(text) > limit:
        text = _cut(text, limit)
    return markdown_safe(text)


def _cut(text: str, limit: int) -> str:
    """At the last sentence end within `limit`, else at a word, with "…"."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit)
            if _balanced(text[:m.end()])]
    if ends and ends[-1] >= limit // 3:
        return text[:ends[-1]]
    cut = text.rfind(" ", 0, limit - 1)
    head = text[:cut if cut > 0 else limit - 1].rstrip(" ,;:")
    if not _balanced(head):  # never leave a code span open
        head = head[:head.rfind("`")].rstrip(" ,;:")
    return head + "…"


def _balanced(text: str) -> bool:
    return text.count("`") % 2 == 0


def markdown_safe(text: str) -> str:
    """Escape what Markdown would read as markup outside `code spans`: emphasis
    (`*`, a word-edge `_`), HTML (`<`) and a block marker at the start."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:  # an unmatched backtick: Markdown shows it as is
        pieces[-2:] = [pieces[-2] + "`" + pieces[-1]]
    for i in range(0, len(pieces), 2):  # even pieces are outside code spans
        pieces[i] = _ESCAPE.sub(lambda m: "\\" + m.group(0), pieces[i])
    out = "`".join(pieces)
    if re.match(r"[#>+-]|\d+[.)]\s", out):
        out = "\\" + out
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
