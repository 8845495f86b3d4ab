"""How quickly `tfspec lsp` answers, through the real server over stdio.

On a generated 200-layer spec (a functional chain of Dense layers), measured
from the client (pygls's LanguageClient) to the server process and back:

- diagnostics after an edit: from sending didChange (one character changed) to
  receiving its publishDiagnostics;
- completion (keyword arguments inside a call; every layer at a statement's start)
  and hover (on a layer name).

Printed as medians with a same-run baseline: `tfspec.validate_text` of the same
text in this process (what any diagnostics must cost at least). Targets (issue
13): diagnostics < 30 ms, completion and hover < 20 ms.

Shapes (needs TensorFlow): on examples/resnet_blocks.tfspec, from didOpen on a
fresh server (no shape worker yet) until its inlay hints are there (cold), and
from a didChange (`width` 16 <-> 8) until the new text's hints are there (the
worker warm); against `import tensorflow` in a fresh interpreter, this run. Targets:
warm < 300 ms, cold < import tensorflow + 1 s.

    .venv/bin/python benchmarks/lsp_latency.py [--layers 200] [--runs 40] [--shape-runs 20]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
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


def import_tensorflow() -> float:
    """Seconds `import tensorflow` takes in a fresh interpreter (the cold baseline)."""
    code = "import time; t = time.perf_counter(); import tensorflow; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def hints_after(s: Session, uri: str, since: float, timeout: float = 300,
                poll: float = 0.005) -> float:
    """Seconds from `since` until the document's current text has inlay hints."""
    everything = T.Range(T.Position(0, 0), T.Position(10_000, 0))
    doc = T.TextDocumentIdentifier(uri=uri)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if s.call("inlay_hint", T.InlayHintParams(text_document=doc, range=everything)):
            return time.perf_counter() - since
        time.sleep(poll)
    raise TimeoutError("no shapes")


def gone(s: Session, timeout: float = 30) -> None:
    """Wait until the session's shape workers have exited (TensorFlow's teardown takes
    a core for a while: the next measurement should not share the machine with it)."""
    pids = [int(m) for log in s.logs for m in re.findall(r"\(pid (\d+)", log.message)]
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def shapes(runs: int, colds: int = 3) -> None:
    """Shapes of examples/resnet_blocks.tfspec: cold (fresh servers), then warm edits."""
    path = ROOT / "examples" / "resnet_blocks.tfspec"
    text, uri = path.read_text(), path.as_uri()
    baseline, cold, ready = [], [], []
    for _ in range(colds):  # interleaved, so that both see the same machine load
        baseline.append(import_tensorflow())
        s = Session()
        try:
            start = time.perf_counter()
            s.open(uri, text)
            cold.append(hints_after(s, uri, start, poll=0.02))
            ready += [float(m) for log in s.logs
                      for m in re.findall(r"ready in ([\d.]+) s", log.message)]
        finally:
            s.shutdown()
        gone(s)
    s = Session()
    try:
        s.open(uri, text)
        hints_after(s, uri, time.perf_counter())
        warm = []
        for i in range(runs):
            time.sleep(0.3)  # a pause between edits
            new = text.replace("param width = 16", "param width = 8") if i % 2 == 0 else text
            start = time.perf_counter()
            s.replace(uri, new)
            warm.append(hints_after(s, uri, start))
    finally:
        s.shutdown()
    base, first = statistics.median(baseline), statistics.median(cold)
    print(f"import tensorflow (fresh interpreter, median)    {base * 1000:7.0f} ms")
    print(f"shapes, cold start (didOpen -> hints, median)    {first * 1000:7.0f} ms  "
          f"(import tensorflow + {(first - base) * 1000:.0f} ms; target: + 1000 ms; "
          f"worker ready after {statistics.median(ready) * 1000:.0f} ms)")
    print(f"shapes, worker warm (didChange -> hints, median) {ms(warm):7.0f} ms  "
          f"({ms(warm) / (base * 1000):.3f}x import tensorflow; target < 300 ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=200)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--shape-runs", type=int, default=20,
                    help="edits of resnet_blocks timed for shapes (0: no shapes part)")
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
        comp, body, hov = [], [], []
        body_pos = T.Position(line=line, character=2)  # a statement's start: every layer
        args_pos = T.Position(line=line, character=text.split("\n")[line].index("(") + 1)
        name_pos = T.Position(line=line, character=text.split("\n")[line].index("Dense") + 2)
        for _ in range(args.runs):
            start = time.perf_counter()
            s.call("completion", T.CompletionParams(text_document=doc, position=args_pos))
            comp.append(time.perf_counter() - start)
            start = time.perf_counter()
            s.call("completion", T.CompletionParams(text_document=doc, position=body_pos))
            body.append(time.perf_counter() - start)
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
    print(f"completion, layers (median)         {ms(body):7.1f} ms  "
          f"({ms(body) / b:.2f}x baseline; target < 20 ms)")
    print(f"hover (median)                      {ms(hov):7.1f} ms  "
          f"({ms(hov) / b:.2f}x baseline; target < 20 ms)")
    if args.shape_runs:
        shapes(args.shape_runs)


if __name__ == "__main__":
    main()
