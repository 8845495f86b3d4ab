"""tfspec's version: one place, which `tfspec.__version__`, the wheel (pyproject.toml's
hatch version path), `tfspec --version`, generated programs' headers and `tfspec serve`
all read. A module of its own so that every stage can name it without importing the
package's face (tfspec/__init__.py) from below."""

__version__ = "0.1.0"
