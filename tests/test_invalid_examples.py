"""Golden tests: every broken spec in examples/invalid/ gives exactly its recorded diagnostics.

Each `examples/invalid/<CODE>_<slug>.tfspec` (or `.tfspec.json`) is one realistic
mistake that produces diagnostic CODE. Beside it lie two golden files, named after the
spec without its `.tfspec` / `.tfspec.json` suffix:

- `<name>.txt`: what `tfspec validate examples/invalid/<file>` prints on stdout;
- `<name>.json`: what `tfspec validate --format json examples/invalid/<file>` prints.

Paths in them are relative to the repository root (the tests run there). A spec whose
first line is `# set: NAME=VALUE ...` is validated with those `--set` overrides (split
as a shell would). Specs named `W…` hold only warnings: `validate` exits 0 for them, and
1 with `--strict`; all the others exit 1.

After an intended change to diagnostics, regenerate the golden files and review the diff:

    python tests/test_invalid_examples.py --update

To add a case, write the spec, run the command above, and check the new `.txt` reads
well. E103 ("file cannot be read") needs a file that cannot be read, so it is tested
here rather than shipped as an example.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # `python tests/test_invalid_examples.py --update` from a checkout
    sys.path.insert(0, str(REPO))

from tfspec.cli import main  # noqa: E402
from tfspec.lang.diagnostics import CODES  # noqa: E402
from tfspec.lang.validate import SPEC_SUFFIXES, validate_file  # noqa: E402

INVALID = REPO / "examples" / "invalid"
SPECS = sorted(p for p in INVALID.iterdir() if p.is_file() and p.name.endswith(SPEC_SUFFIXES))
VALID = sorted(p for p in (REPO / "examples").iterdir()
               if p.is_file() and p.name.endswith(SPEC_SUFFIXES))
FORMATS = {"text": ".txt", "json": ".json"}
# E103 needs an unreadable file (see test_unreadable_* below); E500 comes from building
# the model and E501 from loading the data, which `validate` never does
# (see tests/test_compile.py and tests/test_data.py)
# E500–E507 come from building, running, exporting (`run`) and converting
# (`plan --target`): validation never sees them
NOT_AN_EXAMPLE = {"E103", "E500", "E501", "E502", "E503", "E504", "E505", "E506", "E507"}
_NAME = re.compile(r"^([EW]\d{3})_[a-z0-9_]+$")


def stem(spec: Path) -> str:
    """`E300_unknown_layer` for `E300_unknown_layer.tfspec` or `….tfspec.json`."""
    for suffix in sorted(SPEC_SUFFIXES, key=len, reverse=True):
        if spec.name.endswith(suffix):
            return spec.name[: -len(suffix)]
    raise ValueError(spec)


def code_of(spec: Path) -> str:
    match = _NAME.match(stem(spec))
    assert match, f"{spec.name}: expected a name like E300_unknown_layer.tfspec"
    return match.group(1)


def golden(spec: Path, fmt: str) -> Path:
    return spec.with_name(stem(spec) + FORMATS[fmt])


def overrides(spec: Path) -> list[str]:
    """`--set` options from a first line `# set: NAME=VALUE ...`."""
    first = spec.read_text(encoding="utf-8").split("\n", 1)[0]
    if not first.startswith("# set:"):
        return []
    return [arg for pair in shlex.split(first[len("# set:"):]) for arg in ("--set", pair)]


def argv(spec: Path, fmt: str, *extra: str) -> list[str]:
    rel = spec.relative_to(REPO).as_posix()
    return ["validate", "--format", fmt, *extra, *overrides(spec), rel]


def expected_status(spec: Path) -> int:
    return 0 if code_of(spec).startswith("W") else 1


def spec_id(spec: Path) -> str:
    return spec.name


@pytest.fixture
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)


# -- the golden files ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_invalid_example_matches_golden(spec, fmt, at_repo_root, capsys):
    status = main(argv(spec, fmt))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.out == golden(spec, fmt).read_text(encoding="utf-8"), (
        f"{spec.name}: output differs from {golden(spec, fmt).name}; if the change is "
        "intended, run `python tests/test_invalid_examples.py --update` and review the diff"
    )
    assert status == expected_status(spec)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_invalid_example_reports_its_code(spec, at_repo_root, capsys):
    main(argv(spec, "json"))
    diagnostics = json.loads(capsys.readouterr().out)
    codes = [d["code"] for d in diagnostics]
    assert code_of(spec) in codes, codes
    assert all(d["file"] == spec.relative_to(REPO).as_posix() for d in diagnostics)
    assert all(c in CODES for c in codes)


@pytest.mark.parametrize("spec", [s for s in SPECS if code_of(s).startswith("W")], ids=spec_id)
def test_warning_examples_fail_with_strict(spec, at_repo_root, capsys):
    assert main(argv(spec, "text", "--strict")) == 1
    assert f"warning[{code_of(spec)}]" in capsys.readouterr().out


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_github_annotations_carry_the_same_diagnostics(spec, at_repo_root, capsys):
    main(argv(spec, "github"))
    lines = capsys.readouterr().out.splitlines()
    expected = json.loads(golden(spec, "json").read_text(encoding="utf-8"))
    assert len(lines) == len(expected)
    for line, diag in zip(lines, expected, strict=True):
        level = "error" if diag["severity"] == "error" else "warning"
        assert line.startswith(f"::{level} file={diag['file']},")
        if diag["line"] is not None:
            assert f",line={diag['line']},col={diag['col']}," in line
        assert f",title={diag['code']}::" in line


def test_every_code_has_an_invalid_example():
    covered = {code_of(spec) for spec in SPECS}
    missing = sorted(set(CODES) - NOT_AN_EXAMPLE - covered)
    assert not missing, f"no example under examples/invalid/ for {missing}"
    assert covered <= set(CODES), sorted(covered - set(CODES))


def test_golden_files_belong_to_examples():
    names = [stem(spec) for spec in SPECS]
    assert len(names) == len(set(names)), "two specs share a golden file name"
    others = {p.name for p in INVALID.iterdir() if p.is_file() and p not in SPECS}
    expected = {golden(spec, fmt).name for spec in SPECS for fmt in FORMATS}
    assert others - {".tfspecignore"} == expected


def test_invalid_examples_include_json_specs():
    assert any(spec.name.endswith(".tfspec.json") for spec in SPECS)


def test_json_twin_reports_the_same_mistake_at_the_json_location(at_repo_root, capsys):
    def first(name: str) -> dict:
        main(["validate", "--format", "json", f"examples/invalid/{name}"])
        return json.loads(capsys.readouterr().out)[0]

    for dsl, twin in [("E300_unknown_layer.tfspec", "E300_unknown_layer_in_json.tfspec.json"),
                      ("E200_unknown_key.tfspec", "E200_unknown_key_in_json.tfspec.json")]:
        a, b = first(dsl), first(twin)
        assert (a["code"], a["message"], a.get("hint")) == (b["code"], b["message"], b.get("hint"))
        source = (INVALID / twin).read_text(encoding="utf-8").splitlines()
        line = source[b["line"] - 1]
        assert line[b["col"] - 1:].startswith('"' + a["message"].split("`")[1] + '"')


# -- E103: files that cannot be read -----------------------------------------------------------


def test_unreadable_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.tfspec"
    assert main(["validate", str(missing)]) == 1
    captured = capsys.readouterr()
    reason = os.strerror(errno.ENOENT)
    assert captured.out == f"{missing}: error[E103]: cannot read the file: {reason}\n\n"
    assert "Traceback" not in captured.err
    assert main(["validate", "--format", "json", str(missing)]) == 1
    [diag] = json.loads(capsys.readouterr().out)
    assert (diag["code"], diag["file"], diag["line"]) == ("E103", str(missing), None)


def test_unreadable_directory(tmp_path, capsys):
    # the API reads what it is given: a directory is a file it cannot read
    result = validate_file(tmp_path)
    assert [d.code for d in result.diagnostics] == ["E103"]
    assert result.ir is None and not result.ok
    # the command line searches a directory instead; finding no spec there is an error too
    assert main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.endswith("tfspec: no *.tfspec or *.tfspec.json files found\n")
    assert "Traceback" not in captured.err


def test_unreadable_encoding(tmp_path, capsys):
    latin1 = tmp_path / "latin1.tfspec"
    latin1.write_bytes('tfspec 1\nname "café"\n'.encode("latin-1"))
    assert main(["validate", "--format", "json", str(latin1)]) == 1
    captured = capsys.readouterr()
    [diag] = json.loads(captured.out)
    assert (diag["code"], diag["line"], diag["col"]) == ("E103", 2, 10)  # the `é`
    assert "UTF-8" in diag["message"]
    assert "Traceback" not in captured.err


# -- the valid examples -------------------------------------------------------------------------


def test_there_are_valid_examples():
    assert len(VALID) >= 5


@pytest.mark.parametrize("spec", VALID, ids=spec_id)
def test_valid_example_validates(spec, at_repo_root, capsys):
    assert main(["validate", "--strict", f"examples/{spec.name}"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "checked 1 spec: 0 errors, 0 warnings\n"


def test_validate_examples_folder_skips_the_invalid_ones(at_repo_root, capsys):
    assert main(["validate", "examples/"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    summary = re.fullmatch(r"checked (\d+) specs: 0 errors, 0 warnings\n", captured.err)
    assert summary and int(summary.group(1)) >= len(VALID), captured.err


# -- regenerating the golden files ------------------------------------------------------------


def update() -> None:
    """Rewrite every golden file from what `tfspec validate` prints for its spec.

    The command runs in a subprocess, exactly as a user runs it, from the repository root.
    """
    for spec in SPECS:
        for fmt in FORMATS:
            path = golden(spec, fmt)
            run = subprocess.run([sys.executable, "-m", "tfspec", *argv(spec, fmt)], cwd=REPO,
                                 capture_output=True, text=True, encoding="utf-8")
            if run.returncode not in (0, 1) or not run.stdout:
                sys.exit(f"{spec.name}: exit status {run.returncode}\n{run.stderr}")
            old = path.read_text(encoding="utf-8") if path.exists() else None
            if run.stdout != old:
                path.write_text(run.stdout, encoding="utf-8", newline="\n")
                print(f"{'updated' if old is not None else 'created'} {path.relative_to(REPO)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_invalid_examples.py --update")
    update()
