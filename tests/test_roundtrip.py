"""Round-trip invariants of `tfspec fmt` and `tfspec convert`, on every example spec.

For each `examples/*.tfspec` and `examples/*.tfspec.json` (not `examples/invalid/`):

- the example is already in canonical form (`tfspec fmt --check` exits 0);
- formatting is idempotent: the canonical text parses back to the same IR, and
  formatting that again gives the same bytes;
- DSL -> JSON -> DSL (`tfspec convert`) gives the canonical DSL byte for byte, and
  JSON -> DSL -> JSON gives the same IR (and the same JSON bytes);
- comments survive `fmt` and both directions of `convert`, in order.

The canonical layout rules themselves are pinned down by the cases in
`tests/fixtures/format_cases.txt` (input and expected output, black-style; the file
explains its format). To add a layout case, append one there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tfspec.cli import main
from tfspec.lang.diagnostics import Diagnostics
from tfspec.lang.formatter import format_spec
from tfspec.lang.jsonreader import parse_json
from tfspec.lang.parser import parse_dsl

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DSL_EXAMPLES = sorted(EXAMPLES.glob("*.tfspec"))
JSON_EXAMPLES = sorted(EXAMPLES.glob("*.tfspec.json"))
ALL_EXAMPLES = DSL_EXAMPLES + JSON_EXAMPLES
FORMAT_CASES = REPO / "tests" / "fixtures" / "format_cases.txt"


def parse(text: str, json_form: bool = False) -> dict:
    """The IR of `text`; fails the test on any diagnostic from the front end."""
    diags = Diagnostics("case.tfspec.json" if json_form else "case.tfspec")
    parsed = (parse_json if json_form else parse_dsl)(text, diags)
    assert not len(diags), [f"{d.code} {d.message}" for d in diags]
    assert parsed.ir is not None
    return parsed.ir


_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def comments_of(dsl_text: str) -> list[str]:
    """The `#` comments of DSL text, in order (a `#` inside a string is not one)."""
    return [m.group(0).rstrip() for m in _COMMENT_OR_STRING.finditer(dsl_text)
            if m.group(0).startswith("#")]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def example_id(path: Path) -> str:
    return path.name


# -- the examples ----------------------------------------------------------------------


def test_there_are_examples_to_check():
    # guards the globs: an empty parametrization would pass vacuously
    assert len(DSL_EXAMPLES) >= 5, DSL_EXAMPLES


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=example_id)
def test_example_is_canonical(path, capsys):
    status, out, err = cli(capsys, "fmt", "--check", str(path))
    assert (status, out, err) == (0, "", ""), (
        f"{path.name} is not in canonical form; `tfspec fmt --diff {path}` shows the changes"
    )


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=example_id)
def test_fmt_is_idempotent(path):
    ir = parse(path.read_text(encoding="utf-8"), path.name.endswith(".json"))
    canonical = format_spec(ir)
    again = parse(canonical)
    assert again == ir
    assert format_spec(again) == canonical


@pytest.mark.parametrize("path", DSL_EXAMPLES, ids=example_id)
def test_dsl_to_json_to_dsl_is_canonical_dsl(path, tmp_path, capsys):
    source = path.read_text(encoding="utf-8")
    as_json = tmp_path / (path.stem + ".tfspec.json")
    assert cli(capsys, "convert", "--to", "json", str(path), "-o", str(as_json)) == (0, "", "")
    assert json.loads(as_json.read_text(encoding="utf-8")) == parse(source)
    status, back, err = cli(capsys, "convert", "--to", "tfspec", str(as_json))
    assert (status, err) == (0, "")
    assert back == format_spec(parse(source))


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=example_id)
def test_json_to_dsl_to_json_keeps_the_ir(path, tmp_path, capsys):
    if path.name.endswith(".json"):
        json_text = path.read_text(encoding="utf-8")
    else:
        status, json_text, err = cli(capsys, "convert", "--to", "json", str(path))
        assert (status, err) == (0, "")
    json_file = tmp_path / "spec.tfspec.json"
    json_file.write_text(json_text, encoding="utf-8")
    dsl_file = tmp_path / "spec.tfspec"
    assert cli(capsys, "convert", str(json_file), "-o", str(dsl_file)) == (0, "", "")
    status, json_again, err = cli(capsys, "convert", str(dsl_file))
    assert (status, err) == (0, "")
    assert json.loads(json_again) == json.loads(json_text)
    assert json_again == json.dumps(json.loads(json_text), indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("path", DSL_EXAMPLES, ids=example_id)
def test_comments_survive_fmt_and_convert(path, tmp_path, capsys):
    source = path.read_text(encoding="utf-8")
    expected = comments_of(source)
    ir = parse(source)
    assert [c["text"] for c in ir.get("comments", [])] == expected
    assert comments_of(format_spec(ir)) == expected
    as_json = tmp_path / "spec.tfspec.json"
    assert cli(capsys, "convert", str(path), "-o", str(as_json)) == (0, "", "")
    stored = json.loads(as_json.read_text(encoding="utf-8")).get("comments", [])
    assert [c["text"] for c in stored] == expected
    status, back, _ = cli(capsys, "convert", str(as_json))
    assert status == 0
    assert comments_of(back) == expected


def test_examples_carry_comments():
    # the comment round trip above must have something to carry
    assert sum(len(comments_of(p.read_text(encoding="utf-8"))) for p in DSL_EXAMPLES) >= 5


# -- the fmt command on a file -----------------------------------------------------------

UNFORMATTED = """\
tfspec 1
name "tiny"
param units=8
model Tiny functional { input x: float32[4]
  output y = x |> Dense(units) |> Dropout(0.1) |> Dense(1)   # the head
}
train { loss = "mse", epochs = 2 }
"""

FORMATTED = """\
tfspec 1
name "tiny"

