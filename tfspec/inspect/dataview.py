"""Running the data half of a compiled program: build the pipelines, check them
against the model, adapt preprocessing, and preview them (`tfspec data`).

Everything here calls functions of the generated program itself (rule 4: there
is one backend); what this module adds is turning their exceptions into located
diagnostics (E501 at the `data` section) and printing a preview.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..codegen.program import API, Compiled
from ..jobs.build import load_program, located_error


@dataclass
class Prepared:
    """A program's namespace, its model, and its checked, adapted datasets."""

    namespace: dict[str, Any]
    model: Any
    datasets: dict[str, Any]


def datasets(compiled: Compiled, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """The program's batched pipelines; loader errors become E501 at the spec."""
    namespace = namespace or load_program(compiled)
    try:
        return namespace[API.make_datasets]()
    except Exception as exc:
        raise located_error(exc, compiled, "E501", "cannot load the data") from None


def prepare(compiled: Compiled) -> Prepared:
    """Build the model and the pipelines, check one against the other, adapt.

    Raises SpecError: E500 when Keras rejects the model, E501 when the data cannot
    feed it — before any training step.
    """
    from ..jobs.build import build_model

    namespace = load_program(compiled)
    model = build_model(compiled, namespace)
    return Prepared(namespace, model, adapted_datasets(compiled, namespace, model))


def adapted_datasets(compiled: Compiled, namespace: dict[str, Any], model: Any
                     ) -> dict[str, Any]:
    """The program's batched pipelines, checked against `model`, whose layers that learn
    from data are adapted on the training split, as the program's `train()` does.

    Raises SpecError: E501 when the data cannot be loaded or cannot feed the model."""
    try:
        raw = namespace[API.load_splits]()
    except Exception as exc:
        raise located_error(exc, compiled, "E501", "cannot load the data") from None
    splits = namespace[API.make_datasets](raw)
    check(compiled, namespace, model, splits)
    if API.adapt in namespace:  # adapted on the training data as it is: not shuffled
        namespace[API.adapt](model, namespace[API.pipeline](raw["train"], "adapt"))
    return splits


def check(compiled: Compiled, namespace: dict[str, Any], model: Any,
          splits: dict[str, Any]) -> None:
    """The program's `check_data` on the training split; its complaints become E501."""
    try:
        namespace[API.check_data](model, splits["train"], namespace.get(API.LOSSES, {}))
    except ValueError as exc:
        raise located_error(exc, compiled, "E501", "the data does not fit the model") from None


def preview(compiled: Compiled, examples: int = 3) -> dict[str, Any]:
    """What `tfspec data` shows: element spec, sizes, a few examples, label counts."""
    import numpy as np

    from ..jobs.build import build_model

    namespace = load_program(compiled)
    splits = datasets(compiled, namespace)
    check(compiled, namespace, build_model(compiled, namespace), splits)
    out: dict[str, Any] = {"spec": compiled.spec_file, "splits": {}}
    for name, dataset in splits.items():
        features, labels = dataset.element_spec
        count, counts, shown = 0, Counter(), []
        for x, y in dataset.unbatch().as_numpy_iterator():
            count += 1
            for key, value in _flat(y).items():
                if np.size(value) == 1 and np.issubdtype(np.asarray(value).dtype, np.integer):
                    counts[(key, int(np.asarray(value).reshape(())))] += 1
            if len(shown) < examples and name == "train":
                shown.append({"features": _summary(x), "labels": _summary(y)})
        out["splits"][name] = {
            "examples": count,
            "features": _spec(features),
            "labels": _spec(labels),
            "label_counts": {f"{k}={v}" if k else str(v): n
                             for (k, v), n in sorted(counts.items())},
        }
        if shown:
            out["splits"][name]["first"] = shown
    return out


def _flat(tree: Any) -> dict[str, Any]:
    return tree if isinstance(tree, dict) else {"": tree}


def _spec(spec: Any) -> Any:
    if isinstance(spec, dict):
        return {k: _spec(v) for k, v in spec.items()}
    return {"shape": [d for d in spec.shape.as_list()], "dtype": spec.dtype.name}


def _summary(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {k: _summary(v) for k, v in value.items()}
    array = np.asarray(value)
    if array.dtype.kind in "SO":
        text = array.reshape(-1)[0]
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        text = " ".join(text.split())
        return text if len(text) <= 60 else text[:57] + "…"
    if array.size <= 6:
        if array.dtype.kind == "f":
            return [float(f"{v:.4g}") for v in array.reshape(-1)]
        return array.tolist()
    return f"{array.dtype.name}{list(array.shape)} mean={array.mean():.3g} " \
           f"min={array.min():.3g} max={array.max():.3g}"


def render_text(view: dict[str, Any]) -> str:
    lines = [f"{view['spec']}: data"]
    for name, split in view["splits"].items():
        lines.append(f"\n{name}: {split['examples']:,} examples")
        lines.append(f"  features: {_spec_text(split['features'])}")
        lines.append(f"  labels:   {_spec_text(split['labels'])}")
        if split["label_counts"]:
            total = sum(split["label_counts"].values())
            parts = [f"{k}: {n} ({n / total:.0%})" for k, n in split["label_counts"].items()]
            lines.append("  label counts: " + ", ".join(parts))
        for i, example in enumerate(split.get("first", [])):
            lines.append(f"  example {i}: {example['features']} -> {example['labels']}")
    return "\n".join(lines)


def _spec_text(spec: Any) -> str:
    if "dtype" in spec and "shape" in spec:
        dims = ", ".join("None" if d is None else str(d) for d in spec["shape"])
        return f"{spec['dtype']}[{dims}]"
    return "{" + ", ".join(f"{k}: {_spec_text(v)}" for k, v in spec.items()) + "}"
