"""The machinery every generated program shares, imported by it as `tfspec.runtime`.

A compiled program says what its spec says (params, `build_model()`, the data source,
the training and export settings, `main()`) and calls these modules for the rest, as
Jinja2's compiled templates import `jinja2.runtime`. Each module imports TensorFlow;
nothing on the checking path imports this package.

The runtime stands alone: it imports nothing of tfspec outside itself (its modules
import each other relatively), so `tfspec compile --standalone` can copy it beside a
program for a machine without tfspec. This file imports nothing, so that importing
one module does not import them all.
"""