param units = 8

model Tiny functional {
  input x: float32[4]
  output y = x
    |> Dense(units)
    |> Dropout(0.1)
    |> Dense(1)  # the head
}

train { loss = "mse", epochs = 2 }
"""


def test_fmt_rewrites_a_file_once(tmp_path, capsys):
    spec = tmp_path / "tiny.tfspec"
    spec.write_text(UNFORMATTED, encoding="utf-8")
    assert cli(capsys, "fmt", "--check", str(spec)) == (1, f"would reformat {spec}\n", "")
    assert spec.read_text(encoding="utf-8") == UNFORMATTED  # --check changes nothing
    status, out, _ = cli(capsys, "fmt", "--diff", str(spec))
    assert status == 1
    assert "+    |> Dropout(0.1)\n" in out and "-param units=8\n" in out
    assert spec.read_text(encoding="utf-8") == UNFORMATTED  # neither does --diff
    assert cli(capsys, "fmt", str(spec)) == (0, f"reformatted {spec}\n", "")
    assert spec.read_text(encoding="utf-8") == FORMATTED
    assert cli(capsys, "fmt", str(spec)) == (0, "", "")
    assert cli(capsys, "fmt", "--check", str(spec)) == (0, "", "")


def test_fmt_refuses_a_spec_it_cannot_read(tmp_path, capsys):
    spec = tmp_path / "broken.tfspec"
    broken = "tfspec 1\ntrain { epochs = 3\n"
    spec.write_text(broken, encoding="utf-8")
    status, out, err = cli(capsys, "fmt", str(spec))
    assert (status, out) == (1, "")
    assert "error[E100]" in err
    assert spec.read_text(encoding="utf-8") == broken


# -- the layout fixture -------------------------------------------------------------------


@dataclass
class FormatCase:
    title: str
    source: str
    expected: str  # equal to `source` for a case that is already canonical
    line: int  # where the case starts in the fixture file


def _text(lines: list[str]) -> str:
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"


def load_format_cases(text: str) -> list[FormatCase]:
    """Split the fixture into cases at `#### title:` lines (see the file's header)."""
    cases: list[FormatCase] = []
    title: str | None = None
    start = 0
    sections: list[list[str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#### title:"):
            if title is not None:
                cases.append(_case(title, sections, start))
            title, start, sections = line[len("#### title:"):].strip(), number, [[]]
        elif title is None:
            assert line.startswith("####") or not line.strip(), (
                f"format_cases.txt:{number}: text before the first `#### title:`")
        elif line.strip() == "#### output":
            assert len(sections) == 1, f"format_cases.txt:{number}: a second `#### output`"
            sections.append([])
        else:
            assert not line.startswith("####"), (
                f"format_cases.txt:{number}: unknown separator {line!r}")
            sections[-1].append(line)
    if title is not None:
        cases.append(_case(title, sections, start))
    return cases


def _case(title: str, sections: list[list[str]], start: int) -> FormatCase:
    source = _text(sections[0])
    expected = _text(sections[1]) if len(sections) > 1 else source
    assert title and source.strip(), f"format_cases.txt:{start}: empty case"
    return FormatCase(title, source, expected, start)


CASES = load_format_cases(FORMAT_CASES.read_text(encoding="utf-8"))


def test_format_cases_are_well_formed():
    titles = [c.title for c in CASES]
    assert len(titles) >= 20
    assert len(set(titles)) == len(titles), "duplicate titles in format_cases.txt"


def test_fixture_parser_keeps_spec_comments():
    cases = load_format_cases(
        "#### notes\n#### title: a\n# a spec comment\ntfspec 1\n\n#### output\n"
        "# a spec comment\ntfspec 1\n#### title: b\ntfspec 1\n"
    )
    assert [(c.title, c.source, c.expected) for c in cases] == [
        ("a", "# a spec comment\ntfspec 1\n", "# a spec comment\ntfspec 1\n"),
        ("b", "tfspec 1\n", "tfspec 1\n"),
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.title)
def test_format_case(case):
    ir = parse(case.source)
    assert format_spec(ir) == case.expected, f"format_cases.txt:{case.line}: {case.title}"
    again = parse(case.expected)
    assert again == ir  # formatting never changes what the spec means
    assert format_spec(again) == case.expected  # and a second pass changes nothing
