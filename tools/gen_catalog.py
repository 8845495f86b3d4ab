"""Generate the Keras catalog (spec/catalog/*.json) from the installed Keras.

    python tools/gen_catalog.py [--out spec/catalog] [--check]

The checker must not import TensorFlow (docs/architecture.md, rule 3), so everything it knows
about Keras — every public layer, optimizer, loss, metric, callback, activation,
initializer, regularizer, constraint and learning-rate schedule, with its ordered
parameters, defaults and value types — is introspected here once and checked in.
`--check` regenerates in memory and exits 1 when the files on disk differ (drift).

Signatures come from `inspect`; value types come from the curated tables below,
because a signature says nothing about "`units` must be a positive integer". Every
curated type is checked against the parameter's own default while generating, so a
wrong table entry fails here instead of rejecting valid specs later. The old
spellings a constructor maps before it validates (`output_mode="binary"` ->
"multi_hot") are read from Keras's source and added to those enums.

spec/catalog/docs/<category>.json holds what the editor shows beside that: each
entry's docstring summary and its `Args:` texts (tools/catalog_docs.py), in files
of their own so that checking never parses them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import re
import sys
import tempfile
import textwrap
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Quiet TensorFlow before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import catalog_docs  # noqa: E402 - tools/ is not a package


def _load_runtime() -> types.ModuleType:
    """Import tfspec/lang/catalog.py (stdlib only) to share its type checks.

    The package's __init__ pulls in the whole checker; only catalog.py and
    resources.py are needed here, so register a bare `tfspec` package first.
    """
    if "tfspec" in sys.modules:
        return importlib.import_module("tfspec.lang.catalog")
    package = types.ModuleType("tfspec")
    package.__path__ = [str(REPO / "tfspec")]
    sys.modules["tfspec"] = package
    try:
        return importlib.import_module("tfspec.lang.catalog")
    finally:
        # A later `import tfspec` must run the real __init__; the already loaded
        # tfspec.lang.catalog / tfspec.lang.resources stay in sys.modules and are reused.
        del sys.modules["tfspec"]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence TensorFlow's C++ start-up logging, which writes straight to fd 2.

    TF_CPP_MIN_LOG_LEVEL does not cover the absl "log messages before
    InitializeLog" lines. If something fails, what was captured is replayed.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


runtime = _load_runtime()

NAMESPACES: dict[str, str] = runtime.NAMESPACES  # category -> keras namespace

# Utilities every namespace exports; they are not things a spec constructs.
UTILITIES = {"get", "serialize", "deserialize"}

# Public names a spec cannot usefully instantiate. Kept here (not in the JSON) so the
# coverage test can subtract them from keras's public names.
SKIP: dict[str, set[str]] = {
    # Layer: abstract base (call() is not implemented). InputSpec: describes a
    # layer's input constraints, not a layer. Wrapper: abstract base of
    # Bidirectional/TimeDistributed.
    "layers": {"Layer", "InputSpec", "Wrapper"},
    # Optimizer: abstract base (no update_step).
    "optimizers": {"Optimizer"},
    # Loss: abstract base (call() not implemented).
    "losses": {"Loss"},
    # Metric: abstract base.
    "metrics": {"Metric"},
    # Callback: no-op base. CallbackList: the container fit() builds itself; an
    # element of `callbacks=[...]` cannot be one.
    "callbacks": {"Callback", "CallbackList"},
    "activations": set(),
    "initializers": {"Initializer"},
    "regularizers": {"Regularizer"},
    "constraints": {"Constraint"},
    "schedules": {"LearningRateSchedule"},
}

# Leading tensor arguments of public *functions*: the data, not configuration.
TENSOR_ARGS: dict[str, tuple[str, ...]] = {
    "layers": ("inputs",),  # keras.layers.add(inputs, ...) etc.
    "losses": ("y_true", "y_pred"),
    "metrics": ("y_true", "y_pred"),
    "activations": ("x",),
}

# ----------------------------------------------------------------------------------
# Value types. Vocabulary (tfspec/lang/catalog.py:check_value implements it):
#   "int" "positive_int" "non_negative_int" "number" "positive_number"
#   "non_negative_number" "rate" [0,1) "probability" [0,1] "bool" "string" "size"
#   "shape" "axis" "activation" "initializer" "regularizer" "constraint" "layer"
#   "learning_rate" "dtype" "null" {"enum": [...], "ignore_case": bool}
#   {"any_of": [...]} {"list_of": T}
# A type is asserted only where Keras rejects or silently mishandles other values.
# A parameter whose default is None also accepts null (added automatically).
# ----------------------------------------------------------------------------------


def enum(*values: Any, ignore_case: bool = False) -> dict[str, Any]:
    """An enum type; `ignore_case` where Keras lower-cases the string first."""
    out: dict[str, Any] = {"enum": list(values)}
    if ignore_case:
        out["ignore_case"] = True
    return out


def any_of(*types: Any) -> dict[str, Any]:
    return {"any_of": list(types)}


def list_of(item: Any) -> dict[str, Any]:
    return {"list_of": item}


# standardize_data_format() lower-cases; standardize_padding() too.
DATA_FORMAT = enum("channels_last", "channels_first", ignore_case=True)
PADDING = enum("valid", "same", ignore_case=True)
PADDING_CAUSAL = enum("valid", "same", "causal", ignore_case=True)
MONITOR_MODE = enum("auto", "min", "max")  # unknown modes silently fall back to "auto"
NUMBERS = any_of("number", list_of("number"))
VERBOSE = any_of("non_negative_int", "bool")  # callbacks test `verbose > 0`
LOSS_REDUCTION = any_of(
    enum("sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight"), "null"
)  # keras.src.losses.loss.standardize_reduction
LOOKUP_OUTPUT_MODE = enum("int", "one_hot", "multi_hot", "count", "tf_idf")
THRESHOLDS = any_of("probability", list_of("probability"))

# Applies to every category unless a category or class table says otherwise.
COMMON_TYPES: dict[str, Any] = {
    "activation": "activation",
    "recurrent_activation": "activation",
    "axis": "axis",
    "data_format": DATA_FORMAT,
    "dtype": "dtype",
    "name": any_of("string", "null"),  # None always means "auto-name"
    "seed": "int",
    "from_logits": "bool",
}

CATEGORY_TYPES: dict[str, dict[str, Any]] = {
    "layers": {
        "units": "positive_int",
        "filters": "positive_int",
        "kernel_size": "size",
        "strides": "size",
        "pool_size": "size",
        "dilation_rate": "size",
        "output_size": "size",
        "padding": PADDING,
        "depth_multiplier": "positive_int",
        "groups": "positive_int",
        "rate": "rate",
        "dropout": "probability",
        "recurrent_dropout": "probability",
        "noise_shape": "shape",
        "input_dim": "positive_int",
        "output_dim": "positive_int",
        "num_heads": "positive_int",
        "key_dim": "positive_int",
        "value_dim": "positive_int",
        "head_dim": "positive_int",
        "num_query_heads": "positive_int",
        "num_key_value_heads": "positive_int",
        "sliding_window": "positive_int",
        "flash_attention": "bool",
        "attention_axes": "axis",
        "epsilon": "non_negative_number",
        "momentum": "probability",
        "renorm_momentum": "probability",
        "layer": "layer",
        "backward_layer": "layer",
        "cell": any_of("layer", list_of("layer")),
        "cells": list_of("layer"),
        "layers": list_of("layer"),
        "max_tokens": "positive_int",
        "num_oov_indices": "non_negative_int",
        "sequence_length": "positive_int",
        "output_sequence_length": "positive_int",
        "num_tokens": "positive_int",
        "num_bins": "positive_int",
        "target_shape": "shape",
        "shape": "shape",
        "batch_shape": "shape",
        "batch_size": "positive_int",
        "height": "positive_int",
        "width": "positive_int",
        "value_range": list_of("number"),
        "fill_value": "number",
        "keepdims": "bool",
        "lora_rank": "positive_int",
        "lora_alpha": "number",
        "shared_axes": "axis",
        "dims": list_of("positive_int"),
        "n": "positive_int",
        "stddev": "non_negative_number",
        "power_iterations": "positive_int",
        "filepath": "string",
        "call_endpoint": "string",
        "call_training_endpoint": "string",
        "encoding": "string",
        "use_cudnn": any_of("bool", enum("auto")),
        "fft_length": "positive_int",
        "sequence_stride": "positive_int",
        "sampling_rate": "positive_int",
        "num_mel_bins": "positive_int",
        "frame_length": "positive_int",
        "frame_step": "positive_int",
        "max_number": "positive_int",
        "num_ops": "positive_int",
        "bins": "positive_int",
        "l1": "non_negative_number",
        "l2": "non_negative_number",
    },
    "optimizers": {
        "learning_rate": "learning_rate",
        "beta_1": "rate",  # 1.0 divides by zero in the bias correction
        "beta_2": "rate",
        "epsilon": "non_negative_number",
        "rho": "probability",
        "momentum": "probability",
        "weight_decay": "non_negative_number",
        "clipnorm": "non_negative_number",
        "clipvalue": "non_negative_number",
        "global_clipnorm": "non_negative_number",
        "ema_momentum": "probability",
        "ema_overwrite_frequency": "positive_int",
        "loss_scale_factor": "positive_number",
        "gradient_accumulation_steps": "positive_int",
        "initial_accumulator_value": "non_negative_number",
        "l1_regularization_strength": "non_negative_number",
        "l2_regularization_strength": "non_negative_number",
        "l2_shrinkage_regularization_strength": "non_negative_number",
        "warmup_steps": "non_negative_int",
        "dynamic_growth_steps": "positive_int",
        "initial_scale": "positive_number",
    },
    "losses": {
        "reduction": LOSS_REDUCTION,
        "label_smoothing": "probability",
        "delta": "positive_number",
        "ignore_class": "int",
    },
    "metrics": {
        "num_classes": "positive_int",
        "thresholds": THRESHOLDS,
        "threshold": "number",
        "num_thresholds": "positive_int",
        "top_k": "positive_int",
        "class_id": "non_negative_int",
        "k": "positive_int",
        "target_class_ids": list_of("non_negative_int"),
        "ignore_class": "int",
        "label_smoothing": "probability",
        "recall": "probability",
        "precision": "probability",
        "sensitivity": "probability",
        "specificity": "probability",
        "num_labels": "positive_int",
        "num_regressors": "non_negative_int",
    },
    "callbacks": {
        "monitor": "string",
        "mode": MONITOR_MODE,
        "patience": "non_negative_int",
        "min_delta": "number",  # EarlyStopping/ReduceLROnPlateau take abs(min_delta)
        "verbose": VERBOSE,
        "baseline": "number",
        "start_from_epoch": "non_negative_int",
        "factor": "rate",  # ReduceLROnPlateau rejects factor >= 1.0
        "cooldown": "non_negative_int",
        "min_lr": "non_negative_number",
        "filepath": "string",
        "filename": "string",
        "backup_dir": "string",
        "directory": "string",
        "log_dir": "string",
        "separator": "string",
        "initial_value_threshold": "number",
        "histogram_freq": "non_negative_int",
        "embeddings_freq": "non_negative_int",
        "update_freq": any_of(enum("batch", "epoch"), "positive_int"),
        "save_freq": any_of(enum("epoch"), "positive_int"),
        "max_to_keep": "positive_int",
        "root": "string",
        "path": "string",
        "field": "string",
    },
    "activations": {
        "alpha": "number",
        "negative_slope": "number",
        "max_value": "number",
        "threshold": "number",
        "default_value": "number",
        "approximate": "bool",
        "b": "number",
    },
    "initializers": {
        "mean": "number",
        "stddev": "non_negative_number",
        "minval": "number",
        "maxval": "number",
        "gain": "number",
        "scale": "positive_number",  # VarianceScaling rejects scale <= 0
        "input_axes": "axis",
        "output_axes": "axis",
    },
    "regularizers": {
        # validate_float_arg: a finite, non-negative number
        "l1": "non_negative_number",
        "l2": "non_negative_number",
        "factor": "non_negative_number",
    },
    "constraints": {
        "max_value": "non_negative_number",
        "min_value": "non_negative_number",
        "rate": "probability",  # MinMaxNorm interpolates: 1.0 = strict clipping
    },
    "schedules": {
        "initial_learning_rate": "number",
        "decay_steps": "positive_number",
        "first_decay_steps": "positive_number",
        "decay_rate": "number",
        "alpha": "number",
        "warmup_target": "number",
        "warmup_steps": "non_negative_number",
        "end_learning_rate": "number",
        "power": "number",
        "t_mul": "number",
        "m_mul": "number",
        "boundaries": list_of("number"),
        "values": list_of("number"),
    },
}

# Per-class refinements: (category, class) -> {param: type, or None for "no type"}.
CLASS_TYPES: dict[tuple[str, str], dict[str, Any]] = {
    # Only 1-D convolutions of the plain kind accept padding="causal" (base_conv:
    # allow_causal=rank == 1); separable/depthwise/transpose ones reject it.
    ("layers", "Conv1D"): {"padding": PADDING_CAUSAL},
    # ZeroPadding's `padding` is an amount (int or tuples), not a mode.
    ("layers", "ZeroPadding1D"): {"padding": None},
    ("layers", "ZeroPadding2D"): {"padding": None},
    ("layers", "ZeroPadding3D"): {"padding": None},
    # STFTSpectrogram compares padding case-sensitively.
    ("layers", "STFTSpectrogram"): {
        "padding": enum("valid", "same"),
        "mode": enum("log", "magnitude", "psd", "real", "imag", "angle", "stft"),
        "scaling": enum("density", "spectrum"),
    },
    ("layers", "Concatenate"): {"axis": "int"},
    ("layers", "Dot"): {"axes": "axis", "normalize": "bool"},
    ("layers", "GroupNormalization"): {"groups": any_of("positive_int", enum(-1))},
    ("layers", "Bidirectional"): {
        "merge_mode": any_of(enum("sum", "mul", "ave", "concat"), "null"),
    },
    ("layers", "Attention"): {"score_mode": enum("dot", "concat")},
    ("layers", "EinsumDense"): {
        "equation": "string",
        "output_shape": any_of("positive_int", "shape"),
        "bias_axes": "string",
    },
    ("layers", "Rescaling"): {"scale": NUMBERS, "offset": NUMBERS},
    ("layers", "ReLU"): {
        # relu.py rejects negatives for all three
        "max_value": "non_negative_number",
        "negative_slope": "non_negative_number",
        "threshold": "non_negative_number",
    },
    ("layers", "LeakyReLU"): {"negative_slope": "number"},
    ("layers", "ELU"): {"alpha": "number"},
    ("layers", "UpSampling1D"): {"size": "positive_int"},
    ("layers", "UpSampling2D"): {"size": "size"},
    ("layers", "UpSampling3D"): {"size": "size"},
    ("layers", "RandomFlip"): {"mode": enum("horizontal", "vertical", "horizontal_and_vertical")},
    ("layers", "CategoryEncoding"): {"output_mode": enum("one_hot", "multi_hot", "count")},
    ("layers", "Hashing"): {"output_mode": enum("int", "one_hot", "multi_hot", "count")},
    ("layers", "HashedCrossing"): {"output_mode": enum("int", "one_hot")},
    ("layers", "Discretization"): {
        "output_mode": enum("int", "one_hot", "multi_hot", "count"),
        "bin_boundaries": list_of("number"),
    },
    ("layers", "StringLookup"): {
        "output_mode": LOOKUP_OUTPUT_MODE,
        "oov_method": enum("floormod", "farmhash"),
    },
    ("layers", "IntegerLookup"): {
        "output_mode": LOOKUP_OUTPUT_MODE,
        "oov_method": enum("floormod", "farmhash"),
    },
    ("layers", "TextVectorization"): {
        # (the deprecated "binary" and "tf-idf" are added from Keras's source:
        # _deprecated_spellings)
        "output_mode": enum("int", "one_hot", "multi_hot", "count", "tf_idf"),
        "ngrams": any_of("positive_int", list_of("positive_int")),
    },
    ("layers", "MelSpectrogram"): {
        "window": enum("hann", "hamming"),
        "min_freq": "non_negative_number",
        "max_freq": "positive_number",
        "top_db": "number",
        "mag_exp": "number",
        "min_power": "number",
        "ref_power": "number",
    },
    ("layers", "Masking"): {"mask_value": "number"},
    ("layers", "RandAugment"): {"factor": None},
    ("layers", "ReversibleEmbedding"): {"logit_soft_cap": "number", "reverse_dtype": "dtype"},
    ("layers", "ActivityRegularization"): {
        "l1": "non_negative_number",
        "l2": "non_negative_number",
    },
    ("layers", "Input"): {"sparse": "bool", "ragged": "bool", "tensor": None},
    ("layers", "InputLayer"): {"sparse": "bool", "ragged": "bool", "input_tensor": None},
    ("optimizers", "Lion"): {
        # lion.py: beta_1 and beta_2 must be in (0, 1]
        "beta_1": "probability",
        "beta_2": "probability",
    },
    ("optimizers", "Adafactor"): {"beta_2_decay": "number", "epsilon_1": "non_negative_number",
                                  "epsilon_2": "non_negative_number",
                                  "clip_threshold": "non_negative_number"},
    ("optimizers", "Ftrl"): {"learning_rate_power": "number", "beta": "non_negative_number"},
    ("optimizers", "Muon"): {
        "adam_beta_1": "rate", "adam_beta_2": "rate", "adam_weight_decay": "non_negative_number",
        "adam_lr_ratio": "number", "ns_steps": "positive_int", "rms_rate": "number",
        "muon_a": "number", "muon_b": "number", "muon_c": "number",
    },
    ("losses", "BinaryFocalCrossentropy"): {"alpha": "probability", "gamma": "non_negative_number"},
    ("losses", "CategoricalFocalCrossentropy"): {"alpha": "probability",
                                                 "gamma": "non_negative_number"},
    ("losses", "binary_focal_crossentropy"): {"alpha": "probability",
                                              "gamma": "non_negative_number"},
    ("losses", "categorical_focal_crossentropy"): {"alpha": "probability",
                                                   "gamma": "non_negative_number"},
    ("metrics", "binary_focal_crossentropy"): {"alpha": "probability",
                                               "gamma": "non_negative_number"},
    ("metrics", "categorical_focal_crossentropy"): {"alpha": "probability",
                                                    "gamma": "non_negative_number"},
    ("losses", "CategoricalGeneralizedCrossEntropy"): {"q": "probability"},
    ("losses", "categorical_generalized_cross_entropy"): {"q": "probability"},
    ("metrics", "AUC"): {
        # AUCCurve.from_str / AUCSummationMethod.from_str accept these spellings
        "curve": enum("ROC", "PR", "PRGAIN", "roc", "pr", "prgain"),
        "summation_method": enum("interpolation", "majoring", "minoring", "Interpolation",
                                 "Majoring", "Minoring"),
        "num_thresholds": "positive_int",
    },
    ("metrics", "F1Score"): {
        "average": any_of(enum("micro", "macro", "weighted"), "null"),
        "threshold": "probability",
    },
    ("metrics", "FBetaScore"): {
        "average": any_of(enum("micro", "macro", "weighted"), "null"),
        "beta": "positive_number",
        "threshold": "probability",
    },
    ("metrics", "R2Score"): {
        "class_aggregation": any_of(enum("uniform_average", "variance_weighted_average"),
                                    "null"),
    },
    ("callbacks", "BackupAndRestore"): {
        "save_freq": any_of(enum("epoch"), "positive_int", enum(False)),
    },
    ("callbacks", "ModelCheckpoint"): {"save_freq": any_of(enum("epoch"), "positive_int")},
    ("callbacks", "TerminateOnNaN"): {"raise_error": "bool"},
    ("initializers", "VarianceScaling"): {
        "mode": enum("fan_in", "fan_out", "fan_avg"),
        # lower-cased first (and "normal" means "truncated_normal": _deprecated_spellings)
        "distribution": enum("truncated_normal", "untruncated_normal", "uniform",
                             ignore_case=True),
    },
    ("initializers", "STFT"): {
        "side": enum("real", "imag"),
        "scaling": enum("density", "spectrum"),
    },
    ("regularizers", "OrthogonalRegularizer"): {"mode": enum("rows", "columns")},
}

# Parameters Keras checks with isinstance(value, float): an int literal such as
# `learning_rate=1` is rejected, so the code generator must write a float.
FLOAT_ONLY: dict[str, set[tuple[str, str]]] = {
    "optimizers": {("*", "learning_rate"), ("SGD", "momentum")},
    "metrics": {("FBetaScore", "beta"), ("FBetaScore", "threshold"),
                ("F1Score", "threshold")},
}

# Parameters that must be Python callables: no spec literal can supply them.
CALLABLE_PARAMS: dict[tuple[str, str], list[str]] = {
    ("layers", "Lambda"): ["function"],
    ("layers", "FlaxLayer"): ["module"],
    ("layers", "JaxLayer"): ["call_fn", "init_fn"],
    ("layers", "TorchModuleWrapper"): ["module"],
    ("metrics", "MeanMetricWrapper"): ["fn"],
    ("callbacks", "LearningRateScheduler"): ["schedule"],
    # LambdaCallback: every on_* hook, those of its signature and those **kwargs takes
}

# Layers whose call() takes one *list* of tensors although they are not Merge
# subclasses (Merge subclasses are detected): Attention([query, value(, key)]).
LIST_INPUT_LAYERS = {"Attention", "AdditiveAttention", "HashedCrossing"}
# call() parameters that are options, not tensor inputs.
CALL_OPTIONS = {
    "training", "mask", "initial_state", "constants", "return_attention_scores",
    "use_causal_mask", "reverse", "count_weights", "query_mask", "value_mask", "key_mask",
    "attention_mask",
}

# Keyword arguments a class takes through **kwargs besides the base class's, found
# by reading keras/src (`kwargs.pop("...")`). They become keyword-only params with
# "kwarg": true. `note` is shown to users.
EXTRA_KWARGS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("layers", "Embedding"): [
        {"name": "input_length", "note": "deprecated and ignored (Keras warns)"}],
    ("layers", "LeakyReLU"): [
        {"name": "alpha", "type": "number", "note": "deprecated alias of `negative_slope`"}],
    ("layers", "LayerNormalization"): [{"name": "rms_scaling", "type": "bool", "default": False}],
    ("layers", "LSTM"): [{"name": "implementation", "note": "ignored; kept for compatibility"}],
    ("layers", "GRU"): [{"name": "implementation", "note": "ignored; kept for compatibility"}],
    ("layers", "LSTMCell"): [{"name": "implementation", "note": "ignored"}],
    ("layers", "GRUCell"): [{"name": "implementation", "note": "ignored"}],
    ("layers", "InputLayer"): [
        {"name": "input_shape", "type": "shape", "note": "legacy alias of `shape`"},
        {"name": "batch_input_shape", "type": "shape", "note": "legacy alias of `batch_shape`"},
    ],
    # IndexLookup pops exactly these two and raises on any other keyword.
    ("layers", "StringLookup"): [
        {"name": "trainable", "type": "bool", "default": True},
        {"name": "dtype", "type": "dtype"},
    ],
    ("layers", "IntegerLookup"): [
        {"name": "trainable", "type": "bool", "default": True},
        {"name": "dtype", "type": "dtype"},
    ],
    ("optimizers", "LossScaleOptimizer"): [
        {"name": "dynamic", "type": enum(True), "default": True,
         "note": "only `dynamic=True` is supported"}],
}

# Classes with **kwargs that do NOT forward them to the category's base class, so
# base_kwargs do not apply: var_keyword is written as false and what they do take
# is listed through EXTRA_KWARGS / CALLABLE_PARAMS.
NOT_FORWARDING: dict[str, set[str]] = {
    "layers": {"StringLookup", "IntegerLookup"},
    # rejects every base optimizer option: set them on the inner optimizer
    "optimizers": {"LossScaleOptimizer"},
    # **kwargs are passed to `fn`, not to Metric
    "metrics": {"MeanMetricWrapper"},
    # LambdaCallback: **kwargs are more on_* hooks (added below). ReduceLROnPlateau
    # silently ignores unknown keywords, which hides typos: treat them as unknown.
    "callbacks": {"LambdaCallback", "ReduceLROnPlateau"},
}


# ---------------------------------------------------------------------------------- #


def _json_default(value: Any) -> tuple[bool, Any]:
    """(ok, value) with tuples as lists; ok is False when not JSON-representable."""
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, int):
        return True, int(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return False, None
        return True, value
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            ok, v = _json_default(item)
            if not ok:
                return False, None
            out.append(v)
        return True, out
    return False, None


def _type_for(category: str, cls: str, pname: str, default: Any, has_default: bool) -> Any:
    """The curated type of a parameter, or None when not asserted."""
    refined = CLASS_TYPES.get((category, cls), {})
    if pname in refined:
        ptype = refined[pname]
    elif pname in CATEGORY_TYPES.get(category, {}):
        ptype = CATEGORY_TYPES[category][pname]
    elif pname in COMMON_TYPES:
        ptype = COMMON_TYPES[pname]
    elif pname.endswith("_initializer"):
        ptype = "initializer"
    elif pname.endswith("_regularizer"):
        ptype = "regularizer"
    elif pname.endswith("_constraint"):
        ptype = "constraint"
    elif has_default and isinstance(default, bool):
        ptype = "bool"
    else:
        ptype = None
    if ptype is None:
        return None
    if has_default and default is None and not _accepts_null(ptype):
        ptype = any_of(*(ptype["any_of"] if isinstance(ptype, dict) and "any_of" in ptype
                         else [ptype]), "null")
    return ptype


# `if output_mode == "binary": output_mode = "multi_hot"`: a constructor that maps a
# deprecated spelling to the value it then validates.
_SPELLING = re.compile(r"""if (\w+) == ["']([\w-]+)["']:\s*\n\s*\1 = ["']([\w-]+)["']""")


