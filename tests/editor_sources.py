"""What the editor grammars are tested on, and what each token of it is.

The TextMate grammar (editors/vscode, test_editors.py) and the Pygments lexer
(tfspec/lang/pygments_lexer.py, test_pygments.py) are checked against the language's
own parser: grammars/tfspec.lark parses a spec, and every token of the parse gets a
role (a keyword, a section's name, a keyword argument, a call of a layer, …) from the
rule it stands in. Each highlighter must give each token the scope or token type of
its role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "editors" / "constructs.tfspec"


def examples() -> list[Path]:
    """The valid examples and the grammar fixture."""
    return sorted((ROOT / "examples").glob("*.tfspec")) + [FIXTURE]


def invalid_examples() -> list[Path]:
    return sorted((ROOT / "examples" / "invalid").glob("*.tfspec"))


def doc_blocks() -> list[tuple[str, str]]:
    """(`file:line`, text) of every ```tfspec block in README.md and docs/*.md."""
    blocks = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```tfspec\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, m.start()) + 1
            blocks.append((f"{path.relative_to(ROOT)}:{line}", m.group(1)))
    return blocks


@dataclass(frozen=True)
class Role:
    line: int  # 0-based
    start: int  # 0-based, code points
    end: int
    text: str
    role: str


_COMMENTS: list[Token] = []


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The language's grammar with every token kept in the tree (punctuation too)."""
    return Lark(
        (ROOT / "grammars" / "tfspec.lark").read_text(),
        parser="lalr",
        keep_all_tokens=True,
        lexer_callbacks={"COMMENT": _COMMENTS.append},
    )


_BY_TYPE = {
    "COMMENT": "comment",
    "STRING": "string",
    "NUMBER": "number",
    "KW_TRUE": "boolean",
    "KW_FALSE": "boolean",
    "KW_NULL": "null",
    "QMARK": "unknown-dim",
}
_BY_VALUE = {
    "|>": "pipe", "+": "arithmetic", "-": "arithmetic", "*": "arithmetic", "/": "arithmetic",
    "=": "assign", ",": "comma", ":": "colon",
    "(": "bracket", ")": "bracket", "[": "bracket", "]": "bracket", "{": "brace", "}": "brace",
}
# (rule, index of the NAME among the rule's children) -> role; other NAMEs are references
_NAME_ROLES = {
    ("param_decl", 1): "param-name",
    ("section", 0): "section",
    ("subsection", 0): "section",
    ("target", 0): "target",
    ("assign", 0): "key",
    ("model_decl", 1): "model-name",
    ("model_decl", 2): "model-kind",
    ("block_decl", 1): "block-name",
    ("block_param", 0): "block-param",
    ("input_stmt", 1): "input-name",
    ("input_stmt", 3): "dtype",
    ("layer_stmt", 1): "layer-name",
    ("output_stmt", 1): "output-name",
    ("node_stmt", 0): "node-name",
    ("kwarg", 0): "kwarg",
}


def _role(tree: Tree, index: int, tok: Token) -> str:
    if tok.type == "NAME":
        if tree.data == "call" and index == 0:
            return "class-call" if tok[0].isupper() else "function-call"
        return _NAME_ROLES.get((tree.data, index), "name")
    if tok.type == "KW_NONE":
        return "unknown-dim" if tree.data == "shape" else "null"
    if tok.type in _BY_TYPE:
        return _BY_TYPE[tok.type]
    if tok.type.startswith("KW_"):
        return "keyword-" + tok.type[3:].lower()
    return _BY_VALUE[str(tok)]


def roles(text: str) -> list[Role]:
    """Every token of a spec (comments too) with its role, in order; raises lark's
    error when the text does not parse."""
    _COMMENTS.clear()
    tree = _parser().parse(text)
    found = [(tok, "comment") for tok in _COMMENTS]

    def walk(node: Tree) -> None:
        for i, child in enumerate(node.children):
            if isinstance(child, Tree):
                walk(child)
            elif isinstance(child, Token):
                found.append((child, _role(node, i, child)))

    walk(tree)
    out = [Role(t.line - 1, t.column - 1, t.column - 1 + len(t), str(t), r) for t, r in found]
    return sorted(out, key=lambda r: (r.line, r.start))
