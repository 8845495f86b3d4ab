"""Formatting (`tfspec fmt`'s text as edits) and quick fixes for the checker's
diagnostics. A quick fix only rewrites what the diagnostic's hint names:

- a did-you-mean (`did you mean `Dense`?`, `did you mean "mirrored"?`): the
  span becomes the suggestion;
- a bare name where a string is expected (`write "custom" in quotes`): quoted;
- a hint that names one word (`True`: `write `true``): the span becomes it;
- E301 unknown argument: the `name = value` argument (and its comma) removed;
- E302 missing required argument(s): `name = <example>` added before the call's
  closing parenthesis, with a value of the parameter's type.

A fix is placed by the server's own diagnostic, never by the range the client
sends back: that range may be in other units (Neovim 0.7 sends byte columns) or
from an older text, and replacing it would rewrite the wrong characters.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from lsprotocol import types

from ..lang.formatter import format_spec
from . import scan, vocab
from .documents import Document

_MEANT = re.compile(r"did you mean (`([^`]+)`|\"([^\"]+)\")\?")
_QUOTE = re.compile(r"write \"([^\"]+)\" (?:in quotes|for a string)")
_WRITE = re.compile(r"hint: write `([A-Za-z_][A-Za-z0-9_]*)`$")
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # LSP's lines, ends kept
_NEEDS = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)` needs (.+)$")
_EXAMPLE = {"positive_int": "1", "int": "1", "non_negative_int": "0", "number": "1.0",
            "positive_number": "1.0", "non_negative_number": "0.0", "rate": "0.5",
            "probability": "0.5", "bool": "false", "string": '""', "size": "1",
            "shape": "[1]"}


def formatting(doc: Document) -> list[types.TextEdit] | None:
    """The edits that turn the text into `tfspec fmt`'s; None when it does not parse."""
    result = doc.result
    if result is None or result.ir is None:
        return None
    new = (json.dumps(result.ir, indent=2, ensure_ascii=False) + "\n" if doc.is_json
           else format_spec(result.ir))
    new = result.layout.apply(new)
    old = doc.text
    if new == old:
        return []
    # LSP's lines (`str.splitlines` also ends them at form feeds, U+2028 …)
    a, b = _LINES.findall(old), _LINES.findall(new)
    # line offsets of `old` by its own split (the layout keeps the line endings)
    starts = [0]
    for line in a:
        starts.append(starts[-1] + len(line))
    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        rng = types.Range(doc.lines.position(starts[i1]), doc.lines.position(starts[i2]))
        edits.append(types.TextEdit(range=rng, new_text="".join(b[j1:j2])))
    return edits


def code_actions(doc: Document, rng: types.Range, diagnostics: list[types.Diagnostic],
                 known: list[types.Diagnostic]) -> list[types.CodeAction]:
    """Quick fixes for the client's `diagnostics`, each placed by the one of `known`
    (the server's diagnostics of the current text) it stands for; none for a
    diagnostic the server does not have."""
    out = []
    for diag in diagnostics:
        if diag.source != "tfspec":
            continue
        own = _own(diag, known)
        edit = _fix(doc, own) if own is not None else None
        if edit is None:
            continue
        title, edits = edit
        out.append(types.CodeAction(
            title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diag],
            is_preferred=True, edit=types.WorkspaceEdit(changes={doc.uri: edits})))
    return out


def _own(diag: types.Diagnostic, known: list[types.Diagnostic]) -> types.Diagnostic | None:
    """The server's diagnostic the client's `diag` is: the same code and message, the
    nearest to where the client puts it (its line is right even where its columns
    are not); None when there is none (a diagnostic of an older text)."""
    first = diag.message.split("\n")[0]
    same = [k for k in known if k.source == diag.source and k.code == diag.code
            and k.message.split("\n")[0] == first]
    at = diag.range.start
    return min(same, default=None, key=lambda k: (
        k.range != diag.range, abs(k.range.start.line - at.line),
        abs(k.range.start.character - at.character)))