def _deprecated_spellings(cls: type) -> dict[str, dict[str, str]]:
    """param -> {old spelling: the value Keras replaces it with}, read from the
    source of `cls.__init__` and its bases' (IndexLookup's for StringLookup)."""
    found: dict[str, dict[str, str]] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        try:
            source = inspect.getsource(init) if init is not None else ""
        except (OSError, TypeError):  # a builtin's or C extension's __init__
            continue
        for pname, old, new in _SPELLING.findall(source):
            found.setdefault(pname, {}).setdefault(old, new)
    return found


def _with_spellings(ptype: Any, spellings: dict[str, str]) -> Any:
    """`ptype` with each old spelling added to the enum that holds its new value.

    A curated enum lists what Keras validates against; the spellings it maps first
    are found in its source, so a table cannot forget them (issue 23)."""
    if isinstance(ptype, dict) and "any_of" in ptype:
        return any_of(*(_with_spellings(t, spellings) for t in ptype["any_of"]))
    if not isinstance(ptype, dict) or "enum" not in ptype:
        return ptype
    values = list(ptype["enum"])
    values += [old for old, new in spellings.items() if new in values and old not in values]
    return {**ptype, "enum": values}


def _accepts_null(ptype: Any) -> bool:
    return runtime._check(ptype, None, lambda _kind, _s: True) is not False


