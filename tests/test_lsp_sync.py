"""The server's copy of a document stays the client's: `tfspec lsp` driven over stdio
by pygls's LanguageClient (tests/lsp/harness.py), plus raw bytes written to the
server's stdin where a well-behaved client cannot send them.

- lines end at `\\n`, `\\r\\n` and `\\r` only (not at form feeds, `\\v`, `\\x1c`-`\\x1e`,
  `\\x85`, U+2028/U+2029, where `str.splitlines` breaks them), columns are UTF-16;
- text that is not UTF-8 (Neovim sends a buffer's raw bytes) is read with each bad
  byte as U+FFFD, applied, and the user is told once;
- a client without snippet support gets no snippet syntax;
- a quick fix asked for at a wrong range (Neovim 0.7 sends byte columns) goes
  where the server's own diagnostic is, or nowhere;
- a refused rename is one line in the server's log, not a traceback.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from lsp.harness import Session, offset
from lsprotocol import types as T

import tfspec

_LINE_END = re.compile(r"\r\n|\r|\n")  # LSP's line ends, and only those


@pytest.fixture(scope="module")
def lsp():
    session = Session()  # ClientCapabilities(): no snippet support
    yield session
    assert session.alive, "the server died"
    assert session.errors() == [], session.errors()
    assert session.shutdown() == 0


_n = [0]


def _open(lsp: Session, text: str) -> str:
    _n[0] += 1
    uri = f"untitled:/sync{_n[0]}.tfspec"
    lsp.open(uri, text)
    lsp.wait_diagnostics(uri, 1)
    return uri


def _doc(uri: str) -> T.TextDocumentIdentifier:
    return T.TextDocumentIdentifier(uri=uri)


# -- the client's side of positions: written here, independently of the server's code --


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _position(text: str, offset: int) -> T.Position:
    before = text[:offset]
    ends = list(_LINE_END.finditer(before))
    start = ends[-1].end() if ends else 0
    return T.Position(line=len(ends), character=_units(before[start:]))


def _at(text: str, needle: str, delta: int = 0) -> T.Position:
    return _position(text, text.index(needle) + delta)


def _apply(text: str, edits: list[T.TextEdit]) -> str:
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character),
                    reverse=True):
        a, b = offset(text, e.range.start), offset(text, e.range.end)
        text = text[:a] + e.new_text + text[b:]
    return text


def _formatted(text: str) -> str:
    """What `tfspec fmt` makes of the text (the layout keeps its line endings)."""
    result = tfspec.validate_text(text, "x.tfspec")
    assert result.ir is not None, result.diagnostics
    return result.layout.apply(tfspec.format_spec(result.ir))


def _format(lsp: Session, uri: str) -> list[T.TextEdit]:
    return lsp.call("formatting", T.DocumentFormattingParams(
        text_document=_doc(uri), options=T.FormattingOptions(tab_size=2, insert_spaces=True)))


class Editor:
    """A document as the client holds it: each edit is made here and sent."""

    def __init__(self, lsp: Session, text: str):
        self.lsp, self.text = lsp, text
        self.uri = _open(lsp, text)

    def replace(self, needle: str, new: str, delta: int = 0, length: int | None = None) -> int:
        start = self.text.index(needle) + delta
        end = start + (len(needle) - delta if length is None else length)
        rng = T.Range(_position(self.text, start), _position(self.text, end))
        self.text = self.text[:start] + new + self.text[end:]
        return self.lsp.edit(self.uri, rng, new)


# -- 1. LSP's line ends, not str.splitlines' ---------------------------------------------


BREAKS = ("\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def test_unicode_line_breaks_are_not_line_ends(lsp):
    text = ("tfspec 1\n\x0c\nparam lr = 0.01\n"
            "# " + " ".join(f"{c}" for c in BREAKS) + " end\n"
            'name "a\u2028b\x85c"\n'
            "\x0c\n"
            "model M sequential {\r\n  input x: float32[3]\r  Dense(4)\n}\n")
    ed = Editor(lsp, text)
    ed.replace("0.01", "0.02")  # the report: `0.02param lr = 0.01`
    ed.replace(" end", " END")  # after every one of them, on their own line
    ed.replace("c\"", "C", length=1)  # in a string, after U+2028 and \x85
    v = ed.replace("Dense", "Desne")  # after \x0c, \r\n and a lone \r
    assert "param lr = 0.02\n" in ed.text
    diags = lsp.wait_diagnostics(ed.uri, v)
    (typo,) = [d for d in diags if d.code == "E300"]
    assert typo.range == T.Range(_at(ed.text, "Desne"), _at(ed.text, "Desne", 5))
    (unused,) = [d for d in diags if d.code == "W401"]
    assert unused.range.start == _at(ed.text, "lr")
    v = ed.replace("Desne", "Dense")
    assert [d.code for d in lsp.wait_diagnostics(ed.uri, v)] == ["W401"]
    assert _apply(ed.text, _format(lsp, ed.uri)) == _formatted(ed.text)
    lsp.close(ed.uri)


# -- 2. bytes that are not UTF-8 ----------------------------------------------------------


def _send_raw(lsp: Session, body: bytes) -> None:
    """One JSON-RPC message, written to the server's stdin as these bytes (on the
    client's loop, so it goes between the client's own messages, in order)."""
    lsp.loop.call_soon_threadsafe(lsp.process.stdin.write,
                                  b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _raw_edit(lsp: Session, uri: str, pos: T.Position, raw: bytes) -> int:
    """Insert `raw` (not UTF-8) at `pos`, as Neovim sends a buffer's bytes."""
    lsp.version[uri] += 1
    message = {"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": lsp.version[uri]},
        "contentChanges": [{"range": {"start": {"line": pos.line, "character": pos.character},
                                      "end": {"line": pos.line, "character": pos.character}},
                            "text": "@RAW@"}]}}
    _send_raw(lsp, json.dumps(message).encode().replace(b"@RAW@", raw))
    return lsp.version[uri]


