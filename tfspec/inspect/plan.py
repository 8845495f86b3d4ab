"""`tfspec plan`: build the model (no data, no training) and report what it is.

Per layer of the Keras model: its class, output shape and dtype, trainable and
non-trainable parameters, an estimate of the FLOPs one example costs, and the
spec line that asked for it. Then the totals (parameters — always equal to
`model.count_params()` —, weight memory, FLOPs) and the input/output signature.

A subclassed model hides its dataflow inside `call()`, so its per-layer detail
comes from its *functional twin* (the same spec compiled as `functional`); the
totals still come from the real subclassed model, and the two must agree.

FLOPs are estimates of one forward pass at inference, per example, counting a
multiply-add as 2 (see docs/plan-and-graph.md for the rules per layer type).
Layers with no rule report 0 and are listed as not estimated.

When Keras rejects the model, `analyze` raises `PlanError`: the located E500 and
the rows of the layers Keras built before the failing one (`render_partial`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..codegen.model import Generator, LayerInfo
from ..codegen.program import Compiled, write_program
from ..lang.diagnostics import Diagnostics, SpecError
from ..lang.ir import OUTPUTS, declared, statement_kind
from ..lang.validate import Result

if TYPE_CHECKING:
    from ..jobs.build import BuildError

# -- the functional twin of a subclassed model ------------------------------------------------


def functional_twin(compiled: Compiled, params: dict[str, Any] | None = None) -> Compiled:
    """The same spec compiled as a functional model.

    The IR keeps its shape (only `/model/kind` changes), so the twin's layer
    manifest points into the original spec's positions. `params` are the values
    the original program uses (with its `--set` overrides: `Compiled` does not
    keep those, so `analyze` reads them back from the program).
    """
    ir = copy.deepcopy(compiled.ir)
    ir["model"]["kind"] = "functional"
    result = Result(compiled.spec_file, compiled.spec_source, ir, compiled.positions,
                    Diagnostics(compiled.spec_file), overrides=dict(params or {}))
    gen = Generator(result)
    source = write_program(gen)
    return Compiled(compiled.spec_file, compiled.spec_source, ir, compiled.positions, source,
                    gen.w.origins, gen.layers, bindings=gen.bindings)


# -- analysis: one build, shared by `plan` and `graph` ------------------------------------------


@dataclass
class Analysis:
    """A built model, the model its per-layer detail comes from, and its graph nodes."""

    compiled: Compiled  # what was asked for
    model: Any  # the real Keras model (totals)
    detail: Any  # the model whose layers are listed (the functional twin for subclass)
    detail_compiled: Compiled
    # per listed layer: the model's call nodes of that layer (shared layers: several)
    nodes: dict[int, list[Any]] = field(default_factory=dict)


def analyze(compiled: Compiled) -> Analysis:
    """Build the model of `compiled` (and its functional twin when it is subclassed).

    Raises `PlanError` (E500) when Keras rejects the model, with the rows of the
    layers it could build before the failing one."""
    from ..jobs.build import BuildError, build_model, load_program

    namespace = load_program(compiled)
    subclass = compiled.ir["model"]["kind"] == "subclass"
    try:
        model = build_model(compiled, namespace, partial=not subclass)
    except BuildError as error:
        raise _plan_error(error, compiled, namespace) from None
    if not model.built:
        raise _unbuilt(compiled)
    detail, detail_compiled = model, compiled
    if subclass:
        detail_compiled = functional_twin(compiled, _program_params(compiled, namespace))
        detail = build_model(detail_compiled)
    return _with_nodes(Analysis(compiled, model, detail, detail_compiled))


def _with_nodes(analysis: Analysis) -> Analysis:
    """Record, per listed layer, its call nodes that belong to the detail model."""
    owned = _model_node_keys(analysis.detail)
    for layer in analysis.detail.layers:
        analysis.nodes[id(layer)] = [
            node for i, node in enumerate(layer._inbound_nodes)
            if owned is None or _node_key(layer, i) in owned
        ]
    return analysis


class PlanError(SpecError):
    """Keras cannot build the model: its E500, and the plan rows (`layers`, maybe
    none) of the layers Keras built before the failing one."""

    def __init__(self, error: SpecError, compiled: Compiled, layers: list[dict[str, Any]],
                 layers_from: str = "model"):
        super().__init__(error.diagnostics, error.source)
        self.compiled = compiled
        self.layers = layers
        self.layers_from = layers_from

    shows_rows = False  # `plan` prints the rows before the diagnostics (hint_at_rows)

    def hint_at_rows(self) -> None:
        """For `plan`, which shows the rows: the E500's hint (`compile --check` and `run`
        send the user to `tfspec plan`) says what the rows are."""
        self.shows_rows = True
        for diag in self.diagnostics:
            if diag.code == "E500" and diag.hint and "tfspec plan" in diag.hint:
                diag.hint = ("the layers Keras built before this one are listed with their "
                             "output shapes" if self.layers else
                             "Keras built no layer before this one: it takes the model's input")

    def to_json(self) -> list[dict[str, Any]]:
        """The diagnostics as every command prints them; the E500 also carries
        `built_layers`, the rows of the layers Keras built before the failing one."""
        return [{**d.to_dict(), "built_layers": self.layers} if d.code == "E500"
                else d.to_dict() for d in self.diagnostics]

    def preface(self) -> str:
        """The rows of the layers Keras built, where `plan` shows them (`hint_at_rows`)."""
        return render_partial(self) if self.shows_rows else ""


def _plan_error(error: BuildError, compiled: Compiled, namespace: dict[str, Any]) -> PlanError:
    """The E500 of a model Keras rejects, with the rows of the layers it built. A
    subclassed model's come from its functional twin, which fails at the same layer."""
    from ..jobs.build import BuildError, build_model

    built, detail_compiled = error.built, compiled
    if compiled.ir["model"]["kind"] == "subclass":
        detail_compiled = functional_twin(compiled, _program_params(compiled, namespace))
        try:
            build_model(detail_compiled, partial=True)
        except BuildError as twin_error:
            built = twin_error.built
    layers = []
    if built is not None:
        layers = layer_entries(_with_nodes(Analysis(compiled, built, built, detail_compiled)))
    return PlanError(error, compiled, layers,
                     "functional twin" if detail_compiled is not compiled else "model")


