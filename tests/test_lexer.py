"""`lang/lexer.py`'s FastLexer stands in for lark's contextual lexer: on every text,
valid or not, the parse must come out exactly as lark's own lexer makes it — the
same IR, positions, comments and diagnostics (syntax errors are lark's, raised from
the same place). Checked on every example, and on the fuzz corpus of test_fuzz
(mutated examples, token soup, spec-shaped text, random text)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz import dsl_sources, dsl_token, fuzz_settings, mutated, soup, spec_like

from tfspec.lang import parser
from tfspec.lang.diagnostics import Diagnostics
from tfspec.lang.lexer import FastLexer


def parsed(text: str, fast: bool) -> tuple:
    frontend = parser.grammar().parser
    installed = frontend.lexer
    assert isinstance(installed, FastLexer)
    frontend.lexer = installed if fast else installed.contextual
    try:
        diags = Diagnostics("x.tfspec")
        result = parser.parse_dsl(text, diags)
    finally:
        frontend.lexer = installed
    return (result.ir, result.positions.items, result.positions.keys,
            [(d.code, d.message, d.span, d.hint) for d in diags.sorted()])


def same(text: str) -> None:
    assert parsed(text, fast=True) == parsed(text, fast=False)


@pytest.mark.parametrize("index", range(len(dsl_sources())))
def test_every_example_parses_the_same(index):
    same(dsl_sources()[index])


@pytest.mark.parametrize("text", [
    "", "tfspec", "tfspec 1\nname 'x'", "tfspec 1\nparam name = name", "tfspec 1 model",
    "tfspec 1\nmodel m sequential { input x: float32[4] Dense(3) @ }",
    'tfspec 1\ntrain { loss = "mse" }}', "tfspec 1\n# only a comment",
    "tfspec 1\nmodel m functional { input input: float32[2] output output = input }",
    'tfspec 1\nx { y = "unterminated\n}', "tfspec 1\nparam a = 1e-3 |> 2 ? 3",
])
def test_edge_cases_parse_the_same(text):
    same(text)


@fuzz_settings(300)
@given(mutated(dsl_sources, dsl_token))
def test_mutated_examples_parse_the_same(text):
    same(text)


@fuzz_settings(150)
@given(st.one_of(spec_like, soup(dsl_token, "tfspec 1\n"), st.text(max_size=200)))
def test_token_soup_and_random_text_parse_the_same(text):
    same(text)
