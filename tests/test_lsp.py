"""`tfspec lsp` through a real client: pygls's LanguageClient talking to
`python -m tfspec lsp` over stdio (one server for the module).

Golden completion and hover answers at cursor markers (`‸`) in tests/lsp/*.tfspec
live in tests/lsp/golden/; `python tests/test_lsp.py --update` rewrites them.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lsp.harness import ROOT, Session, cursor, uri_of
from lsprotocol import types as T

import tfspec

FIXTURES = Path(__file__).parent / "lsp"
GOLDEN = FIXTURES / "golden"
EXAMPLES = ROOT / "examples"
INVALID = EXAMPLES / "invalid"


@pytest.fixture(scope="module")
def lsp():
    session = Session()
    yield session
    assert session.errors() == [], session.errors()
    assert session.shutdown() == 0


_n = [0]


def _open(lsp: Session, text: str, suffix: str = ".tfspec") -> str:
    _n[0] += 1
    uri = f"untitled:/doc{_n[0]}{suffix}"
    if suffix.endswith(".json"):
        uri = uri_of(ROOT / f"scratch{_n[0]}{suffix}")  # a file URI decides JSON by name
    lsp.open(uri, text)
    lsp.wait_diagnostics(uri, 1)
    return uri


def _doc(uri: str) -> T.TextDocumentIdentifier:
    return T.TextDocumentIdentifier(uri=uri)


# -- diagnostics: the same as `tfspec validate` -------------------------------------------


@pytest.mark.parametrize("path", sorted(INVALID.glob("E[1-4]*.tfspec"))
                         + sorted(INVALID.glob("*.tfspec.json")), ids=lambda p: p.name)
def test_diagnostics_match_validate(lsp, path):
    text = path.read_text()
    uri = uri_of(path)
    lsp.open(uri, text)
    got = lsp.wait_diagnostics(uri, 1)
    want = tfspec.validate_file(path).diagnostics
    assert [(d.code, d.message.split("\nhint: ")[0]) for d in got] == \
        [(d.code, d.message) for d in want]
    for g, w in zip(got, want, strict=True):
        if w.span:
            assert (g.range.start.line + 1, g.range.start.character + 1) == \
                (w.span.line, w.span.col)
        if w.hint:
            assert g.message.endswith("hint: " + w.hint)
    lsp.close(uri)


def test_related_information_for_a_duplicate(lsp):
    uri = _open(lsp, "tfspec 1\nmodel M functional {\n  input x: float32[2]\n"
                     "  y = Dense(2)(x)\n  y = Dense(3)(x)\n  output z = Dense(1)(y)\n}\n")
    diags = [d for d in lsp.wait_diagnostics(uri, 1) if d.code == "E401"]
    assert diags and diags[0].related_information
    where = diags[0].related_information[0].location.range.start
    assert (where.line, where.character) == (3, 2)


def test_diagnostics_follow_edits_and_utf16(lsp):
    text = 'tfspec 1\nname "ñ😀 net"\nmodel M sequential {\n  Dense(4)\n}\n'
    uri = _open(lsp, text)
    # replace `Dense` on line 3 with a typo, then an edit after the emoji on line 1
    v = lsp.edit(uri, T.Range(start=T.Position(line=3, character=2),
                              end=T.Position(line=3, character=7)), "Desne")
    (d,) = [d for d in lsp.wait_diagnostics(uri, v) if d.code == "E300"]
    assert (d.range.start.line, d.range.start.character, d.range.end.character) == (3, 2, 7)
    # `name "ñ😀 net"`: the emoji is 2 UTF-16 units (7-8); insert `!` right after it
    v = lsp.edit(uri, T.Range(start=T.Position(line=1, character=9),
                              end=T.Position(line=1, character=9)), "!")
    lsp.wait_diagnostics(uri, v)
    local = text.replace("Dense", "Desne").replace("😀", "😀!")
    edits = lsp.call("formatting", T.DocumentFormattingParams(
        text_document=_doc(uri), options=T.FormattingOptions(tab_size=2, insert_spaces=True)))
    formatted = _apply(local, edits)
    assert 'name "ñ😀! net"' in formatted
    assert formatted == tfspec.format_spec(tfspec.validate_text(local, "x.tfspec").ir)
    lsp.close(uri)


# -- completion and hover goldens -------------------------------------------------------


def _cases():
    for path in sorted(FIXTURES.glob("*.tfspec")):
        text = path.read_text()
        for i, _ in enumerate(re.finditer("‸", text)):
            yield path, i


def _nth_cursor(text: str, n: int) -> tuple[str, T.Position]:
    parts = text.split("‸")
    joined = "".join(p + ("‸" if k == n else "") for k, p in enumerate(parts[:-1])) + parts[-1]
    return cursor(joined)


def _answers(lsp: Session, path: Path, n: int) -> dict:
    text, pos = _nth_cursor(path.read_text(), n)
    uri = _open(lsp, text)
    items = lsp.call("completion", T.CompletionParams(text_document=_doc(uri), position=pos))
    hover = lsp.call("hover", T.HoverParams(text_document=_doc(uri), position=pos))
    lsp.close(uri)
    return {
        "completion": [i.label for i in items.items][:40],
        "hover": hover.contents.value if hover else None,
    }


def _golden(path: Path, n: int) -> Path:
    return GOLDEN / f"{path.stem}.{n}.json"


@pytest.mark.parametrize(("path", "n"), list(_cases()),
                         ids=lambda x: x.stem if isinstance(x, Path) else str(x))
def test_completion_and_hover_golden(lsp, path, n):
    got = _answers(lsp, path, n)
    want = json.loads(_golden(path, n).read_text())
    assert got == want


# -- Keras's own documentation in hover, completion and signature help ------------------


def _keras_docstring(module: str, cls: str) -> str:
    """A class's docstring, read from the installed Keras's source (without importing
    Keras, which would start TensorFlow in this process)."""
    spec = importlib.util.find_spec("keras")
    assert spec is not None and spec.submodule_search_locations
    source = Path(next(iter(spec.submodule_search_locations)), *module.split("."))
    tree = ast.parse(source.with_suffix(".py").read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return inspect.cleandoc(ast.get_docstring(node, clean=False) or "")


def test_hover_and_completion_show_keras_docs(lsp):
    doc = _keras_docstring("src.layers.core.dense", "Dense")
    summary = " ".join(doc.split("\n\n")[0].split())
    found = re.search(r"^ +units:(.*?)^ +\w+:", doc, re.M | re.S)
    assert found is not None, doc
    units = " ".join(found.group(1).split())

    text = "tfspec 1\nmodel M sequential {\n  input x: float32[3]\n  Dense(units = 4, )\n}\n"
    uri = _open(lsp, text)
    on_dense = lsp.call("hover", T.HoverParams(text_document=_doc(uri),
                                               position=_pos(text, "Dense")))
    assert on_dense.contents.value.startswith(f"`keras.layers.Dense`: {summary}\n\n```tfspec\n"
                                              "Dense(units, ")
    on_units = lsp.call("hover", T.HoverParams(text_document=_doc(uri),
                                               position=_pos(text, "units")))
    assert on_units.contents.value == (f"`Dense` argument `units`: {units}\n\n"
                                       "a positive integer; required")
    in_body = lsp.call("completion", T.CompletionParams(
        text_document=_doc(uri), position=_pos(text, "  Dense")))
    item = next(i for i in in_body.items if i.label == "Dense")
    assert item.documentation is None  # it comes when the item is shown: resolve
    item = lsp.request(lsp.client.completion_item_resolve_async(item))
    assert item.documentation.kind == T.MarkupKind.Markdown
    assert item.documentation.value.startswith(f"{summary}\n\n```\nDense(units, ")
    in_call = lsp.call("completion", T.CompletionParams(
        text_document=_doc(uri), position=_pos(text, " )")))
    by_label = {i.label: i for i in in_call.items}
    assert "units =" not in by_label  # already given
    # a keyword Dense takes through **kwargs: the base Layer's docstring says it
    layer = _keras_docstring("src.layers.layer", "Layer")
    found = re.search(r"^ +name:(.*?)^ +\w+:", layer, re.M | re.S)
    assert found is not None, layer
    assert by_label["name ="].documentation.value == " ".join(found.group(1).split())
    assert by_label["activation ="].documentation.kind == T.MarkupKind.Markdown
    help_ = lsp.call("signature_help", T.SignatureHelpParams(
        text_document=_doc(uri), position=_pos(text, " )")))
    info = help_.signatures[0]
    assert info.documentation.value == summary
    assert info.parameters[0].documentation.value == f"{units}\n\na positive integer; required"
    lsp.close(uri)


# -- navigation, rename, outline, folding -----------------------------------------------


def _pos(text: str, needle: str, delta: int = 0) -> T.Position:
    i = text.index(needle) + delta
    before = text[:i]
    return T.Position(line=before.count("\n"), character=i - before.rfind("\n") - 1)


def test_definition_references_rename(lsp):
    text = (EXAMPLES / "resnet_blocks.tfspec").read_text()
    uri = _open(lsp, text)
    at = _pos(text, "width * 2,")
    loc = lsp.call("definition", T.DefinitionParams(text_document=_doc(uri), position=at))
    assert loc.range.start == _pos(text, "width = 16")
    refs = lsp.call("references", T.ReferenceParams(
        text_document=_doc(uri), position=at,
        context=T.ReferenceContext(include_declaration=False)))
    assert len(refs) == text.count("width") - 1
    edit = lsp.call("rename", T.RenameParams(text_document=_doc(uri), position=at,
                                             new_name="channels"))
    new = _apply(text, edit.changes[uri])
    assert "width" not in new and tfspec.validate_text(new, "x.tfspec").ok
    with pytest.raises(Exception, match="already declared"):
        lsp.call("rename", T.RenameParams(text_document=_doc(uri),
                                          position=_pos(text, "shortcut ="), new_name="y"))
    # block names: definition from a use
    use = _pos(text, "Residual(width)")
    loc = lsp.call("definition", T.DefinitionParams(text_document=_doc(uri), position=use))
    assert loc.range.start == _pos(text, "Residual(filters")
    syms = lsp.call("document_symbol", T.DocumentSymbolParams(text_document=_doc(uri)))
    names = [s.name for s in syms]
    assert names == ["name", "width", "Residual", "data", "ResNet", "train", "export"]
    model = syms[names.index("ResNet")]
    assert [c.name for c in model.children] == ["image", "x", "digit"]
    folds = lsp.call("folding_range", T.FoldingRangeParams(text_document=_doc(uri)))
    assert any(f.start_line == _pos(text, "block Residual").line for f in folds)
    lsp.close(uri)


def _apply(text: str, edits: list[T.TextEdit]) -> str:
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def off(p: T.Position) -> int:
        line = lines[p.line] if p.line < len(lines) else ""
        units = 0
        for i, c in enumerate(line):
            if units >= p.character:
                return starts[p.line] + i
            units += 2 if ord(c) > 0xFFFF else 1
        return starts[min(p.line, len(lines))] + len(line)

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character),
                    reverse=True):
        a, b = off(e.range.start), off(e.range.end)
        text = text[:a] + e.new_text + text[b:]
    return text


def test_formatting_gives_fmt_text(lsp):
    text = "tfspec 1\nparam   lr=0.1\nmodel M sequential {Dense(2)}\n"
    uri = _open(lsp, text)
    edits = lsp.call("formatting", T.DocumentFormattingParams(
        text_document=_doc(uri), options=T.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert _apply(text, edits) == tfspec.format_spec(tfspec.validate_text(text, "x").ir)
    lsp.close(uri)


# -- quick fixes: each one removes its diagnostic ----------------------------------------


@pytest.mark.parametrize("name", ["E300_unknown_layer", "E300_unknown_optimizer",
                                  "E301_unknown_argument", "E302_missing_units",
                                  "E203_misspelled_strategy", "E203_unquoted_choice",
                                  "E400_python_true"])
def test_code_action_fixes_its_diagnostic(lsp, name):
    path = INVALID / f"{name}.tfspec"
    text = path.read_text()
    uri = _open(lsp, text)
    diags = lsp.wait_diagnostics(uri, 1)
    code = name[:4]
    target = next(d for d in diags if d.code == code)
    actions = lsp.call("code_action", T.CodeActionParams(
        text_document=_doc(uri), range=target.range,
        context=T.CodeActionContext(diagnostics=[target])))
    assert actions, f"no quick fix for {code}: {target.message}"
    fixed = _apply(text, actions[0].edit.changes[uri])
    after = tfspec.validate_text(fixed, str(path))
    assert not any(d.code == code and d.span and d.span.line == target.range.start.line + 1
                   for d in after.diagnostics), (actions[0].title, fixed)
    lsp.close(uri)


# -- the process stays light -----------------------------------------------------------


def test_server_never_imports_tensorflow():
    """From outside: run a session under `python -X importtime` and read its stderr."""
    session = Session("-X", "importtime")
    text = (EXAMPLES / "resnet_blocks.tfspec").read_text()
    uri = uri_of(EXAMPLES / "resnet_blocks.tfspec")
    session.open(uri, text)
    session.wait_diagnostics(uri, 1)
    session.call("hover", T.HoverParams(text_document=_doc(uri), position=_pos(text, "Dense")))
    session.call("completion", T.CompletionParams(text_document=_doc(uri),
                                                  position=_pos(text, "Dense")))
    session.shutdown()  # stderr is complete once the process has ended
    imported = {line.split("|")[-1].strip() for line in
                session.stderr.decode(errors="replace").splitlines() if "import time:" in line}
    assert "tfspec.lsp.server" in imported  # the measurement saw the server's imports
    heavy = {m for m in imported if m.split(".")[0] in ("tensorflow", "keras", "numpy")}
    assert heavy == set()


if __name__ == "__main__":
    if "--update" in sys.argv:
        GOLDEN.mkdir(exist_ok=True)
        s = Session()
        try:
            for p, k in _cases():
                _golden(p, k).write_text(json.dumps(_answers(s, p, k), indent=1,
                                                    ensure_ascii=False) + "\n")
        finally:
            s.shutdown()
    else:
        sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__]))