def _program_params(compiled: Compiled, namespace: dict[str, Any]) -> dict[str, Any]:
    """The param values a generated program runs with (its `--set` overrides included)."""
    result = Result(compiled.spec_file, compiled.spec_source, compiled.ir, compiled.positions,
                    Diagnostics(compiled.spec_file))
    consts = Generator(result).consts  # param name -> the program's constant
    return {name: namespace[const] for name, const in consts.items() if const in namespace}


def _unbuilt(compiled: Compiled) -> SpecError:
    """A model with no input shape has no weights or shapes to describe yet."""
    diags = Diagnostics(compiled.spec_file)
    diags.add("E500", "Keras cannot build the model before it sees data: it has no `input` "
                      "with a shape", compiled.positions.key("/model/name"),
              hint="declare the input first, e.g. `input features: float32[4]`")
    return SpecError(diags, compiled.spec_source)


def graph_owner(model: Any) -> Any:
    """The Functional graph of a model (a Sequential keeps one inside), or None."""
    if hasattr(model, "_nodes"):
        return model
    return getattr(model, "_functional", None)


def _node_key(layer: Any, index: int) -> str:
    try:
        from keras.src.ops.function import make_node_key
    except ImportError:  # pragma: no cover - Keras moved it: the format is stable
        return f"{id(layer)}_ib-{index}"
    return make_node_key(layer, index)


def _model_node_keys(model: Any) -> set[str] | None:
    owner = graph_owner(model)
    keys = getattr(owner, "_nodes", None)
    return set(keys) if keys is not None else None


# -- where each layer comes from in the spec -------------------------------------------------


@dataclass
class Origin:
    info: LayerInfo | None  # the manifest entry of the construction
    # the block uses it sits in, outermost first: (real use name, the use's entry)
    chain: list[tuple[str, LayerInfo]] = field(default_factory=list)
    input_at: str | None = None  # for input layers: the input statement's pointer


