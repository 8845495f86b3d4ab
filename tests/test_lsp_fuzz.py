"""The language server never dies: the checker's fuzz corpus (tests/test_fuzz.py:
random bytes and text, token soup, spec-shaped text, mutated examples) replayed
into one open document as didChange edits at random places, with completion,
hover, signature help, inlay hints, document symbols, folding, definition and
formatting requests at random positions in between.

At the end the process is alive and answers, it logged no internal error, and
its last diagnostics equal `tfspec validate`'s for the text the client holds
(so the server applied every edit exactly as the client did, UTF-16 positions
included: the corpus is full of non-ASCII text, surrogate pairs, \\r and U+2028).
"""

from __future__ import annotations

import pytest
import test_fuzz as corpus
from hypothesis import given
from hypothesis import strategies as st
from lsp.harness import Session, offset
from lsprotocol import types as T

import tfspec


@pytest.fixture(scope="module")
def lsp():
    session = Session()
    yield session
    assert session.alive, "the server died"
    assert session.errors() == [], session.errors()[:3]
    assert session.shutdown() == 0


def _units(line: str) -> int:
    return len(line.encode("utf-16-le")) // 2


def _lines(text: str) -> list[str]:
    import re
    return re.split(r"\r\n|\r|\n", text)


pieces = st.one_of(
    corpus.soup(corpus.dsl_token, "tfspec 1\n"),
    corpus.spec_like,
    corpus.mutated(corpus.dsl_sources, corpus.dsl_token),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", errors="replace")),
)


@st.composite
def position_in(draw, text: str) -> T.Position:
    lines = _lines(text)
    line = draw(st.integers(0, len(lines)))
    width = _units(lines[line]) if line < len(lines) else 0
    return T.Position(line=line, character=draw(st.integers(0, width + 2)))


REQUESTS = ["completion", "hover", "signature_help", "inlay_hint", "document_symbol",
            "folding_range", "definition", "formatting"]


def _request(lsp: Session, uri: str, name: str, pos: T.Position, text: str) -> None:
    doc = T.TextDocumentIdentifier(uri=uri)
    end = T.Position(line=len(_lines(text)), character=0)
    params = {
        "completion": lambda: T.CompletionParams(text_document=doc, position=pos),
        "hover": lambda: T.HoverParams(text_document=doc, position=pos),
        "signature_help": lambda: T.SignatureHelpParams(text_document=doc, position=pos),
        "inlay_hint": lambda: T.InlayHintParams(text_document=doc, range=T.Range(
            start=T.Position(line=0, character=0), end=end)),
        "document_symbol": lambda: T.DocumentSymbolParams(text_document=doc),
        "folding_range": lambda: T.FoldingRangeParams(text_document=doc),
        "definition": lambda: T.DefinitionParams(text_document=doc, position=pos),
        "formatting": lambda: T.DocumentFormattingParams(
            text_document=doc, options=T.FormattingOptions(tab_size=2, insert_spaces=True)),
    }[name]()
    lsp.call(name, params)


@pytest.mark.parametrize("suffix", [".tfspec", ".tfspec.json"])
def test_fuzz_replay(lsp, suffix):
    start = (corpus.EXAMPLES / "digits_cnn.tfspec").read_text() if suffix == ".tfspec" \
        else (corpus.JSON_FILES[0].read_text() if corpus.JSON_FILES else "{}")
    uri = f"file:///fuzz/doc{suffix}"
    lsp.open(uri, start)
    state = {"text": start, "edits": 0, "requests": 0}

    @corpus.fuzz_settings(60)
    @given(st.data())
    def replay(data):
        text = start
        lsp.replace(uri, text)  # each example starts from the example spec
        for _ in range(data.draw(st.integers(1, 4))):
            a = data.draw(position_in(text))
            b = data.draw(position_in(text))
            if (b.line, b.character) < (a.line, a.character):
                a, b = b, a
            new = data.draw(pieces)
            lsp.edit(uri, T.Range(start=a, end=b), new)
            i, j = offset(text, a), offset(text, b)
            text = text[:i] + new + text[j:]
            state["edits"] += 1
            name = data.draw(st.sampled_from(REQUESTS))
            _request(lsp, uri, name, data.draw(position_in(text)), text)
            state["requests"] += 1
        # the server holds the client's text: its diagnostics are validate's for it
        _request(lsp, uri, "hover", T.Position(line=0, character=0), text)  # checks now
        got = lsp.wait_diagnostics(uri, lsp.version[uri])
        want = tfspec.validate_text(text, "x" + suffix).diagnostics
        assert [(d.code, d.range.start.line) for d in got] == \
            [(d.code, d.span.line - 1 if d.span else 0) for d in want]

    replay()
    assert lsp.alive
    print(f"\n{suffix}: {state['edits']} edits, {state['requests']} requests, 0 crashes")