def _utf8_warnings(lsp: Session) -> list[str]:
    return [m.message for m in lsp.logs if "UTF-8" in m.message]


def test_invalid_utf8_is_applied_and_reported_once(lsp):
    ed = Editor(lsp, 'tfspec 1\nname "net"\nparam lr = 0.01\n'
                     "model M sequential {\n  input x: float32[3]\n  Dense(4, name = lr)\n}\n")
    assert _utf8_warnings(lsp) == []
    # `name "\xe9\xffnet"`: a Latin-1 é and a byte no UTF-8 has; the server reads each
    # bad byte as one U+FFFD, which is one column, as Neovim counts it
    _raw_edit(lsp, ed.uri, _at(ed.text, "net"), b"\xe9\xff")
    ed.text = ed.text.replace('"net"', '"\ufffd\ufffdnet"')
    ed.replace("net", "!net")  # just after the two bytes: the columns still agree
    v = ed.replace("Dense", "Desne")
    (typo,) = [d for d in lsp.wait_diagnostics(ed.uri, v) if d.code == "E300"]
    assert typo.range == T.Range(_at(ed.text, "Desne"), _at(ed.text, "Desne", 5))
    v = ed.replace("Desne", "Dense")
    lsp.wait_diagnostics(ed.uri, v)
    assert 'name "\ufffd\ufffd!net"' in ed.text
    assert _apply(ed.text, _format(lsp, ed.uri)) == _formatted(ed.text)
    # a second time: applied too, and not said again
    v = _raw_edit(lsp, ed.uri, _at(ed.text, "!net"), b"\xc3")
    ed.text = ed.text.replace("!net", "\ufffd!net")
    lsp.wait_diagnostics(ed.uri, v)
    assert _apply(ed.text, _format(lsp, ed.uri)) == _formatted(ed.text)
    (warning,) = _utf8_warnings(lsp)
    assert next(m for m in lsp.logs if m.message == warning).type == T.MessageType.Warning
    lsp.close(ed.uri)


# -- 3. snippets only for clients that take them -------------------------------------------


_SNIPPET = re.compile(r"\$(\d|\{)")


def _completion_texts(session: Session, text: str, at: T.Position
                      ) -> dict[str, T.CompletionItem]:
    uri = _open(session, text)
    items = session.call("completion", T.CompletionParams(text_document=_doc(uri),
                                                          position=at)).items
    session.close(uri)
    return {i.label: i for i in items}


_BODY = "tfspec 1\nmodel M sequential {\n  input x: float32[3]\n  \n}\n"
_IN_BODY = T.Position(3, 2)
_TOP = ""  # an empty document: the top level
_AT_TOP = T.Position(0, 0)