def _fix(doc: Document, diag: types.Diagnostic) -> tuple[str, list[types.TextEdit]] | None:
    message = diag.message
    start, end = doc.lines.range_offsets(diag.range)
    written = doc.text[start:end]
    m = _MEANT.search(message)
    if m:
        meant = m.group(2) or m.group(3)
        quoted = written.startswith('"')
        new = json.dumps(meant) if quoted else meant
        if m.group(3) and not quoted:
            new = json.dumps(meant)
        return f"Change to {new}", [types.TextEdit(range=diag.range, new_text=new)]
    m = _QUOTE.search(message)
    if m and not written.startswith('"'):
        new = json.dumps(written if written.isidentifier() else m.group(1))
        return f"Write {new} in quotes", [types.TextEdit(range=diag.range, new_text=new)]
    if diag.code == "E301":
        return _remove_argument(doc, start, written)
    if diag.code == "E302":
        return _add_required(doc, start, message)
    m = _WRITE.search(message)
    if m:  # `True` -> `true`: a hint that names one replacement word
        return f"Change to {m.group(1)}", [types.TextEdit(range=diag.range, new_text=m.group(1))]
    return None


def _remove_argument(doc: Document, start: int, name: str
                     ) -> tuple[str, list[types.TextEdit]] | None:
    toks = scan.tokens(doc.text)
    i = next((k for k, t in enumerate(toks) if t.start == start), None)
    if i is None:
        return None
    depth, j = 0, i
    while j < len(toks):  # the argument's end: the next top-level `,` or `)`
        t = toks[j].text
        if t in scan.OPENERS:
            depth += 1
        elif t in scan.CLOSERS:
            if depth == 0:
                break
            depth -= 1
        elif t == "," and depth == 0:
            break
        j += 1
    if j >= len(toks):
        return None
    if toks[j].text == ",":  # `a, bad = 1, b`: drop `bad = 1, `
        cut_start, cut_end = toks[i].start, toks[j + 1].start if j + 1 < len(toks) else \
            toks[j].end
    elif i > 0 and toks[i - 1].text == ",":  # the last argument: drop `, bad = 1`
        cut_start, cut_end = toks[i - 1].start, toks[j - 1].end
    else:
        cut_start, cut_end = toks[i].start, toks[j - 1].end
    rng = types.Range(doc.lines.position(cut_start), doc.lines.position(cut_end))
    return f"Remove the argument `{name}`", [types.TextEdit(range=rng, new_text="")]


def _add_required(doc: Document, start: int, message: str
                  ) -> tuple[str, list[types.TextEdit]] | None:
    m = _NEEDS.search(message.split("\n")[0])
    if not m:
        return None
    callee = m.group(1)
    wanted = re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", m.group(2))
    toks = scan.tokens(doc.text)
    i = next((k for k, t in enumerate(toks) if t.start == start and t.text == callee), None)
    if i is None or i + 1 >= len(toks) or toks[i + 1].text != "(":
        return None
    close = scan.matching(toks, i + 1)
    if close is None:
        return None
    found = vocab.callable_entry(callee)
    params = {p["name"]: p for p in vocab.params_of(*found)} if found else {}
    parts = [f"{name} = {_example(params.get(name))}" for name in wanted]
    empty = close == i + 2
    prev = toks[close - 1].text
    sep = "" if empty else ("" if prev == "," else ", ")
    if prev == ",":
        sep = " "
    text = sep + ", ".join(parts)
    at = doc.lines.position(toks[close].start)
    return (f"Add the required argument{'s' if len(parts) > 1 else ''} "
            f"{', '.join('`' + n + '`' for n in wanted)}",
            [types.TextEdit(range=types.Range(at, at), new_text=text)])


def _example(param: dict[str, Any] | None) -> str:
    """A value of the parameter's type, for the user to edit."""
    spec = (param or {}).get("type")
    if isinstance(spec, dict):
        for alt in spec.get("any_of", []):
            if isinstance(alt, str) and alt in _EXAMPLE:
                spec = alt
                break
        else:
            if spec.get("enum"):
                return json.dumps(spec["enum"][0])
    if isinstance(spec, str) and spec in _EXAMPLE:
        return _EXAMPLE[spec]
    values = vocab.string_values_for(param, (param or {}).get("name", ""))
    if values:
        return json.dumps(values[0])
    return "1"
