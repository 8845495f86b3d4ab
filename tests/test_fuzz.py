"""Fuzz the checker: no input, however broken, may crash it or give an unplaced error.

Hypothesis feeds `tfspec.validate_text` random bytes and text, token soup (random
sequences of DSL / JSON tokens), and every example spec under examples/ mutated by
deleting, duplicating, swapping and replacing tokens or characters, under both a
`.tfspec` and a `.tfspec.json` file name. For every result:

- no exception escapes, and the diagnostics render (text, JSON, GitHub);
- every diagnostic has a known code, a severity and a span inside the text (only
  E103 "unreadable file" and E407 "bad --set" may lack a span);
- a result that is not ok holds at least one error.

For every mutated spec that checks clean, `format_spec` is a fixed point: the
formatted text re-validates to the same IR, formatting it again changes nothing,
and the JSON form (`json.dumps` of the IR) reads back to the same IR too.

Runs are derandomized (the same cases on every machine) and sized to finish in
well under a minute on two cores.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfspec
from tfspec.lang.diagnostics import CODES, render_github, render_json, render_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DSL_FILES = sorted(EXAMPLES.rglob("*.tfspec"))
JSON_FILES = sorted(EXAMPLES.rglob("*.tfspec.json"))
FILENAMES = ("x.tfspec", "x.tfspec.json")
SPANLESS = {"E103", "E407"}  # file-level: the file cannot be read / a bad --set

# When a case fails, Hypothesis writes a patch with libcst, which imports the deprecated
# mypy_extensions.TypedDict; with `filterwarnings = error` that would hide the failure
# behind a pytest INTERNALERROR.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- the properties ----------------------------------------------------------------


def line_count(text: str) -> int:
    """Lines as an editor counts them (any of Python's line breaks), at least 1."""
    return max(len(text.splitlines()), text.count("\n") + 1, 1)


def check_result(result: tfspec.Result, text: str) -> None:
    """Every diagnostic is known, placed inside the text, and errors explain a failure."""
    last_line = line_count(text) + 1
    for d in result.diagnostics:
        where = f"{d.code} {d.message!r} at {d.span}"
        assert d.code in CODES, where
        assert d.severity in ("error", "warning"), where
        assert d.is_error == d.code.startswith("E"), where
        assert isinstance(d.message, str) and d.message, where
        if d.code in SPANLESS and d.span is None:
            continue
        assert d.span is not None, where
        assert 1 <= d.span.line <= last_line, where
        assert d.span.col >= 1, where
        assert (d.span.end_line, d.span.end_col) >= (d.span.line, d.span.col), where
    if not result.ok:
        assert any(d.is_error for d in result.diagnostics), "not ok, but no error reported"
    if result.ok:
        assert result.ir is not None
    # what the CLI prints must not crash either
    render_text(result.diagnostics, text)
    render_github(result.diagnostics)
    json.loads(render_json(result.diagnostics))


def check_round_trip(result: tfspec.Result) -> None:
    """A clean spec formats to text that checks to the same IR; formatting is idempotent."""
    ir = result.ir
    text = tfspec.format_spec(ir)
    again = tfspec.validate_text(text, "formatted.tfspec")
    problems = [f"{d.code} {d.message} at {d.span}" for d in again.diagnostics if d.is_error]
    assert again.ok, f"formatted text does not validate: {problems}\n{text}"
    assert again.ir == ir, f"formatting changed the IR:\n{text}"
    assert tfspec.format_spec(again.ir) == text, "formatting is not idempotent"
    as_json = tfspec.validate_text(json.dumps(ir, indent=2), "formatted.tfspec.json")
    assert as_json.ok and as_json.ir == ir, "the JSON form does not read back to the same IR"


def validate_and_check(text: str, filename: str) -> tfspec.Result:
    result = tfspec.validate_text(text, filename)
    check_result(result, text)
    return result


# -- inputs --------------------------------------------------------------------------

KEYWORDS = [
    "tfspec", "name", "param", "model", "block", "input", "layer", "output",
    "true", "false", "null", "None", "functional", "sequential", "subclass",
    "data", "train", "distribute", "export", "split", "loss", "metrics", "optimizer",
    "source", "batch", "epochs", "loop", "strategy", "saved_model", "tflite", "tfjs",
]
KERAS_NAMES = [
    "Dense", "Conv2D", "Dropout", "BatchNormalization", "Flatten", "MaxPooling2D",
    "Concatenate", "Add", "ReLU", "Embedding", "LSTM", "Rescaling", "Input", "Adam",
    "SGD", "EarlyStopping", "CosineDecay", "npz", "csv", "synthetic", "Desne",
]
PUNCTUATION = ["{", "}", "(", ")", "[", "]", ",", "=", "|>", "+", "-", "*", "/", ":", "?",
               "|", ">", ".", ";", "\\", "\"", "'", "#"]
DTYPES = ["float32", "float16", "int64", "bool", "string", "uint8", "complex64"]
NUMBERS = ["0", "1", "2", "-1", "1.5", ".5", "1e-3", "3e400", "1e", "007", "0.", "1.2.3",
           str(2**64), "-0", "1_000"]
STRINGS = ['"relu"', '"softmax"', '"same"', '"data/x.npz"', '""', '"\\n"', '"\\q"',
           '"\\u00e9"', '"\\ud800"', '"unterminated', '"a\\"b"']
IR_KEYS = ["tfspec", "name", "params", "data", "blocks", "model", "train", "distribute",
           "export", "comments", "kind", "body", "input", "dtype", "shape", "layer", "node",
           "output", "add", "value", "call", "args", "kwargs", "ref", "op", "pipe",
           "format", "path", "at", "text", "trailing", "end", "default"]
WHITESPACE = [" ", "  ", "\n", "\t", "\r\n", "\r", "\x0c", "\u00a0", "\u2028", "\ufeff", ""]

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
dsl_token = st.one_of(
    st.sampled_from(KEYWORDS + KERAS_NAMES + PUNCTUATION + DTYPES + NUMBERS + STRINGS),
    names,
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=6).map(json.dumps),
    st.just("# a comment\n"),
)
json_token = st.one_of(
    st.sampled_from(["{", "}", "[", "]", ":", ",", "true", "false", "null", "NaN",
                     "Infinity", "-", "1", "0.5", "1e999", "\"", "//", "'x'"]),
    st.sampled_from(IR_KEYS + KERAS_NAMES + DTYPES).map(json.dumps),
    st.text(max_size=6).map(json.dumps),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False).map(repr),
)