def test_no_snippets_without_snippet_support(lsp):
    for text, at in ((_BODY, _IN_BODY), (_TOP, _AT_TOP)):
        for item in _completion_texts(lsp, text, at).values():
            assert item.insert_text_format in (None, T.InsertTextFormat.PlainText), item
            assert not _SNIPPET.search(item.insert_text or ""), item
            if item.text_edit is not None:
                assert not _SNIPPET.search(item.text_edit.new_text), item
    body = _completion_texts(lsp, _BODY, _IN_BODY)
    assert body["Conv2D"].insert_text == "Conv2D(filters, kernel_size)"
    assert body["Dense"].insert_text == "Dense(units)"
    assert _completion_texts(lsp, _TOP, _AT_TOP)["param"].insert_text == "param name = 1"


def test_snippets_for_a_client_that_supports_them():
    caps = T.ClientCapabilities(text_document=T.TextDocumentClientCapabilities(
        completion=T.CompletionClientCapabilities(
            completion_item=T.ClientCompletionItemOptions(snippet_support=True))))
    session = Session(capabilities=caps, initialization_options={"shapes": False})
    try:
        dense = _completion_texts(session, _BODY, _IN_BODY)["Dense"]
        assert dense.insert_text_format == T.InsertTextFormat.Snippet
        assert dense.insert_text == "Dense(${1:units})$0"
    finally:
        assert session.shutdown() == 0


# -- 4. a quick fix is placed by the server's diagnostic, not the client's range ---------


_TYPO = ('tfspec 1\nmodel M functional {\n  input x: float32[3]\n'
         '  output y = Dense(2, name = "é€")(x) |> Dropot(0.1)\n}\n')


def _byte_columns(text: str, rng: T.Range) -> T.Range:
    """The range as Neovim 0.7 sends it: columns in UTF-8 bytes."""
    lines = _LINE_END.split(text)

    def conv(p: T.Position) -> T.Position:
        line = lines[p.line]
        chars = offset(text, p) - offset(text, T.Position(p.line, 0))
        return T.Position(p.line, len(line[:chars].encode()))
    return T.Range(conv(rng.start), conv(rng.end))


def test_code_action_at_a_wrong_range_is_not_applied_there(lsp):
    uri = _open(lsp, _TYPO)
    (typo,) = [d for d in lsp.wait_diagnostics(uri, 1) if d.code == "E300"]
    assert typo.range.start == _at(_TYPO, "Dropot")
    moved = T.Diagnostic(range=_byte_columns(_TYPO, typo.range), message=typo.message,
                         severity=typo.severity, code=typo.code, source=typo.source)
    assert moved.range != typo.range
    actions = lsp.call("code_action", T.CodeActionParams(
        text_document=_doc(uri), range=moved.range,
        context=T.CodeActionContext(diagnostics=[moved])))
    for action in actions:  # none, or the fix where the diagnostic is
        fixed = _apply(_TYPO, action.edit.changes[uri])
        assert fixed == _TYPO.replace("Dropot", "Dropout"), (action.title, fixed)
    # a diagnostic the server does not have (stale: the text moved on): no fix
    stale = T.Diagnostic(range=T.Range(T.Position(3, 2), T.Position(3, 8)),
                         message=typo.message, code=typo.code, source=typo.source)
    lsp.replace(uri, _TYPO.replace("Dropot", "Dropout"))
    lsp.wait_diagnostics(uri)
    assert not lsp.call("code_action", T.CodeActionParams(
        text_document=_doc(uri), range=stale.range,
        context=T.CodeActionContext(diagnostics=[stale])))
    lsp.close(uri)


# -- 5. a refused rename is one line ------------------------------------------------------


def test_refused_rename_logs_one_line(lsp):
    text = "tfspec 1\nparam lr = 0.1\nmodel M sequential {\n  Dense(4, name = lr)\n}\n"
    uri = _open(lsp, text)
    before = len(lsp.stderr)
    with pytest.raises(Exception, match="keyword of the language"):
        lsp.call("rename", T.RenameParams(text_document=_doc(uri), position=_at(text, "lr"),
                                          new_name="model"))
    deadline = time.monotonic() + 10
    while b"keyword of the language" not in lsp.stderr[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the rest of what it logs for this request
    log = lsp.stderr[before:].decode(errors="replace")
    lines = [line for line in log.splitlines() if line.strip()]
    assert "Traceback" not in log, log
    about = [line for line in lines if "keyword of the language" in line]
    assert len(about) == 1, log
    assert not any("Exception occurred" in line for line in lines), log
    lsp.close(uri)
