"""Writes the program's export part from the spec's `export { … }`: a table of targets.

The program lists its targets (`EXPORTS`: format, path and options, each line mapped
to its target's spec line) and defines `export_all(model, run_dir, datasets)` and
`verify_exports(run_dir)`, which call `tfspec.runtime.export` and `.verify` with the
table and the spec's inputs and outputs. `export_all` writes every target, each
atomically, keeps a fixed batch with the Keras model's answers and records the
targets in `exports.json`; `verify_exports` loads each target in its own runtime and
compares, writing `verify.json`. The runner calls both after training; `tfspec
export` and `tfspec verify` call them on a finished run.

What is decided here, at compile time: each target's tolerance (`TOLERANCES`, the
mixed-precision floor) and whether the converted formats start from a float32 copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .pytext import Scope, py_string
from .writer import CodeWriter

if TYPE_CHECKING:
    from .model import Generator

# The largest output difference each target accepts unless its `tolerance` says
# otherwise, by format and quantization: float32 runtimes differ only by rounding;
# quantized ones by their precision. Documented in docs/export.md.
# Under mixed precision the Keras model itself computes in 16 bits: no export can
# come closer to it than that precision.
MIXED_TOLERANCES = {"mixed_bfloat16": 2e-2, "mixed_float16": 5e-3}
TOLERANCES: dict[tuple[str, str], float] = {
    ("saved_model", "none"): 1e-5,
    ("keras", "none"): 1e-6,
    ("tflite", "none"): 1e-4,
    ("tflite", "float16"): 1e-2,
    ("tflite", "dynamic"): 5e-2,
    ("tflite", "int8"): 1e-1,
    ("tfjs", "none"): 1e-4,
    ("tfjs", "float16"): 1e-2,
    ("tfjs", "uint16"): 1e-2,
    ("tfjs", "uint8"): 5e-2,
    ("onnx", "none"): 1e-4,
}

# A target's options in the table, in this order after its format and path (the
# runtime's defaults stand for the ones the spec leaves out; `tolerance` is always
# written, from TOLERANCES unless the spec sets it).
OPTIONS = ("version", "signature", "quantize", "integer_io", "representative_samples",
           "opset", "tolerance", "verify")


class ExportGenerator:
    """Writes the table of the spec's export targets, `export_all` and `verify_exports`."""

    def __init__(self, gen: Generator, targets: list[dict[str, Any]]):
        self.gen = gen
        self.targets = targets
        self.formats = {t["format"] for t in targets}
        self.scope = Scope(values={})
        policy = (gen.ir.get("train") or {}).get("mixed_precision", "float32")
        # a param or `--set` value cannot change the precision: it is a literal
        self.mixed = MIXED_TOLERANCES.get(policy) if isinstance(policy, str) else None

    @property
    def converted(self) -> bool:
        """Whether a target is converted from a serving SavedModel."""
        return bool(self.formats & {"tflite", "tfjs", "onnx"})

    @property
    def imports(self) -> set[str]:
        return {"runtime:export", "runtime:verify"}

    def tolerance(self, target: dict[str, Any]) -> float:
        """The target's tolerance when its spec sets none: by format and quantization,
        never finer than a mixed-precision model's own precision."""
        quantize = target.get("quantize", "none")
        key = (target["format"], quantize if isinstance(quantize, str) else "none")
        return max(TOLERANCES.get(key, 1e-4), self.mixed or 0.0)

    def items(self, index: int) -> list[str]:
        """The target's table entry as `"key": value` texts (a param's constant where
        the spec names one)."""
        target = self.targets[index]
        items = [f'"format": {py_string(target["format"])}', f'"path": {py_string(target["path"])}']
        for key in OPTIONS:
            if key in target:
                value = self.gen.value(target[key], f"/export/{index}/{key}", self.scope)
            elif key == "tolerance":
                value = self.gen.literal(self.tolerance(target))
            else:
                continue
            items.append(f"{py_string(key)}: {value}")
        return items

    def emit(self, w: CodeWriter) -> None:
        w.blank(2)
        w.line("# The spec's export targets: `export_all` writes them, `verify_exports` "
               "checks them.")
        w.line("EXPORTS = [", self.gen.span("/export"))
        with w.indented():
            for i in range(len(self.targets)):
                for line in _packed("{", self.items(i), "},", w.width):
                    w.line(line, self.gen.span(f"/export/{i}"))
        w.line("]", self.gen.span("/export"))
        name = self.gen.ir.get("name") or self.gen.ir["model"]["name"]
        args = ["model", "run_dir", "datasets", "EXPORTS", "INPUTS", "OUTPUTS",
                f"name={py_string(name)}", "spec_dir=SPEC_DIR"]
        if self.mixed and self.converted:
            args.append("rebuild=build_model")  # converted from a float32 copy
        w.blank(2)
        w.line("def export_all(model, run_dir, datasets):", self.gen.span("/export"))
        with w.indented():
            w.line('"""Write the export targets, and the batch `verify_exports` checks them on."""')
            for line in _packed("return export.export_all(", args, ")", w.width):
                w.line(line, self.gen.span("/export"))
        w.blank(2)
        w.line("def verify_exports(run_dir):", self.gen.span("/export"))
        with w.indented():
            w.line('"""Run each export in its own runtime and compare it with the Keras model."""')
            w.line("return verify.verify_exports(run_dir, OUTPUTS)", self.gen.span("/export"))


def _packed(head: str, items: list[str], tail: str, width: int) -> list[str]:
    """`head`, the `items` separated by commas, then `tail`, on as few lines of `width`
    as they fit in, continued under the first item."""
    lines = [head]
    for k, item in enumerate(items):
        piece = item + (tail if k == len(items) - 1 else ",")
        if lines[-1] == head:
            lines[-1] += piece
        elif len(lines[-1]) + 1 + len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(" " * len(head) + piece)
    return lines
