"""The IPython extension (`%load_ext tfspec`): the `%%tfspec` cell magic, and errors of
the user's input shown as their located diagnostics, not as a traceback.

    %%tfspec spec --plan
    tfspec 1
    …

checks the cell's spec when the cell runs (its diagnostics at the cell's own lines:
the magic's line is line 1), binds the `Spec` to `spec`, and with `--plan` shows the
plan, with `--run` trains it (`Spec.fit`) and shows the run. IPython is imported
here only, when the extension is loaded: it is no dependency of tfspec.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..lang.diagnostics import SpecError, TfspecError, render_text
from ..lang.validate import parse_override
from .spec import Spec, load


def error_lines(error: TfspecError) -> list[str]:
    """What a notebook shows for an error of the input: a `SpecError`'s diagnostics with
    their carets, any other `TfspecError` as its one line."""
    if not isinstance(error, SpecError):
        return [f"{error.cli_prefix}{error}"]
    lines = [error.preface() + render_text(error.diagnostics, error.source)]
    run_dir = getattr(error, "run_dir", None)  # a run that failed: what it left, as cli's
    if run_dir is not None:
        from ..jobs.runner import summary

        lines += summary(run_dir, failed=True)
    return lines


def _show_input_error(shell: Any, etype: type, value: BaseException, tb: Any,
                      tb_offset: int | None = None) -> list[str]:
    """IPython's handler for `TfspecError`: the diagnostics are the cell's error output
    (the cell still fails: "Run All" stops there), without tfspec's own frames."""
    assert isinstance(value, TfspecError)
    lines = error_lines(value)
    shell._showtraceback(etype, value, lines)
    return lines


@magics_class
class TfspecMagics(Magics):
    """`%%tfspec [NAME] [--plan] [--run] [--set NAME=VALUE]… [--allow-module M]…`"""

    @magic_arguments()
    @argument("name", nargs="?", help="bind the checked Spec to this name")
    @argument("--plan", action="store_true", help="show the plan (builds the model)")
    @argument("--run", action="store_true", help="train it as `tfspec run` does")
    @argument("--set", action="append", default=[], metavar="NAME=VALUE",
              help="a param's value, as `tfspec run --set`")
    @argument("--allow-module", action="append", default=[], metavar="MODULE",
              help="let a generator source import MODULE")
    @cell_magic
    def tfspec(self, line: str, cell: str) -> Any:
        """Check the cell's spec; bind it, and show its plan or train it if asked."""
        args = parse_argstring(self.tfspec, line)
        overrides = {}
        for pair in args.set:
            try:
                name, value = parse_override(pair)
            except ValueError as exc:
                raise TfspecError(f"--set: {exc}") from None
            overrides[name] = value
        # IPython counts the cell before running it: its In[] number is one less
        count = getattr(self.shell, "execution_count", 1) - 1
        # the magic's line is the spec's line 1 (blank): lines count as the cell's do
        spec: Spec = load("\n" + cell, overrides, args.allow_module,
                          filename=f"<cell {count}>" if count > 0 else "<cell>")
        if args.name:
            self.shell.user_ns[args.name] = spec
        if args.plan:
            display(spec.plan())
        if args.run:
            return spec.fit()
        return None if args.name or args.plan else spec


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tfspec`: register `%%tfspec` and show tfspec's input errors as
    diagnostics. (The Pygments lexer already highlights ```tfspec code.)"""
    ipython.register_magics(TfspecMagics)
    ipython.set_custom_exc((TfspecError,), _show_input_error)