class Generator:
    """Introspects the installed Keras into one JSON document per category."""

    def __init__(self) -> None:
        import keras  # only the generator imports keras

        self.keras = keras
        self.docs: dict[str, dict[str, Any]] = {}
        # category -> entry name -> the Keras object, whose docstring feeds docs/*.json
        self.objects: dict[str, dict[str, Any]] = {c: {} for c in NAMESPACES}
        # id(object) -> (category, canonical name), to map get() results back.
        self.by_id: dict[str, dict[int, str]] = {}

    # -- entry points ------------------------------------------------------------- #

    def generate(self) -> dict[str, dict[str, Any]]:
        """Build every category; string tables need all entries, so two passes."""
        for category in NAMESPACES:
            self.docs[category] = self._category(category)
        for category in ("losses", "metrics", "optimizers", "activations", "initializers",
                         "regularizers", "constraints"):
            self.docs[category]["strings"] = self._strings(category)
        self._compile_strings()
        self._layer_extras()
        self._validate()
        return self.docs

    def documentation(self) -> dict[str, dict[str, Any]]:
        """docs/<category>.json: each entry's docstring summary and `Args:` texts.

        Kept apart from <category>.json so that checking a spec never parses the
        prose: only the language server (hover, completion) reads it. A keyword's
        text that equals the base class's (`name`, `dtype` …) is stored once, under
        `base_kwargs`. Run after `generate`.
        """
        out = {}
        for category in NAMESPACES:
            doc = self.docs[category]
            base_names = {p["name"] for p in doc["base_kwargs"]}
            base = {k: v for k, v in catalog_docs.args(self._base_doc(category)).items()
                    if k in base_names}
            entries = {}
            for name, entry in doc["entries"].items():
                text = self.objects[category][name].__doc__
                known = {p["name"] for p in entry["params"]}
                if entry.get("var_keyword"):
                    known |= base_names
                args = {k: v for k, v in catalog_docs.args(text).items()
                        if k in known and base.get(k) != v}
                found: dict[str, Any] = {}
                summary = catalog_docs.summary(text)
                if summary:
                    found["summary"] = summary
                if args:
                    found["args"] = args
                if found:
                    entries[name] = found
            out[category] = {"keras_version": doc["keras_version"], "category": category,
                             "entries": entries, "base_kwargs": base}
        return out

    def _base_doc(self, category: str) -> str | None:
        """The docstring that documents a category's base keywords."""
        if category == "layers":
            return self.keras.layers.Layer.__doc__
        if category == "optimizers":
            # every optimizer's docstring ends with this shared block
            from keras.src.optimizers import base_optimizer

            block = inspect.cleandoc(base_optimizer.base_optimizer_keyword_args)
            # (a first line, so that cleandoc keeps the entries indented under Args:)
            return "Optimizer keywords.\n\nArgs:\n" + textwrap.indent(block, "    ")
        if category == "losses":
            return self.keras.losses.Loss.__doc__
        if category == "metrics":
            return self.keras.metrics.Metric.__doc__
        return None

    # -- namespaces --------------------------------------------------------------- #

    def _namespace(self, category: str) -> Any:
        mod = self.keras
        for part in NAMESPACES[category].split(".")[1:]:
            mod = getattr(mod, part)
        return mod

    def public_objects(self, category: str) -> dict[str, Any]:
        """Public classes/functions of the namespace, minus utilities and SKIP."""
        mod = self._namespace(category)
        out = {}
        for name in sorted(dir(mod)):
            obj = getattr(mod, name)
            if name.startswith("_") or name in UTILITIES or inspect.ismodule(obj):
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if name in SKIP[category]:
                continue
            out[name] = obj
        return out

    def _category(self, category: str) -> dict[str, Any]:
        objects = self.public_objects(category)
        # Several public names may be one object (Conv2D / Convolution2D,
        # GlorotUniform / glorot_uniform): one entry, the rest aliases.
        groups: dict[int, list[str]] = {}
        for name, obj in objects.items():
            groups.setdefault(id(obj), []).append(name)
        entries: dict[str, Any] = {}
        aliases: dict[str, str] = {}
        by_id: dict[int, str] = {}
        for names in groups.values():
            obj = objects[names[0]]
            canonical = obj.__name__ if obj.__name__ in names else sorted(names)[0]
            by_id[id(obj)] = canonical
            self.objects[category][canonical] = obj
            entries[canonical] = self._entry(category, canonical, obj)
            for alias in names:
                if alias != canonical:
                    aliases[alias] = canonical
        self.by_id[category] = by_id
        doc: dict[str, Any] = {
            "keras_version": self.keras.__version__,
            "backend": self.keras.backend.backend(),
            "category": category,
            "entries": entries,
            "aliases": aliases,
            "base_kwargs": self._base_kwargs(category),
        }
        return doc

    # -- one entry ---------------------------------------------------------------- #

    def _entry(self, category: str, name: str, obj: Any) -> dict[str, Any]:
        is_class = inspect.isclass(obj)
        sig = inspect.signature(obj)
        tensor_args = () if is_class else TENSOR_ARGS.get(category, ())
        entry: dict[str, Any] = {"kind": "class" if is_class else "function"}
        params: list[dict[str, Any]] = []
        taken: list[str] = []
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                entry["var_keyword"] = True
                continue
            if p.kind is p.VAR_POSITIONAL:
                entry["var_positional"] = True
                continue
            if p.name in tensor_args:
                taken.append(p.name)
                continue
            params.append(self._param(category, name, p.name, p.default,
                                      p.default is not p.empty,
                                      p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)))
        if taken:
            entry["tensor_args"] = taken
        entry.setdefault("var_keyword", False)
        if name in NOT_FORWARDING.get(category, set()):
            entry["var_keyword"] = False
        extra = list(EXTRA_KWARGS.get((category, name), []))
        if category == "callbacks" and name == "LambdaCallback":
            known = {p["name"] for p in params}
            hooks = sorted(n for n in dir(self.keras.callbacks.Callback)
                           if n.startswith("on_") and n not in known)
            extra += [{"name": h} for h in hooks]
        for spec in extra:
            # Read from **kwargs: optional and keyword-only by construction.
            spec = dict(spec)
            param = self._param(category, name, spec.pop("name"), spec.get("default"),
                                "default" in spec, False)
            param.update(spec, required=False, kwarg=True)
            params.append(param)
        if is_class:
            spellings = _deprecated_spellings(obj)
            for param in params:
                if "type" in param and param["name"] in spellings:
                    param["type"] = _with_spellings(param["type"], spellings[param["name"]])
        entry["params"] = params
        callables = CALLABLE_PARAMS.get((category, name))
        if category == "callbacks" and name == "LambdaCallback":
            callables = [p["name"] for p in params if p["name"].startswith("on_")]  # every hook
        if callables:
            entry["callable_params"] = callables
        if category == "layers" and is_class:
            entry.update(self._input_hint(name, obj))
        if category == "layers" and not is_class and taken:
            entry["inputs"] = "list"
        return entry

    def _param(self, category: str, cls: str, pname: str, default: Any, has_default: bool,
               positional: bool) -> dict[str, Any]:
        param: dict[str, Any] = {"name": pname, "required": not has_default,
                                 "positional": positional}
        json_ok, json_default = _json_default(default) if has_default else (False, None)
        if json_ok:
            param["default"] = json_default
        ptype = _type_for(category, cls, pname, json_default if json_ok else default,
                          has_default and (json_ok or default is None))
        if ptype is not None:
            param["type"] = ptype
        floats = FLOAT_ONLY.get(category, set())
        if (cls, pname) in floats or ("*", pname) in floats:
            param["float"] = True
        return param

    def _input_hint(self, name: str, cls: type) -> dict[str, Any]:
        """How a layer is applied: one tensor (no hint), a list, or several tensors."""
        from keras.src.layers.merging.base_merge import Merge

        if issubclass(cls, Merge) or name in LIST_INPUT_LAYERS:
            return {"inputs": "list"}
        try:
            call = inspect.signature(cls.call)
        except (TypeError, ValueError):
            return {}
        args = [p for p in list(call.parameters.values())[1:]
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.name not in CALL_OPTIONS]
        if any(p.kind is p.VAR_POSITIONAL for p in call.parameters.values()):
            return {}
        if not args:
            return {"inputs": "none"}
        required = [p for p in args if p.default is p.empty]
        if len(required) >= 2:
            return {"inputs": "multi", "call_args": [p.name for p in args]}
        return {}

    # -- base kwargs -------------------------------------------------------------- #

    def _base_kwargs(self, category: str) -> list[dict[str, Any]]:
        """Keywords the category's base class accepts through a subclass's **kwargs."""
        if category == "layers":
            from keras.src.layers.layer import Layer

            out = self._signature_params(category, "Layer", Layer.__init__)
            # Layer.__init__ pops these two from **kwargs (with a warning) and
            # raises on any other unknown keyword (batch_input_shape, weights, ...).
            out.append({**self._param(category, "Layer", "input_dim", None, True, False),
                        "type": any_of("positive_int", "null"),
                        "note": "discouraged: declare an `input` instead (Keras warns)"})
            out.append({**self._param(category, "Layer", "input_shape", None, True, False),
                        "type": any_of("shape", "null"),
                        "note": "discouraged: declare an `input` instead (Keras warns)"})
            return out
        if category == "optimizers":
            from keras.src.optimizers.base_optimizer import BaseOptimizer

            out = [p for p in self._signature_params(category, "*", BaseOptimizer.__init__)
                   if p["name"] != "learning_rate"]
            out.append({"name": "decay", "required": False, "positional": False,
                        "default": None, "note": "no longer supported: ignored with a warning"})
            return out
        if category == "losses":
            return self._signature_params(category, "Loss", self.keras.losses.Loss.__init__)
        if category == "metrics":
            return self._signature_params(category, "Metric", self.keras.metrics.Metric.__init__)
        return []

    def _signature_params(self, category: str, cls: str, init: Callable[..., Any]
                          ) -> list[dict[str, Any]]:
        out = []
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            # Through **kwargs everything is keyword-only.
            out.append(self._param(category, cls, p.name, p.default, p.default is not p.empty,
                                   False))
        return out

    # -- string identifiers ------------------------------------------------------- #

    def _resolve(self, category: str, obj: Any) -> str | None:
        by_id = self.by_id[category]
        return by_id.get(id(obj)) or by_id.get(id(type(obj)))

    def _strings(self, category: str) -> dict[str, str]:
        """Every string `keras.<category>.get()` accepts, verified by calling it."""
        src = importlib.import_module(f"keras.src.{category}")
        candidates = set(src.ALL_OBJECTS_DICT)
        get = self._namespace(category).get
        out: dict[str, str] = {}
        for ident in sorted(candidates):
            try:
                obj = get(ident)
            except Exception:  # anything get() rejects is not a string identifier
                continue
            target = self._resolve(category, obj)
            if target is not None:  # None: a skipped base class such as "Regularizer"
                out[ident] = target
        if category == "optimizers":
            # get() lower-cases the name, so "Adam" and "ADAM" work too.
            self.docs[category]["strings_ignore_case"] = True
        return out

    def _compile_strings(self) -> None:
        """model.compile() resolves "accuracy"/"acc" and "crossentropy"/"ce" per loss."""
        from keras.src.trainers import compile_utils

        for category, fn, module in (("metrics", compile_utils.get_metric, "metrics_module"),
                                     ("losses", compile_utils.get_loss, "losses_module")):
            source = inspect.getsource(fn)
            found = re.search(r"\.lower\(\) not in \[([^\]]*)\]", source)
            if not found:
                raise SystemExit(f"gen_catalog: cannot find the special strings of {fn}")
            idents = re.findall(r'"([^"]+)"', found.group(1))
            targets = sorted({self._resolve(category, getattr(self._namespace(category), t))
                              for t in re.findall(module + r"\.(\w+)", source)
                              if t not in ("get", "Metric", "Loss", "LossFunctionWrapper",
                                           "MeanMetricWrapper")} - {None})
            self.docs[category]["compile_strings"] = {i: targets for i in idents}

    # -- layer-wide data ---------------------------------------------------------- #

    def _layer_extras(self) -> None:
        from keras.src.backend.common import dtypes
        from keras.src.dtype_policies import QUANTIZATION_MODES

        doc = self.docs["layers"]
        doc["dtypes"] = sorted(dtypes.ALLOWED_DTYPES)
        # dtype_policies.get(): mixed-precision names, and "<mode>_from_<policy>"
        doc["dtype_policies"] = ["mixed_bfloat16", "mixed_float16"]
        doc["quantization_modes"] = sorted(QUANTIZATION_MODES)
        # Enumerations that Keras keeps as class attributes / backend tables.
        from keras.src.backend.tensorflow import image as tf_image

        resize = enum(*tf_image.RESIZE_INTERPOLATIONS)
        for name, entry in doc["entries"].items():
            cls = getattr(self.keras.layers, name, None)
            for param in entry["params"]:
                pname = param["name"]
                values = None
                if pname == "interpolation":
                    values = getattr(cls, "_SUPPORTED_INTERPOLATION", None)
                    if values is None:
                        # Resizing and UpSampling2D resize through ops.image.resize;
                        # UpSampling2D lower-cases first.
                        values = resize["enum"]
                elif pname == "fill_mode":
                    values = (getattr(cls, "_SUPPORTED_FILL_MODE", None)
                              or getattr(cls, "_SUPPORTED_FILL_MODES", None))
                if values is not None:
                    param["type"] = enum(*sorted(values),
                                         ignore_case=name == "UpSampling2D")

    # -- self-check ---------------------------------------------------------------- #

    def _validate(self) -> None:
        """Every curated type must accept its own default; known strings resolve."""
        strings = {c: set(d.get("strings", {})) for c, d in self.docs.items()}

        def known(kind: str, s: str) -> bool:
            if kind == "dtype":
                doc = self.docs["layers"]
                return (s in doc["dtypes"] or s in doc["dtype_policies"]
                        or s.startswith(tuple(doc["quantization_modes"])))
            return s in strings[kind]

        problems = []
        for category, doc in self.docs.items():
            items = [(n, p) for n, e in doc["entries"].items() for p in e["params"]]
            items += [("<base>", p) for p in doc["base_kwargs"]]
            for name, p in items:
                if "type" in p and "default" in p:
                    if runtime._check(p["type"], p["default"], known) is False:
                        problems.append(f"{category}.{name}.{p['name']}: type {p['type']} "
                                        f"rejects its default {p['default']!r}")
        if problems:
            raise SystemExit("gen_catalog: curated types disagree with Keras:\n  "
                             + "\n  ".join(problems))


