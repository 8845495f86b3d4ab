"""A spec's text with new values for some params: how `tfspec tune` writes best.tfspec.

The text is read (DSL or JSON), the params' declared values are replaced in the IR,
and the IR is printed as `tfspec fmt` prints it (canonical DSL, or JSON indented by
two) with its comments, its `tune` section, its line endings and byte-order mark.
For a spec that is already formatted, a diff against the original shows exactly the
params that changed.
"""

from __future__ import annotations

import json as _json
from typing import Any

from .diagnostics import Diagnostics, SpecError
from .formatter import format_spec
from .jsonreader import parse_json
from .parser import parse_dsl
from .textfile import normalize


def with_param_values(text: str, values: dict[str, Any], *, json: bool) -> str:
    """`text` with each named param declared as `values[name]`.

    Raises SpecError when the text does not read, ValueError when a name is not a
    param of the spec or a value is not a literal a param can hold.
    """
    body, layout = normalize(text)
    diags = Diagnostics("<spec>")
    parsed = parse_json(body, diags) if json else parse_dsl(body, diags)
    if parsed.ir is None or diags.has_errors:
        raise SpecError(diags, body)
    ir = parsed.ir
    params = ir.get("params")
    for name, value in values.items():
        if not isinstance(params, dict) or name not in params:
            known = ", ".join(sorted(params or {})) or "none"
            raise ValueError(f"the spec has no param `{name}` (its params: {known})")
        params[name] = plain(value)
    out = _json.dumps(ir, indent=2, ensure_ascii=False) + "\n" if json else format_spec(ir)
    return layout.apply(out)


def plain(value: Any) -> Any:
    """A JSON literal for a value KerasTuner returns (a NumPy scalar becomes its Python
    value: `hp.Float` may hand back `numpy.float64`)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    raise ValueError(f"a param's value must be a number, string, boolean or list. "
                     f"Received: {value!r}")
