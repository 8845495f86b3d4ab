"""How quickly `tfspec lsp` answers, through the real server over stdio.

On a generated 200-layer spec (a functional chain of Dense layers), measured
from the client (pygls's LanguageClient) to the server process and back:

- diagnostics after an edit: from sending didChange (one character changed) to
  receiving its publishDiagnostics;
- completion (keyword arguments inside a call) and hover (on a layer name).

Printed as medians with a same-run baseline: `tfspec.validate_text` of the same
text in this process (what any diagnostics must cost at least). Targets (issue
13): diagnostics < 30 ms, completion and hover < 20 ms.

    .venv/bin/python benchmarks/lsp_latency.py [--layers 200] [--runs 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as T

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lsp.harness import Session  # noqa: E402

import tfspec  # noqa: E402


def spec(layers: int) -> str:
    lines = ["tfspec 1", 'name "big"', "param width = 32", "", "model Big functional {",
             "  input x: float32[16]"]
    prev = "x"
    for i in range(layers):
        lines.append(f'  h{i} = Dense(width, activation = "relu")({prev})')
        prev = f"h{i}"
    lines += [f"  output y = Dense(1)({prev})", "}", "", "data {",
              '  source = npz("d.npz", x = "x", y = "y")', "  batch = 32", "}", "",
              "train {", "  optimizer = Adam(learning_rate = 0.001)", '  loss = "mse"',
              "  epochs = 2", "}"]
    return "\n".join(lines) + "\n"


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=200)
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    text = spec(args.layers)

    base = []
    for _ in range(args.runs):
        start = time.perf_counter()
        tfspec.validate_text(text, "big.tfspec")
        base.append(time.perf_counter() - start)

    s = Session()
    try:
        uri = "untitled:/big.tfspec"
        s.open(uri, text)
        s.wait_diagnostics(uri, 1)
        line = 6 + args.layers // 2  # a layer in the middle: `  hN = Dense(width, …`
        diag = []
        width_col = text.split("\n")[line].index("width")
        for i in range(args.runs):
            # toggle one character of the layer's arguments: `width` <-> `widtj`
            new = "j" if i % 2 == 0 else "h"
            rng = T.Range(start=T.Position(line=line, character=width_col + 4),
                          end=T.Position(line=line, character=width_col + 5))
            time.sleep(0.15)  # a pause between keystrokes, as when typing
            sent = time.perf_counter()
            v = s.edit(uri, rng, new)
            diag.append(s.published_at(uri, v) - sent)
        doc = T.TextDocumentIdentifier(uri=uri)
        comp, hov = [], []
        args_pos = T.Position(line=line, character=text.split("\n")[line].index("(") + 1)
        name_pos = T.Position(line=line, character=text.split("\n")[line].index("Dense") + 2)
        for _ in range(args.runs):
            start = time.perf_counter()
            s.call("completion", T.CompletionParams(text_document=doc, position=args_pos))
            comp.append(time.perf_counter() - start)
            start = time.perf_counter()
            s.call("hover", T.HoverParams(text_document=doc, position=name_pos))
            hov.append(time.perf_counter() - start)
    finally:
        s.shutdown()

    b = ms(base)
    print(f"spec: {args.layers} layers, {len(text.splitlines())} lines; {args.runs} runs each")
    print(f"baseline validate_text in-process   {b:7.1f} ms")
    print(f"diagnostics after an edit (median)  {ms(diag):7.1f} ms  "
          f"({ms(diag) / b:.2f}x baseline; target < 30 ms)")
    print(f"completion (median)                 {ms(comp):7.1f} ms  "
          f"({ms(comp) / b:.2f}x baseline; target < 20 ms)")
    print(f"hover (median)                      {ms(hov):7.1f} ms  "
          f"({ms(hov) / b:.2f}x baseline; target < 20 ms)")


if __name__ == "__main__":
    main()
