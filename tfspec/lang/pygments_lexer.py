"""A Pygments lexer for the tfspec DSL, so Sphinx, MkDocs and `pygmentize` highlight
```tfspec code blocks.

Pygments finds it through the `pygments.lexers` entry point (pyproject.toml); nothing in
tfspec imports this module, so the light core never needs Pygments. Its states follow
grammars/tfspec.lark: a section's body (`key = value`, subsections, targets), a model's
or block's body (statements), call arguments (keyword arguments), an input's shape.
What the language cannot contain (single quotes, `;`, a JSON escape that is not one)
comes out as `Error`.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, default, include
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

__all__ = ["TfspecLexer"]

NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _call(state: str) -> tuple:
    """`Dense(` / `npz(`: the callee (classes, layers among them, are capitalised)."""
    return (
        r"(?:([A-Z][A-Za-z0-9_]*)|([a-z_][A-Za-z0-9_]*))(\s*)(\()",
        bygroups(Name.Class, Name.Function, Whitespace, Punctuation),
        state,
    )


class TfspecLexer(RegexLexer):
    """tfspec model specs (`.tfspec`; the language: docs/language.md)."""

    name = "tfspec"
    aliases = ["tfspec"]
    filenames = ["*.tfspec"]
    mimetypes = ["text/x-tfspec"]

    tokens = {
        "root": [
            include("space"),
            (r"\b(tfspec)\b", Keyword.Declaration),
            (r'\b(name)\b(?=\s*")', Keyword.Declaration),
            (
                rf"\b(param)\b(\s+)({NAME})",
                bygroups(Keyword.Declaration, Whitespace, Name.Variable),
            ),
            (r"\bparam\b", Keyword.Declaration),
            (
                rf"\b(model)\b(\s+)({NAME})(?:(\s+)({NAME}))?(\s*)(\{{)",
                bygroups(Keyword.Declaration, Whitespace, Name.Class, Whitespace,
                         Keyword.Type, Whitespace, Punctuation),
                "body",
            ),
            (
                rf"\b(block)\b(\s+)({NAME})(\s*)(\()",
                bygroups(Keyword.Declaration, Whitespace, Name.Function, Whitespace, Punctuation),
                ("block-body", "parameters", "parameter"),
            ),
            (r"\b(model|block)\b", Keyword.Declaration),
            (rf"({NAME})(\s*)(\{{)", bygroups(Name.Namespace, Whitespace, Punctuation), "section"),
            (r"=", Operator),
            include("expression"),
        ],
        "space": [
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
        ],
        # -- sections: data { source = npz(...), split { ... } }, export targets
        "section": [
            include("space"),
            (r"\}", Punctuation, "#pop"),
            (rf"({NAME})(\s*)(\{{)", bygroups(Name.Namespace, Whitespace, Punctuation), "#push"),
            (rf'({NAME})(?=\s*")', Name.Tag),  # a target: keras "model.keras" { ... }
            (rf"({NAME})(\s*)(=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (r"\{", Punctuation, "#push"),
            include("expression"),
        ],
        # -- models and blocks: statements
        "block-body": [
            include("space"),
            (r"\{", Punctuation, ("#pop", "body")),
            default("#pop"),
        ],
        "parameters": [
            include("space"),
            (r"\)", Punctuation, "#pop"),
            (r",", Punctuation, "parameter"),
            (r"=", Operator),
            include("expression"),
        ],
        "parameter": [
            include("space"),
            (NAME, Name.Variable, "#pop"),
            default("#pop"),
        ],
        "body": [
            include("space"),
            (r"\}", Punctuation, "#pop"),
            (
                rf"\b(input|layer|output)\b(\s+)({NAME})",
                bygroups(Keyword, Whitespace, Name.Variable),
            ),
            (
                rf"(:)(\s*)(?:({NAME})(\s*))?(\[)",
                bygroups(Punctuation, Whitespace, Keyword.Type, Whitespace, Punctuation),
                "shape",
            ),
            (rf"({NAME})(\s*)(=)", bygroups(Name.Variable, Whitespace, Operator)),
            (r"=", Operator),
            include("expression"),
        ],
        "shape": [
            include("space"),
            (r"\]", Punctuation, "#pop"),
            (r"\?|\bNone\b", Keyword.Constant),
            (r"\d+", Number.Integer),
            (r",", Punctuation),
            (NAME, Name),
        ],
        # -- expressions
        "expression": [
            include("space"),
            (r'"', String.Double, "string"),
            (r"(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+", Number.Float),
            (r"\d+", Number.Integer),
            (r"\b(?:true|false|null|None)\b", Keyword.Constant),
            _call("arguments"),
            (r"\(", Punctuation, "arguments"),  # a group, or the call of a call's result
            (r"\[", Punctuation, "list"),
            (r"\|>|[-+*/]", Operator),
            (r",", Punctuation),
            (NAME, Name),
        ],
        "arguments": [
            include("space"),
            (r"\)", Punctuation, "#pop"),
            (rf"({NAME})(\s*)(=)", bygroups(Name.Attribute, Whitespace, Operator)),
            include("expression"),
        ],
        "list": [
            include("space"),
            (r"\]", Punctuation, "#pop"),
            include("expression"),
        ],
        # one line, JSON escapes: a newline ends an unterminated string
        "string": [
            (r'"', String.Double, "#pop"),
            (r'\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4})', String.Escape),
            (r"\\.?", Error),
            (r'[^"\\\n]+', String.Double),
            default("#pop"),
        ],
    }