class Locator:
    """Maps Keras layer names to the compiler's manifest.

    Layers built inside a block function are named `<use>_<suffix>` (the output
    layer takes the use's own name), and the manifest records each block's
    layers once, under the block's definition. So a name is resolved scope by
    scope: the model body first, then, through the longest matching block-use
    prefix, the body of the block that use instantiates.
    """

    def __init__(self, compiled: Compiled):
        self.ir = compiled.ir
        self.infos = compiled.layers
        blocks = self.ir.get("blocks") or []
        self.block_index = {b["name"]: i for i, b in enumerate(blocks)}
        self.inputs: dict[str, str] = {}
        model = self.ir.get("model") or {}
        for i, stmt in enumerate(model.get("body") or []):
            kind, name = statement_kind(stmt)
            if kind == "input":
                self.inputs[name] = f"/model/body/{i}"

    def is_use(self, info: LayerInfo) -> bool:
        return info.cls in self.block_index

    def scope(self, prefix: str) -> list[LayerInfo]:
        return [i for i in self.infos if i.at.startswith(prefix)]

    def locate(self, name: str, is_input: bool = False) -> Origin:
        if is_input and name in self.inputs:
            return Origin(None, [], self.inputs[name])
        found = self.resolve(name, "/model/", "")
        if found is not None:
            return found
        for info in self.infos:  # a user-named layer (`name = "…"`) keeps its name anywhere
            if info.name == name and not self.is_use(info):
                return Origin(info)
        return Origin(None)

    def resolve(self, name: str, prefix: str, outer: str, depth: int = 0) -> Origin | None:
        if depth > 32:  # blocks cannot recurse (E402); never loop on a bad manifest
            return None
        infos = self.scope(prefix)
        for info in infos:
            if info.name == name and not self.is_use(info):
                return Origin(info)
        for info in infos:
            if info.name == name and self.is_use(info):  # the block's output layer
                real = _join(outer, name)
                inner = self.resolve("", self.block_prefix(info), real, depth + 1)
                if inner is None or inner.info is None:
                    return Origin(info, [(real, info)])
                return Origin(inner.info, [(real, info), *inner.chain])
        uses = sorted((i for i in infos if self.is_use(i) and i.name), key=lambda i: -len(i.name))
        for info in uses:
            if name.startswith(info.name + "_"):
                real = _join(outer, info.name)
                inner = self.resolve(name[len(info.name) + 1:], self.block_prefix(info), real,
                                     depth + 1)
                if inner is not None:
                    return Origin(inner.info, [(real, info), *inner.chain])
        for info in infos:  # a block whose output is another block's use: same prefix
            if self.is_use(info) and not info.name:
                inner = self.resolve(name, self.block_prefix(info), outer, depth + 1)
                if inner is not None:
                    return Origin(inner.info, [(outer, info), *inner.chain])
        return None

    def block_prefix(self, use: LayerInfo) -> str:
        return f"/blocks/{self.block_index[use.cls]}/"


def _join(outer: str, name: str) -> str:
    if not name:
        return outer
    return f"{outer}_{name}" if outer else name


# -- FLOPs -------------------------------------------------------------------------------------

# Layers that do no arithmetic at inference (reshaping, copying, dropout, noise,
# augmentation that is off outside training).
_FREE = {
    "InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianDropout", "GaussianNoise", "AlphaDropout", "Flatten", "Reshape", "Permute",
    "RepeatVector", "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D",
    "ZeroPadding3D", "ActivityRegularization", "Identity", "Concatenate", "Embedding",
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
    "RandomBrightness", "RandomCrop", "RandomHeight", "RandomWidth",
}
_ACTIVATIONS = {"ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU"}
_MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
BATCH_NORM_PER_ELEMENT = 4  # (x - mean) / sqrt(var + eps) * gamma + beta
LAYER_NORM_PER_ELEMENT = 8  # the same, plus computing the mean and variance per example


def _dims(shape: Any) -> tuple[int | None, ...]:
    """Per-example dims (the batch axis dropped)."""
    return tuple(shape)[1:]


def _prod(dims: Any) -> int:
    return math.prod(1 if d is None else int(d) for d in dims)


def _unknown(dims: Any) -> bool:
    return any(d is None for d in dims)


def _nonlinear(layer: Any) -> bool:
    try:
        act = layer.get_config().get("activation")
    except Exception:  # a custom layer without a config: assume an activation
        return True
    return act not in (None, "linear")


