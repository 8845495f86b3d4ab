"""The VS Code extension (editors/vscode): its manifest, language configuration, client,
and its TextMate grammar, run by the engine VS Code runs (vscode-textmate with
vscode-oniguruma, from editors/vscode/node_modules: `tools/install-dev` installs them).

The grammar is checked two ways: vscode-tmgrammar-test's assertion files
(editors/vscode/tests/*.test.tfspec), and every example, the fixture with every
construct and the docs' ```tfspec blocks against the language's own parser: each token
that grammars/tfspec.lark finds gets the scope of its role (editor_sources.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
from editor_sources import FIXTURE, ROOT, doc_blocks, examples, invalid_examples, roles

VSCODE = ROOT / "editors" / "vscode"
BIN = VSCODE / "node_modules" / ".bin"
GRAMMAR = VSCODE / "syntaxes" / "tfspec.tmLanguage.json"

# the scope each role's tokens must have (a prefix of one of their scopes)
SCOPES = {
    "comment": "comment.line.number-sign",
    "string": "string.quoted.double",
    "number": "constant.numeric",
    "boolean": "constant.language.boolean",
    "null": "constant.language.null",
    "unknown-dim": "constant.language.dimension.unknown",
    "keyword-tfspec": "keyword.other.header",
    "pipe": "keyword.operator.pipe",
    "arithmetic": "keyword.operator.arithmetic",
    "assign": "keyword.operator.assignment",
    "comma": "punctuation.separator.comma",
    "colon": "punctuation.separator.type",
    "bracket": "punctuation.section.",
    "brace": "punctuation.section.block.",
    "param-name": "entity.name.variable.param",
    "section": "entity.name.section",
    "target": "entity.name.tag.target",
    "key": "support.type.property-name",
    "model-name": "entity.name.type.model",
    "model-kind": "storage.type.model",
    "block-name": "entity.name.function.block",
    "block-param": "variable.parameter",
    "input-name": "entity.name.variable.input",
    "dtype": "support.type.dtype",
    "layer-name": "entity.name.variable.layer",
    "output-name": "entity.name.variable.output",
    "node-name": "entity.name.variable.node",
    "class-call": "support.class",
    "function-call": "support.function",
    "kwarg": "variable.parameter",
    "name": "variable.other",
}


def scope_for(role: str) -> str:
    if role.startswith("keyword-") and role not in SCOPES:
        return "keyword.other." + role.removeprefix("keyword-")  # keyword.other.model …
    return SCOPES[role]


def node_tool(name: str) -> Path:
    tool = BIN / name
    assert tool.exists(), f"{tool} is missing: run tools/install-dev (npm ci in editors/vscode)"
    return tool


@lru_cache(maxsize=1)
def _tokenized_all(files: tuple[str, ...]) -> dict[str, list]:
    node_tool("vscode-tmgrammar-test")  # the grammar engine comes with it
    out = subprocess.run(
        ["node", str(VSCODE / "tests" / "tokenize.js"), *files],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory) -> Path:
    """The docs' ```tfspec blocks, each written to a file."""
    folder = tmp_path_factory.mktemp("doc_blocks")
    for i, (_, text) in enumerate(doc_blocks()):
        (folder / f"{i}.tfspec").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tokenize(docs_dir):
    """path -> TextMate tokens [(line, start, end, scopes)], all files in one node run."""
    files = [*examples(), *invalid_examples(), *sorted(docs_dir.glob("*.tfspec"))]
    tokens = _tokenized_all(tuple(str(f) for f in files))
    return lambda path: tokens[str(path)]


def utf16(line: str, col: int) -> int:
    return len(line[:col].encode("utf-16-le")) // 2


def problems(text: str, tokens: list, with_roles: bool) -> list[str]:
    """Where the grammar disagrees with the parser (with_roles), leaves text unscoped,
    or marks something invalid."""
    lines = text.split("\n")
    out = []
    by_line: dict[int, list] = {}
    for line, start, end, scopes in tokens:
        by_line.setdefault(line, []).append((start, end, scopes))
        piece = lines[line][start:end] if line < len(lines) else ""
        if piece.strip() and scopes == ["source.tfspec"]:
            out.append(f"{line + 1}:{start + 1}: {piece!r} has no scope")
        bad = [s for s in scopes if s.startswith("invalid.")]
        if bad:
            out.append(f"{line + 1}:{start + 1}: {piece!r} is {bad[0]}")
    if not with_roles:
        return out
    for r in roles(text):
        start, end = utf16(lines[r.line], r.start), utf16(lines[r.line], r.end)
        covering = [t for t in by_line.get(r.line, []) if t[0] < end and t[1] > start]
        want = scope_for(r.role)
        where = f"{r.line + 1}:{r.start + 1}: {r.text!r} ({r.role})"
        if not covering or covering[0][0] != start or covering[-1][1] != end:
            out.append(f"{where}: the grammar's tokens do not start and end with it")
        for _, _, scopes in covering:
            if not any(s.startswith(want) and s.endswith(".tfspec") for s in scopes):
                out.append(f"{where}: wants {want}, has {' '.join(scopes[1:])}")
                break
    return out


