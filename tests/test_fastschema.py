"""`lang/fastschema.py` answers "valid or not" for the schema, and only an invalid
spec is explained by `jsonschema` (lang/schema.py): both must agree on every IR —
the examples', and the IRs of the fuzz corpus (mutated DSL and JSON examples, parsed
without the checker), valid and invalid alike."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from test_fuzz import dsl_sources, dsl_token, fuzz_settings, json_sources, json_token, mutated

from tfspec.lang import schema
from tfspec.lang.diagnostics import Diagnostics
from tfspec.lang.validate import read


def agree(text: str, filename: str) -> None:
    ir = read(text, filename, Diagnostics(filename)).ir
    if ir is None:
        return
    assert schema.is_valid()(ir) == schema.validator().is_valid(ir), json.dumps(ir)[:400]


@pytest.mark.parametrize("index", range(len(json_sources())))
def test_every_example_agrees(index):
    agree(json_sources()[index], "x.tfspec.json")


@fuzz_settings(400)
@given(mutated(dsl_sources, dsl_token))
def test_mutated_dsl_examples_agree(text):
    agree(text, "x.tfspec")


@fuzz_settings(400)
@given(mutated(json_sources, json_token))
def test_mutated_json_examples_agree(text):
    agree(text, "x.tfspec.json")
