"""The two front ends: DSL and JSON text -> the same IR, with positions."""

from __future__ import annotations

import json

import pytest
from lark import Lark

from tfspec.lang.diagnostics import Diagnostics
from tfspec.lang.jsonreader import parse_json
from tfspec.lang.parser import parse_dsl
from tfspec.lang.resources import resource_path


def dsl(text: str):
    diags = Diagnostics("t.tfspec")
    parsed = parse_dsl(text, diags)
    return parsed, diags


def test_grammar_has_no_collisions():
    # strict mode fails on shift/reduce conflicts and on terminals that collide
    Lark(resource_path("grammars", "tfspec.lark").read_text(), parser="lalr", strict=True)


@pytest.mark.parametrize(
    ("expr", "ir"),
    [
        ("3", 3),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e-3", 0.001),
        ('"a\\"b"', 'a"b'),
        ("true", True),
        ("null", None),
        ("None", None),
        ("[1, 2,]", [1, 2]),
        ("lr", {"ref": "lr"}),
        ("1 / 16", {"op": "/", "args": [1, 16]}),
        ("-lr", {"op": "neg", "args": [{"ref": "lr"}]}),
        (
            "(a + b) * 2",
            {"op": "*", "args": [{"op": "+", "args": [{"ref": "a"}, {"ref": "b"}]}, 2]},
        ),
        ("Adam()", {"call": "Adam"}),
        (
            'Dense(10, activation = "relu")',
            {"call": "Dense", "args": [10], "kwargs": {"activation": "relu"}},
        ),
        ("Dense(3)(x)", {"call": {"call": "Dense", "args": [3]}, "args": [{"ref": "x"}]}),
        (
            "Bidirectional(LSTM(4))",
            {"call": "Bidirectional", "args": [{"call": "LSTM", "args": [4]}]},
        ),
    ],
)
def test_values(expr, ir):
    parsed, diags = dsl(f"tfspec 1\nparam p = {expr}\n")
    assert not len(diags), [d.message for d in diags]
    assert parsed.ir["params"]["p"] == ir


def test_model_statements_and_pipes():
    parsed, diags = dsl(
        "tfspec 1\nmodel M functional {\n  input a: float32[None, 3]\n  input t: string[]\n"
        "  layer s = Dense(2)\n  x = a |> s |> Dense(3)\n  y = Concatenate()([x, s(a)])\n"
        "  output y\n  output z = y\n}\n"
    )
    assert not len(diags)
    body = parsed.ir["model"]["body"]
    assert body[0] == {"input": "a", "dtype": "float32", "shape": [None, 3]}
    assert body[1] == {"input": "t", "dtype": "string", "shape": []}
    assert body[2] == {"layer": "s", "value": {"call": "Dense", "args": [2]}}
    assert body[3]["value"] == {
        "pipe": [{"ref": "a"}, {"ref": "s"}, {"call": "Dense", "args": [3]}]
    }
    assert body[5] == {"output": "y"}
    assert body[6] == {"output": "z", "value": {"ref": "y"}}


def test_params_in_input_shapes():
    text = ("tfspec 1\nparam seq_len = 128\nmodel M functional {\n"
            "  input tokens: int32[seq_len, None, 3]\n  output tokens\n}\n")
    parsed, diags = dsl(text)
    assert not len(diags), [d.message for d in diags]
    assert parsed.ir["model"]["body"][0] == {
        "input": "tokens", "dtype": "int32", "shape": [{"ref": "seq_len"}, None, 3]}
    span = parsed.positions.value("/model/body/0/shape/0/ref")
    assert (span.line, span.col, span.end_col) == (4, 23, 30)
    # the JSON form writes the same IR
    diags = Diagnostics("t.tfspec.json")
    assert parse_json(json.dumps(parsed.ir), diags).ir == parsed.ir and not len(diags)


def test_positions_point_at_what_was_written():
    text = 'tfspec 1\ntrain {\n  epochs = 3\n  optimizer = Adam(learning_rate = 0.1)\n}\n'
    parsed, _ = dsl(text)
    pos = parsed.positions
    assert pos.key("/train/epochs").line == 3 and pos.key("/train/epochs").col == 3
    assert pos.value("/train/epochs").col == 12
    lr = pos.key("/train/optimizer/kwargs/learning_rate")
    assert (lr.line, lr.col) == (4, 20)


def test_json_and_dsl_give_the_same_ir_and_json_positions():
    parsed, _ = dsl('tfspec 1\nname "x"\nparam lr = 0.1\n')
    text = json.dumps(parsed.ir, indent=2)
    diags = Diagnostics("t.json")
    from_json = parse_json(text, diags)
    assert not len(diags)
    assert from_json.ir == parsed.ir
    span = from_json.positions.key("/params/lr")
    assert text.splitlines()[span.line - 1][span.col - 1 :].startswith('"lr"')


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ('{"tfspec": 1,}', "E101", "trailing comma"),
        ('{"tfspec": 1, "tfspec": 1}', "E205", "twice"),
        ("{'tfspec': 1}", "E101", "double quotes"),
        ('{"tfspec": True}', "E101", "true"),
        ("[1, 2", "E101", "expected"),
    ],
)
def test_json_errors_are_located(text, code, words):
    diags = Diagnostics("t.json")
    parse_json(text, diags)
    assert [d.code for d in diags] == [code]
    (diag,) = diags
    assert diag.span is not None and words in (diag.message + (diag.hint or ""))