def _channels(layer: Any, dims: tuple) -> tuple[int, tuple]:
    """(channels, spatial dims) of a per-example conv shape."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return int(dims[0] or 1), dims[1:]
    return int(dims[-1] or 1), dims[:-1]


def _per_output(layer: Any, out_elems: int) -> int:
    """Bias add and fused activation: one FLOP per output element each."""
    return out_elems * (int(bool(getattr(layer, "use_bias", False))) + int(_nonlinear(layer)))


def _dense(layer, ins, outs):
    dims = _dims(ins[0])
    fan_in, positions = int(dims[-1] or 1), _prod(dims[:-1])
    out = positions * layer.units
    return out * 2 * fan_in + _per_output(layer, out)


def _conv(layer, ins, outs):
    cin, _ = _channels(layer, _dims(ins[0]))
    cout, spatial = _channels(layer, _dims(outs[0]))
    out = _prod(spatial) * cout
    per = 2 * math.prod(layer.kernel_size) * cin // getattr(layer, "groups", 1)
    return out * per + _per_output(layer, out)


def _conv_transpose(layer, ins, outs):
    cin, in_spatial = _channels(layer, _dims(ins[0]))
    cout, out_spatial = _channels(layer, _dims(outs[0]))
    macs = _prod(in_spatial) * cin * math.prod(layer.kernel_size) * cout
    return 2 * macs + _per_output(layer, _prod(out_spatial) * cout)


def _depthwise(layer, ins, outs):
    cout, spatial = _channels(layer, _dims(outs[0]))
    out = _prod(spatial) * cout  # cout = channels in x depth_multiplier
    return out * 2 * math.prod(layer.kernel_size) + _per_output(layer, out)


def _separable(layer, ins, outs):
    cin, _ = _channels(layer, _dims(ins[0]))
    cout, spatial = _channels(layer, _dims(outs[0]))
    mid = cin * layer.depth_multiplier
    depthwise = _prod(spatial) * mid * 2 * math.prod(layer.kernel_size)
    pointwise = _prod(spatial) * cout * 2 * mid
    return depthwise + pointwise + _per_output(layer, _prod(spatial) * cout)


def _pooling(layer, ins, outs):
    return _prod(_dims(outs[0])) * math.prod(layer.pool_size)


def _global_pooling(layer, ins, outs):
    return _prod(_dims(ins[0]))


def _rnn_step(cell_cls: str, layer: Any, fan_in: int) -> int:
    units = layer.units
    if cell_cls == "LSTM":  # 4 gates, their activations, c = f*c + i*g, h = o*tanh(c)
        return 4 * units * 2 * (fan_in + units) + 4 * units * 2 + 5 * units
    if cell_cls == "GRU":  # 3 gates (two biases when reset_after), h = z*h + (1-z)*hh
        biases = 6 if getattr(layer.cell, "reset_after", False) else 3
        return 3 * units * 2 * (fan_in + units) + (biases + 3) * units + 4 * units
    return units * 2 * (fan_in + units) + 2 * units  # SimpleRNN: bias, activation


def _rnn(layer, ins, outs):
    dims = _dims(ins[0])
    base = next(c.__name__ for c in type(layer).__mro__
                if c.__name__ in ("LSTM", "GRU", "SimpleRNN"))
    return _prod(dims[:1]) * _rnn_step(base, layer, int(dims[-1] or 1))


def _bidirectional(layer, ins, outs):
    total = 0
    for inner in (layer.forward_layer, layer.backward_layer):
        flops, _ = estimate(inner, ins[:1], [inner.compute_output_shape(tuple(ins[0]))])
        if flops is None:
            return None
        total += flops
    if layer.merge_mode in ("sum", "mul", "ave"):
        total += _prod(_dims(outs[0]))
    return total


def _time_distributed(layer, ins, outs):
    shape = tuple(ins[0])
    inner_in = (shape[0], *shape[2:])
    inner = layer.layer
    flops, _ = estimate(inner, [inner_in], [inner.compute_output_shape(inner_in)])
    return None if flops is None else flops * int(shape[1] or 1)


def _attention(layer, ins, outs):
    cfg = layer.get_config()
    heads, key_dim = cfg["num_heads"], cfg["key_dim"]
    value_dim = cfg.get("value_dim") or key_dim
    query, value = _dims(ins[0]), _dims(ins[1] if len(ins) > 1 else ins[0])
    key = _dims(ins[2]) if len(ins) > 2 else value
    tq, tv, tk = _prod(query[:-1]), _prod(value[:-1]), _prod(key[:-1])
    dq, dv, dk = (int(d[-1] or 1) for d in (query, value, key))
    out_dim = _prod(_dims(outs[0])[len(query) - 1:]) or dq
    bias = int(bool(cfg.get("use_bias", True)))
    proj = (2 * tq * dq * heads * key_dim + 2 * tk * dk * heads * key_dim
            + 2 * tv * dv * heads * value_dim + 2 * tq * heads * value_dim * out_dim)
    proj += bias * (tq * heads * key_dim + tk * heads * key_dim + tv * heads * value_dim
                    + tq * out_dim)
    scores = heads * tq * tk
    # q scaled by 1/sqrt(key_dim); q.k; softmax (one per score); weights.v
    attend = tq * heads * key_dim + scores * 2 * key_dim + scores + scores * 2 * value_dim
    return proj + attend


def _elementwise(per: int):
    def rule(layer, ins, outs):
        return per * _prod(_dims(outs[0]))
    return rule


def _merge(layer, ins, outs):
    return max(len(ins) - 1, 1) * _prod(_dims(outs[0]))


def _activation(layer, ins, outs):
    return _prod(_dims(outs[0])) if _nonlinear(layer) else 0


def _upsampling(layer, ins, outs):
    if getattr(layer, "interpolation", "nearest") == "nearest":
        return 0
    return None


_RULES = {
    "Dense": _dense,
    "BaseConv": _conv,
    "BaseConvTranspose": _conv_transpose,
    "BaseDepthwiseConv": _depthwise,
    "BaseSeparableConv": _separable,
    "BasePooling": _pooling,
    "BaseGlobalPooling": _global_pooling,
    "LSTM": _rnn,
    "GRU": _rnn,
    "SimpleRNN": _rnn,
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    "MultiHeadAttention": _attention,
    "BatchNormalization": _elementwise(BATCH_NORM_PER_ELEMENT),
    "LayerNormalization": _elementwise(LAYER_NORM_PER_ELEMENT),
    "GroupNormalization": _elementwise(LAYER_NORM_PER_ELEMENT),
    "Rescaling": _elementwise(2),  # x * scale + offset
    "Normalization": _elementwise(2),  # (x - mean) / std
    "Masking": _elementwise(1),
    "Activation": _activation,
    "UpSampling1D": _upsampling,
    "UpSampling2D": _upsampling,
    "UpSampling3D": _upsampling,
    **{name: _elementwise(1) for name in _ACTIVATIONS},
    **{name: _merge for name in _MERGES},
    **{name: (lambda layer, ins, outs: 0) for name in _FREE},
}


def estimate(layer: Any, ins: list[Any], outs: list[Any]) -> tuple[int | None, str | None]:
    """(FLOPs per example, a note) for one call of `layer`; None: no rule for it.

    `ins`/`outs` are the call's input/output shapes, batch axis first.
    """
    for klass in type(layer).__mro__:
        rule = _RULES.get(klass.__name__)
        if rule is None:
            continue
        if not ins and klass.__name__ != "InputLayer":
            return None, None
        note = None
        if any(_unknown(_dims(s)) for s in [*ins, *outs]):
            note = "a dimension of unknown size counts as 1"
        try:
            flops = rule(layer, ins, outs)
        except Exception:  # a layer configured in a way the rule does not know
            return None, None
        return (None, None) if flops is None else (int(flops), note)
    return None, None


# -- the plan ----------------------------------------------------------------------------------


def _shape(shape: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in shape]


def _dtype(dtype: Any) -> str:
    import keras

    return keras.backend.standardize_dtype(dtype)


def _itemsize(dtype: Any) -> int:
    import numpy as np

    return int(np.dtype(_dtype(dtype)).itemsize)


def _count(weights: list[Any]) -> int:
    return sum(math.prod(w.shape) for w in _unique(weights))


def _unique(weights: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for w in weights:
        if id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out


def _call_inputs(node: Any) -> list[Any]:
    """The tensors a layer was called on (positional first; masks and flags left out)."""
    import keras

    tensors: list[Any] = []
    args = node.arguments.args if hasattr(node, "arguments") else node.input_tensors
    for arg in args:
        if isinstance(arg, (list, tuple)):
            tensors += [a for a in arg if isinstance(a, keras.KerasTensor)]
        elif isinstance(arg, dict):
            tensors += [a for a in arg.values() if isinstance(a, keras.KerasTensor)]
        elif isinstance(arg, keras.KerasTensor):
            tensors.append(arg)
    kwargs = node.arguments.kwargs if hasattr(node, "arguments") else {}
    for key in ("query", "value", "key", "inputs"):
        if isinstance(kwargs.get(key), keras.KerasTensor):
            tensors.append(kwargs[key])
    return tensors


def format_location(span: Any) -> str | None:
    return f"{span.line}:{span.col}" if span is not None else None


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def layer_entries(analysis: Analysis) -> list[dict[str, Any]]:
    """One JSON-ready dict per layer of the detail model, in `model.layers` order."""
    compiled = analysis.detail_compiled
    locator = Locator(compiled)
    positions = analysis.compiled.positions
    entries = []
    for layer in analysis.detail.layers:
        cls = type(layer).__name__
        nodes = analysis.nodes.get(id(layer), [])
        outs_shapes: list[Any] = []
        dtype = None
        flops_total: int | None = 0
        notes: list[str] = []
        for node in nodes:
            outputs = list(node.outputs)
            if not outs_shapes:
                outs_shapes = [_shape(t.shape) for t in outputs]
                dtype = _dtype(outputs[0].dtype) if outputs else None
            ins = [tuple(t.shape) for t in _call_inputs(node)]
            flops, note = estimate(layer, ins, [tuple(t.shape) for t in outputs])
            if flops is None:
                flops_total = None
            elif flops_total is not None:
                flops_total += flops
            if note and note not in notes:
                notes.append(note)
        if not nodes:
            flops_total = None
        origin = locator.locate(layer.name, is_input=cls == "InputLayer")
        at = origin.input_at or (origin.info.at if origin.info else None)
        trainable = _count(layer.trainable_weights)
        frozen = _count(layer.non_trainable_weights)
        entry: dict[str, Any] = {
            "name": layer.name,
            "class": cls,
            "output_shape": outs_shapes[0] if len(outs_shapes) == 1 else outs_shapes,
            "output_dtype": dtype,
            "params": trainable + frozen,
            "trainable_params": trainable,
            "non_trainable_params": frozen,
            "flops": flops_total or 0,
            "flops_estimated": flops_total is not None,
            "calls": len(nodes),
            "location": format_location(positions.value(at)) if at else None,
            "at": at,
            "block": origin.chain[-1][0] if origin.chain else None,
            "block_chain": [
                {"use": real, "block": info.cls,
                 "location": format_location(positions.value(info.at))}
                for real, info in origin.chain
            ],
        }
        if notes:
            entry["flops_note"] = "; ".join(notes)
        entries.append(entry)
    return entries


def _tensor_sig(name: str, tensor: Any) -> dict[str, Any]:
    return {"name": name, "shape": _shape(tensor.shape), "dtype": _dtype(tensor.dtype)}


def signature(model: Any, compiled: Compiled) -> dict[str, list[dict[str, Any]]]:
    """Input and output names, shapes and dtypes (dict models: their keys)."""
    body = (compiled.ir.get("model") or {}).get("body") or []
    in_names = declared(body, "input")
    out_names = declared(body, *OUTPUTS)

    def side(struct: Any, flat: list[Any], names: list[str], fallback: list[str]):
        if isinstance(struct, dict):
            return [_tensor_sig(k, v) for k, v in struct.items()]
        if len(names) != len(flat):
            names = fallback
        return [_tensor_sig(n, t) for n, t in zip(names, flat, strict=False)]

    try:
        in_struct, out_struct = model.input, model.output
    except (AttributeError, ValueError):  # a Sequential: no call history of its own
        in_struct = out_struct = None
    flat_in = list(model.inputs)
    flat_out = list(model.outputs)
    if not out_names and model.layers:  # sequential models name no outputs
        out_names = [model.layers[-1].name]
    in_fallback = [t.name for t in flat_in]
    out_fallback = list(getattr(model, "output_names", None) or [t.name for t in flat_out])
    if isinstance(in_struct, (list, tuple)) and len(in_struct) == len(in_names):
        flat_in = list(in_struct)
    if isinstance(out_struct, (list, tuple)) and len(out_struct) == len(out_names):
        flat_out = list(out_struct)
    return {"inputs": side(in_struct, flat_in, in_names, in_fallback),
            "outputs": side(out_struct, flat_out, out_names, out_fallback)}


def plan_from(analysis: Analysis) -> dict[str, Any]:
    """The plan of an analysed model (see `plan`)."""
    model, compiled = analysis.model, analysis.compiled
    layers = layer_entries(analysis)
    weights = _unique(model.weights)
    params = int(model.count_params())
    trainable = _count(model.trainable_weights)
    frozen = _count(model.non_trainable_weights)
    weight_bytes = sum(math.prod(w.shape) * _itemsize(w.dtype) for w in weights)
    listed = sum(e["params"] for e in layers)
    if trainable + frozen != params or listed != params:
        raise AssertionError(
            f"plan: parameter counts disagree for {compiled.spec_file}: count_params() = "
            f"{params}, trainable + non-trainable = {trainable + frozen}, "
            f"sum over layers = {listed}")
    model_ir = compiled.ir["model"]
    return {
        "spec": compiled.spec_file,
        "model": model_ir["name"],
        "kind": model_ir["kind"],
        "keras_class": type(model).__name__,
        "layers_from": "functional twin" if analysis.detail is not model else "model",
        "layers": layers,
        "totals": {
            "params": params,
            "trainable_params": trainable,
            "non_trainable_params": frozen,
            "weight_bytes": int(weight_bytes),
            "weight_memory": human_bytes(int(weight_bytes)),
            "flops": sum(e["flops"] for e in layers),
            "flops_not_estimated": [e["name"] for e in layers if not e["flops_estimated"]],
        },
        "signature": signature(analysis.detail, analysis.detail_compiled),
        "training": training(compiled.ir),
        "tune": tune_plan(compiled.ir),
    }


def tune_plan(ir: dict[str, Any]) -> dict[str, Any] | None:
    """The search a `tune` section asks for: the tuner, the objective, each param's
    space and the space's size (None: continuous), as `tfspec tune` will run it."""
    from ..lang.tunespace import count, describe, space_size, tuning

    t = tuning(ir)
    if t is None:
        return None
    return {
        "tuner": t.tuner, "algorithm": t.algorithm, "objective": t.objective,
        "direction": t.direction, "max_trials": t.max_trials, "seed": t.seed,
        "options": t.options,
        "space": [{"name": h.name, "kind": h.kind, "kwargs": h.kwargs, "values": count(h),
                   "text": describe(h)} for h in t.space],
        "size": space_size(t),
    }