# -- the grammar ---------------------------------------------------------------------


def test_grammar_assertion_files_pass():
    result = subprocess.run(
        [str(node_tool("vscode-tmgrammar-test")), "-c", "-g", str(GRAMMAR),
         "tests/*.test.tfspec"],
        cwd=VSCODE, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted(p.name for p in (VSCODE / "tests").glob("*.test.tfspec"))
    assert len(re.findall(r"run successfuly", result.stdout)) == len(files) >= 5


def test_grammar_assertion_runner_fails_on_a_wrong_scope(tmp_path):
    """The runner above can fail: the same engine rejects a false assertion."""
    case = tmp_path / "wrong.test.tfspec"
    case.write_text(
        '# SYNTAX TEST "source.tfspec"\nparam x = 1\n#         ^ string.quoted.double.tfspec\n'
    )
    result = subprocess.run(
        [str(node_tool("vscode-tmgrammar-test")), "-c", "-g", str(GRAMMAR), str(case)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "string.quoted.double.tfspec" in result.stdout


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_grammar_agrees_with_the_parser_on_every_example(path, tokenize):
    text = path.read_text(encoding="utf-8")
    assert problems(text, tokenize(path), with_roles=True) == []


def test_the_fixture_has_every_role(tokenize):
    """constructs.tfspec exercises each role the parser gives (so each scope is checked)."""
    found = {r.role for r in roles(FIXTURE.read_text(encoding="utf-8"))}
    wanted = set(SCOPES) | {f"keyword-{k}" for k in
                            ("name", "param", "model", "block", "input", "layer", "output")}
    assert wanted - found == set()


def test_grammar_on_the_docs_tfspec_blocks(docs_dir, tokenize):
    """Blocks that are whole specs are checked like the examples; fragments (a section's
    lines, a model's statements) must still come out without unscoped or invalid text."""
    blocks = doc_blocks()
    assert blocks, "no ```tfspec block in README.md or docs/*.md"
    bad = []
    for i, (where, text) in enumerate(blocks):
        try:
            roles(text)
            whole = True
        except Exception:  # a fragment: lark's parse error
            whole = False
        bad += [f"{where}: {p}" for p in problems(text, tokenize(docs_dir / f"{i}.tfspec"), whole)]
    assert bad == []


@pytest.mark.parametrize("path", invalid_examples(), ids=lambda p: p.name)
def test_grammar_on_invalid_examples_leaves_nothing_unscoped(path, tokenize):
    text = path.read_text(encoding="utf-8")
    unscoped = [p for p in problems(text, tokenize(path), with_roles=False) if "no scope" in p]
    assert unscoped == []


def test_grammar_marks_single_quotes_invalid(tokenize):
    path = ROOT / "examples" / "invalid" / "E100_single_quotes.tfspec"
    found = problems(path.read_text(encoding="utf-8"), tokenize(path), with_roles=False)
    assert found and all("invalid.illegal.character" in p and "'" in p for p in found)


# -- the extension's manifest, configuration and client -----------------------------


def manifest() -> dict:
    return json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))


def test_manifest_paths_exist_and_ids_agree():
    pkg = manifest()
    contributes = pkg["contributes"]
    (language,) = contributes["languages"]
    (grammar,) = contributes["grammars"]
    assert language["id"] == grammar["language"] == "tfspec"
    assert language["extensions"] == [".tfspec"]
    assert json.loads(GRAMMAR.read_text())["scopeName"] == grammar["scopeName"] == "source.tfspec"
    for rel in (pkg["main"], language["configuration"], grammar["path"]):
        assert rel.startswith("./") and (VSCODE / rel).is_file(), rel
    # the assertion files name the same scope
    for case in (VSCODE / "tests").glob("*.test.tfspec"):
        assert case.read_text().startswith('# SYNTAX TEST "source.tfspec"'), case.name
    assert f"onLanguage:{language['id']}" in pkg["activationEvents"]
    assert pkg["engines"]["vscode"].startswith("^")
    server = contributes["configuration"]["properties"]["tfspec.server.command"]
    assert server["default"] == ["tfspec", "lsp"]
    (command,) = contributes["commands"]
    assert f"\"{command['command']}\"" in (VSCODE / "extension.js").read_text()


def test_json_schema_is_carried_as_a_copy_of_the_spec_schema():
    """`jsonValidation` takes a path inside the extension (vsce packs only that folder):
    the build step (npm's prepare, vsce's vscode:prepublish) copies spec/'s schema."""
    pkg = manifest()
    (validation,) = pkg["contributes"]["jsonValidation"]
    assert validation["fileMatch"] == "*.tfspec.json"
    url = validation["url"]
    assert url.startswith("./") and ".." not in url
    script = "node scripts/copy-schema.js"
    assert pkg["scripts"]["prepare"] == pkg["scripts"]["vscode:prepublish"] == script
    subprocess.run(script.split(), cwd=VSCODE, check=True, timeout=30)
    copy = VSCODE / url
    assert copy.read_bytes() == (ROOT / "spec" / "tfspec.schema.json").read_bytes()
    ignored = (VSCODE / ".vscodeignore").read_text().split()
    assert not any(Path(url[2:]).match(p.rstrip("/*")) for p in ignored if p.startswith("schemas"))


def test_language_configuration_matches_the_grammar():
    config = json.loads((VSCODE / "language-configuration.json").read_text())
    lark = (ROOT / "grammars" / "tfspec.lark").read_text()
    comment = re.search(r"^COMMENT: /(.)", lark, re.M).group(1)
    assert config["comments"] == {"lineComment": comment}
    pairs = [["{", "}"], ["[", "]"], ["(", ")"]]
    assert config["brackets"] == pairs
    assert [[p["open"], p["close"]] for p in config["autoClosingPairs"]] == [*pairs, ['"', '"']]
    assert config["surroundingPairs"] == [*pairs, ['"', '"']]
    indent = {k: re.compile(v) for k, v in config["indentationRules"].items()}
    assert indent["increaseIndentPattern"].search("model Net functional {")
    assert indent["increaseIndentPattern"].search("  optimizer = Adam(  # a comment (")
    assert not indent["increaseIndentPattern"].search('  name = "{"')
    assert indent["decreaseIndentPattern"].search("  }")
    marker = re.compile(config["folding"]["markers"]["start"])
    assert marker.search("  # region layers") and not marker.search("x = 1  # region")


CLIENT_CHECK = r"""
const Module = require("module");
const shown = [];
const vscode = {
  workspace: {
    getConfiguration: () => ({ get: (key, dflt) => (key in settings ? settings[key] : dflt) }),
    onDidChangeConfiguration: () => ({ dispose() {} }),
  },
  window: { showErrorMessage: async (msg) => { shown.push(msg); return undefined; } },
  commands: { registerCommand: () => ({ dispose() {} }), executeCommand: async () => {} },
};
let settings = {};
const load = Module._load;
Module._load = (request, ...rest) => (request === "vscode" ? vscode : load(request, ...rest));
const ext = require(process.argv[1]);
(async () => {
  const out = {};
  out.default = ext.serverCommand(vscode.workspace.getConfiguration("tfspec"));
  out.onPath = ext.findProgram("sh");
  out.missing = ext.findProgram("no-such-tfspec-program");
  settings = { "server.command": ["/nonexistent/bin/tfspec", "lsp"] };
  await ext.activate({ subscriptions: [] });
  out.shown = shown;
  out.selector = ext.DOCUMENTS;
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_client_resolves_the_server_and_explains_a_missing_one():
    """extension.js under a stand-in `vscode` module (no VS Code here): the default
    command, the PATH lookup, and the message when tfspec is not installed."""
    subprocess.run(["node", "--check", str(VSCODE / "extension.js")], check=True, timeout=30)
    out = json.loads(subprocess.run(
        ["node", "-e", CLIENT_CHECK, str(VSCODE / "extension.js")],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout)
    assert out["default"] == ["tfspec", "lsp"]
    assert out["onPath"].endswith("/sh") and out["missing"] is None
    (message,) = out["shown"]
    assert "`/nonexistent/bin/tfspec` was not found" in message
    assert 'pip install "tfspec[lsp]"' in message and "tfspec.server.command" in message
    languages = {s["language"] for s in out["selector"]}
    assert languages == {manifest()["contributes"]["languages"][0]["id"], "json"}
    assert {s.get("pattern") for s in out["selector"]} >= {"**/*.tfspec.json"}
