"""The Pygments lexer (tfspec/lang/pygments_lexer.py): found through its entry point,
golden tokens for the fixture with every construct, the parser's role for every token
of every example, and no `Error` token on the examples or the docs' ```tfspec blocks.

Regenerate the golden tokens after an intended change with

    python tests/test_pygments.py --update
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from editor_sources import FIXTURE, ROOT, doc_blocks, examples, roles
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String
from pygments.token import Whitespace as Space

from tfspec.lang.pygments_lexer import TfspecLexer

GOLDEN = ROOT / "tests" / "golden" / "pygments" / "constructs.tokens"

# role (editor_sources) -> the token type the lexer gives it; `exact` ones must be that
# type itself, the others that type or one of its subtypes
TYPES = {
    "comment": Comment.Single, "string": String, "number": Number,
    "boolean": Keyword.Constant, "null": Keyword.Constant, "unknown-dim": Keyword.Constant,
    "pipe": Operator, "arithmetic": Operator, "assign": Operator,
    "comma": Punctuation, "colon": Punctuation, "bracket": Punctuation, "brace": Punctuation,
    "param-name": Name.Variable, "section": Name.Namespace, "target": Name.Tag,
    "key": Name.Attribute, "model-name": Name.Class, "model-kind": Keyword.Type,
    "block-name": Name.Function, "block-param": Name.Variable, "input-name": Name.Variable,
    "dtype": Keyword.Type, "layer-name": Name.Variable, "output-name": Name.Variable,
    "node-name": Name.Variable, "class-call": Name.Class, "function-call": Name.Function,
    "kwarg": Name.Attribute,
    **{f"keyword-{k}": Keyword.Declaration for k in ("tfspec", "name", "param", "model",
                                                     "block")},
    **{f"keyword-{k}": Keyword for k in ("input", "layer", "output")},
    "name": Name,
}
EXACT = {"name", "keyword-input", "keyword-layer", "keyword-output"}


def lex(text: str) -> list[tuple[int, object, str]]:
    """(offset, token type, text): unprocessed, so offsets are the text's own."""
    return list(TfspecLexer(stripnl=False, ensurenl=False).get_tokens_unprocessed(text))


def render(text: str) -> str:
    """The golden form: a line per token, whitespace left out."""
    return "".join(f"{str(t).removeprefix('Token.')}\t{v!r}\n"
                   for _, t, v in lex(text) if t not in Space)


def test_pygments_finds_the_lexer_through_the_entry_point():
    (ep,) = [e for e in entry_points(group="pygments.lexers") if e.name == "tfspec"]
    assert ep.load() is TfspecLexer
    assert isinstance(get_lexer_by_name("tfspec"), TfspecLexer)
    assert isinstance(get_lexer_for_filename("model.tfspec"), TfspecLexer)


def test_checking_never_imports_pygments():
    """Only Pygments loads the lexer: `import tfspec` and `tfspec validate` do not."""
    code = (
        "import sys, tfspec.cli\n"
        "status = tfspec.cli.main(['validate', sys.argv[1]])\n"
        "print(status, sorted(m for m in sys.modules if m.startswith('pygments')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "examples" / "digits_cnn.tfspec")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    assert out.splitlines()[-1] == "0 []"


def test_pygmentize_highlights_a_spec():
    out = subprocess.run(
        [sys.executable, "-m", "pygments", "-l", "tfspec", "-f", "html", str(FIXTURE)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    assert '<span class="kd">model</span>' in out  # Keyword.Declaration
    assert '<span class="nc">Conv2D</span>' in out  # Name.Class
    assert '<span class="err">' not in out


def test_golden_tokens_of_the_fixture():
    got = render(FIXTURE.read_text(encoding="utf-8"))
    assert GOLDEN.exists(), f"no golden file; run: python {Path(__file__).name} --update"
    assert got == GOLDEN.read_text(encoding="utf-8"), "run `python tests/test_pygments.py --update`"


def disagreements(text: str) -> list[str]:
    """Where the lexer's token types differ from the parser's roles."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    tokens = lex(text)
    out = []
    for r in roles(text):
        start, end = starts[r.line] + r.start, starts[r.line] + r.end
        want = TYPES[r.role]
        covering = [(i, t, v) for i, t, v in tokens if i < end and i + len(v) > start]
        last = covering[-1] if covering else (0, None, "")
        aligned = covering and covering[0][0] == start and last[0] + len(last[2]) == end
        ok = all((t is want) if r.role in EXACT else (t in want) for _, t, _ in covering)
        if not (aligned and ok):
            got = " ".join(str(t) for _, t, _ in covering)
            out.append(f"{r.line + 1}:{r.start + 1}: {r.text!r} ({r.role}) wants {want}, has {got}")
    return out


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_lexer_agrees_with_the_parser(path):
    text = path.read_text(encoding="utf-8")
    assert [t for t in lex(text) if t[1] in Error] == []
    assert disagreements(text) == []


def test_no_error_tokens_in_the_docs_tfspec_blocks():
    blocks = doc_blocks()
    assert blocks, "no ```tfspec block in README.md or docs/*.md"
    errors = [(where, v) for where, text in blocks for _, t, v in lex(text) if t in Error]
    assert errors == []


def test_lexer_marks_what_is_not_tfspec():
    errors = [v for _, t, v in lex("param a = 'x'; param b = \"bad \\q\"\n") if t in Error]
    assert errors == ["'", "'", ";", "\\q"]


if __name__ == "__main__":
    if "--update" in sys.argv:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(render(FIXTURE.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {GOLDEN.relative_to(ROOT)}")