def training(ir: dict[str, Any]) -> dict[str, Any] | None:
    """How the program trains: the loop it really uses, and why when it differs."""
    train = ir.get("train")
    if not isinstance(train, dict):
        return None
    strategy = (ir.get("distribute") or {}).get("strategy", "default")
    asked = train.get("loop", "fit")
    out = {"loop": asked, "strategy": strategy}
    if strategy == "multi_worker_mirrored" and asked != "custom":
        out["loop"] = "custom"
        out["why"] = (f'loop = "{asked}" does not work with MultiWorkerMirroredStrategy in '
                      "Keras 3 (keras-team/keras#20585): the program uses its generated "
                      "custom loop")
    from ..codegen.train import XLA_MIN_STEPS, xla_on_cpu

    if xla_on_cpu(ir):
        out["xla"] = (f'jit_compile = "auto": XLA when the run has {XLA_MIN_STEPS:,} steps or '
                      "more on a CPU-only machine (a model of dense layers, which XLA speeds "
                      "up there; Keras's \"auto\" never uses XLA on a CPU), else Keras's "
                      '"auto"')
    return out


def plan(compiled: Compiled) -> dict[str, Any]:
    """Build the model of `compiled` and describe it (JSON-serialisable).

    Raises `SpecError` (E500, located at the spec) when Keras rejects the model.
    """
    return plan_from(analyze(compiled))


