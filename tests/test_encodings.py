"""Spec files as editors write them: a UTF-8 byte-order mark, CRLF line endings, and
files that are not UTF-8 at all (tfspec/lang/textfile.py, `validate_file`, `tfspec fmt`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfspec.cli import main
from tfspec.lang.diagnostics import render_text
from tfspec.lang.textfile import Layout, NotUTF8, decode, normalize
from tfspec.lang.validate import validate_file, validate_text

REPO = Path(__file__).resolve().parents[1]
BOM = b"\xef\xbb\xbf"

DSL = """\
tfspec 1
name "tiny"

param units = 8

model Tiny functional {
  input x: float32[4]  # four features
  output y = x |> Dense(units) |> Dense(1)
}

train { loss = "mse", epochs = 2 }
"""
JSON = json.dumps({"tfspec": 1, "name": "tiny", "train": {"loss": "mse", "epochs": 2}},
                  indent=2) + "\n"

# Broken specs whose diagnostics sit at several places, the end of the file included.
BROKEN = {
    "t.tfspec": 'tfspec 1\ntrain {\n  loss = "mse"\n  epochs = 2  # short\n',
    "u.tfspec": "tfspec 1\nmodel M functional {\n  input x: float32[4]\n"
                "  output y = Dense(2, bogus = 1)(x)\n}\ntrain { epochs = \"2\" }\n",
    "v.tfspec.json": '{\n  "tfspec": 1,\n  "train": {\n    "epochs": "2",\n'
                     '    "lr": 1\n  }\n}\n',
    "w.tfspec.json": '{\n  "tfspec": 1,\n  "train": {\n    "epochs": 2,\n  }\n}\n',
}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def places(result) -> list[tuple]:
    return [(d.code, d.span, d.message) for d in result.diagnostics]


# -- the byte-order mark ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "text"), [("a.tfspec", DSL), ("a.tfspec.json", JSON)],
                         ids=["dsl", "json"])
def test_a_utf8_bom_is_skipped(tmp_path, capsys, name, text):
    spec = tmp_path / name
    spec.write_bytes(BOM + text.encode())
    assert cli(capsys, "validate", "--strict", str(spec)) == (
        0, "", "checked 1 spec: 0 errors, 0 warnings\n")
    result = validate_file(spec)
    assert result.source == text and result.layout == Layout(bom=True)


def test_positions_after_a_bom_are_those_of_the_text(tmp_path):
    spec = tmp_path / "a.tfspec"
    spec.write_bytes(BOM + BROKEN["u.tfspec"].encode())
    assert places(validate_file(spec)) == places(validate_text(BROKEN["u.tfspec"], "u.tfspec"))


# -- line endings -------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
@pytest.mark.parametrize("name", list(BROKEN))
def test_crlf_keeps_every_line_and_column(tmp_path, name, newline):
    text = BROKEN[name]
    lf = validate_text(text, name)
    assert lf.diagnostics.has_errors
    # text from an editor (the language server's way in) and a file on disk
    assert places(validate_text(text.replace("\n", newline), name)) == places(lf)
    spec = tmp_path / name
    spec.write_bytes(text.replace("\n", newline).encode())
    on_disk = validate_file(spec)
    assert places(on_disk) == places(lf)
    assert render_text(on_disk.diagnostics, on_disk.source) == render_text(
        lf.diagnostics, lf.source).replace(name, str(spec))


def test_the_end_of_a_crlf_file_is_where_the_text_ends():
    # lark counted the `\r` before the end as a column
    [diag] = validate_text("tfspec 1\r\ntrain {\r\n  epochs = 2  # c\r\n", "t.tfspec").diagnostics
    assert (diag.code, diag.span.line, diag.span.col) == ("E100", 3, 18)


def test_normalize_records_the_layout():
    assert normalize("a\r\nb\r\n") == ("a\nb\n", Layout("\r\n"))
    assert normalize("\ufeffa\rb") == ("a\nb", Layout("\r", bom=True))
    assert normalize("a\r\nb\nc") == ("a\nb\nc", Layout("\r\n", mixed=True))
    assert normalize("a\nb") == ("a\nb", Layout())
    assert Layout("\r\n", bom=True).apply("a\nb\n") == "\ufeffa\r\nb\r\n"


@pytest.mark.parametrize(("name", "text"), [("a.tfspec", DSL), ("a.tfspec.json", JSON)],
                         ids=["dsl", "json"])
def test_fmt_check_accepts_a_canonical_crlf_file(tmp_path, capsys, name, text):
    spec = tmp_path / name
    data = BOM + text.replace("\n", "\r\n").encode()
    spec.write_bytes(data)
    assert cli(capsys, "fmt", "--check", str(spec)) == (0, "", "")
    assert cli(capsys, "fmt", str(spec)) == (0, "", "")
    assert spec.read_bytes() == data


@pytest.mark.parametrize("bom", [b"", BOM])
def test_fmt_keeps_the_line_endings_and_bom(tmp_path, capsys, bom):
    spec = tmp_path / "a.tfspec"
    messy = DSL.replace("param units = 8", "param   units=8").replace("\n", "\r\n")
    spec.write_bytes(bom + messy.encode())
    assert cli(capsys, "fmt", "--check", str(spec)) == (1, f"would reformat {spec}\n", "")
    assert cli(capsys, "fmt", str(spec)) == (0, f"reformatted {spec}\n", "")
    assert spec.read_bytes() == bom + DSL.replace("\n", "\r\n").encode()


def test_fmt_makes_mixed_line_endings_the_first_ones(tmp_path, capsys):
    spec = tmp_path / "a.tfspec"
    spec.write_bytes(DSL.replace("\n", "\r\n", 3).encode())
    assert cli(capsys, "fmt", "--check", str(spec)) == (
        1, f"would reformat {spec} (its lines end differently)\n", "")
    assert cli(capsys, "fmt", str(spec)) == (0, f"reformatted {spec}\n", "")
    assert spec.read_bytes() == DSL.replace("\n", "\r\n").encode()


def test_convert_writes_lf(tmp_path, capsys):
    spec, out = tmp_path / "a.tfspec", tmp_path / "a.tfspec.json"
    spec.write_bytes(BOM + DSL.replace("\n", "\r\n").encode())
    assert cli(capsys, "convert", str(spec), "-o", str(out))[0] == 0
    data = out.read_bytes()
    assert b"\r" not in data and not data.startswith(BOM)
    assert validate_file(out).ir == validate_file(spec).ir


# -- files that are not UTF-8 ---------------------------------------------------------------------


def test_latin1_is_e103_at_the_first_bad_byte(tmp_path, capsys):
    spec = tmp_path / "latin1.tfspec"
    spec.write_bytes('tfspec 1\r\nname "café"  # é\r\n'.encode("latin-1"))
    status, out, err = cli(capsys, "validate", str(spec))
    assert status == 1 and "Traceback" not in err
    assert out == (
        f"{spec}:2:10: error[E103]: the file is not UTF-8: byte 0xe9 here cannot be decoded\n"
        "  |\n"
        '2 | name "caf\ufffd"  # \ufffd\n'
        "  |          ^\n"
        "  = hint: save the file as UTF-8 (tfspec reads specs as UTF-8)\n\n")
    assert main(["validate", "--format", "json", str(spec)]) == 1
    [diag] = json.loads(capsys.readouterr().out)
    assert (diag["code"], diag["line"], diag["col"]) == ("E103", 2, 10)


def test_columns_of_a_bad_byte_count_characters():
    # two-byte `é` before the bad byte, a BOM in front: columns are characters of the text
    with pytest.raises(NotUTF8) as caught:
        decode(BOM + 'tfspec 1\nname "é'.encode() + b'\xff"')
    assert (caught.value.span.line, caught.value.span.col) == (2, 8)
    assert caught.value.shown.split("\n")[1] == 'name "é\ufffd"'


def test_utf16_says_so(tmp_path, capsys):
    spec = tmp_path / "utf16.tfspec"
    spec.write_bytes(DSL.encode("utf-16"))  # with its byte-order mark, as Notepad writes it
    status, out, _ = cli(capsys, "validate", str(spec))
    assert status == 1
    assert out.startswith(f"{spec}:1:1: error[E103]: the file is UTF-16")
    assert "1 | tfspec 1\n" in out and "hint: save the file as UTF-8" in out


def test_fmt_leaves_a_file_that_is_not_utf8_alone(tmp_path, capsys):
    spec = tmp_path / "latin1.tfspec"
    data = 'tfspec 1\nname   "café"\n'.encode("latin-1")
    spec.write_bytes(data)
    status, out, err = cli(capsys, "fmt", str(spec))
    assert (status, out) == (1, "") and "error[E103]" in err and ":2:12:" in err
    assert spec.read_bytes() == data


# -- what a line is ----------------------------------------------------------------------


def test_only_newlines_end_lines_in_diagnostics():
    # a form feed and U+2028 are not line breaks for the parser: not for the caret either
    text = 'tfspec 1\nname "a\u2028b"\x0c\ntrain { epochs = "2" }\n'
    result = validate_text(text, "t.tfspec")
    [diag] = result.diagnostics
    assert diag.span.line == 3
    assert '3 | train { epochs = "2" }' in render_text(result.diagnostics, result.source)
