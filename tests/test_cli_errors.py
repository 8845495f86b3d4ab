"""One error base: every error of the input is a `TfspecError`, which `cli.main`
catches once and prints (status 1); anything else is a bug (status 2, one line)."""

from __future__ import annotations

import json

import pytest

import tfspec
from tfspec import cli
from tfspec.inspect.graph import GraphvizError, GraphvizMissing
from tfspec.jobs.build import BuildError
from tfspec.jobs.ray import RayJobError
from tfspec.lang.diagnostics import Diagnostics, SpecError, TfspecError
from tfspec.lang.formatter import FormatError
from tfspec.lang.textfile import NotUTF8
from tfspec.serving.servables import ServeError


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("TFSPEC_DEBUG", raising=False)


@pytest.mark.parametrize("cls", [SpecError, BuildError, ServeError, RayJobError, GraphvizError,
                                 GraphvizMissing, FormatError, NotUTF8])
def test_the_user_facing_errors_are_tfspec_errors(cls):
    assert issubclass(cls, TfspecError) and tfspec.TfspecError is TfspecError


def test_errors_that_were_value_errors_still_are():
    assert issubclass(FormatError, ValueError) and issubclass(NotUTF8, ValueError)


def raising(exc: BaseException):
    def command(args):
        raise exc
    return command


def spec_error() -> SpecError:
    diags = Diagnostics("m.tfspec")
    diags.add("E500", "Keras cannot build the model")
    return SpecError(diags)


def test_a_tfspec_error_is_one_line_and_status_1(monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_import", raising(TfspecError("something is wrong")))
    assert cli.main(["import", "x.keras"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "tfspec: error: something is wrong\n")


def test_a_spec_error_is_its_diagnostics_as_the_format_says(monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_import", raising(spec_error()))
    assert cli.main(["import", "x.keras"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "m.tfspec: error[E500]: Keras cannot build the model\n"
    monkeypatch.setattr(cli, "cmd_verify", raising(spec_error()))
    assert cli.main(["verify", "--format", "json", "runs/x"]) == 1
    out, err = capsys.readouterr()
    assert err == "" and [d["code"] for d in json.loads(out)] == ["E500"]


def test_graphviz_missing_keeps_its_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_graph", raising(GraphvizMissing("Graphviz is not installed")))
    assert cli.main(["graph", "m.tfspec", "-o", "m.svg"]) == 1
    assert capsys.readouterr().err == "tfspec: Graphviz is not installed\n"


def test_a_bug_is_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_import", raising(AttributeError("no attribute 'get'")))
    assert cli.main(["import", "x.keras"]) == 2
    assert capsys.readouterr().err == (
        "tfspec: internal error: AttributeError: no attribute 'get' (set TFSPEC_DEBUG=1 for a "
        "traceback, and please report it)\n")


def test_usage_errors_are_argparse_status_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["import"])
    assert info.value.code == 2 and "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "compile"])
def test_a_malformed_set_is_status_1_for_every_command(command, capsys):
    assert cli.main([command, "--set", "bad", "examples/iris_mlp.tfspec"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "tfspec: error: --set: expected name=value. Received: 'bad'")