# -- text --------------------------------------------------------------------------------------


def shape_text(shape: Any) -> str:
    """Keras's notation: `(None, 28, 28, 32)`; several tensors `[(None, 3), (None, 4)]`;
    a shape is a list or a tuple (as JSON and Keras give them), `?` when unknown."""
    if shape is None:
        return "?"
    if shape and isinstance(shape[0], (list, tuple)):
        return "[" + ", ".join(shape_text(s) for s in shape) + "]"
    return repr(tuple(shape))


def _num(n: int) -> str:
    return f"{n:,}"


def _table(layers: list[dict[str, Any]]) -> list[str]:
    """The layer rows between rules, aligned under their headers."""
    headers = ["Layer (type)", "Output shape", "Param #", "FLOPs", "Spec"]
    rows = []
    for e in layers:
        flops = _num(e["flops"]) if e["flops_estimated"] else "n/a"
        if e.get("flops_note"):
            flops += "*"
        where = e["location"] or ""
        if e["block"]:
            use = e["block_chain"][-1]
            where += f" in {use['block']} `{use['use']}`"
            if use["location"]:
                where += f" ({use['location']})"
        shape = shape_text(e["output_shape"])
        if e.get("output_dtype") and e["output_dtype"] != "float32":
            shape += f" {e['output_dtype']}"
        name = f"{e['name']} ({e['class']})"
        if e.get("calls", 1) > 1:
            name += f" x{e['calls']}"
        rows.append([name, shape, _num(e["params"]), flops, where])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    right = {2, 3}

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w)
               for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    rule = "=" * (sum(widths) + 2 * (len(widths) - 1))
    return [rule, line(headers), rule, *(line(r) for r in rows), rule]