@st.composite
def soup(draw, token, header: str) -> str:
    tokens = draw(st.lists(token, max_size=60))
    seps = draw(st.lists(st.sampled_from(WHITESPACE), min_size=len(tokens),
                         max_size=len(tokens)))
    body = "".join(t + s for t, s in zip(tokens, seps, strict=True))
    return (header if draw(st.booleans()) else "") + body


# -- spec-shaped DSL: syntactically plausible, so the schema and the checker get exercised

POOL = ["x", "y", "z", "image", "out", "lr", "rate", "width", "B", "shared", "epochs"]
CALLEES = KERAS_NAMES + ["B", "shared", "Sequential", "GlobalAveragePooling2D", "Softmax"]
KWARGS = ["activation", "units", "rate", "padding", "name", "learning_rate", "monitor",
          "strides", "x", "y", "axis", "bogus"]


def _call(children):
    args = st.lists(children, max_size=3)
    kwargs = st.lists(st.tuples(st.sampled_from(KWARGS), children), max_size=2)
    return st.tuples(st.sampled_from(CALLEES), args, kwargs, st.lists(st.lists(children,
                     max_size=2), max_size=1)).map(
        lambda t: f"{t[0]}({', '.join(t[1] + [f'{k} = {v}' for k, v in t[2]])})"
        + "".join(f"({', '.join(a)})" for a in t[3]))