@pytest.mark.parametrize(
    ("text", "line", "col", "words"),
    [
        ("tfspec 1\ndata { batch 64 }\n", 2, 14, "expected `=`"),
        ("tfspec 1\ntrain { epochs: 3 }\n", 2, 15, "expected `=`"),
        ("tfspec 1\nmodel M functional { x = Dense(3 }\n", 2, 34, "missing `)`"),
        ("name \"x\"\n", 1, 1, "tfspec 1"),
        ("tfspec 1\nmodel M functional {\n  x = y\n", 3, 8, "missing `}`"),
        ("tfspec 1\ntrain { loss = 'mse' }\n", 2, 16, "double quotes"),
        ("tfspec 1\ndata { batch = }\n", 2, 16, "value is missing"),
    ],
)
def test_syntax_errors_are_friendly(text, line, col, words):
    _, diags = dsl(text)
    assert [d.code for d in diags] == ["E100"]
    (diag,) = diags
    assert (diag.span.line, diag.span.col) == (line, col), diag.message
    assert words in diag.message + (diag.hint or "")


def test_language_version_is_checked():
    _, diags = dsl("tfspec 2\n")
    assert [d.code for d in diags] == ["E102"]


def test_duplicate_keys_and_kwargs_are_reported_all_at_once():
    _, diags = dsl(
        "tfspec 1\ndata { batch = 1, batch = 2 }\nparam p = Dense(1, units = 2, units = 3)\n"
    )
    assert sorted(d.code for d in diags) == ["E205", "E304"]


def test_comments_are_anchored():
    parsed, _ = dsl(
        "# top\ntfspec 1\ntrain {\n  epochs = 3  # short\n  # before verbose\n  verbose = 2\n"
        "  # closing\n}\n# tail\n"
    )
    assert parsed.ir["comments"] == [
        {"at": "/tfspec", "text": "# top"},
        {"at": "/train/epochs", "text": "# short", "trailing": True},
        {"at": "/train/verbose", "text": "# before verbose"},
        {"at": "/train", "text": "# closing", "end": True},
        {"at": "", "text": "# tail", "end": True},
    ]


# -- parser state: per parse ---------------------------------------------------------------


def _parse_result(text: str) -> tuple:
    diags = Diagnostics("x.tfspec")
    parsed = parse_dsl(text, diags)
    return (parsed.ir, [(d.code, d.message, d.span) for d in diags.sorted()])


_STATE_TEXTS = [
    "tfspec 1\n# a comment\nparam lr = 1e-3  # trailing\nmodel M functional {\n"
    "  input x: float32[4]\n  output y = Dense(3)(x)  # out\n}\n",
    "tfspec 1\nparam big = 1" + "0" * 400 + "\nparam s = \"\\q\"\n",  # E204, E205: collected
    "tfspec 1\nmodel M functional { x = Dense(3 Dense(4) }",  # E100 with a label
    "tfspec 1\n# only a comment\n",
]


def test_parses_in_threads_keep_their_own_diagnostics_and_comments():
    """The LSP parses per keystroke while `validate` may run beside it: each parse
    collects its own diagnostics and comments, whatever runs at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    expected = [_parse_result(t) for t in _STATE_TEXTS]
    texts = _STATE_TEXTS * 50
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(_parse_result, texts))
    assert got == expected * 50


def test_a_parse_inside_a_parse_keeps_both_states(monkeypatch):
    """A callback that parses (as the syntax-error labels do, on first use) does not
    take the outer parse's diagnostics or comments."""
    from tfspec.lang import parser

    inner: list[tuple] = []
    real = parser._on_comment

    def nested(tok):
        if not inner:
            inner.append(_parse_result(_STATE_TEXTS[1]))
        return real(tok)

    outer = "tfspec 1\n# first\nparam big = 1" + "0" * 400 + "\n"  # E204 after the comment
    expected_outer = _parse_result(outer)
    assert [code for code, _, _ in expected_outer[1]] == ["E204"]
    monkeypatch.setattr(parser, "_on_comment", nested)
    parser.grammar.cache_clear()  # the lexer takes the callback when the parser is built
    try:
        assert _parse_result(outer) == expected_outer
        assert inner == [_parse_result(_STATE_TEXTS[1])]
    finally:
        monkeypatch.undo()
        parser.grammar.cache_clear()
        parser._example_states.cache_clear()
