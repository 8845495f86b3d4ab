"""Shapes in the editor, through a real client: pygls's LanguageClient talking to
`python -m tfspec lsp` over stdio, whose shape worker builds the models with Keras.

The inlay hints of every example are checked against the model the test builds
itself (`tfspec.jobs.build.build_model`) and reads by Keras's layer names — the
generator's naming rules, not the worker's traced locals. Then what an editor does
to the service: quick edits (never a stale hint or diagnostic), a document closed
while its shapes are computed, the worker killed, a shape error in a sequential and
a functional model (compile --check's text at the layer), and a server without
TensorFlow (one message, everything else works). One server for the module.
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from lsp.harness import ROOT, Session, uri_of
from lsprotocol import types as T
from test_shapes import LSTM_AFTER_DENSE

from tfspec.lang.validate import validate_file

EXAMPLES = sorted((ROOT / "examples").glob("*.tfspec"))
EVERYTHING = T.Range(T.Position(0, 0), T.Position(100_000, 0))
WAIT = 180  # seconds: a cold worker imports TensorFlow on a busy 2-core machine


@pytest.fixture(scope="module")
def lsp():
    caps = T.ClientCapabilities(workspace=T.WorkspaceClientCapabilities(
        inlay_hint=T.InlayHintWorkspaceClientCapabilities(refresh_support=True)))
    session = Session(capabilities=caps)
    session.refreshes = []  # type: ignore[attr-defined]

    @session.client.feature(T.WORKSPACE_INLAY_HINT_REFRESH)
    def refresh(params: Any) -> None:
        session.refreshes.append(time.perf_counter())  # type: ignore[attr-defined]

    # a first spec starts the worker: its TensorFlow import overlaps the test's own
    session.open("untitled:/warm.tfspec", _deep_spec(1))
    yield session
    assert session.errors() == [], session.errors()
    assert session.shutdown() == 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder beside which specs find examples' data (and iris_mlp's saved model)."""
    path = tmp_path_factory.mktemp("shapes")
    (path / "data").symlink_to(ROOT / "examples" / "data")
    return path


def hints(lsp: Session, uri: str) -> list[T.InlayHint]:
    return lsp.call("inlay_hint", T.InlayHintParams(T.TextDocumentIdentifier(uri), EVERYTHING))