expr = st.recursive(
    st.one_of(st.sampled_from(NUMBERS[:8] + STRINGS[:5] + ["true", "false", "None", "null"]),
              st.sampled_from(POOL)),
    lambda e: st.one_of(
        _call(e),
        st.lists(e, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(e, st.sampled_from(["+", "-", "*", "/"]), e).map(" ".join),
        st.tuples(e, e).map(lambda t: f"-{t[0]} |> {t[1]}" if t[0] == t[1] else f"-{t[0]}"),
        st.lists(e, min_size=2, max_size=4).map(" |> ".join),
        e.map(lambda x: f"({x})"),
    ),
    max_leaves=8,
)
shape = st.lists(st.sampled_from(["1", "8", "None", "?", "0", "-1"]), max_size=4).map(
    lambda ds: "[" + ", ".join(ds) + "]")
statement = st.one_of(
    st.tuples(st.sampled_from(POOL), st.sampled_from(DTYPES + [""]), shape).map(
        lambda t: f"input {t[0]}: {t[1]}{t[2]}"),
    st.sampled_from(POOL).map(lambda n: f"input {n}"),
    st.tuples(st.sampled_from(POOL), _call(expr)).map(lambda t: f"layer {t[0]} = {t[1]}"),
    st.tuples(st.sampled_from(POOL), expr).map(lambda t: f"{t[0]} = {t[1]}"),
    st.tuples(st.sampled_from(POOL), expr).map(lambda t: f"output {t[0]} = {t[1]}"),
    st.sampled_from(POOL).map(lambda n: f"output {n}"),
    _call(expr),
)
stmts = st.lists(statement, max_size=8).map(lambda ss: "".join(f"  {s}\n" for s in ss))
entry = st.tuples(st.sampled_from(KEYWORDS[16:] + KWARGS + ["validation", "seed", "quantize",
                                                             "version", "steps_per_execution"]),
                  expr).map(lambda t: f"  {t[0]} = {t[1]}\n")
section = st.tuples(st.sampled_from(["data", "train", "distribute", "export", "split", "loss"]),
                    st.lists(entry, max_size=4)).map(lambda t: f"{t[0]} {{\n{''.join(t[1])}}}\n")
target = st.tuples(st.sampled_from(["saved_model", "tflite", "tfjs", "onnx", "keras"]),
                   st.sampled_from(STRINGS[:5]), st.lists(entry, max_size=2)).map(
    lambda t: f"  {t[0]} {t[1]}" + (f" {{\n{''.join(t[2])}  }}\n" if t[2] else "\n"))
export = st.lists(target, max_size=3).map(lambda ts: "export {\n" + "".join(ts) + "}\n")
item_ = st.one_of(
    st.tuples(st.sampled_from(POOL), expr).map(lambda t: f"param {t[0]} = {t[1]}\n"),
    st.tuples(st.sampled_from(["functional", "sequential", "subclass", "graph"]), stmts).map(
        lambda t: f"model Net {t[0]} {{\n{t[1]}}}\n"),
    st.tuples(st.lists(st.sampled_from(POOL), max_size=3, unique=True),
              st.sampled_from(["", "= 1", "= x"]), stmts).map(
        lambda t: f"block B({', '.join(p + (' ' + t[1] if i else '') for i, p in enumerate(t[0]))})"
        f" {{\n{t[2]}}}\n"),
    st.sampled_from(STRINGS[:5]).map(lambda s: f"name {s}\n"),
    section,
    export,
)
spec_like = st.lists(item_, max_size=6).map(lambda items: "tfspec 1\n" + "".join(items))


# a token of spec text: strings, comments, names, numbers, the pipe, any other character
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9.]+(?:[eE][-+]?\d+)?'
                   r"|\|>|\s+|.", re.S)


def tokens_of(text: str) -> list[str]:
    return TOKEN.findall(text)


@cache
def dsl_sources() -> tuple[str, ...]:
    return tuple(p.read_text(encoding="utf-8") for p in DSL_FILES)


@cache
def json_sources() -> tuple[str, ...]:
    """The JSON examples, and `json.dumps` of every readable DSL example's IR."""
    out = [p.read_text(encoding="utf-8") for p in JSON_FILES]
    for text in dsl_sources():
        ir = tfspec.validate_text(text, "x.tfspec").ir
        if ir is not None:
            out.append(json.dumps(ir))
            out.append(json.dumps(ir, indent=2))
    return tuple(out)


@st.composite
def mutated(draw, sources, extra_token) -> str:
    """An example with 1-4 token or character edits: delete, duplicate, swap, replace."""
    texts = sources()
    text = texts[draw(st.integers(0, len(texts) - 1))]
    by_token = draw(st.booleans())
    parts = tokens_of(text) if by_token else list(text)
    for _ in range(draw(st.integers(1, 4))):
        if not parts:
            break
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "insert"]))
        i = draw(st.integers(0, len(parts) - 1))
        if op == "delete":
            del parts[i]
        elif op == "duplicate":
            parts.insert(i, parts[i])
        elif op == "swap":
            j = draw(st.integers(0, len(parts) - 1))
            parts[i], parts[j] = parts[j], parts[i]
        elif op == "replace":
            parts[i] = draw(extra_token) if by_token else draw(st.characters())
        else:
            new = draw(extra_token) if by_token else draw(st.characters())
            parts.insert(i, new if not by_token else " " + new + " ")
    return "".join(parts)


def test_unmutated_examples():
    assert DSL_FILES, "no example specs under examples/"
    for path in DSL_FILES + JSON_FILES:
        text = path.read_text(encoding="utf-8")
        result = tfspec.validate_text(text, path.name)
        check_result(result, text)
        if result.ok:
            check_round_trip(result)


# -- the fuzzers ---------------------------------------------------------------------


@fuzz_settings(300)
@given(st.binary(max_size=300), st.sampled_from(FILENAMES))
def test_random_bytes(data, filename):
    text = data.decode("utf-8", errors="replace")
    validate_and_check(text, filename)


@fuzz_settings(300)
@given(st.text(max_size=300), st.sampled_from(FILENAMES))
def test_random_text(text, filename):
    validate_and_check(text, filename)


@fuzz_settings(700)
@given(soup(dsl_token, "tfspec 1\n"), st.sampled_from(FILENAMES))
def test_dsl_token_soup(text, filename):
    validate_and_check(text, filename)


