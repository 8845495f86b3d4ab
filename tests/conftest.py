"""What every test shares: a cache of tfspec's own, new for each session.

`tfspec run` keeps the answer of its export check in the user's cache
(`TFSPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/tfspec`); the suite gets a fresh one, so a
session never reads what an earlier one found, while its runs of one spec share it.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def tfspec_cache(tmp_path_factory):
    os.environ["TFSPEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("tfspec-cache"))