def wait_hints(lsp: Session, uri: str, timeout: float = WAIT) -> list[T.InlayHint]:
    """The inlay hints once the shapes of the document's current text are in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = hints(lsp, uri)
        if got:
            return got
        time.sleep(0.05)
    raise TimeoutError(f"no shapes for {uri}; server log: {[m.message for m in lsp.logs]}")


def by_position(items: list[T.InlayHint]) -> dict[tuple[int, int], str]:
    return {(h.position.line, h.position.character): str(h.label) for h in items}


def worker_pids(lsp: Session) -> list[int]:
    return [int(m) for log in lsp.logs
            for m in re.findall(r"shape worker started \(pid (\d+)", log.message)]


# -- the expected hints, from the model the test builds ---------------------------------------


def _count(weights: list[Any]) -> int:
    return sum(math.prod(w.shape) for w in {id(w): w for w in weights}.values())


def _shape(tensor: Any) -> tuple:
    return tuple(tensor.shape)


def _label(uses: list[tuple[Any, int]]) -> str:
    """docs/lsp.md's rule: each use's shape once, in use order, `|` between; the
    parameters as one count, or the range over the uses."""
    shapes: list[str] = []
    for shape, _ in uses:
        text = "?" if shape is None else repr(shape)
        if shape is not None and text not in shapes:
            shapes.append(text)
    parts = [" | ".join(shapes)] if shapes else []
    counts = [p for _, p in uses]
    if any(counts):
        low, high = min(counts), max(counts)
        parts.append(f"{high:,} param{'s' * (high != 1)}" if low == high
                     else f"{low:,}–{high:,} params")
    return "→ " + ", ".join(parts)


def expected(path: Path) -> tuple[dict[tuple[int, int], str], str]:
    """{hint position: label} for the spec's statements, and the model total's label,
    read from the Keras model by its layers' names."""
    from tfspec.codegen.program import compile_file
    from tfspec.inspect.plan import functional_twin
    from tfspec.jobs.build import build_model

    compiled = compile_file(path)
    ir, positions = compiled.ir, compiled.positions
    model = build_model(compiled)
    kind = ir["model"]["kind"]
    detail = functional_twin(compiled, {}) if kind == "subclass" else compiled
    net = build_model(detail) if kind == "subclass" else model
    layers = {layer.name: layer for layer in net.layers}
    blocks = {b["name"]: i for i, b in enumerate(ir.get("blocks") or [])}
    infos = detail.layers
    out: dict[str, list[tuple[Any, int]]] = {}

    def statement_params(prefix: str, use: str | None = None) -> int:
        """Weights of the layers constructed under `prefix` (in block use `use`)."""
        total = 0
        for info in infos:
            if not info.at.startswith(prefix + "/"):
                continue
            name = info.name if use is None else (f"{use}_{info.name}" if info.name else use)
            if info.cls in blocks:  # a block use: all of its layers
                total += sum(layer.count_params() for layer in use_layers(info.cls, name))
            else:
                total += layers[name].count_params()
        return total

    def use_layers(block: str, use: str) -> list[Any]:
        suffixes = {i.name for i in infos if i.at.startswith(f"/blocks/{blocks[block]}/")}
        return [layers[f"{use}_{s}" if s else use] for s in suffixes]

    body = ir["model"]["body"]
    named = {s["layer"]: s for s in body if "layer" in s}
    stmts = {s.get("input", s.get("node", s.get("output"))): s for s in body
             if "layer" not in s and ("value" in s or "input" in s)}

    def user_name(call: dict[str, Any]) -> str | None:
        name = (call.get("kwargs") or {}).get("name")
        return name if isinstance(name, str) else None

    def tensor(name: str) -> Any:
        stmt = stmts[name]
        if "input" in stmt:
            return layers[name].output
        value = stmt["value"]
        if "ref" in value:
            return tensor(value["ref"])
        if "pipe" in value:  # its last stage: a construction, or a named layer's name
            last = value["pipe"][-1]
            callee, construction = last.get("ref"), last
        else:  # `Dense(10)(x)`, `shared(x)`, `add([a, b])`
            callee = value["call"] if isinstance(value["call"], str) else None
            construction = value["call"] if callee is None else value
        if callee in named:  # a shared layer: its call on this statement's input
            shared = layers[user_name(named[callee]["value"]) or callee]
            arg = value["pipe"][-2] if "pipe" in value else value["args"][0]
            source = tensor(arg["ref"])
            return next(n.outputs[0] for n in shared._inbound_nodes
                        if n.input_tensors[0] is source)
        return layers[user_name(construction) or name].output

    if kind == "sequential":
        for i, stmt in enumerate(body):
            at = f"/model/body/{i}"
            if "input" in stmt:
                out[at] = [(_shape(model.inputs[0]), 0)]
            else:
                layer = model.get_layer(next(x.name for x in infos if x.at == f"{at}/add"))
                out[at] = [(_shape(layer.output), layer.count_params())]
    else:
        for i, stmt in enumerate(body):
            at = f"/model/body/{i}"
            if "layer" in stmt:
                out[at] = [(None, statement_params(at))]
            elif "value" in stmt or "input" in stmt:
                name = stmt.get("input", stmt.get("node", stmt.get("output")))
                out[at] = [(_shape(tensor(name)), statement_params(at))]
        for block, k in blocks.items():
            uses = [i.name for i in infos if i.cls == block and i.at.startswith("/model/")]
            for j, stmt in enumerate(ir["blocks"][k]["body"]):
                at = f"/blocks/{k}/body/{j}"
                per_use = []
                for use in uses:
                    if "input" in stmt:  # what the use's layers take from outside it
                        own = {id(x) for x in use_layers(block, use)}
                        ins = {_shape(t) for x in use_layers(block, use)
                               for n in x._inbound_nodes for t in n.input_tensors
                               if id(t._keras_history.operation) not in own}
                        assert len(ins) == 1, (use, ins)
                        shape = ins.pop()
                    elif "output" in stmt:
                        shape = _shape(layers[use].output)
                    else:
                        shape = _shape(layers[f"{use}_{stmt['node']}"].output)
                    per_use.append((shape, statement_params(at, use)))
                if per_use:
                    out[at] = per_use
    for info in infos:  # data.preprocess layers with weights (Normalization)
        if info.at.startswith("/data/preprocess/") and layers.get(info.name) is not None:
            if layers[info.name].count_params():
                out[info.at] = [(None, layers[info.name].count_params())]
    want = {}
    for at, uses in out.items():
        span = positions.value(at)
        want[(span.end_line - 1, span.end_col - 1)] = _label(uses)
    total = model.count_params()
    trainable = _count(model.trainable_weights)
    header = f"{total:,} params" + (f" ({trainable:,} trainable)" if trainable != total else "")
    return want, header


