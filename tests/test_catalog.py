"""The Keras catalog (spec/catalog/*.json) and its reader, tfspec.lang.catalog.

The catalog must match the installed Keras (regenerated and compared, docs/architecture.md,
rule 3), cover every public name, and load without TensorFlow. Anything that
imports Keras runs in a subprocess so this test process stays TensorFlow-free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfspec.lang import catalog
from tfspec.lang.resources import data_path, resource_path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


def _python(code: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


# -- (a) drift --------------------------------------------------------------------------


def test_catalog_matches_installed_keras() -> None:
    proc = subprocess.run([sys.executable, "tools/gen_catalog.py", "--check"], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "up to date" in proc.stdout


def test_files_are_deterministic_json() -> None:
    for category in catalog.CATEGORIES:
        text = data_path("catalog", f"{category}.json").read_text(encoding="utf-8")
        doc = json.loads(text)
        assert doc["category"] == category
        assert doc["keras_version"].startswith("3.")
        assert text.endswith("}\n")
        assert "object at 0x" not in text  # no object reprs leaked


# -- (b) coverage -----------------------------------------------------------------------


def test_every_public_keras_name_is_in_the_catalog() -> None:
    # Listed straight from keras (not through the generator's own walk), minus the
    # generator's documented skip list and utilities.
    proc = _python(
        """
        import inspect, json, sys
        sys.path.insert(0, "tools")
        import gen_catalog
        import keras
        out = {}
        for category, dotted in gen_catalog.NAMESPACES.items():
            mod = keras
            for part in dotted.split(".")[1:]:
                mod = getattr(mod, part)
            out[category] = sorted(
                n for n in dir(mod)
                if not n.startswith("_")
                and (inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n)))
                and n not in gen_catalog.SKIP[category] and n not in gen_catalog.UTILITIES)
        out["skip"] = {c: sorted(s) for c, s in gen_catalog.SKIP.items()}
        print(json.dumps(out))
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    public = json.loads(proc.stdout.strip().splitlines()[-1])
    skip = public.pop("skip")
    assert "Layer" in skip["layers"] and "Dense" not in skip["layers"]
    assert len(public["layers"]) > 150
    for category, names in public.items():
        missing = [n for n in names if catalog.lookup(category, n) is None]
        assert not missing, f"{category}: {missing}"
    for name in skip["layers"]:
        assert catalog.lookup("layers", name) is None


# -- lookups ----------------------------------------------------------------------------


def test_lookup_entries_aliases_and_strings() -> None:
    dense = catalog.lookup("layers", "Dense")
    assert dense is not None and dense["name"] == "Dense" and dense["var_keyword"]
    units = dense["params"][0]
    assert units == {"name": "units", "required": True, "positional": True,
                     "type": "positive_int"}
    alias = catalog.lookup("layers", "Convolution2D")
    assert alias is not None and alias["name"] == "Conv2D" and alias["alias"] == "Convolution2D"
    mse = catalog.lookup("losses", "mse")
    assert mse is not None and mse["name"] == "mean_squared_error" and mse["string"] == "mse"
    assert catalog.lookup("losses", "sparse_categorical_crossentropy") is not None
    adam = catalog.lookup("optimizers", "adam")
    assert adam is not None and adam["name"] == "Adam"
    assert catalog.lookup("optimizers", "ADAM")["name"] == "Adam"  # get() lower-cases
    assert catalog.lookup("initializers", "glorot_uniform")["name"] == "GlorotUniform"
    assert catalog.lookup("regularizers", "l2")["name"] == "L2"
    assert catalog.lookup("constraints", "max_norm")["name"] == "MaxNorm"
    assert catalog.lookup("activations", "relu")["name"] == "relu"
    assert catalog.lookup("layers", "Dnese") is None
    assert catalog.lookup("losses", "Loss") is None  # abstract base: skipped


def test_compile_only_strings() -> None:
    for ident in ("accuracy", "acc", "ACC"):
        entry = catalog.lookup("metrics", ident)
        assert entry is not None and entry["name"] is None
        assert "SparseCategoricalAccuracy" in entry["candidates"]
    ce = catalog.lookup("losses", "crossentropy")
    assert ce is not None and "categorical_crossentropy" in ce["candidates"]
    assert {"acc", "accuracy", "mse", "AUC"} <= set(catalog.names("metrics"))
    assert catalog.names("layers") == sorted(catalog.names("layers"))
    assert "Convolution2D" in catalog.names("layers")


# Required arguments besides output_mode, so that Keras judges output_mode alone.
_OUTPUT_MODE_ARGS = {"Hashing": {"num_bins": 4}, "HashedCrossing": {"num_bins": 4},
                     "CategoryEncoding": {"num_tokens": 4},
                     "Discretization": {"bin_boundaries": [0.0]}}