def render_partial(error: PlanError) -> str:
    """The rows of the layers Keras built before the one it rejected (the error
    itself is printed after them, as a diagnostic); "" when it built none."""
    if not error.layers:
        return ""
    model = error.compiled.ir["model"]
    out = [f'{error.compiled.spec_file}: Model: "{model["name"]}" ({model["kind"]}): '
           "the layers Keras built before the error"]
    if error.layers_from == "functional twin":
        out.append("layers shown from the functional twin")
    return "\n".join(out + _table(error.layers)) + "\n"


def render_text(plan_dict: dict[str, Any]) -> str:
    """An aligned table like `model.summary()`, with the spec location of each layer."""
    layers = plan_dict["layers"]
    t = plan_dict["totals"]
    title = f'Model: "{plan_dict["model"]}" ({plan_dict["kind"]}, {plan_dict["keras_class"]})'
    out = [f"{plan_dict['spec']}: {title}"]
    if plan_dict.get("layers_from") == "functional twin":
        out.append("layers shown from the functional twin; totals from the subclassed model")
    out += _table(layers)
    labels = [
        ("Total params", f"{_num(t['params'])} ({t['weight_memory']})"),
        ("Trainable params", _num(t["trainable_params"])),
        ("Non-trainable params", _num(t["non_trainable_params"])),
        ("Weight memory", f"{_num(t['weight_bytes'])} bytes ({t['weight_memory']})"),
        ("FLOPs per example", f"~{_num(t['flops'])} (a multiply-add counts 2)"),
    ]
    if t["flops_not_estimated"]:
        labels.append(("Not estimated", ", ".join(t["flops_not_estimated"])))
    if any(e.get("flops_note") for e in layers):
        labels.append(("*", "a dimension of unknown size counted as 1"))
    label_w = max(len(k) for k, _ in labels)
    out += [f"{k + ':' if k != '*' else k:<{label_w + 1}} {v}" for k, v in labels]
    for side in ("inputs", "outputs"):
        sig = plan_dict["signature"][side]
        out.append(f"{side.capitalize()}:")
        nw = max((len(s["name"]) for s in sig), default=0)
        sw = max((len(shape_text(s["shape"])) for s in sig), default=0)
        out += [f"  {s['name']:<{nw}}  {shape_text(s['shape']):<{sw}}  {s['dtype']}"
                for s in sig]
    train = plan_dict.get("training")
    if train:
        out.append(f"Training: loop = \"{train['loop']}\", strategy = \"{train['strategy']}\"")
        if train.get("why"):
            out.append(f"  ({train['why']})")
        if train.get("xla"):
            out.append(f"  ({train['xla']})")
    tune = plan_dict.get("tune")
    if tune:
        trials = f", max_trials = {tune['max_trials']}" if tune["max_trials"] else ""
        out.append(f"Tune: {tune['tuner']}, {tune['direction']}imize \"{tune['objective']}\""
                   f"{trials}")
        nw = max(len(h["name"]) for h in tune["space"])
        out += [f"  {h['name']:<{nw}}  {h['text']}" for h in tune["space"]]
        size = tune["size"]
        endless = ", ".join(f"`{h['name']}`" for h in tune["space"] if h["values"] is None)
        out.append("  space: " + (f"{_num(size)} points" if size is not None else
                                  f"continuous ({endless} without a step)"))
    return "\n".join(out) + "\n"