@pytest.fixture(scope="module")
def iris_model(folder: Path) -> Path:
    """iris_finetune loads iris_mlp's `.keras` model: an untrained one, saved here."""
    from tfspec.codegen.program import compile_file
    from tfspec.jobs.build import build_model

    saved = folder / "runs" / "iris" / "model.keras"
    saved.parent.mkdir(parents=True)
    build_model(compile_file(ROOT / "examples" / "iris_mlp.tfspec")).save(saved)
    return saved


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_inlay_hints_are_the_shapes_keras_reports(lsp, folder, iris_model, example):
    path = folder / example.name  # a copy beside the data (and iris_mlp's model)
    path.write_text(example.read_text())
    uri = uri_of(path)
    lsp.open(uri, path.read_text())
    got = wait_hints(lsp, uri)
    want, total = expected(path)
    lines = path.read_text().splitlines()
    header = validate_file(path).positions.value("/model/name").line - 1
    totals = [h for h in got if h.position.line == header
              and h.position.character == len(lines[header])]
    assert [str(h.label) for h in totals] == [total]
    assert by_position([h for h in got if h not in totals]) == want
    assert list(lsp.wait_diagnostics(uri, 1)) == []
    lsp.close(uri)


# -- what editing does to the shapes ------------------------------------------------------------


RESNET = (ROOT / "examples" / "resnet_blocks.tfspec").read_text()


def test_quick_edits_never_show_a_stale_shape(lsp, folder):
    path = folder / "quick.tfspec"
    path.write_text(RESNET)
    uri = uri_of(path)
    lsp.open(uri, RESNET)
    wait_hints(lsp, uri)
    lsp.replace(uri, RESNET.replace("param width = 16", "param width = 8"))
    newest = RESNET.replace("param width = 16", "param width = 4")
    lsp.replace(uri, newest)
    seen = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:  # every answer from here on is the newest text's
        got = hints(lsp, uri)
        seen.append(by_position(got))
        if got:
            break
        time.sleep(0.02)
    path.write_text(newest)
    want, _ = expected(path)
    assert [s for s in seen if s and not set(want.items()) <= set(s.items())] == []
    assert seen[-1], "no shapes for the newest text"
    assert "(None, 4, 4, 8)" in " ".join(seen[-1].values())
    lsp.close(uri)


SEQUENTIAL_ERROR = LSTM_AFTER_DENSE  # validate --shapes' case, in the editor

FUNCTIONAL_ERROR = """tfspec 1
block Pair(units) {
  input x
  a = Dense(units)(x)
  output y = Add()([a, x])
}
model Bad functional {
  input x: float32[8]
  h = x |> Pair(8)
  g = h |> Pair(4)
  output y = Dense(1)(g)
}
"""


def _wait_for(lsp: Session, uri: str, version: int, code: str) -> list[T.Diagnostic]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for v, items, _ in reversed(lsp.diagnostics.get(uri, [])):
            if v == version and any(d.code == code for d in items):
                return items
        time.sleep(0.05)
    raise TimeoutError(f"no {code} for {uri} version {version}")


@pytest.mark.parametrize("text", [SEQUENTIAL_ERROR, FUNCTIONAL_ERROR],
                         ids=["sequential", "functional"])
def test_a_shape_error_is_a_diagnostic_at_the_layer(lsp, folder, text):
    path = folder / f"error_{len(text)}.tfspec"
    path.write_text(text)
    uri = uri_of(path)
    lsp.open(uri, text)
    diags = _wait_for(lsp, uri, 1, "E500")
    # what `compile --check` says, where it says it
    want = [d for d in _compile_check(path) if d["code"] == "E500"]
    assert [(d.range.start.line + 1, d.range.start.character + 1, d.message) for d in diags
            if d.code == "E500"] == [(w["line"], w["col"], w["message"] + "\nhint: " + w["hint"])
                                     for w in want]
    # the layers before the failing one still show their shapes
    assert any("(None, " in str(h.label) for h in hints(lsp, uri))
    # fixed: the E500 goes with the text that had it
    fixed = text.replace("LSTM(4)", "Dense(4)").replace("Pair(4)", "Pair(8)")
    version = lsp.replace(uri, fixed)
    wait_hints(lsp, uri)
    assert [d for d in lsp.wait_diagnostics(uri, version) if d.code == "E500"] == []
    assert all(v == 1 for v, items, _ in lsp.diagnostics[uri]
               if any(d.code == "E500" for d in items))
    lsp.close(uri)