# Deprecated or differently cased spellings some constructors map before validating.
_SPELLINGS = ["binary", "tf-idf", "normal", "Uniform", "ONE_HOT"]


def test_enum_strings_agree_with_keras() -> None:
    # Keras maps deprecated spellings ("binary" -> "multi_hot", "tf-idf" -> "tf_idf",
    # VarianceScaling's "normal") before it validates; the checker must accept
    # exactly what Keras accepts (issue 23: IntegerLookup(output_mode="binary")).
    cases = {}
    for name in catalog.names("layers"):
        entry = catalog.lookup("layers", name)
        param = next((p for p in entry["params"] if p["name"] == "output_mode"), None)
        if param is not None and not entry.get("alias") and "enum" in param.get("type", {}):
            cases[f"layers.{name}.output_mode"] = param["type"]
    assert {f"layers.{n}.output_mode" for n in (
        "IntegerLookup", "StringLookup", "CategoryEncoding", "TextVectorization",
        "Hashing", "HashedCrossing", "Discretization")} <= set(cases)
    scaling = catalog.lookup("initializers", "VarianceScaling")["params"]
    cases["initializers.VarianceScaling.distribution"] = next(
        p["type"] for p in scaling if p["name"] == "distribution")
    candidates = {case: sorted(set(t["enum"]) | set(_SPELLINGS)) for case, t in cases.items()}
    extras = {case: _OUTPUT_MODE_ARGS.get(case.split(".")[1], {}) for case in cases}
    proc = _python(
        f"""
        import json, keras
        accepted = {{}}
        for case, values in {candidates!r}.items():
            category, name, param = case.split(".")
            for value in values:
                try:
                    getattr(getattr(keras, category), name)(
                        **{{param: value}}, **{extras!r}[case])
                except ValueError:
                    continue
                accepted.setdefault(case, []).append(value)
        print(json.dumps(accepted))
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    keras_accepts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(keras_accepts) == set(cases)  # each built at least once
    checker_accepts = {case: [v for v in candidates[case]
                              if catalog.check_value(cases[case], v) is None]
                       for case in cases}
    assert checker_accepts == keras_accepts
    assert "binary" in checker_accepts["layers.IntegerLookup.output_mode"]


def test_layer_hints() -> None:
    assert catalog.lookup("layers", "Add")["inputs"] == "list"
    assert catalog.lookup("layers", "Concatenate")["inputs"] == "list"
    assert catalog.lookup("layers", "Attention")["inputs"] == "list"
    mha = catalog.lookup("layers", "MultiHeadAttention")
    assert mha["inputs"] == "multi" and mha["call_args"][:2] == ["query", "value"]
    assert "inputs" not in catalog.lookup("layers", "Dense")
    assert catalog.lookup("layers", "Lambda")["callable_params"] == ["function"]
    bidi = {p["name"]: p for p in catalog.lookup("layers", "Bidirectional")["params"]}
    assert bidi["layer"]["type"] == "layer"
    assert catalog.lookup("layers", "TimeDistributed")["params"][0]["type"] == "layer"
    conv1d = {p["name"]: p for p in catalog.lookup("layers", "Conv1D")["params"]}
    assert "causal" in conv1d["padding"]["type"]["enum"]
    conv2d = {p["name"]: p for p in catalog.lookup("layers", "Conv2D")["params"]}
    assert conv2d["padding"]["type"]["enum"] == ["valid", "same"]


def test_base_kwargs() -> None:
    layer = {p["name"]: p for p in catalog.base_kwargs("layers")}
    assert {"name", "dtype", "trainable", "autocast", "activity_regularizer",
            "input_shape", "input_dim"} <= set(layer)
    assert "batch_input_shape" not in layer  # Keras 3 rejects it
    assert all(not p["positional"] and not p["required"] for p in layer.values())
    optimizer = {p["name"] for p in catalog.base_kwargs("optimizers")}
    assert {"clipnorm", "clipvalue", "global_clipnorm", "use_ema", "weight_decay",
            "loss_scale_factor", "gradient_accumulation_steps", "name"} <= optimizer
    assert "learning_rate" not in optimizer
    assert {p["name"] for p in catalog.base_kwargs("losses")} == {"name", "reduction", "dtype"}
    assert {p["name"] for p in catalog.base_kwargs("metrics")} == {"name", "dtype"}
    assert catalog.base_kwargs("callbacks") == []


def test_kind_for_param() -> None:
    assert catalog.kind_for_param("activation") == "activations"
    assert catalog.kind_for_param("recurrent_activation") == "activations"
    assert catalog.kind_for_param("kernel_initializer") == "initializers"
    assert catalog.kind_for_param("gamma_regularizer") == "regularizers"
    assert catalog.kind_for_param("bias_constraint") == "constraints"
    for name in ("layer", "backward_layer", "cell"):
        assert catalog.kind_for_param(name) == "layers"
    assert catalog.kind_for_param("learning_rate") == "schedules"
    assert catalog.kind_for_param("units") is None


def test_resource_paths() -> None:
    assert data_path("catalog", "layers.json").is_file()
    assert data_path("catalog", "layers.json") == resource_path("spec", "catalog", "layers.json")
    assert catalog.data_path is data_path


# -- (c) values -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 0, 2.5, True, "3", None, [3]])
def test_positive_int_rejects(value: object) -> None:
    assert catalog.check_value("positive_int", value) == "a positive integer"


@pytest.mark.parametrize(
    ("type_spec", "value"),
    [
        ("positive_int", 3),
        ("size", 3),
        ("size", [3, 3]),
        ("shape", [None, 28, 28, 1]),
        ("axis", -1),
        ("axis", [1, 2]),
        ("rate", 0.0),
        ("probability", 1),
        ("bool", False),
        ("number", -2.5),
        ({"enum": ["valid", "same"]}, "same"),
        ({"enum": ["valid", "same"], "ignore_case": True}, "SAME"),
        ({"any_of": ["positive_int", "null"]}, None),
        ({"list_of": "number"}, [0.5, 1]),
        ("activation", "relu"),
        ("activation", None),  # activations.get(None) is linear
        ("initializer", "glorot_uniform"),
        ("initializer", "GlorotUniform"),
        ("regularizer", "l2"),
        ("constraint", "max_norm"),
        ("dtype", "float32"),
        ("dtype", "mixed_float16"),
        ("learning_rate", 0.001),
        ("data_format", "channels_last"),
    ],
)
def test_accepts(type_spec: object, value: object) -> None:
    assert catalog.check_value(type_spec, value) is None


@pytest.mark.parametrize(
    ("type_spec", "value", "expected"),
    [
        ("size", 0, "a positive integer or a list of positive integers"),
        ("size", [3, 0], "a positive integer or a list of positive integers"),
        ("size", [], "a positive integer or a list of positive integers"),
        ("rate", 1.0, "a number in [0, 1)"),
        ("probability", 1.5, "a number in [0, 1]"),
        ("bool", 1, "a boolean (true or false)"),
        ("number", "1", "a number"),
        ("axis", 1.5, "an integer or a list of integers"),
        ({"enum": ["valid", "same"]}, "SAME", 'one of "valid", "same"'),
        ({"enum": ["valid", "same"]}, 1, 'one of "valid", "same"'),
        ({"any_of": ["positive_int", "null"]}, 0, "a positive integer or null"),
        ({"list_of": "positive_int"}, [1, -1], "a list of positive integers"),
        ({"list_of": "positive_int"}, 1, "a list of positive integers"),
        ("activation", "rleu", 'a Keras activation name such as "relu"'),
        ("activation", 3, 'a Keras activation name such as "relu"'),
        ("initializer", "glorot", 'a Keras initializer name such as "glorot_uniform"'),
        ("regularizer", "l3", 'a Keras regularizer name such as "l2"'),
        ("constraint", "nonneg", 'a Keras constraint name such as "max_norm"'),
        ("dtype", "float33", 'a dtype name such as "float32"'),
        ("layer", "LSTM", "a layer such as `LSTM(32)`"),
        ("learning_rate", "fast", "a number or a learning-rate schedule such as "
                                  "`ExponentialDecay(…)`"),
    ],
)
def test_rejects(type_spec: object, value: object, expected: str) -> None:
    assert catalog.check_value(type_spec, value) == expected


def test_non_literals_are_not_judged() -> None:
    ref, op = {"ref": "n"}, {"op": "*", "args": [{"ref": "n"}, 2]}
    call = {"call": "ExponentialDecay", "args": [0.1, 1000, 0.9]}
    for type_spec in ("positive_int", "size", "bool", {"enum": ["a"]}, "activation"):
        assert catalog.check_value(type_spec, ref) is None
        assert catalog.check_value(type_spec, op) is None
    for type_spec in ("activation", "initializer", "regularizer", "constraint", "layer",
                      "learning_rate", {"any_of": ["layer", "null"]}):
        assert catalog.check_value(type_spec, call) is None
    # A call where a number is expected is wrong, whatever it builds.
    assert catalog.check_value("positive_int", call) == "a positive integer"
    # Literal items of a list holding refs are still judged.
    assert catalog.check_value("size", [ref, 3]) is None
    assert catalog.check_value("size", [ref, 0]) is not None


def test_catalog_types_accept_their_defaults() -> None:
    # The generator enforces this too; here it also exercises every type in use.
    checked = 0
    for category in catalog.CATEGORIES:
        entries = json.loads(data_path("catalog", f"{category}.json").read_text())["entries"]
        for name, entry in entries.items():
            for p in entry["params"]:
                if "type" in p and "default" in p:
                    assert catalog.check_value(p["type"], p["default"]) is None, (name, p)
                    checked += 1
    assert checked > 1000


# -- (d) no TensorFlow --------------------------------------------------------------------


def test_loading_the_catalog_never_imports_keras() -> None:
    proc = _python(
        """
        import sys
        from tfspec.lang import catalog
        for category in catalog.CATEGORIES:
            catalog.names(category)
            catalog.base_kwargs(category)
        assert catalog.lookup("layers", "Dense") is not None
        assert catalog.lookup("losses", "mse") is not None
        assert catalog.check_value("activation", "relu") is None
        assert catalog.kind_for_param("kernel_initializer") == "initializers"
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        print(heavy)
        sys.exit(1 if heavy else 0)
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"


# -- (e) Keras's documentation for the editor (docs/*.json) -------------------------------


def _catalog_docs():
    """tools/catalog_docs.py (standard library only; tools/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("catalog_docs",
                                                  ROOT / "tools" / "catalog_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOCSTRING = '''Computes things, e.g. sums.

    More prose that is not the summary.

    Args:
        units: Positive integer,
            dimensionality of the output space.
        rate (float): A `float` in
            [0, 1).

        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: Not an argument of the constructor.
    '''


def test_docstring_summary_and_args() -> None:
    docs = _catalog_docs()
    assert docs.summary(DOCSTRING) == "Computes things, e.g. sums."
    assert docs.args(DOCSTRING) == {
        "units": "Positive integer, dimensionality of the output space.",
        "rate": "A `float` in [0, 1)."}
    assert docs.summary(None) is None and docs.args("No sections.") == {}
    assert docs.summary("Args:\n    x: y") is None  # no prose before the sections


def test_docstring_texts_are_capped_at_a_sentence_and_markdown_safe() -> None:
    docs = _catalog_docs()
    long = "First sentence, e.g. this one, goes on. " + "word " * 80
    assert docs.shorten(long, 100) == "First sentence, e.g. this one, goes on."
    # no sentence end: cut at a word, never inside a code span
    cut = docs.shorten("a " * 30 + "`" + "code " * 40 + "`", 100)
    assert cut.endswith("…") and cut.count("`") % 2 == 0 and len(cut) <= 100
    assert docs.shorten("Use `x<y` or *args, x < y, __init__ and use_bias.") == \
        r"Use `x<y` or \*args, x \< y, \_\_init\_\_ and use_bias."
    assert docs.shorten("- a list marker") == r"\- a list marker"
    assert docs.shorten("[a link]( https://keras.io)") == "[a link](https://keras.io)"


def test_documentation_reader() -> None:
    dense = catalog.documentation("layers", "Dense")
    assert dense["summary"].startswith("Just your regular")  # the generator read Keras
    assert "units" in dense["args"] and "name" in dense["args"]  # own and base keywords
    conv = catalog.documentation("layers", "Conv2D")
    assert conv["args"]["name"] == dense["args"]["name"]  # stored once, under base_kwargs
    assert catalog.documentation("layers", "NoSuchLayer") == {
        "args": catalog.documentation("layers", "InputLayer")["args"]}
    for category in catalog.CATEGORIES:
        text = data_path("catalog", "docs", f"{category}.json").read_text(encoding="utf-8")
        doc = json.loads(text)
        assert doc["category"] == category and text.endswith("}\n")
        assert set(doc["entries"]) <= set(catalog.names(category))
        for entry in doc["entries"].values():
            for said in [entry.get("summary", "")] + list(entry.get("args", {}).values()):
                assert "\n" not in said and len(said) <= 320 and said.count("`") % 2 == 0


def test_checking_never_reads_the_documentation() -> None:
    proc = _python(
        """
        import tfspec
        from tfspec.lang import catalog
        for name in ("everything", "resnet_blocks", "text_lstm"):
            assert tfspec.validate_file(f"examples/{name}.tfspec").ok
        print(catalog._load.cache_info().currsize, catalog._load_docs.cache_info().currsize)
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    loaded, docs = map(int, proc.stdout.split())
    assert loaded > 0 and docs == 0
