"""Located diagnostics: the one error type every stage reports through.

Every problem tfspec finds in a spec — syntax, schema, catalog, semantic — is a
`Diagnostic` with a stable code, a severity, a `Span` and a message written for a
Keras user ("expected … Received: …"), plus an optional hint. Stages collect
them in a `Diagnostics` list and never stop at the first one; the renderers at
the bottom turn the same list into text (with the source line and a caret),
JSON, or GitHub Actions annotations.
"""

from __future__ import annotations

import difflib
import html
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

# Stable codes. Each one has an example under examples/invalid/ and a golden file.
CODES: dict[str, str] = {
    # E1xx: reading the file
    "E100": "syntax error",
    "E101": "invalid JSON",
    "E102": "unsupported language version",
    "E103": "file cannot be read",
    # E2xx: structure (the JSON Schema)
    "E200": "unknown key",
    "E201": "wrong type",
    "E202": "missing required key",
    "E203": "value not allowed",
    "E204": "value out of range",
    "E205": "duplicate key",
    # E3xx: the Keras vocabulary (the catalog)
    "E300": "unknown Keras name",
    "E301": "unknown argument",
    "E302": "missing required argument",
    "E303": "too many positional arguments",
    "E304": "argument given twice",
    "E305": "invalid argument value",
    # E4xx: names and dataflow
    "E400": "undefined name",
    "E401": "duplicate name",
    "E402": "cycle in the model graph",
    "E403": "model has no output",
    "E404": "sequential model rule",
    "E405": "losses or metrics do not match the model's outputs",
    "E406": "invalid expression",
    "E407": "invalid --set override",
    "E408": "block misuse",
    "E409": "Python code or module not allowed",
    "E410": "strategy not supported by Keras 3",
    "E411": "a callback monitors a metric the spec never logs",
    "E412": "a ModelCheckpoint path Keras 3 rejects for its save_weights_only",
    "E413": "a loss or activation its output layer cannot learn with",
    # E5xx: building the model (reported by compile --check, plan, graph, run)
    "E500": "Keras cannot build the model",
    "E501": "the data does not fit the model",
    "E502": "training failed",
    "E503": "cannot run this spec",
    "E504": "an export failed or does not answer like the Keras model",
    "E505": "a layer will not convert to TensorFlow Lite (plan --target tflite)",
    "E506": "a layer will not convert to TensorFlow.js (plan --target tfjs)",
    "E507": "a layer will not convert to ONNX (plan --target onnx)",
    # E6xx: the tune section (KerasTuner)
    "E600": "a tuned name is not a param",
    "E601": "a search space that does not fit the param or its uses",
    "E602": "a search space KerasTuner rejects",
    "E603": "an objective the spec does not log or KerasTuner cannot direct",
    "E604": "tuner settings that do not fit the algorithm",
    "E605": "a tuned param the search cannot change",
    # W4xx: warnings
    "W400": "unused node",
    "W401": "unused param",
    "W402": "mixed precision without a float32 output layer",
    "W403": "jit_compile = true with deterministic = true (Keras turns XLA off)",
    "W404": "a search range whose step never reaches max_value",
    "W405": "a loss that likely does not fit its output layer's units or activation",
}


class Span(NamedTuple):
    """A region of a source file; lines and columns are 1-based, end exclusive.

    A NamedTuple rather than a frozen dataclass: the parser makes one per token.
    """

    line: int
    col: int
    end_line: int
    end_col: int

    @classmethod
    def point(cls, line: int, col: int) -> Span:
        return cls(line, col, line, col + 1)