def _compile_check(path: Path) -> list[dict[str, Any]]:
    """The diagnostics of `compile --check`: the program's model, built."""
    from tfspec.codegen.program import compile_file
    from tfspec.jobs.build import BuildError, build_model

    with pytest.raises(BuildError) as error:
        build_model(compile_file(path))
    return [d.to_dict() for d in error.value.diagnostics]


def _deep_spec(layers: int) -> str:
    """A sequential spec of many small layers: seconds for Keras to build."""
    body = "\n".join("  Dense(8)" for _ in range(layers))
    return f"tfspec 1\nmodel Deep sequential {{\n  input x: float32[8]\n{body}\n}}\n"


def test_a_document_closed_while_its_shapes_compute(lsp, folder):
    path = folder / "closed.tfspec"
    uri = uri_of(path)
    lsp.open(uri, _deep_spec(150))
    lsp.wait_diagnostics(uri, 1)  # checked: its shapes are being computed now
    lsp.close(uri)
    # the worker takes one text at a time: once the next one's shapes are in, the
    # closed one's answer has come back and been dropped
    other = uri_of(folder / "after_close.tfspec")
    lsp.open(other, _deep_spec(2))
    wait_hints(lsp, other)
    published = lsp.diagnostics[uri]
    assert list(published[-1][1]) == [] and published[-1][0] is None, published  # the close's
    assert list(hints(lsp, uri)) == []
    assert lsp.alive
    lsp.close(other)


def test_a_killed_worker_is_started_again(lsp, folder):
    path = folder / "killed.tfspec"
    uri = uri_of(path)
    lsp.open(uri, _deep_spec(3))
    wait_hints(lsp, uri)
    before = worker_pids(lsp)
    os.kill(before[-1], signal.SIGKILL)
    lsp.replace(uri, _deep_spec(4))  # an edit the dead worker cannot answer
    got = wait_hints(lsp, uri)
    assert len(got) == 6  # the input, 4 layers, the total
    assert len(worker_pids(lsp)) == len(before) + 1
    assert lsp.alive
    lsp.close(uri)


def test_hover_on_a_node_shows_its_shape(lsp, folder):
    path = folder / "hover.tfspec"
    path.write_text(RESNET)
    uri = uri_of(path)
    lsp.open(uri, RESNET)
    wait_hints(lsp, uri)
    line = RESNET.splitlines().index("  output digit = x |> GlobalAveragePooling2D() |> "
                                     "Dense(10, activation = \"softmax\")")
    hover = lsp.call("hover", T.HoverParams(T.TextDocumentIdentifier(uri),
                                            T.Position(line, len("  output di"))))
    assert "(None, 10), 330 params" in hover.contents.value
    lsp.close(uri)


# -- without TensorFlow -------------------------------------------------------------------------


def test_without_tensorflow_the_server_says_so_once(tmp_path):
    # TensorFlow and Keras "not installed": None in sys.modules makes find_spec say so
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['tensorflow'] = None\nsys.modules['keras'] = None\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path),
                                                       os.environ.get("PYTHONPATH")]))}
    session = Session(env=env)
    try:
        for i, example in enumerate(EXAMPLES[:3]):
            uri = uri_of(tmp_path / f"light{i}.tfspec")
            session.open(uri, example.read_text())
            assert list(session.wait_diagnostics(uri, 1)) == []  # the checker works
            assert list(hints(session, uri)) == []
        told = [m.message for m in session.logs if 'pip install "tfspec[tf]"' in m.message]
        assert len(told) == 1, session.logs
        assert worker_pids(session) == []
        assert session.errors() == []
    finally:
        assert session.shutdown() == 0


def test_shapes_can_be_turned_off(tmp_path):
    """`initializationOptions: {"shapes": false}` (VS Code: `tfspec.shapes.enabled`):
    no worker is started and no hint is given; the checker works as ever."""
    session = Session(initialization_options={"shapes": False})
    try:
        uri = uri_of(tmp_path / "off.tfspec")
        session.open(uri, EXAMPLES[0].read_text())
        assert list(session.wait_diagnostics(uri, 1)) == []
        time.sleep(1.0)  # a worker starts at once (ready only after TensorFlow's import)
        assert list(hints(session, uri)) == []
        server = session.process.pid
        children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
        assert children == []  # no worker process
        assert session.errors() == []
    finally:
        assert session.shutdown() == 0
