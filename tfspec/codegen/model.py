"""The model generator: a checked spec's `model` and `blocks` -> `build_model()` (Python text).

`Generator` holds what every part of the program shares (the spec, its params as
constants, how a spec value is written as Python, the layers made and where the
spec asked for them) and writes the model. Each model kind has its own method
(`model_sequential`, `model_functional`, `model_subclass`), chosen by name rather
than by an `if` ladder; the layer-by-layer dataflow is shared by `_Body`, which
either writes layers inline (functional code) or as attributes built in `__init__`
and used in `call` (subclassed code). The data, train and export generators take a
`Generator`; `program.py` puts them all together.

Importing this module never imports TensorFlow: generating code is text work.
"""

from __future__ import annotations

import keyword
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lang import catalog, transfer
from ..lang.diagnostics import Span
from ..lang.ir import OUTPUTS, declared, escape, statement_kind
from ..lang.validate import Result
from .pytext import Scope, call_text, fresh_name, identifier, py_string
from .writer import INDENT, CodeWriter

INDENT_WIDTH = len(INDENT)
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3}
# `load_model(…)` in a spec: the runtime's function that loads a `.keras` model as a layer
LOAD_MODEL_CALL = "transfer.load_keras_model"


@dataclass
class LayerInfo:
    """One Keras layer the program creates, and where the spec asked for it."""

    name: str
    cls: str
    at: str  # JSON pointer of the construction in the IR
    node: str | None = None  # the spec node it computes (or is part of)
    block: str | None = None  # the block it belongs to (a block use: the use's name)
    # inside a block's function the real name is `<use name>_<name>` (or the use's
    # name itself for the block's output layer, recorded as name "")
    template: bool = False


# -- the generator -------------------------------------------------------------------------


