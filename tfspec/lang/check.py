"""Semantic checks: Keras vocabulary, names, dataflow, losses vs outputs.

Runs after the schema check on whatever IR there is — possibly schema-invalid —
so every access is defensive: a malformed part is skipped here because the
schema stage has already reported it. Every problem is collected; nothing stops
at the first. Never imports TensorFlow: what it knows of Keras is the catalog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import catalog, checkmeaning, checktune, transfer
from .diagnostics import Diagnostics, did_you_mean
from .ir import OUTPUTS, declared, escape, statement_kind
from .located import Positions
from .schema import resolved_problems, show
from .sources import SOURCES

UNKNOWN = object()  # a value not known until run time (e.g. a block parameter)
_TENSOR_KINDS = ("input", "node", "output")


def _is(value: Any, key: str) -> bool:
    return isinstance(value, dict) and key in value


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class _Symbol:
    kind: str  # "param" | "input" | "node" | "output" | "layer" | "block param"
    at: str  # pointer of the declaration
    used: bool = False


@dataclass
class _Scope:
    """Names visible in a model or block body (plus the spec's params)."""

    symbols: dict[str, _Symbol] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # block params -> UNKNOWN
    deps: dict[str, set[str]] = field(default_factory=dict)  # tensor name -> tensors used
    block: str | None = None


class Checker:
    def __init__(
        self,
        ir: dict[str, Any],
        positions: Positions,
        diags: Diagnostics,
        overrides: dict[str, Any] | None = None,
        allow_modules: tuple[str, ...] = (),
    ):
        self.allow_modules = allow_modules
        self.ir = ir
        self.pos = positions
        self.diags = diags
        self.overrides = overrides or {}
        self.params: dict[str, _Symbol] = {}
        self.param_values: dict[str, Any] = {}
        self.blocks: dict[str, dict[str, Any]] = {}
        # param -> (callee, argument, catalog type, pointer) of each `f(arg = param)`:
        # what a tuned param's values must fit (checktune)
        self.param_uses: dict[str, list[tuple[str, str, Any, str]]] = {}

    # -- reporting --------------------------------------------------------------------

    def error(self, code: str, message: str, at: str, hint: str | None = None,
              key: bool = False) -> None:
        span = self.pos.key(at) if key else self.pos.value(at)
        self.diags.add(code, message, span, hint)

    # -- entry point -------------------------------------------------------------------

    def run(self) -> None:
        ir = self.ir
        self.check_params(ir.get("params"))
        self.collect_blocks(ir.get("blocks"))
        model = ir.get("model")
        if isinstance(model, dict):
            self.check_model(model, "/model")
        for i, block in enumerate(ir.get("blocks") or []):
            if isinstance(block, dict):
                self.check_block(block, f"/blocks/{i}")
        self.check_block_recursion()
        data = ir.get("data")
        if isinstance(data, dict):
            self.check_data(data, "/data")
        train = ir.get("train")
        if isinstance(train, dict):
            self.check_train(train, "/train", model if isinstance(model, dict) else None)
        for section in ("distribute", "export"):
            if section in ir:
                self.check_refs(ir[section], f"/{section}")
        distribute = ir.get("distribute")
        if isinstance(distribute, dict) and distribute.get("strategy") == "parameter_server":
            self.error("E410", "Keras 3 cannot train with ParameterServerStrategy: "
                       "`model.fit` rejects it and Keras optimizers do not run under a "
                       "ClusterCoordinator", "/distribute/strategy",
                       hint='use strategy = "multi_worker_mirrored" (synchronous data '
                            "parallelism across workers, started with `tfspec launch`)")
        if isinstance(train, dict):
            checkmeaning.check_meaning(
                self, train, output_layers(model) if isinstance(model, dict) else [])
        self.check_param_values()
        if "tune" in ir:
            checktune.check_tune(self, ir["tune"])
        self.check_comments(ir.get("comments"))
        mentioned = _refs(ir)
        for name, sym in self.params.items():
            if not sym.used and name not in mentioned:
                self.error("W401", f"param `{name}` is never used", sym.at, key=True,
                           hint="remove it, or use it in a value")

    def check_comments(self, comments: Any) -> None:
        """A comment's `at` must name a place in the spec (JSON specs write it by hand)."""
        for i, c in enumerate(_list(comments)):
            at = c.get("at") if isinstance(c, dict) else None
            if not isinstance(at, str) or at == "" or at.startswith("/comments"):
                if isinstance(at, str) and at.startswith("/comments"):
                    self.error("E203", "a comment cannot be anchored in `comments`",
                               f"/comments/{i}/at")
                continue
            if at not in self.pos.values:
                self.error("E203", f"comment anchored at `{at}`, which is not in the spec",
                           f"/comments/{i}/at",
                           hint='use the JSON pointer of an item, e.g. "/train/epochs"')

    # -- params and plain values ----------------------------------------------------------

    def check_params(self, params: Any) -> None:
        if not isinstance(params, dict):
            params = {}
        for name, value in params.items():
            at = f"/params/{escape(name)}"
            self.params[name] = _Symbol("param", at)
            self.param_values[name] = value if not isinstance(value, (dict, list)) else (
                value if isinstance(value, list) else UNKNOWN)
        for name, override in self.overrides.items():
            if name not in self.params:
                hint = did_you_mean(name, self.params) or (
                    "declare it with `param " + name + " = …`" if self.params else
                    "this spec declares no params")
                self.diags.add("E407", f"--set {name}=…: the spec has no param `{name}`",
                               None, hint)
                continue
            declared = self.param_values[name]
            at = self.params[name].at
            problem = _override_problem(declared, override)
            if problem:
                self.error("E407", f"--set {name}={json.dumps(override)}: {problem}", at,
                           hint=f"`{name}` is declared here as {show(declared)}")
                continue
            self.param_values[name] = override

    def check_param_values(self) -> None:
        """Each param's value (declared, or given by `--set`) where the schema types the
        place it reaches (`epochs = epochs`, `batch = bs * 2`): its range holds for the
        value as for a literal. Calls' arguments are the catalog's (`argument`)."""
        # a null param stands for "Keras's default" until `--set` gives it a value
        values = {n: v for n, v in self.param_values.items()
                  if v is not UNKNOWN and v is not None}
        for _, names, d in resolved_problems(self.ir, self.pos, values):
            via, origin = self.param_origin(sorted(names & values.keys()))
            hint = f"{origin}; {d.hint}" if d.hint and origin else d.hint or origin
            self.diags.add(d.code, f"{d.message} (from {via})", d.span, hint)

    def param_origin(self, names: list[str]) -> tuple[str, str | None]:
        """Where the value of params `names` was given, for a problem at its use: the
        words of "(from …)" and a hint at the other place (the declaration, or `--set`)."""
        given = [n for n in names if n in self.overrides] or names
        name = given[0]
        span = self.pos.key(self.params[name].at)
        line = f" at line {span.line}" if span else ""
        if name in self.overrides:
            declared = show(_dict(self.ir.get("params")).get(name))
            value = json.dumps(self.overrides[name])
            return (f"`--set {name}={value}`",
                    f"`--set {name}={value}` replaces the {declared} declared{line}")
        return f"`{name}`", f"`{name}` is declared{line}"

    def value(self, value: Any, at: str, scope: _Scope | None = None) -> Any:
        """Check refs and operators in a plain value; return its constant or UNKNOWN."""
        if isinstance(value, list):
            return [self.value(v, f"{at}/{i}", scope) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if "ref" in value:
            return self.ref_value(value.get("ref"), at, scope)
        if "op" in value:
            return self.op(value, at, scope)
        if "call" in value:
            return UNKNOWN  # nested calls are checked by their owner
        if "pipe" in value:
            self.error("E406", "a pipe `|>` only makes sense inside a model or block body",
                       at)
            return UNKNOWN
        return UNKNOWN

    def ref_value(self, name: Any, at: str, scope: _Scope | None) -> Any:
        if not isinstance(name, str):
            return UNKNOWN
        if scope is not None and name in scope.symbols:
            sym = scope.symbols[name]
            sym.used = True
            if sym.kind == "block param":
                return UNKNOWN
            self.error("E406", f"`{name}` is a {_KIND_WORDS[sym.kind]}, not a value", at,
                       hint="only params and block parameters can be used as values")
            return UNKNOWN
        if name in self.params:
            self.params[name].used = True
            return self.param_values[name]
        self.undefined(name, at, scope, values=True)
        return UNKNOWN

    def undefined(self, name: str, at: str, scope: _Scope | None, values: bool) -> None:
        known = list(self.params)
        if scope is not None:
            known += [n for n, s in scope.symbols.items()
                      if values == (s.kind in ("param", "block param"))]
        hint = did_you_mean(name, known)
        if name in ("True", "False", "None"):
            hint = f"write `{ {'True': 'true', 'False': 'false', 'None': 'null'}[name] }`"
        elif hint is None and not values:
            hint = "declare it first, e.g. `input " + name + ": float32[…]` or `" + name + " = …`"
        elif hint is None and name.isidentifier():
            hint = f'a bare name is a reference; write "{name}" for a string'
        self.error("E400", f"undefined name `{name}`", at, hint)

    def op(self, value: dict[str, Any], at: str, scope: _Scope | None) -> Any:
        args = value.get("args")
        if not isinstance(args, list):
            return UNKNOWN
        vals = [self.value(a, f"{at}/args/{i}", scope) for i, a in enumerate(args)]
        if any(v is UNKNOWN for v in vals):
            return UNKNOWN
        for i, v in enumerate(vals):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                self.error("E406", f"`{value.get('op')}` needs numbers. Received: {show(v)}",
                           f"{at}/args/{i}")
                return UNKNOWN
        op = value.get("op")
        try:
            if op == "neg":
                return -vals[0]
            a, b = vals
            return {"+": a + b, "-": a - b, "*": a * b}[op] if op != "/" else a / b
        except ZeroDivisionError:
            self.error("E406", "division by zero", at)
        except (KeyError, ValueError):
            pass
        return UNKNOWN

    def check_refs(self, value: Any, at: str) -> None:
        """Walk a section, checking every ref and operator in it."""
        if isinstance(value, dict):
            if "ref" in value or "op" in value:
                self.value(value, at)
                return
            for k, v in value.items():
                self.check_refs(v, f"{at}/{escape(k)}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.check_refs(v, f"{at}/{i}")

    # -- calls against the catalog ---------------------------------------------------------

    def call(self, call: dict[str, Any], at: str, category: str,
             scope: _Scope | None = None) -> dict[str, Any] | None:
        """Check a constructor call `Name(args…)` of `category`; return its entry."""
        name = _name(call.get("call"))
        if name is None:
            return None
        if category in _OWN_CALLS:
            entry = _OWN_CALLS[category].get(name)
        else:
            entry = catalog.lookup(category, name)
            if entry is None and category == "layers":
                entry = transfer.lookup(name)  # `load_model(…)`: tfspec's own
        if entry is not None and entry.get("string") and not entry.get("alias"):
            # "adam" names Adam in `optimizer = "adam"`, but a call needs the class name
            canonical = entry.get("name")
            self.error("E300", f"`{name}(…)` is not a Keras class", f"{at}/call",
                       f"did you mean `{canonical}`?" if canonical else None)
            self.args_values(call, at, scope)
            return None
        if entry is None:
            word = _CATEGORY_WORDS.get(category, category)
            candidates = (list(_OWN_CALLS[category]) if category in _OWN_CALLS
                          else catalog.names(category))
            if category == "layers":
                candidates += list(transfer.CALLS)
            hint = did_you_mean(name, candidates)
            if hint is None and category in _OWN_CALLS:
                hint = ("sources: " if category == "sources" else "one of: ") + ", ".join(
                    f"`{s}(…)`" for s in _OWN_CALLS[category])
            self.error("E300", f"unknown {word} `{name}`", f"{at}/call", hint)
            self.args_values(call, at, scope)
            return None
        if entry.get("callable_params") and self.needs_code(name, entry, call, at):
            return None
        self.arguments(name, entry, call, at, category, scope)
        return entry

    def needs_code(self, name: str, entry: dict[str, Any], call: dict[str, Any],
                   at: str) -> bool:
        """E409 where a class needs a Python callable (`Lambda(function)`) that no spec
        value can be, as a spec runs no code it did not allow (docs/architecture.md,
        rule 5). One error, at the value given for it, else at the call. A callable a
        nested call can be (`LearningRateScheduler(ExponentialDecay(…))`) is checked
        as usual when it is one."""
        params = {p.get("name"): p for p in entry.get("params", []) if isinstance(p, dict)}
        positional = [n for n, p in params.items() if p.get("positional", True)]
        args = _list(call.get("args"))
        given = {n: (args[i], f"{at}/args/{i}") for i, n in enumerate(positional[:len(args)])}
        given |= {k: (arg, f"{at}/kwargs/{escape(k)}")
                  for k, arg in _dict(call.get("kwargs")).items()}
        wrong, missing = [], False
        for pname in entry["callable_params"]:
            nested = catalog.argument_category(name, params.get(pname), {"call": None})
            if pname in given and not (nested and _is(given[pname][0], "call")):
                wrong.append(pname)
            elif pname not in given and not nested and params.get(pname, {}).get("required"):
                missing = True
        if not wrong and not missing:
            return False  # `LambdaCallback()`: no hook, no code
        takes = ", ".join(f"`{p}`" for p in wrong or entry["callable_params"][:1])
        self.error("E409", f"`{name}` needs Python code ({takes}), and a spec runs no Python "
                   "code it did not allow", given[wrong[0]][1] if wrong else f"{at}/call",
                   _CODE_HINTS.get(name, "rewrite it with Keras layers or a `block`"))
        return True

    def args_values(self, call: dict[str, Any], at: str, scope: _Scope | None) -> None:
        for i, arg in enumerate(_list(call.get("args"))):
            self.nested(arg, f"{at}/args/{i}", scope)
        for key, arg in _dict(call.get("kwargs")).items():
            self.nested(arg, f"{at}/kwargs/{escape(key)}", scope)

    def arguments(self, name: str, entry: dict[str, Any], call: dict[str, Any], at: str,
                  category: str, scope: _Scope | None) -> None:
        params = [p for p in entry.get("params", []) if isinstance(p, dict)]
        positional = [p for p in params if p.get("positional", True)]
        args = _list(call.get("args"))
        kwargs = _dict(call.get("kwargs"))
        given: dict[str, str] = {}
        if len(args) > len(positional) and not entry.get("var_positional"):
            takes = len(positional)
            self.error(
                "E303",
                f"`{name}` takes {takes} positional argument{'s' if takes != 1 else ''}. "
                f"Received: {len(args)}",
                f"{at}/args/{len(positional)}",
                hint=_positional_hint(name, positional, args, params),
            )
        for i, arg in enumerate(args):
            param = positional[i] if i < len(positional) else None
            aat = f"{at}/args/{i}"
            if param is not None:
                given[param["name"]] = aat
            self.argument(name, param, arg, aat, scope)
        names = {p["name"]: p for p in params}
        extras = {p["name"]: p for p in catalog.base_kwargs(category)} if (
            entry.get("var_keyword") and category != "sources") else {}
        for key, arg in kwargs.items():
            kat = f"{at}/kwargs/{escape(key)}"
            param = names.get(key) or extras.get(key)
            if param is None:
                hint = did_you_mean(key, list(names) + list(extras))
                if hint is None and names:
                    hint = f"`{name}` takes: " + ", ".join(f"`{n}`" for n in names)
                self.error("E301", f"`{name}` has no argument `{key}`", kat, hint, key=True)
                self.nested(arg, kat, scope)
                continue
            if key in given:
                self.error("E304", f"`{name}` got `{key}` both by position and by keyword",
                           kat, key=True)
            given[key] = kat
            self.argument(name, param, arg, kat, scope)
        for p in params:
            if p.get("required") and p["name"] not in given:
                self.error("E302", f"`{name}` needs `{p['name']}`", f"{at}/call",
                           hint=f"write `{name}({_call_example(params)})`")

    def argument(self, owner: str, param: dict[str, Any] | None, arg: Any, at: str,
                 scope: _Scope | None) -> None:
        ptype = param.get("type") if param else None
        value = self.nested(arg, at, scope, owner, param)
        ref = arg.get("ref") if _is(arg, "ref") else None
        if param is not None and ref in self.params and (
                scope is None or ref not in scope.symbols):
            self.param_uses.setdefault(ref, []).append((owner, param["name"], ptype, at))
        if ptype is None or value is UNKNOWN or _contains_unknown(value):
            return
        problem = catalog.check_value(ptype, value)
        if problem:
            pname = param["name"] if param else "argument"
            via, origin = "", None
            names = sorted(_refs(arg) & self.params.keys()) if _is(arg, "ref") or _is(
                arg, "op") else []
            if names:  # the value comes from a param: say where it was given
                words, origin = self.param_origin(names)
                via = f" (from {words})"
            hint = None
            if isinstance(ptype, dict) and isinstance(value, str):
                hint = did_you_mean(value, [v for v in ptype.get("enum", ()) if isinstance(v, str)],
                                    string=True)
            hint = hint or origin
            self.error("E305", f"`{pname}` must be {problem}. Received: {pname}={show(value)}"
                       f"{via}", at, hint)

    def nested(self, arg: Any, at: str, scope: _Scope | None, owner: str = "",
               param: dict[str, Any] | None = None) -> Any:
        """Check an argument value of `owner`'s `param` (None: one it does not take);
        a nested call is checked in `catalog.argument_category`'s category, the one
        the generator builds it from."""
        if _is(arg, "call"):
            kind = catalog.argument_category(owner, param, arg)
            if kind == "layers":
                self.layer_construction(arg, at, scope)
            elif kind is not None:
                self.call(arg, at, kind, scope)
            else:
                self.error("E406", f"`{show(arg)}` is not expected here", at,
                           hint="only layer, activation, initializer, regularizer, constraint "
                                "and schedule arguments take a call")
            return UNKNOWN
        if isinstance(arg, list):
            return [self.nested(a, f"{at}/{i}", scope, owner, param) for i, a in enumerate(arg)]
        return self.value(arg, at, scope)

    # -- blocks ----------------------------------------------------------------------------

    def collect_blocks(self, blocks: Any) -> None:
        for i, block in enumerate(_list(blocks)):
            name = _name(block.get("name")) if isinstance(block, dict) else None
            if name is None:
                continue
            at = f"/blocks/{i}/name"
            if name in self.blocks:
                self.error("E401", f"block `{name}` is declared twice", at)
            else:
                if catalog.lookup("layers", name) is not None:
                    self.error("E401", f"block `{name}` has the name of a Keras layer", at,
                               hint="rename the block, e.g. `" + name + "Block`")
                # kept even then: its uses are the block's, not checked again as the
                # Keras layer's (one error, not one more per use)
                self.blocks[name] = block

    def check_block(self, block: dict[str, Any], at: str) -> None:
        scope = _Scope(block=_name(block.get("name")))
        seen_default = False
        for i, p in enumerate(_list(block.get("params"))):
            if not isinstance(p, dict) or not _name(p.get("name")):
                continue
            pat = f"{at}/params/{i}"
            pname = p["name"]
            if pname in scope.symbols:
                self.error("E401", f"block parameter `{pname}` is declared twice", pat)
                continue
            if "default" in p:
                seen_default = True
                self.value(p["default"], f"{pat}/default")
            elif seen_default:
                self.error("E408", f"block parameter `{pname}` without a default follows one "
                           "with a default", pat, hint="put parameters with defaults last")
            scope.symbols[pname] = _Symbol("block param", pat, used=True)
        self.body(block.get("body"), f"{at}/body", "block", scope)
        outputs = [i for i, s in enumerate(_list(block.get("body")))
                   if statement_kind(s)[0] in OUTPUTS]
        if len(outputs) > 1:
            self.error("E408", "a block has one output, used like a layer's",
                       f"{at}/body/{outputs[1]}",
                       hint="combine the results with a layer (e.g. `Concatenate()`), or "
                            "split the block in two")

    def check_block_recursion(self) -> None:
        uses = {name: _block_uses(b.get("body"), self.blocks) for name, b in self.blocks.items()}
        for name in self.blocks:
            path = _find_cycle(name, uses)
            if path:
                idx = next(i for i, b in enumerate(self.ir["blocks"]) if b is self.blocks[name])
                self.error("E402", "blocks use each other in a cycle: " + " -> ".join(path),
                           f"/blocks/{idx}/name", hint="a block cannot contain itself")
                return

    # -- models ----------------------------------------------------------------------------

    def check_model(self, model: dict[str, Any], at: str) -> None:
        kind = model.get("kind")
        if model.get("name") in self.blocks:
            self.error("E401", f"the model and a block are both named `{model['name']}`",
                       f"{at}/name", hint="rename one of them")
        body = model.get("body")
        if kind == "sequential":
            self.sequential(_list(body), f"{at}/body")
        elif kind in ("functional", "subclass"):
            self.body(body, f"{at}/body", "model", _Scope())

    def sequential(self, body: list[Any], at: str) -> None:
        layers = 0
        for i, stmt in enumerate(body):
            sat = f"{at}/{i}"
            if not isinstance(stmt, dict):
                continue
            kind, name = statement_kind(stmt)
            if kind == "input":
                if i != 0:
                    self.error("E404", "a sequential model's `input` comes first", sat)
                elif "shape" not in stmt:
                    self.error("E404", "a sequential model's input needs a shape", sat,
                               hint=f"write `input {name}: float32[…]`")
                self.shape(stmt, sat, None)
                continue
            if kind != "add":
                word = {"output_ref": "output", None: "statement"}.get(kind, kind)
                self.error(
                    "E404", f"a sequential model is a list of layers; `{word}` statements "
                    "belong in a functional model", sat,
                    hint="write `model Name functional { … }` for named nodes, "
                         "or list layers one per line")
                continue
            layers += 1
            call = stmt["add"]
            cat = f"{sat}/add"
            if not _is(call, "call") or not isinstance(call.get("call"), str):
                self.error("E404", "a sequential model's layers are calls such as "
                           "`Dense(10)`; they are not applied to inputs", cat,
                           hint="use a functional model to wire layers by hand")
                continue
            if call["call"] in self.blocks:
                if catalog.lookup("layers", call["call"]) is None:  # else E401 said it all
                    self.error("E404", f"block `{call['call']}` cannot be used in a "
                               "sequential model", f"{cat}/call", hint="use a functional model")
                continue
            entry = self.call(call, cat, "layers")
            if entry is not None and entry.get("inputs") == "list":
                self.error("E404", f"`{call['call']}` merges several inputs, but a sequential "
                           "model has one path", f"{cat}/call", hint="use a functional model")
            elif entry is not None and entry.get("kind") == "function":
                self.error("E404", f"`{call['call']}` is a function, not a layer", f"{cat}/call",
                           hint="declare the input with `input x: float32[…]`"
                           if call["call"] == "Input" else "use a functional model")
            elif entry is not None and entry.get("inputs") == "none" and layers > 1:
                self.error("E404", f"`{call['call']}` can only be a sequential model's first "
                           "layer", f"{cat}/call",
                           hint="or declare the input with `input x: float32[…]`")
        if layers == 0:
            self.error("E403", "a sequential model needs at least one layer", at)

    def body(self, body: Any, at: str, owner: str, scope: _Scope) -> None:
        stmts = _list(body)
        outputs: list[tuple[str, str]] = []
        inputs = 0
        errors_before = sum(1 for d in self.diags if d.is_error)
        duplicates: set[int] = set()
        # Declarations first: the body is dataflow, so order does not matter for names.
        for i, stmt in enumerate(stmts):
            kind, name = statement_kind(stmt)
            sat = f"{at}/{i}"
            if kind in (None, "add") or _name(name) is None:
                continue
            if kind == "output_ref":  # `output x` names a node declared elsewhere
                outputs.append((name, sat))
            elif not self.declare(name, kind, f"{sat}/{kind}", scope):
                duplicates.add(i)
            elif kind == "output":
                outputs.append((name, sat))
            elif kind == "input":
                inputs += 1
        for i, stmt in enumerate(stmts):
            kind, name = statement_kind(stmt)
            sat = f"{at}/{i}"
            if kind == "input" and owner == "model":  # a block's inputs have no shape
                self.shape(stmt, sat, scope)
            if kind == "add":
                self.error("E404", "a bare layer in a functional model has no input", sat,
                           hint="write `x = Dense(10)(previous)` or `x = previous |> Dense(10)`")
                continue
            if kind == "layer":
                self.layer_value(stmt.get("value"), f"{sat}/value", scope)
            elif kind in ("node", "output"):
                name = _name(name)
                deps: set[str] = set()
                self.flow(stmt.get("value"), f"{sat}/value", scope, deps)
                if name is not None and i not in duplicates:
                    scope.deps[name] = deps
        for name, sat in outputs:
            sym = scope.symbols.get(name)
            if sym is None and name in self.params:
                self.params[name].used = True
                self.error("E406", f"`{name}` is a param, not a tensor; outputs are tensors",
                           f"{sat}/output")
            elif sym is None:
                self.undefined(name, f"{sat}/output", scope, values=False)
            elif sym.kind == "layer":
                self.error("E406", f"`{name}` is a layer, not a tensor; outputs are tensors",
                           sat)
            else:
                sym.used = True
        if owner == "model" and inputs == 0:
            self.error("E403", "the model has no `input`", at,
                       hint="declare one, e.g. `input x: float32[4]`")
        if not outputs:
            self.error("E403", f"the {owner} has no `output`", at,
                       hint="mark the result, e.g. `output y = Dense(1)(x)` or `output x`")
        self.check_cycles(scope)
        if sum(1 for d in self.diags if d.is_error) == errors_before:
            # unused-node warnings after an error in the same body are mostly its echo
            self.check_unused(scope, [n for n, _ in outputs])

    def shape(self, stmt: dict[str, Any], at: str, scope: _Scope | None) -> None:
        """`input tokens: int32[seq_len]`: a dimension that names a param needs a
        positive integer there (as declared, or as `--set` gives it)."""
        for i, dim in enumerate(_list(stmt.get("shape"))):
            name = _name(dim.get("ref")) if isinstance(dim, dict) else None
            if name is None:
                continue  # a number or None: the schema checks those
            dat = f"{at}/shape/{i}"
            if name not in self.params and (scope is None or name not in scope.symbols):
                self.error("E400", f"undefined name `{name}`", dat,
                           did_you_mean(name, self.params) or
                           f"a dimension is a number, `None` or a param: declare it "
                           f"with `param {name} = …`")
                continue
            value = self.ref_value(name, dat, scope)
            if value is UNKNOWN or (isinstance(value, int) and not isinstance(value, bool)
                                    and value > 0):
                continue
            if name in self.overrides:
                declared = show(_dict(self.ir.get("params")).get(name))
                hint = f"`--set {name}={json.dumps(value)}` replaces the declared {declared}"
            else:
                span = self.pos.key(self.params[name].at)
                hint = f"`{name}` is declared at line {span.line}" if span else None
            self.error("E305", f"a dimension of input `{stmt.get('input')}` must be a "
                       f"positive integer. Received: {name}={show(value)}", dat, hint)

    def declare(self, name: str, kind: str, at: str, scope: _Scope) -> bool:
        """Add `name` to the scope; False (and E401) when it is already there."""
        if name in scope.symbols:
            first = scope.symbols[name]
            line = self.pos.value(first.at)
            self.error("E401", f"`{name}` is already declared" +
                       (f" at line {line.line}" if line else ""), at,
                       hint="each input, layer and node needs its own name; "
                            "nodes are not variables and cannot be reassigned")
            return False
        if name in self.params:
            self.error("E401", f"`{name}` is also a param", at, hint="rename one of them")
        if kind == "layer" and (name in self.blocks or catalog.lookup("layers", name)):
            self.error("E401", f"layer `{name}` has the name of a Keras layer or block", at)
        scope.symbols[name] = _Symbol(kind, at)
        return True

    def layer_value(self, value: Any, at: str, scope: _Scope) -> None:
        """`layer shared = Dense(64)`: a layer construction, not yet applied."""
        if not _is(value, "call") or not isinstance(value.get("call"), str):
            self.error("E406", "a named layer is a layer construction such as `Dense(64)`",
                       at, hint="apply it where it is used: `y = shared(x)`")
            return
        self.layer_construction(value, at, scope)

    def tensor_function(self, name: str, call: dict[str, Any], at: str, scope: _Scope,
                        deps: set[str]) -> None:
        """`add([a, b])`, `dot([a, b], axes = 1)`: Keras's functional merge helpers."""
        args = _list(call.get("args"))
        if len(args) != 1:
            self.error("E303", f"`{name}` takes one positional argument, the list of tensors. "
                       f"Received: {len(args)}", f"{at}/call",
                       hint=f"write `{name}([a, b])`")
        for i, arg in enumerate(args):
            self.flow(arg, f"{at}/args/{i}", scope, deps)
        entry = catalog.lookup("layers", name) or {}
        self.arguments(name, entry, {"call": name, "kwargs": _dict(call.get("kwargs"))}, at,
                       "layers", scope)

    def layer_construction(self, call: dict[str, Any], at: str, scope: _Scope | None) -> None:
        name = call.get("call")
        entry = catalog.lookup("layers", name) if isinstance(name, str) else None
        if isinstance(name, str) and name in self.blocks:
            self.block_use(name, call, at, scope)
        elif entry is not None and entry.get("kind") == "function":
            if name == "Input":
                self.error("E406", "`Input(…)` is not a layer", f"{at}/call",
                           hint="declare inputs with `input x: float32[…]`")
            else:
                self.error("E406", f"`{name}` is a function of tensors, not a layer",
                           f"{at}/call", hint=f"write `{name}([a, b])`, or the layer "
                           f"`{catalog.class_of(name)}()([a, b])`")
        elif entry is not None and entry.get("inputs") == "none":
            self.error("E406", f"`{name}` is not applied to tensors", f"{at}/call",
                       hint="declare inputs with `input x: float32[…]`")
        elif isinstance(name, str):
            self.call(call, at, "layers", scope)
        else:
            self.error("E406", "expected a layer such as `LSTM(64)`, not an applied layer",
                       at)

    def block_use(self, name: str, call: dict[str, Any], at: str, scope: _Scope | None) -> None:
        block = self.blocks[name]
        params = [p for p in _list(block.get("params")) if isinstance(p, dict)]
        entry = {"params": [{"name": p.get("name"), "required": "default" not in p,
                             "positional": True} for p in params if _name(p.get("name"))]}
        self.arguments(name, entry, call, at, "blocks", scope)

    def flow(self, value: Any, at: str, scope: _Scope, deps: set[str]) -> None:
        """A tensor expression: a node, a list of nodes, an application or a pipe."""
        if _is(value, "ref"):
            self.tensor_ref(value.get("ref"), at, scope, deps)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.flow(v, f"{at}/{i}", scope, deps)
        elif _is(value, "pipe") and isinstance(value["pipe"], list):
            self.pipe(value["pipe"], at, scope, deps)
        elif _is(value, "call"):
            self.application(value, at, scope, deps)
        elif _is(value, "op"):
            self.error("E406", "arithmetic is for values; tensors are combined with layers "
                       "such as `Add()([a, b])`", at)
        else:
            self.error("E406", f"expected a tensor (an input or a node). Received: "
                       f"{show(value)}", at)

    def pipe(self, stages: list[Any], at: str, scope: _Scope, deps: set[str]) -> None:
        """`x |> A() |> B()`: the first stage is a tensor, every later one a layer."""
        if stages:
            self.flow(stages[0], f"{at}/pipe/0", scope, deps)
        for i, stage in enumerate(stages[1:], 1):
            self.layer_expr(stage, f"{at}/pipe/{i}", scope)

    def application(self, value: dict[str, Any], at: str, scope: _Scope,
                    deps: set[str]) -> None:
        """A call where a tensor is expected: a layer (named, or built in place as
        `Dense(4)(x)`) applied to tensors, or a function of tensors."""
        callee = value["call"]
        if isinstance(callee, str) and callee in scope.symbols:
            self.named_application(callee, at, scope)
        elif isinstance(callee, str) and _function_of_tensors(callee):
            self.tensor_function(callee, value, at, scope, deps)
            return
        elif isinstance(callee, str):
            self.unapplied(callee, value, at, scope, deps)
            return
        elif isinstance(callee, dict):
            self.layer_expr(callee, f"{at}/call", scope)
        self.application_args(value, at, scope, deps)

    def named_application(self, callee: str, at: str, scope: _Scope) -> None:
        """`shared(x)`: only a named layer can be applied."""
        sym = scope.symbols[callee]
        sym.used = True
        if sym.kind != "layer":
            self.error("E406", f"`{callee}` is a {_KIND_WORDS[sym.kind]}; only "
                       "layers can be applied", f"{at}/call")

    def unapplied(self, callee: str, value: dict[str, Any], at: str, scope: _Scope,
                  deps: set[str]) -> None:
        """`Dense(4)` (or `Add(a, b)`) where a tensor is expected: built, not applied."""
        if self.tensors_in_args(value, scope, deps):
            self.error(
                "E406", f"`{callee}(…)` is given tensors as constructor arguments",
                at, hint=f"build the layer, then apply it: `{callee}()([…])` or "
                         f"`{callee}(…)(x)`")
            return
        self.error(
            "E406", f"`{callee}(…)` builds a layer but does not apply it to a "
            "tensor", at,
            hint=f"write `{callee}(…)(x)` or `x |> {callee}(…)`")
        self.layer_expr(value, at, scope)

    def application_args(self, value: dict[str, Any], at: str, scope: _Scope,
                         deps: set[str]) -> None:
        """What a layer is applied to: tensors, and by keyword tensors or values
        (`mask = m`, `training = false`)."""
        for i, arg in enumerate(_list(value.get("args"))):
            self.flow(arg, f"{at}/args/{i}", scope, deps)
        for key, arg in _dict(value.get("kwargs")).items():
            kat = f"{at}/kwargs/{escape(key)}"
            if _is(arg, "ref") and arg.get("ref") in scope.symbols:
                self.flow(arg, kat, scope, deps)
            else:
                self.value(arg, kat, scope)

    def tensors_in_args(self, call: dict[str, Any], scope: _Scope, deps: set[str]) -> bool:
        """Whether a layer construction was passed tensors (`Add(a, b)`): mark them used."""
        found = False
        for arg in _list(call.get("args")) + list(_dict(call.get("kwargs")).values()):
            for v in arg if isinstance(arg, list) else [arg]:
                name = v.get("ref") if _is(v, "ref") else None
                sym = scope.symbols.get(name) if isinstance(name, str) else None
                if sym is not None and sym.kind in _TENSOR_KINDS:
                    sym.used = True
                    deps.add(name)
                    found = True
        return found

    def tensor_ref(self, name: Any, at: str, scope: _Scope, deps: set[str]) -> None:
        if not isinstance(name, str):
            return
        sym = scope.symbols.get(name)
        if sym is None:
            if name in self.params:
                self.error("E406", f"`{name}` is a param, not a tensor", at)
                return
            self.undefined(name, at, scope, values=False)
            return
        sym.used = True
        if sym.kind not in _TENSOR_KINDS:
            self.error("E406", f"`{name}` is a {_KIND_WORDS[sym.kind]}, not a tensor", at,
                       hint=f"apply it: `{name}(x)`" if sym.kind == "layer" else None)
            return
        deps.add(name)

    def layer_expr(self, value: Any, at: str, scope: _Scope) -> None:
        """A pipe stage or callee: a layer construction or a named layer."""
        if _is(value, "ref"):
            name = value.get("ref")
            sym = scope.symbols.get(name) if isinstance(name, str) else None
            if sym is None:
                if isinstance(name, str) and (name in self.blocks or
                                              catalog.lookup("layers", name)):
                    self.error("E406", f"`{name}` needs parentheses to build a layer", at,
                               hint=f"write `{name}()`")
                elif isinstance(name, str):
                    self.undefined(name, at, scope, values=False)
                return
            sym.used = True
            if sym.kind != "layer":
                self.error("E406", f"`{name}` is a {_KIND_WORDS[sym.kind]}, not a layer", at)
            return
        if _is(value, "call") and isinstance(value["call"], str):
            callee = value["call"]
            sym = scope.symbols.get(callee)
            if sym is not None:
                self.error("E406", f"`{callee}` is already a layer; `{callee}(…)` applies it",
                           at, hint=f"write `|> {callee}`")
                sym.used = True
                return
            self.layer_construction(value, at, scope)
            return
        self.error("E406", f"expected a layer such as `Dense(10)`. Received: {show(value)}",
                   at)

    def check_cycles(self, scope: _Scope) -> None:
        if not _has_cycle(scope.deps):  # one linear pass; naming the cycle costs O(n²)
            return
        for name in scope.deps:
            path = _find_cycle(name, scope.deps)
            if path:
                self.error("E402", "the graph has a cycle: " + " -> ".join(path),
                           scope.symbols[name].at.rsplit("/", 1)[0] + "/value",
                           hint="a node cannot depend on itself")
                return

    def check_unused(self, scope: _Scope, outputs: list[str]) -> None:
        reachable: set[str] = set()
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name in reachable:
                continue
            reachable.add(name)
            stack += scope.deps.get(name, ())
        for name, sym in scope.symbols.items():
            if sym.kind in ("input", "node") and name not in reachable:
                where = "the block's" if scope.block else "the model's"
                self.error("W400", f"`{name}` does not contribute to {where} outputs", sym.at,
                           hint="remove it, or use it")
            elif sym.kind == "layer" and not sym.used:
                self.error("W400", f"layer `{name}` is never applied", sym.at)

    # -- data and training ------------------------------------------------------------------

    def check_data(self, data: dict[str, Any], at: str) -> None:
        for key, value in data.items():
            kat = f"{at}/{escape(key)}"
            if key == "source" and _is(value, "call"):
                self.call(value, kat, "sources")
                if value.get("call") == "generator":
                    self.generator_target(value, kat)
                self.source_rules(value, kat, data)
            elif key in ("preprocess", "augment") and isinstance(value, list):
                if key == "preprocess" and value and self.model_inputs() > 1:
                    self.error("E406", "`preprocess` applies to a model with one input", kat,
                               hint="with several inputs, apply preprocessing layers to "
                                    "each input in the model body")
                for i, layer in enumerate(value):
                    if _is(layer, "call"):
                        self.call(layer, f"{kat}/{i}", "layers")
            else:
                self.check_refs(value, kat)

    def source_rules(self, call: dict[str, Any], at: str, data: dict[str, Any]) -> None:
        """What a source needs from the rest of the data section."""
        name = call.get("call")
        args, kwargs = _list(call.get("args")), _dict(call.get("kwargs"))
        if name == "csv" and len(args) < 2 and "label" not in kwargs and not data.get("labels"):
            self.error("E302", "`csv` needs to know the label column", f"{at}/call",
                       hint='write `csv("file.csv", label = "column")`')
        split = data.get("split")
        if isinstance(split, dict) and name not in ("tfds",):
            for key in ("validation", "test"):
                if isinstance(split.get(key), str) and not (name == "keras" and key == "test"):
                    self.error("E203", f"a named split (`{key} = \"{split[key]}\"`) needs a "
                               f"source with named splits; `{name}` has none",
                               f"/data/split/{key}",
                               hint="use a fraction such as 0.2, or a `tfds(…)` source")

    def generator_target(self, call: dict[str, Any], at: str) -> None:
        """`generator("module:function")` runs user code: only modules allowed by name."""
        args = _list(call.get("args"))
        target, tat = (args[0], f"{at}/args/0") if args else (
            _dict(call.get("kwargs")).get("target"), f"{at}/kwargs/target")
        if not isinstance(target, str):
            return
        module, sep, function = target.partition(":")
        if not sep or not module or not function or not all(
                part.isidentifier() for part in [*module.split("."), function]):
            self.error("E305", f'`target` must be "module:function". Received: "{target}"',
                       tat, hint='e.g. generator("mydata.readers:examples")')
            return
        if module not in self.allow_modules:
            self.error("E409", f"the spec imports the Python module `{module}`, which was "
                       "not allowed", tat,
                       hint=f"a spec runs no code unless you allow it: pass "
                            f"`--allow-module {module}`")

    def model_inputs(self) -> int:
        model = self.ir.get("model")
        body = model.get("body") if isinstance(model, dict) else None
        return len(declared(body, "input"))

    def check_output_dtypes(self, model: dict[str, Any], policy: str) -> None:
        """Keras's mixed-precision guide: the layer that makes an output should compute
        in float32 (a 16-bit softmax is unstable, and float32 metrics such as top-k
        reject 16-bit predictions)."""
        for call, at, what, _ in output_layers(model):
            if catalog.lookup("layers", call["call"]) is None:
                continue  # a block or a loaded model: its own layers decide
            if "dtype" not in (call.get("kwargs") or {}):
                self.error("W402", f"under `{policy}`, {what} is computed in "
                           f"{policy.removeprefix('mixed_')}: Keras's mixed-precision guide "
                           f"makes the output layer float32", at,
                           hint=f"add `dtype = \"float32\"` to `{call['call']}(…)`")

    def check_train(self, train: dict[str, Any], at: str, model: dict[str, Any] | None) -> None:
        outputs = _model_outputs(model)
        if train.get("mixed_precision") in ("mixed_float16", "mixed_bfloat16") and model:
            self.check_output_dtypes(model, train["mixed_precision"])
        if train.get("jit_compile") is True and train.get("deterministic") is True:
            # Keras's model_supports_jit: not every op is deterministic under XLA
            self.error("W403", "`jit_compile = true` has no effect with `deterministic = "
                       "true`: Keras turns XLA off (not every XLA op is deterministic)",
                       f"{at}/jit_compile", hint="drop one of them: XLA for speed, or "
                       "`deterministic` for runs that repeat bit for bit")
        for key, value in train.items():
            kat = f"{at}/{escape(key)}"
            if key == "optimizer":
                self.named(value, kat, "optimizers")
            elif key == "loss":
                self.per_output(value, kat, "losses", outputs, "loss")
            elif key == "metrics":
                if isinstance(value, dict) and not _is(value, "call"):
                    self.per_output(value, kat, "metrics", outputs, "metrics")
                else:
                    for i, m in enumerate(_list(value)):
                        self.named(m, f"{kat}/{i}", "metrics")
            elif key == "loss_weights":
                if isinstance(value, dict):
                    self.output_keys(value, kat, outputs, "loss_weights")
                    for k, v in value.items():
                        self.value(v, f"{kat}/{escape(k)}")
                elif isinstance(value, list) and outputs is not None and len(value) != len(
                        outputs):
                    self.error("E405", f"`loss_weights` has {len(value)} entries but the model "
                               f"has {len(outputs)} outputs", kat)
            elif key == "callbacks":
                for i, cb in enumerate(_list(value)):
                    if _is(cb, "call"):
                        self.call(cb, f"{kat}/{i}", "callbacks")
            else:
                self.check_refs(value, kat)

    def named(self, value: Any, at: str, category: str) -> None:
        """A string identifier ("adam") or a call (`Adam(…)`) of `category`."""
        if _is(value, "call"):
            self.call(value, at, category)
        elif isinstance(value, str):
            if catalog.lookup(category, value) is None:
                word = _CATEGORY_WORDS[category]
                self.error("E300", f"unknown {word} \"{value}\"", at,
                           did_you_mean(value, catalog.names(category), string=True))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.named(v, f"{at}/{i}", category)
        elif _is(value, "ref") and value["ref"] in self.params:  # `optimizer = opt`
            ref, resolved = value["ref"], self.value(value, at)
            word = _CATEGORY_WORDS[category]
            # a `tune` space checks its values against this use (Keras's string identifiers)
            identifiers = [n for n in catalog.names(category) if n == n.lower()]
            self.param_uses.setdefault(ref, []).append(
                ("train", word, {"enum": identifiers}, at))
            if isinstance(resolved, str) and catalog.lookup(category, resolved) is None:
                self.error("E300", f"unknown {word} \"{resolved}\" (from `{ref}`)", at,
                           did_you_mean(resolved, catalog.names(category), string=True))
        else:
            self.check_refs(value, at)

    def per_output(self, value: Any, at: str, category: str, outputs: list[str] | None,
                   what: str) -> None:
        if isinstance(value, dict) and not _is(value, "call") and not _is(value, "ref"):
            unknown = self.output_keys(value, at, outputs, what)
            for k, v in value.items():
                self.named(v, f"{at}/{escape(k)}", category)
            if outputs and what == "loss" and not unknown:
                missing = [o for o in outputs if o not in value]
                if missing:
                    self.error("E405", "no loss for output" + ("s " if len(missing) > 1 else " ")
                               + ", ".join(f"`{m}`" for m in missing), at,
                               hint="Keras needs a loss for every output; give each one")
        else:
            self.named(value, at, category)

    def output_keys(self, value: dict[str, Any], at: str, outputs: list[str] | None,
                    what: str) -> int:
        """Report keys that are not outputs of the model; return how many."""
        if outputs is None:
            return 0
        unknown = 0
        for key in value:
            if key not in outputs:
                hint = did_you_mean(key, outputs) or (
                    "the model's outputs: " + ", ".join(f"`{o}`" for o in outputs))
                self.error("E405", f"`{what}` names `{key}`, which is not an output of the "
                           "model", f"{at}/{escape(key)}", hint, key=True)
                unknown += 1
        return unknown


# -- helpers -----------------------------------------------------------------------------

_KIND_WORDS = {
    "param": "param", "input": "model input", "node": "node", "output": "output",
    "layer": "named layer", "block param": "block parameter",
}
_CATEGORY_WORDS = {
    "layers": "Keras layer", "optimizers": "optimizer", "losses": "loss", "metrics": "metric",
    "callbacks": "callback", "activations": "activation", "initializers": "initializer",
    "regularizers": "regularizer", "constraints": "constraint",
    "schedules": "learning-rate schedule", "sources": "data source", "blocks": "block",
    "hyperparameters": "KerasTuner hyperparameter kind", "objectives": "KerasTuner objective",
}
# What to write instead of a Keras class that takes Python code (catalog's callable_params).
_CODE_HINTS = {
    "Lambda": "write the computation with layers (`Activation`, `Rescaling`, `Reshape`, "
              "`Permute`, merge layers…) or as a `block`; for data made by your code, use a "
              '`generator("module:function")` source with `--allow-module`',
    "FlaxLayer": "tfspec compiles to TensorFlow: rewrite the module with Keras layers or a "
                 "`block`",
    "JaxLayer": "tfspec compiles to TensorFlow: rewrite the function with Keras layers or a "
                "`block`",
    "TorchModuleWrapper": "tfspec compiles to TensorFlow: rewrite the module with Keras "
                          "layers or a `block`",
    "MeanMetricWrapper": 'name a Keras metric instead, e.g. `metrics = ["mae"]` or '
                         "`MeanAbsoluteError()`",
    "LearningRateScheduler": "pass a schedule object, e.g. `LearningRateScheduler("
                             "ExponentialDecay(0.1, 1000, 0.9))`, or give the optimizer "
                             "one: `Adam(learning_rate = ExponentialDecay(…))`",
    "LambdaCallback": "use a Keras callback such as `CSVLogger(…)`, `EarlyStopping(…)` or "
                      "`TensorBoard(…)`",
}
# Call categories of tfspec's own, in the catalog's format.
_OWN_CALLS = {"sources": SOURCES, "hyperparameters": checktune.HP_CALLS,
              "objectives": {"Objective": checktune.OBJECTIVE_CALL}}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    return isinstance(value, list) and any(_contains_unknown(v) for v in value)


def _positional_hint(name: str, positional: list[dict[str, Any]], args: list[Any],
                     params: list[dict[str, Any]]) -> str | None:
    if len(positional) == 1 and positional[0].get("type") in ("shape", "size", "axis"):
        items = ", ".join(show(a) for a in args)
        return f"`{positional[0]['name']}` is one list: write `{name}([{items}])`"
    keywords = [p["name"] for p in params if not p.get("positional", True)]
    if keywords:
        return "pass the rest by keyword: " + ", ".join(f"`{k}`" for k in keywords[:6])
    if not params:
        return f"`{name}` takes no arguments"
    return None


def _call_example(params: list[dict[str, Any]]) -> str:
    return ", ".join(p["name"] + (" = …" if not p.get("positional", True) else "")
                     for p in params if p.get("required"))


def _override_problem(declared: Any, override: Any) -> str | None:
    """Why `override` cannot replace a param declared as `declared` (None: it can)."""
    def kind(v: Any) -> str:
        if isinstance(v, bool):
            return "a boolean"
        if isinstance(v, int):
            return "an integer"
        if isinstance(v, float):
            return "a number"
        if isinstance(v, str):
            return "a string"
        if v is None:
            return "null"
        if isinstance(v, list):
            return "a list"
        return "a value"

    want, got = kind(declared), kind(override)
    if want == got or declared is None or declared is UNKNOWN:
        return None
    if want == "a number" and got == "an integer":
        return None
    return f"expected {want}. Received: {json.dumps(override)}"


def _last_layer(value: Any, at: str) -> tuple[dict[str, Any], str] | None:
    """The layer call that makes `value` (`Dense(…)(x)`, or a pipe's last stage)."""
    if isinstance(value, dict) and isinstance(value.get("pipe"), list) and value["pipe"]:
        return _last_layer(value["pipe"][-1], f"{at}/pipe/{len(value['pipe']) - 1}")
    if isinstance(value, dict) and isinstance(value.get("call"), dict):
        return _last_layer(value["call"], f"{at}/call")
    if isinstance(value, dict) and isinstance(value.get("call"), str):
        return value, at
    return None


def output_layers(model: dict[str, Any]) -> list[tuple[dict[str, Any], str, str, str | None]]:
    """The layer call that makes each of the model's outputs, where the body says it (a
    sequential model's last layer, the call of `output y = …`): (call, its pointer,
    words for the output, the output's name; None for a sequential model's)."""
    body = [s for s in _list(model.get("body")) if isinstance(s, dict)]
    found: list[tuple[dict[str, Any], str, str, str | None]] = []
    if model.get("kind") == "sequential":
        layers = [(i, s) for i, s in enumerate(body) if statement_kind(s)[0] == "add"]
        if layers:
            i, s = layers[-1]
            last = _last_layer(s["add"], f"/model/body/{i}/add")
            if last:
                found.append((*last, "the model's output", None))
        return found
    for i, s in enumerate(body):
        kind, name = statement_kind(s)
        if kind in OUTPUTS and isinstance(name, str):
            last = _last_layer(s.get("value"), f"/model/body/{i}/value")
            if last:
                found.append((*last, f"output `{name}`", name))
    return found


def _model_outputs(model: dict[str, Any] | None) -> list[str] | None:
    if model is None or model.get("kind") == "sequential":
        return None
    outs = [n for n in declared(model.get("body"), *OUTPUTS) if isinstance(n, str)]
    return outs or None


def _function_of_tensors(name: str) -> bool:
    entry = catalog.lookup("layers", name)
    return entry is not None and entry.get("kind") == "function" and bool(
        entry.get("tensor_args"))


def _refs(value: Any) -> set[str]:
    """Every name referenced anywhere in `value`."""
    found: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v.get("ref"), str):
                found.add(v["ref"])
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found


def _block_uses(body: Any, blocks: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if isinstance(v.get("call"), str) and v["call"] in blocks:
                found.add(v["call"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(body)
    return found


def _has_cycle(edges: dict[str, set[str]]) -> bool:
    """Whether `edges` has a cycle: a depth-first search that colours each node once."""
    done: set[str] = set()
    for root in edges:
        if root in done:
            continue
        on_path = {root}
        stack = [(root, iter(edges.get(root, ())))]
        while stack:
            node, todo = stack[-1]
            nxt = next(todo, None)
            if nxt is None:
                stack.pop()
                on_path.discard(node)
                done.add(node)
            elif nxt in on_path:
                return True
            elif nxt not in done:
                on_path.add(nxt)
                stack.append((nxt, iter(edges.get(nxt, ()))))
    return False


def _find_cycle(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path start -> … -> start through `edges`, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def check_semantics(ir: dict[str, Any], positions: Positions, diags: Diagnostics,
                    overrides: dict[str, Any] | None = None,
                    allow_modules: tuple[str, ...] = ()) -> None:
    Checker(ir, positions, diags, overrides, allow_modules).run()
