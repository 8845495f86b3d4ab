"""A tolerant look at the text around the cursor, for text that may not parse.

The user is typing: the spec is usually broken right where the cursor is. So
completion and signature help do not use the parser but a regular-expression
tokenizer that accepts anything (an unterminated string runs to the end of its
line; an unknown character is a token of its own) and a walk over the tokens
before the cursor that tracks the open brackets: which section, model, block,
call or list the cursor is in, and what stands just before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\f\v\r\n\ufeff]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*(?:"|$))
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|>)
  | (?P<punct>.)
""", re.VERBOSE | re.MULTILINE | re.DOTALL)

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # name, number, string, comment, pipe, punct
    text: str
    start: int
    end: int


def tokens(text: str) -> list[Token]:
    """Every token of `text` but whitespace (never fails)."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "punct"
        if kind != "ws":
            out.append(Token(kind, m.group(), m.start(), m.end()))
    return out


@dataclass
class Frame:
    """An open bracket before the cursor and what it belongs to."""

    bracket: str  # "(", "[" or "{"
    at: int  # index of the bracket token
    head: list[Token]  # the statement's tokens before the bracket (same frame)
    callee: str | None = None  # "(" after a name: the called name; after ")": "()"
    commas: int = 0  # top-level commas since the bracket
    arg_start: int = 0  # index of the first token of the current argument / entry


@dataclass
class Context:
    """Where the cursor is, seen through the tokens before it."""

    offset: int
    toks: list[Token]
    frames: list[Frame] = field(default_factory=list)
    before: list[Token] = field(default_factory=list)  # tokens before the cursor
    word: Token | None = None  # the name or number the cursor is in or right after
    string: Token | None = None  # the string literal the cursor is inside
    in_comment: bool = False

    @property
    def frame(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    def current(self) -> list[Token]:
        """The tokens of the current argument / entry / statement before the cursor
        (without the word being typed)."""
        start = self.frame.at + 1 if self.frame else 0
        if self.frame:
            start = max(start, self.frame.arg_start)
        toks = self.before[start:]
        if self.word is not None and toks and toks[-1] is self.word:
            toks = toks[:-1]
        if self.string is not None and toks and toks[-1] is self.string:
            toks = toks[:-1]
        return toks

    def key(self) -> str | None:
        """The `name =` the cursor's value belongs to (`activation = "|`), if any."""
        toks = self.current()
        # a list value: `metrics = ["acc|` — the key stands before the list's bracket
        if not toks and self.frame and self.frame.bracket == "[":
            head = self.frame.head
            if len(head) >= 2 and head[-1].text == "=" and head[-2].kind == "name":
                return head[-2].text
        if len(toks) >= 2 and toks[-1].text == "=" and toks[-2].kind == "name":
            return toks[-2].text
        return None

    def section_path(self) -> list[str]:
        """The names of the `{ }` blocks around the cursor, outermost first
        (`["train"]`, `["data", "split"]`, `["export", "tflite"]`, `["model"]`)."""
        path = []
        for f in self.frames:
            if f.bracket != "{":
                continue
            head = [t for t in f.head if t.kind != "comment"]
            if head and head[0].text in ("model", "block"):
                path.append(head[0].text)
            elif head and head[0].kind == "name":
                path.append(head[0].text)
            else:
                path.append("?")
        return path


def context(text: str, offset: int, toks: list[Token] | None = None) -> Context:
    """The cursor's context at `offset` in `text`."""
    toks = tokens(text) if toks is None else toks
    ctx = Context(offset, toks)
    stmt_start = 0
    for i, tok in enumerate(toks):
        if tok.start >= offset:
            break
        if tok.end > offset or (tok.end == offset and tok.kind in ("name", "number")):
            # the cursor is inside this token (or right after a word)
            if tok.kind == "comment":
                ctx.in_comment = True
            elif tok.kind == "string":
                closed = len(tok.text) > 1 and tok.text.endswith('"') and not \
                    tok.text.endswith('\\"')
                if tok.end > offset or not closed:
                    ctx.string = tok
            elif tok.kind in ("name", "number"):
                ctx.word = tok
        if tok.kind == "string" and tok.end == offset and not tok.text.endswith('"'):
            ctx.string = tok  # an unterminated string runs to the cursor
        ctx.before.append(tok)
        if tok.end > offset:
            break
        text_ = tok.text
        if text_ in OPENERS:
            head = toks[stmt_start:i]
            if ctx.frames:
                head = toks[max(stmt_start, ctx.frames[-1].arg_start):i]
            callee = None
            if text_ == "(" and i > 0:
                prev = toks[i - 1]
                if prev.kind == "name":
                    callee = prev.text
                elif prev.text == ")":
                    callee = "()"
            ctx.frames.append(Frame(text_, i, head, callee, 0, i + 1))
            stmt_start = i + 1
        elif text_ in CLOSERS:
            while ctx.frames and ctx.frames[-1].bracket != CLOSERS[text_]:
                ctx.frames.pop()
            if ctx.frames:
                ctx.frames.pop()
            if text_ == "}":
                stmt_start = i + 1
        elif text_ == "," and ctx.frames:
            ctx.frames[-1].commas += 1
            ctx.frames[-1].arg_start = i + 1
        elif ctx.frames and ctx.frames[-1].bracket == "{" and _starts_entry(toks, i):
            ctx.frames[-1].arg_start = i
            stmt_start = i
        elif not ctx.frames and tok.kind == "name" and tok.text in _TOP_KEYWORDS:
            stmt_start = i
    return ctx


_TOP_KEYWORDS = {"tfspec", "name", "param", "model", "block", "data", "train", "distribute",
                 "export", "tune"}


def _starts_entry(toks: list[Token], i: int) -> bool:
    """Whether token i begins a new entry or statement in a `{ }` body: a name after
    a complete value (newlines are not significant, so look at the token before)."""
    tok = toks[i]
    if tok.kind != "name" or i == 0:
        return False
    prev = toks[i - 1]
    if prev.text in ("=", "|>", "+", "-", "*", "/", ",", ":", "(", "[", "{"):
        return prev.text == "{"
    return prev.kind in ("string", "number", "name", "comment") or prev.text in (")", "]", "}")


def matching(toks: list[Token], i: int) -> int | None:
    """The index of the bracket that closes the one at index i, if any."""
    opener = toks[i].text
    closer = OPENERS.get(opener)
    if closer is None:
        return None
    depth = 0
    for j in range(i, len(toks)):
        t = toks[j].text
        if t == opener:
            depth += 1
        elif t == closer:
            depth -= 1
            if depth == 0:
                return j
    return None