@dataclass(slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    file: str = "<spec>"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict:
        out: dict = {
            "file": self.file,
            "line": self.span.line if self.span else None,
            "col": self.span.col if self.span else None,
            "end_line": self.span.end_line if self.span else None,
            "end_col": self.span.end_col if self.span else None,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }
        if self.hint:
            out["hint"] = self.hint
        return out

    @classmethod
    def from_dict(cls, item: dict) -> Diagnostic:
        """`to_dict`'s inverse (diagnostics another process sent as JSON)."""
        place = [item.get(k) for k in ("line", "col", "end_line", "end_col")]
        span = Span(*place) if all(isinstance(v, int) for v in place) else None
        return cls(item["code"], item["message"], span, item.get("hint"),
                   item.get("severity", "error"), item.get("file", "<spec>"))


@dataclass
class Diagnostics:
    """An ordered collection of diagnostics for one file."""

    file: str = "<spec>"
    items: list[Diagnostic] = field(default_factory=list)

    def add(
        self,
        code: str,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
        severity: str | None = None,
    ) -> Diagnostic:
        if severity is None:
            severity = "warning" if code.startswith("W") else "error"
        diag = Diagnostic(code, message, span, hint, severity, self.file)
        self.items.append(diag)
        return diag

    def extend(self, other: Iterable[Diagnostic]) -> None:
        for diag in other:
            diag.file = self.file
            self.items.append(diag)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        def key(d: Diagnostic) -> tuple:
            s = d.span
            return (s.line, s.col) if s else (0, 0)

        return sorted(self.items, key=key)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class TfspecError(Exception):
    """The base of every error the user's input causes (a spec, a file, an option's
    value, a model to serve): `tfspec` prints it and exits with status 1. Anything
    else that escapes a command is a bug in tfspec (status 2).

    A plain `TfspecError` is one line, printed as `{cli_prefix}{message}`;
    `SpecError` carries located diagnostics instead.
    """

    cli_prefix = "tfspec: error: "  # how the command line starts its line


class SpecError(TfspecError):
    """Raised when a spec cannot be used; carries its diagnostics."""

    def __init__(self, diagnostics: Diagnostics, source: str | None = None):
        self.diagnostics = diagnostics
        self.source = source
        first = next((d for d in diagnostics if d.is_error), None)
        super().__init__(render_one(first, source) if first else "invalid spec")

    def to_json(self) -> list[dict]:
        """The diagnostics as `--format json` prints them (a subclass may add fields)."""
        return [d.to_dict() for d in self.diagnostics]

    def preface(self) -> str:
        """Text the command line prints on stdout before the diagnostics ("" here; a
        subclass with partial results, such as `plan`'s, shows them)."""
        return ""

    def _repr_html_(self) -> str:
        """Jupyter shows the error as its diagnostics, each with its caret."""
        return render_html(self.diagnostics, self.source)


MAX_DIGITS = 100  # longer numbers are certainly mistakes (and slow to convert)


def number(text: str) -> int | float | None:
    """The value of a numeric literal, or None when it is out of range."""
    digits = text.lstrip("-")
    if digits.isdigit():
        return int(text) if len(digits) <= MAX_DIGITS else None
    value = float(text) if len(text) <= 2 * MAX_DIGITS else float("inf")
    return value if value not in (float("inf"), float("-inf")) else None


def _distance(a: str, b: str) -> int:
    """Edit distance counting a swap of neighbours as one edit (optimal string alignment)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant, or None when nothing is close."""
    pool = [c for c in candidates if c != name]
    if not pool:
        return None
    lowered = name.lower()
    for c in pool:
        if c.lower() == lowered:
            return c
    limit = max(1, min(3, len(name) // 3))
    # closest first; on a tie, the one written in the same case style ("adam" for "adma")
    scored = sorted(
        (_distance(lowered, c.lower()), c[:1].isupper() != name[:1].isupper(),
         -difflib.SequenceMatcher(None, lowered, c.lower()).ratio(), c)
        for c in pool if abs(len(c) - len(name)) <= limit
    )
    if scored and scored[0][0] <= limit:
        return scored[0][-1]
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.75)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str], string: bool = False) -> str | None:
    """A "did you mean …?" hint, or None. `string`: the names are string values."""
    best = closest(name, candidates)
    if best is None:
        return None
    return f'did you mean "{best}"?' if string else f"did you mean `{best}`?"


# -- rendering -----------------------------------------------------------------


def render_one(diag: Diagnostic, source: str | None) -> str:
    """`file:line:col: severity[CODE]: message`, then the source line and a caret."""
    span = diag.span
    where = f"{diag.file}:{span.line}:{span.col}" if span else diag.file
    lines = [f"{where}: {diag.severity}[{diag.code}]: {diag.message}"]
    if span and source is not None:
        # lines end at "\n" only, as the front ends count them (`str.splitlines` also
        # breaks at form feeds, U+2028 and other characters a spec may hold)
        src_lines = source.split("\n")
        if source.endswith("\n"):
            src_lines.pop()  # no line after the last line ending
        if 1 <= span.line <= len(src_lines):
            text = src_lines[span.line - 1].removesuffix("\r").expandtabs(1)
            gutter = str(span.line)
            pad = " " * len(gutter)
            if span.end_line == span.line:
                width = span.end_col - span.col
            else:  # a multi-line span: underline to the end of its first line
                width = len(text) - span.col + 1
            width = max(1, min(width, max(1, len(text) - span.col + 1)))
            lines.append(f"{pad} |")
            lines.append(f"{gutter} | {text}")
            lines.append(f"{pad} | {' ' * (span.col - 1)}{'^' * width}")
    if diag.hint:
        lines.append(f"  = hint: {diag.hint}")
    return "\n".join(lines)


def render_text(diags: Iterable[Diagnostic], source: str | None) -> str:
    return "\n\n".join(render_one(d, source) for d in diags)


# the colours of a diagnostic's first line in HTML, by severity
_HTML_COLOURS = {"error": "#c62828", "warning": "#b26a00"}


def render_html(diags: Iterable[Diagnostic], source: str | None) -> str:
    """`render_text` as HTML (for notebooks): each diagnostic a `<pre>` with the source
    line and its caret, its first line in the severity's colour."""
    blocks = []
    for d in diags:
        head, _, rest = render_one(d, source).partition("\n")
        colour = _HTML_COLOURS.get(d.severity, "inherit")
        blocks.append(f'<pre class="tfspec-diagnostic" style="margin:0 0 .6em 0">'
                      f'<b style="color:{colour}">{html.escape(head)}</b>'
                      + (f"\n{html.escape(rest)}" if rest else "") + "</pre>")
    return "".join(blocks)


def render_github(diags: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands: `::error file=…,line=…,col=…::message`."""

    def esc(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    out = []
    for d in diags:
        level = "error" if d.is_error else "warning"
        props = [f"file={d.file}"]
        if d.span:
            props += [
                f"line={d.span.line}",
                f"col={d.span.col}",
                f"endLine={d.span.end_line}",
                f"endColumn={d.span.end_col}",
            ]
        props.append(f"title={d.code}")
        msg = d.message + (f" ({d.hint})" if d.hint else "")
        out.append(f"::{level} {','.join(props)}::{esc(msg)}")
    return "\n".join(out)


def render_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diags], indent=2)