@fuzz_settings(400)
@given(soup(json_token, '{"tfspec": 1, '), st.sampled_from(FILENAMES))
def test_json_token_soup(text, filename):
    validate_and_check(text, filename)


@fuzz_settings(800)
@given(spec_like)
def test_spec_shaped_dsl(text):
    result = validate_and_check(text, "x.tfspec")
    if result.ok:
        check_round_trip(result)


@fuzz_settings(1200)
@given(mutated(dsl_sources, dsl_token), st.sampled_from(FILENAMES))
def test_mutated_dsl_examples(text, filename):
    result = validate_and_check(text, filename)
    if result.ok:
        check_round_trip(result)


@fuzz_settings(400)
@given(st.data(), st.sampled_from(["# a comment\n", " # a comment\n", "\n# a comment\n"]))
def test_comment_anywhere_in_an_example(data, comment):
    """A comment may sit between any two tokens; fmt keeps it, and keeps it where it is."""
    texts = dsl_sources()
    parts = tokens_of(texts[data.draw(st.integers(0, len(texts) - 1))])
    i = data.draw(st.integers(0, len(parts)))
    text = "".join(parts[:i]) + comment + "".join(parts[i:])
    result = validate_and_check(text, "x.tfspec")
    if result.ok:
        check_round_trip(result)


@fuzz_settings(700)
@given(mutated(json_sources, json_token), st.sampled_from(FILENAMES))
def test_mutated_json_examples(text, filename):
    result = validate_and_check(text, filename)
    if result.ok:
        check_round_trip(result)


# -- inputs that have broken parsers before --------------------------------------------

PATHOLOGICAL = [
    "",
    " ",
    "\n\n\n",
    "\ufeff",
    "\ufefftfspec 1\n",
    "\x00",
    "tfspec",
    "tfspec 1",
    "tfspec 2\n",
    "tfspec 1.5\n",
    "tfspec 1e999\n",
    "tfspec 1\r\nname \"x\"\r\n",
    "tfspec 1\rname \"x\"\r",
    "tfspec 1\n\u2028name 3\n",
    "tfspec 1\nparam x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
    "tfspec 1\nparam x = " + "[" * 5000 + "\n",
    "tfspec 1\nparam x = " + "-" * 5000 + "1\n",
    "tfspec 1\nparam x = 1" + " + 1" * 5000 + "\n",
    "tfspec 1\nparam x = a" + " |> b" * 3000 + "\n",
    "tfspec 1\nparam x = f" + "()" * 3000 + "\n",
    "tfspec 1\nparam x = 1e999999\n",
    "tfspec 1\nparam x = " + "9" * 5000 + "\n",
    "tfspec 1\nparam " + "a" * 10000 + " = 1\n",
    "tfspec 1\nmodel M functional { input x: float32[" + "9" * 5000 + "] output x }\n",
    "tfspec 1\nname \"\\ud800\"\n",
    "tfspec 1\nparam x = 1\nparam x = 2\n",
    "tfspec 1\nmodel M functional { output y = y }\n",
    "tfspec 1\nmodel M functional { input x: float32[] output x }\n",
    "tfspec 1\nmodel M sequential { }\n",
    "tfspec 1\nblock B() { }\nmodel M functional { input x output y = B()(x) }\n",
    "tfspec 1\nblock B(a = b, b = a) { input x output y = x }\n",
    "tfspec 1\nmodel M functional { input x: float32[3] y = x |> y output y }\n",
    "[]",
    "null",
    "1",
    '"tfspec"',
    "{}",
    '{"tfspec": 1}',
    '{"tfspec": 1, "tfspec": 1}',
    '{"tfspec": NaN}',
    '{"tfspec": Infinity}',
    '{"tfspec": 1e999}',
    '{"tfspec": true}',
    '{"tfspec": 1, "name": "\\ud800"}',
    '{"tfspec": 1, "params": {"": 1}}',
    '{"tfspec": 1, "params": {"x": ' + "9" * 5000 + "}}",
    '{"tfspec": 1, "params": {"x": -1e999}}',
    '{"tfspec": 1, "params": {"~/": {"ref": "~/"}}}',
    '{"tfspec": 1, "comments": [{"at": "/nowhere", "text": "# x"}]}',
    '{"tfspec": 1, "params": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"tfspec": 1, "params": {"x": ' + '{"op": "neg", "args": [' * 3000 + "1" + "]}" * 3000
    + "}}",
    '{"tfspec": 1}' + " " * 10 + "x",
    '{"tfspec": 1,}',
    "{\"tfspec\": 1, 'name': 'x'}",
]


@pytest.mark.parametrize("filename", FILENAMES)
@pytest.mark.parametrize("text", PATHOLOGICAL, ids=lambda t: repr(t[:40]))
def test_pathological(text, filename):
    result = validate_and_check(text, filename)
    if result.ok:
        check_round_trip(result)