# ---------------------------------------------------------------------------------- #


def dumps(doc: Any) -> str:
    """Deterministic, diff-friendly JSON: small containers on one line, sorted keys."""
    return _dump(doc, 0) + "\n"


def _dump(value: Any, indent: int) -> str:
    flat = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or len(flat) + indent <= 100 or not value:
        return flat
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {_dump(value[k], indent + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if all(not isinstance(v, (dict, list)) for v in value):
        # Long lists of scalars (dtype names, enum values): fill lines greedily.
        lines, line = [], pad
        for v in value:
            word = json.dumps(v, ensure_ascii=False) + ","
            if line.strip() and len(line) + 1 + len(word) > 100:
                lines.append(line)
                line = pad
            line += ("" if not line.strip() else " ") + word
        lines.append(line[:-1])
        return "[\n" + "\n".join(lines) + "\n" + " " * indent + "]"
    items = [f"{pad}{_dump(v, indent + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def render() -> dict[str, str]:
    """File name -> text for every category."""
    with quiet_stderr():
        generator = Generator()
        docs = generator.generate()
        texts = generator.documentation()
    files = {f"{category}.json": dumps(docs[category]) for category in NAMESPACES}
    files.update({f"docs/{category}.json": dumps(texts[category]) for category in NAMESPACES})
    return files


def _summary(name: str, old: str, new: str) -> str:
    """One line per drifted file: which entries were added, removed or changed."""
    try:
        old_doc, new_doc = json.loads(old), json.loads(new)
    except ValueError:
        return f"  {name}: not valid JSON on disk"
    before, after = old_doc.get("entries", {}), new_doc.get("entries", {})
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = []
    for word, names in (("new in Keras", added), ("gone from Keras", removed),
                        ("changed", changed)):
        if names:
            more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
            parts.append(f"{word}: {', '.join(names[:5])}{more}")
    others = sorted(k for k in set(old_doc) | set(new_doc)
                    if k != "entries" and old_doc.get(k) != new_doc.get(k))
    if others:
        parts.append("top-level keys differ: " + ", ".join(others))
    return f"  {name}: " + ("; ".join(parts) or "formatting differs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "spec" / "catalog",
                        help="output folder (default: spec/catalog)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the files on disk differ from a fresh generation")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        drift = []
        for name, text in files.items():
            path = args.out / name
            if not path.is_file():
                drift.append(f"  {name}: missing")
            elif path.read_text(encoding="utf-8") != text:
                drift.append(_summary(name, path.read_text(encoding="utf-8"), text))
        if drift:
            print("Keras catalog drift (run `python tools/gen_catalog.py`):", *drift, sep="\n")
            return 1
        print(f"catalog up to date ({len(files)} files, keras {files_version(files)})")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).parent.mkdir(exist_ok=True)
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {args.out}")
    return 0


def files_version(files: dict[str, str]) -> str:
    return json.loads(files["layers.json"])["keras_version"]


if __name__ == "__main__":
    sys.exit(main())