class Generator:
    def __init__(self, result: Result):
        self.result = result
        self.ir = result.ir or {}
        self.pos = result.positions
        self.w = CodeWriter()
        self.layers: list[LayerInfo] = []
        # the params' values, with `--set` overrides (already type-checked)
        self.params = {**(self.ir.get("params") or {}), **result.overrides}
        params = self.params
        self.consts: dict[str, str] = {}
        taken: set[str] = set()
        for name in params:
            const = re.sub(r"\W", "_", name).upper()
            while const in taken or keyword.iskeyword(const):
                const += "_"
            taken.add(const)
            self.consts[name] = const
        self.blocks = {b["name"]: b for b in self.ir.get("blocks") or []}
        self.spec_dir = Path(".")  # the spec's folder, seen from the program's
        self.spec_files = False  # whether the model loads files (it needs SPEC_DIR then)
        self.imports: set[str] = set()  # what the model's code imports ("runtime:transfer")
        # the package the program imports the shared machinery from: "runtime:<module>"
        # in a generator's imports becomes `from tfspec.runtime import <module>`
        self.runtime = "tfspec.runtime"
        self.runtime_modules: list[str] = []  # the runtime modules the program imports
        # statement pointer -> (generated function, its local variable holding the
        # statement's tensor), for functional code: where `tfspec lsp` reads shapes from
        self.bindings: dict[str, tuple[str, str]] = {}

    def span(self, at: str) -> Span | None:
        return self.pos.value(at)

    def where(self, at: str) -> str:
        span = self.span(at)
        return f"{self.result.file}:{span.line}" if span else self.result.file

    def exports(self) -> list[dict[str, Any]]:
        """The spec's export targets (none without a `train` section: nothing to export)."""
        targets = self.ir.get("export")
        return targets if isinstance(targets, list) and isinstance(
            self.ir.get("train"), dict) else []

    def data_by_epoch(self) -> bool:
        """Whether the training data is a function of (seed, epoch): shuffled or
        augmented with a seed (see DataGenerator.pipeline and BatchSeeds)."""
        data = self.ir.get("data") or {}
        seeded = "seed" in data or "seed" in (data.get("split") or {})
        return seeded and (data.get("shuffle", True) is not False or bool(data.get("augment")))

    def losses(self) -> str | None:
        """`{"output": "loss_name"}` for the spec's losses, as Python text."""
        loss = (self.ir.get("train") or {}).get("loss")
        if loss is None:
            return None
        outputs = self.model_names("outputs")

        def name(v: Any) -> str:
            if isinstance(v, dict) and isinstance(v.get("call"), str):
                return catalog.snake_case(v["call"])
            return v if isinstance(v, str) else "loss"

        if isinstance(loss, dict) and "call" not in loss and "ref" not in loss:
            table = {k: name(v) for k, v in loss.items()}
        else:
            table = {o: name(loss) for o in outputs}
        return "{" + ", ".join(f"{py_string(k)}: {py_string(v)}" for k, v in table.items()) + "}"

    def model_names(self, side: str) -> list[str]:
        """The model's input or output names, as Keras will know them."""
        model = self.ir.get("model") or {}
        body = model.get("body", [])
        if side == "inputs":
            return declared(body, "input")
        if model.get("kind") == "sequential":
            last = [info.name for info in self.layers if info.at.startswith("/model/")]
            return last[-1:] or ["output"]
        return declared(body, *OUTPUTS)

    # -- values ------------------------------------------------------------------------------

    def literal(self, v: Any) -> str:
        if v is None:
            return "None"
        if v is True or v is False:
            return str(v)
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return py_string(v)
        if isinstance(v, list):
            return "[" + ", ".join(self.literal(x) for x in v) + "]"
        raise ValueError(f"not a literal: {v!r}")

    def value(self, v: Any, at: str, scope: Scope, param: dict | None = None,
              prec: int = 0, right: bool = False, owner: str = "") -> str:
        """A Python expression for a spec value (a constructor argument: `param` of
        the catalog's `owner`, when known)."""
        if isinstance(v, dict):
            if "ref" in v:
                name = v["ref"]
                return scope.values.get(name) or self.consts[name]
            if "op" in v:
                op, args = v["op"], v["args"]
                p = _PRECEDENCE[op]
                if op == "neg":
                    text = "-" + self.value(args[0], f"{at}/args/0", scope, prec=p)
                else:
                    left = self.value(args[0], f"{at}/args/0", scope, prec=p)
                    rhs = self.value(args[1], f"{at}/args/1", scope, prec=p, right=True)
                    text = f"{left} {op} {rhs}"
                return f"({text})" if p < prec or (right and p == prec) else text
            if "call" in v:
                # the checker's category for it (so a valid spec's calls build as checked)
                kind = catalog.argument_category(owner, param, v)
                # nested in another call: break it early, the caller indents it
                return self.construct(v, at, kind or "layers", scope, budget=60)
        if isinstance(v, list):
            return "[" + ", ".join(
                self.value(x, f"{at}/{i}", scope, param, owner=owner)
                for i, x in enumerate(v)) + "]"
        if param is not None and param.get("float") and isinstance(v, int) and not isinstance(
                v, bool):
            return repr(float(v))  # Keras rejects ints for some rates (`learning_rate=1`)
        return self.literal(v)

    def arguments(self, call: dict[str, Any], at: str, category: str,
                  scope: Scope) -> tuple[str, list[str]]:
        """The canonical Keras name of `call` and its Python argument list."""
        entry = catalog.lookup(category, call["call"]) or (
            transfer.lookup(call["call"]) if category == "layers" else None) or {}
        name = entry.get("name") or call["call"]
        loads = category == "layers" and name in transfer.PATH_ARG
        params = [p for p in entry.get("params", []) if p.get("positional", True)]
        by_name = {p["name"]: p for p in entry.get("params", [])}
        by_name.update({p["name"]: p for p in catalog.base_kwargs(category)})
        out = []
        for i, arg in enumerate(call.get("args", [])):
            param = params[i] if i < len(params) else None
            text = self.value(arg, f"{at}/args/{i}", scope, param, owner=name)
            out.append(self.spec_path(name, arg, text) if loads and i == 0 else text)
        for key, arg in call.get("kwargs", {}).items():
            kat = f"{at}/kwargs/{escape(key)}"
            text = self.value(arg, kat, scope, by_name.get(key), owner=name)
            if loads and key == transfer.PATH_ARG[name]:
                text = self.spec_path(name, arg, text)
            out.append(f"{key}={text}")
        return name, out

    def spec_path(self, callee: str, arg: Any, text: str) -> str:
        """The file a layer loads, found from the spec's folder (absolute paths stay)."""
        if isinstance(arg, str) and os.path.isabs(arg):
            return text
        self.spec_files = True
        # TFSMLayer keeps the path in its config, which must stay a JSON string
        return f"str(SPEC_DIR / {text})" if callee == "TFSMLayer" else f"SPEC_DIR / {text}"

    def construct(self, call: dict[str, Any], at: str, category: str, scope: Scope,
                  extra: list[str] | None = None, budget: int = 80) -> str:
        """`keras.<module>.<Class>(args)` for a constructor call in the spec."""
        name, args = self.arguments(call, at, category, scope)
        head = f"{catalog.NAMESPACES[category]}.{name}"
        if category == "layers" and name == transfer.LOAD_MODEL:
            head = LOAD_MODEL_CALL
            self.imports.add("runtime:transfer")
        return call_text(head, args + (extra or []), budget)

    # -- models --------------------------------------------------------------------------------

    def shape_text(self, shape: list[Any]) -> str:
        """An input's shape as a Python tuple; a dimension that names a param is its
        constant (`(SEQ_LEN,)`), so `--set` and the program's readers agree."""
        dims = ["None" if d is None else self.consts[d["ref"]] if isinstance(d, dict)
                else str(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def input_call(self, stmt: dict[str, Any]) -> str:
        shape = self.shape_text(stmt.get("shape", []))
        dtype = stmt.get("dtype", "float32")
        return f'keras.Input(shape={shape}, dtype="{dtype}", name={py_string(stmt["input"])})'

    def model_sequential(self, model: dict[str, Any], at: str) -> None:
        """`keras.Sequential(layers)`, the layers a line each in a list: Keras builds
        them in one statement, so a layer it cannot build is found by `jobs/build.py` as the
        first one Keras did not get to call (`model.add` a line at a time would point at
        it directly, but rebuilds the model at every line: 8x slower at 100 layers)."""
        w = self.w
        w.blank(2)
        w.line("def build_model():")
        with w.indented():
            w.line(f'"""`{model["name"]}`: a keras.Sequential model ({self.where(at)})."""')
            w.line("layers = [")
            used: set[str] = set()
            scope = Scope(values={})
            with w.indented():
                for i, stmt in enumerate(model["body"]):
                    sat = f"{at}/body/{i}"
                    if statement_kind(stmt)[0] == "input":
                        w.line(self.input_call(stmt) + ",", self.span(sat))
                        pre = (self.ir.get("data") or {}).get("preprocess") or []
                        for j, call in enumerate(pre):
                            pat = f"/data/preprocess/{j}"
                            cls = (catalog.lookup("layers", call["call"]) or {}).get(
                                "name", call["call"])
                            lname = fresh_name(f"{stmt['input']}_{catalog.snake_case(cls)}", used)
                            self.layers.append(LayerInfo(lname, cls, pat))
                            text = self.construct(call, pat, "layers", scope,
                                                  [f"name={py_string(lname)}"], w.width - 1)
                            w.line(text + ",", self.span(pat))
                        continue
                    call = stmt["add"]
                    extra = []
                    cls = (catalog.lookup("layers", call["call"]) or {}).get("name", call["call"])
                    lname = self.user_name(call)
                    if lname is None:
                        lname = fresh_name(catalog.snake_case(cls), used)
                        extra = [f"name={py_string(lname)}"]
                    else:
                        used.add(lname)
                    self.layers.append(LayerInfo(lname, cls, f"{sat}/add"))
                    text = self.construct(call, f"{sat}/add", "layers", scope, extra,
                                          w.width - 1)
                    w.line(text + ",", self.span(f"{sat}/add"))
            w.line("]")
            w.line(f"return keras.Sequential(layers, name={py_string(model['name'])})",
                   self.span(f"{at}/name"))

    def user_name(self, call: dict[str, Any]) -> str | None:
        name = call.get("kwargs", {}).get("name")
        return name if isinstance(name, str) else None

    def model_functional(self, model: dict[str, Any], at: str) -> None:
        self.block_functions(model)
        w = self.w
        w.blank(2)
        w.line("def build_model():")
        with w.indented():
            w.line(f'"""`{model["name"]}`: a functional keras.Model ({self.where(at)})."""')
            body = _Body(self, model["body"], f"{at}/body", w, mode="inline")
            body.emit()
            ins = body.inputs_expr()
            outs = body.outputs_expr()
            w.line(call_text("return keras.Model", [f"inputs={ins}", f"outputs={outs}",
                                                     f"name={py_string(model['name'])}"],
                             w.width), self.span(f"{at}/name"))

    def model_subclass(self, model: dict[str, Any], at: str) -> None:
        self.block_classes(model)
        w = self.w
        cls = identifier(model["name"])
        body = _Body(self, model["body"], f"{at}/body", CodeWriter(), mode="attr")
        w.blank(2)
        w.line('@keras.saving.register_keras_serializable(package="tfspec")')
        w.line(f"class {cls}(keras.Model):", self.span(f"{at}/name"))
        with w.indented():
            w.line(f'"""`{model["name"]}`: a subclassed keras.Model ({self.where(at)})."""')
            w.blank()
            w.line("def __init__(self, **kwargs):")
            with w.indented():
                w.line("super().__init__(**kwargs)")
                body.emit()
                for text, span in body.init_lines:
                    w.line(text, span)
            w.blank()
            w.line("def call(self, inputs, training=None):")
            with w.indented():
                names = declared(model["body"], "input")
                if len(names) == 1:
                    w.line(f"{body.var(names[0])} = inputs")
                else:
                    for n in names:
                        w.line(f"{body.var(n)} = inputs[{py_string(n)}]")
                # Keras passes `training` on to the layers that use it (Dropout,
                # BatchNormalization…) through its call context.
                for text, span in body.call_lines:
                    w.line(text, span)
                w.line(f"return {body.outputs_expr()}")
        w.blank(2)
        w.line("def build_model():")
        with w.indented():
            w.line(f'"""Create `{cls}` and build its weights on symbolic inputs."""')
            w.line(f"model = {cls}(name={py_string(model['name'])})")
            inputs = [s for s in model["body"] if statement_kind(s)[0] == "input"]
            if len(inputs) == 1:
                w.line(f"model({self.input_call(inputs[0])})")
            else:
                w.line("model(")
                with w.indented():
                    w.line("{")
                    with w.indented():
                        for s in inputs:
                            w.line(f"{py_string(s['input'])}: {self.input_call(s)},")
                    w.line("}")
                w.line(")")
            w.line("return model")

    # -- blocks --------------------------------------------------------------------------------

    def used_blocks(self, model: dict[str, Any]) -> list[str]:
        """Blocks the model uses, directly or through other blocks, in spec order."""
        found: set[str] = set()

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                callee = v.get("call")
                if isinstance(callee, str) and callee in self.blocks and callee not in found:
                    found.add(callee)
                    walk(self.blocks[callee]["body"])
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(model["body"])
        return [b for b in self.blocks if b in found]

    def block_signature(self, block: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(input names, parameter declarations) of a block's Python form."""
        ins = declared(block["body"], "input")
        scope = Scope(values={})
        params = []
        for i, p in enumerate(block.get("params", [])):
            pname = identifier(p["name"])
            if "default" in p:
                default = self.value(p["default"], f"/blocks/{i}/default", scope)
                params.append(f"{pname}={default}")
            else:
                params.append(pname)
        return ins, params

    def block_functions(self, model: dict[str, Any]) -> None:
        for name in self.used_blocks(model):
            block = self.blocks[name]
            at = f"/blocks/{list(self.blocks).index(name)}"
            w = self.w
            ins, params = self.block_signature(block)
            body = _Body(self, block["body"], f"{at}/body", w, mode="inline", block=block)
            first = "inputs" if len(ins) != 1 else body.var(ins[0])
            w.blank(2)
            w.line(f"def {_block_function(name)}({', '.join([first, *params, '*', 'name'])}):",
                   self.span(f"{at}/name"))
            with w.indented():
                w.line(f'"""Block `{name}` ({self.where(at)}): its layers are named '
                       f'`<name>_…`."""')
                if len(ins) > 1:
                    w.line(f"{', '.join(body.var(n) for n in ins)} = inputs")
                body.emit()
                w.line(f"return {body.outputs_expr()}")

    def block_classes(self, model: dict[str, Any]) -> None:
        for name in self.used_blocks(model):
            block = self.blocks[name]
            at = f"/blocks/{list(self.blocks).index(name)}"
            w = self.w
            ins, params = self.block_signature(block)
            pnames = [identifier(p["name"]) for p in block.get("params", [])]
            body = _Body(self, block["body"], f"{at}/body", CodeWriter(), mode="attr",
                         block=block)
            body.emit()
            first = "inputs" if len(ins) != 1 else body.var(ins[0])
            w.blank(2)
            w.line('@keras.saving.register_keras_serializable(package="tfspec")')
            w.line(f"class {identifier(name)}(keras.layers.Layer):", self.span(f"{at}/name"))
            with w.indented():
                w.line(f'"""Block `{name}` ({self.where(at)})."""')
                w.blank()
                w.line(f"def __init__(self, {', '.join([*params, '**kwargs'])}):")
                with w.indented():
                    w.line("super().__init__(**kwargs)")
                    for p in pnames:
                        w.line(f"self.{p} = {p}")
                    for text, span in body.init_lines:
                        w.line(text, span)
                w.blank()
                w.line(f"def call(self, {first}, training=None):")
                with w.indented():
                    if len(ins) > 1:
                        w.line(f"{', '.join(body.var(n) for n in ins)} = inputs")
                    for text, span in body.call_lines:
                        w.line(text, span)
                    w.line(f"return {body.outputs_expr()}")
                w.blank()
                w.line("def get_config(self):")
                with w.indented():
                    w.line("config = super().get_config()")
                    if pnames:
                        items = ", ".join(f"{py_string(p)}: self.{p}" for p in pnames)
                        w.line(f"config.update({{{items}}})")
                    w.line("return config")


def _block_function(name: str) -> str:
    return identifier(catalog.snake_case(name) + "_block")


class _Body:
    """The dataflow of a model or block body, as Python.

    mode "inline": layers are built where they are applied (functional code).
    mode "attr": layers become attributes (`self.x_dense = …`, collected in
    `init_lines`) and are applied in `call_lines` (subclassed code).
    Inside a block's function, layer names are prefixed with its `name` argument.
    """

    def __init__(self, gen: Generator, stmts: list[dict[str, Any]], at: str, w: CodeWriter,
                 mode: str, block: dict[str, Any] | None = None):
        self.gen, self.stmts, self.at, self.w, self.mode = gen, stmts, at, w, mode
        self.block = block
        self.prefixed = block is not None and mode == "inline"
        self.used: set[str] = set()  # Keras layer names (suffixes, inside a block function)
        self.init_lines: list[tuple[str, Span | None]] = []
        self.call_lines: list[tuple[str, Span | None]] = []
        values = {}
        if block is not None:
            values = {p["name"]: (f"self.{identifier(p['name'])}" if mode == "attr"
                                  else identifier(p["name"])) for p in block.get("params", [])}
        self.scope = Scope(values=values)
        self.tensors: dict[str, str] = {}  # spec tensor name -> Python variable
        self.temps: set[str] = set()  # extra variables for intermediate tensors
        self.layer_vars: dict[str, str] = {}  # named layer -> Python expression
        taken = set(gen.consts.values()) | {_block_function(b) for b in gen.blocks}
        for stmt in stmts:
            kind, name = statement_kind(stmt)
            if kind in ("input", "node", "output") and isinstance(name, str):
                self.tensors[name] = identifier(name, taken)
        self.temps |= set(self.tensors.values())
        if mode == "inline":
            function = _block_function(block["name"]) if block is not None else "build_model"
            for i, stmt in enumerate(stmts):
                kind, name = statement_kind(stmt)
                if (kind in ("input", "node", *OUTPUTS) and isinstance(name, str)
                        and name in self.tensors):  # a bare `output x` too
                    gen.bindings[f"{at}/{i}"] = (function, self.tensors[name])

    def var(self, name: str) -> str:
        return self.tensors[name]

    def out(self, text: str, span: Span | None) -> None:
        if self.mode == "attr":
            self.call_lines.append((text, span))
        else:
            self.w.line(text, span)

    # -- layer names -------------------------------------------------------------------------

    def layer_name(self, base: str) -> tuple[str, str]:
        """(Python expression for the layer's name, the name itself for the manifest)."""
        name = fresh_name(base, self.used)
        if self.prefixed:
            return f'f"{{name}}_{name}"', name
        return py_string(name), name

    def final_name(self, node: str) -> tuple[str, str]:
        if self.prefixed:
            # the block's output layer takes the block use's own name
            return ("name", "") if self.is_output(node) else self.layer_name(node)
        self.used.add(node)
        return py_string(node), node

    def is_output(self, node: str) -> bool:
        return node in declared(self.stmts, *OUTPUTS)

    # -- statements ----------------------------------------------------------------------------

    def emit(self) -> None:
        gen = self.gen
        for i, stmt in enumerate(self.stmts):
            kind, name = statement_kind(stmt)
            if kind == "input" and self.block is None and self.mode == "inline":
                self.w.line(f"{self.var(name)} = {gen.input_call(stmt)}",
                            gen.span(f"{self.at}/{i}"))
        if self.block is None:
            self.preprocess()
        for i, stmt in enumerate(self.stmts):
            kind, name = statement_kind(stmt)
            if kind == "layer":
                sat = f"{self.at}/{i}"
                self.named_layer(name, stmt["value"], f"{sat}/value")
        for i in self.order():
            stmt = self.stmts[i]
            sat = f"{self.at}/{i}"
            name = statement_kind(stmt)[1]  # a node or an output with a value
            expr = self.tensor(stmt["value"], f"{sat}/value", name, final=True)
            # a pipe's last stage is the layer this line builds: errors point at it
            pipe = stmt["value"].get("pipe") if isinstance(stmt["value"], dict) else None
            at = f"{sat}/value/pipe/{len(pipe) - 1}" if pipe else f"{sat}/value"
            self.out(f"{self.var(name)} = {expr}", gen.span(at))

    def preprocess(self) -> None:
        """`data { preprocess = […] }`: layers applied to the (single) input first, so
        the model — and every export of it — takes raw inputs."""
        calls = (self.gen.ir.get("data") or {}).get("preprocess") or []
        inputs = declared(self.stmts, "input")
        if not calls or len(inputs) != 1:
            return
        name = inputs[0]
        for i, call in enumerate(calls):
            at = f"/data/preprocess/{i}"
            expr = self.apply(call, [self.var(name)], {}, at, name, final=False)
            self.out(f"{self.var(name)} = {expr}", self.gen.span(at))

    def order(self) -> list[int]:
        """Statements with values in dependency order (source order where free)."""
        pending = [i for i, s in enumerate(self.stmts)
                   if statement_kind(s)[0] in ("node", "output")]
        defined = set(declared(self.stmts, "input"))
        out: list[int] = []
        while pending:
            for i in pending:
                if _tensor_refs(self.stmts[i]["value"], self.tensors) <= defined:
                    out.append(i)
                    pending.remove(i)
                    defined.add(statement_kind(self.stmts[i])[1])
                    break
            else:  # a cycle: the checker reports it; keep going in source order
                out += pending
                break
        return out

    def named_layer(self, name: str, call: dict[str, Any], at: str) -> None:
        gen = self.gen
        user = gen.user_name(call)
        if user:
            lname, manifest = (f'f"{{name}}_{user}"' if self.prefixed else py_string(user)), user
            self.used.add(user)
        else:
            lname, manifest = self.layer_name(name)
        text = self.build(call, at, lname, manifest, node=None)
        var = identifier(name, set(self.tensors.values()))
        if self.mode == "attr":
            self.init_lines.append((f"self.{var} = {text}", gen.span(at)))
            self.layer_vars[name] = f"self.{var}"
        else:
            self.w.line(f"{var} = {text}", gen.span(at))
            self.layer_vars[name] = var

    def build(self, call: dict[str, Any], at: str, lname: str, manifest: str,
              node: str | None, inputs: str | None = None, budget: int = 60) -> str:
        """The construction of a layer named `lname` (a Python expression).

        A block is a class in subclassed code (`Residual(32, name="x")`) and a
        function applied to `inputs` in functional code (`residual_block(x, 32, …)`).
        """
        gen = self.gen
        callee = call["call"]
        if callee in gen.blocks:
            args = [gen.value(a, f"{at}/args/{i}", self.scope)
                    for i, a in enumerate(call.get("args", []))]
            args += [f"{k}={gen.value(v, f'{at}/kwargs/{escape(k)}', self.scope)}"
                     for k, v in call.get("kwargs", {}).items()]
            gen.layers.append(LayerInfo(manifest, callee, at, node, manifest))
            if inputs is not None:
                return call_text(_block_function(callee), [inputs, *args, f"name={lname}"],
                                 budget)
            return call_text(identifier(callee), args + [f"name={lname}"], budget)
        has_name = "name" in call.get("kwargs", {})
        if has_name and self.prefixed:  # `name = "fixed"` in a block: `<use>_fixed`
            call = {**call, "kwargs": {k: v for k, v in call["kwargs"].items() if k != "name"}}
            has_name = False
        extra = [] if has_name else [f"name={lname}"]
        cls = (catalog.lookup("layers", callee) or {}).get("name", callee)
        gen.layers.append(LayerInfo(manifest, cls, at, node,
                                    self.block and self.block.get("name"),
                                    template=self.prefixed))
        return gen.construct(call, at, "layers", self.scope, extra, budget)

    # -- tensors ---------------------------------------------------------------------------------

    def tensor(self, v: Any, at: str, node: str, final: bool) -> str:
        """A Python expression for a tensor value; pipes write their steps as lines."""
        if isinstance(v, dict) and "ref" in v:
            return self.tensors[v["ref"]]
        if isinstance(v, list):
            items = []
            for i, x in enumerate(v):
                expr = self.tensor(x, f"{at}/{i}", node, False)
                if "(" in expr:  # an application inside a list gets its own variable
                    temp = fresh_name(f"{self.var(node)}_{i + 1}", self.temps)
                    self.out(f"{temp} = {expr}", self.gen.span(f"{at}/{i}"))
                    expr = temp
                items.append(expr)
            return "[" + ", ".join(items) + "]"
        if "pipe" in v:
            stages = v["pipe"]
            current = self.step(self.tensor(stages[0], f"{at}/pipe/0", node, False), node,
                                f"{at}/pipe/0")
            for i, stage in enumerate(stages[1:], 1):
                sat = f"{at}/pipe/{i}"
                last = i == len(stages) - 1
                expr = self.apply(stage, [current], {}, sat, node, final and last)
                if last:
                    return expr
                self.out(f"{self.var(node)} = {expr}", self.gen.span(sat))
                current = self.var(node)
        callee = v["call"]
        entry = catalog.lookup("layers", callee) if isinstance(callee, str) else None
        if entry is not None and entry.get("kind") == "function" and (
                callee not in self.layer_vars):
            # `add([a, b], name = …)` is the layer `Add(name = …)` applied to `[a, b]`
            layer = {"call": catalog.class_of(callee), "kwargs": v.get("kwargs", {})}
            inputs = [self.tensor(v["args"][0], f"{at}/args/0", node, False)]
            return self.apply(layer, inputs, {}, at, node, final)
        inputs = [self.tensor(a, f"{at}/args/{i}", node, False)
                  for i, a in enumerate(v.get("args", []))]
        if len(inputs) == 1:  # `A()(B()(x))`: B's result gets its own line
            inputs = [self.step(inputs[0], node, f"{at}/args/0")]
        kwargs = {}
        for k, a in v.get("kwargs", {}).items():
            kat = f"{at}/kwargs/{escape(k)}"
            is_tensor = isinstance(a, dict) and a.get("ref") in self.tensors
            kwargs[k] = (self.tensor(a, kat, node, False) if is_tensor
                         else self.gen.value(a, kat, self.scope))
        layer = {"ref": callee} if isinstance(callee, str) else callee
        return self.apply(layer, inputs, kwargs, f"{at}/call", node, final)

    def step(self, expr: str, node: str, at: str) -> str:
        """Write an application as its own line (into the node's variable): `x = A()(x)`."""
        if "(" not in expr or expr.startswith("["):
            return expr
        self.out(f"{self.var(node)} = {expr}", self.gen.span(at))
        return self.var(node)

    def apply(self, layer: Any, inputs: list[str], kwargs: dict[str, str], at: str,
              node: str, final: bool) -> str:
        """Apply a layer (a named layer, or a construction) to Python input expressions."""
        args = ", ".join(inputs + [f"{k}={v}" for k, v in kwargs.items()])
        if isinstance(layer, dict) and "ref" in layer:
            return f"{self.layer_vars[layer['ref']]}({args})"
        callee = layer["call"]
        user = self.gen.user_name(layer)
        if user and self.prefixed:  # every use of a block needs its own names
            lname, manifest = f'f"{{name}}_{user}"', user
            self.used.add(user)
        elif user:
            lname, manifest = py_string(user), user
            self.used.add(user)
        elif final and self.prefixed and callee in self.gen.blocks:
            # a block whose output is another block's use: the inner use gets its own
            # prefix, or both blocks' layers would be named `<name>_…`
            lname, manifest = self.layer_name(node)
        elif final:
            lname, manifest = self.final_name(node)
        else:
            cls = callee if callee in self.gen.blocks else (
                catalog.lookup("layers", callee) or {}).get("name", callee)
            lname, manifest = self.layer_name(f"{node}_{catalog.snake_case(cls)}")
        if self.mode == "attr":
            attr = identifier(manifest)
            budget = self.w.width - INDENT_WIDTH - len(f"self.{attr} = ")
        else:
            budget = self.w.width - len(f"{self.var(node)} = ") - len(args) - 2
        if self.mode == "inline" and callee in self.gen.blocks:
            return self.build(layer, at, lname, manifest, node, inputs=args,
                              budget=budget + len(args) + 2)
        text = self.build(layer, at, lname, manifest, node, budget=budget)
        if self.mode == "attr":
            self.init_lines.append((f"self.{attr} = {text}", self.gen.span(at)))
            return f"self.{attr}({args})"
        return f"{text}({args})"

    # -- model ends ------------------------------------------------------------------------------

    def inputs_expr(self) -> str:
        names = declared(self.stmts, "input")
        if len(names) == 1:
            return self.var(names[0])
        return "{" + ", ".join(f"{py_string(n)}: {self.var(n)}" for n in names) + "}"

    def outputs_expr(self) -> str:
        names = declared(self.stmts, *OUTPUTS)
        if len(names) == 1:
            return self.output_var(names[0])
        if self.block is not None:
            return ", ".join(self.output_var(n) for n in names)
        return "{" + ", ".join(f"{py_string(n)}: {self.output_var(n)}" for n in names) + "}"

    def output_var(self, name: str) -> str:
        return self.tensors[name]


def _tensor_refs(v: Any, tensors: dict[str, str]) -> set[str]:
    found: set[str] = set()
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if isinstance(x.get("ref"), str) and x["ref"] in tensors:
                found.add(x["ref"])
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return found
