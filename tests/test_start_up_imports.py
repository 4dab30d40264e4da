"""What each long-running process loads at start-up. Libraries used only on a rare path are imported where
that path begins, so that every start does not pay for them in memory and CPU (bench/analysis.md, "Image
slimming"); a top-level import added back anywhere on the start-up path shows here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Imported only by: a migration to run (Alembic, and Mako and Pygments through it), a book read from a
# site's sitemap (lxml, BeautifulSoup), sign-in (httpx in the gateway; the worker's SDKs need it anyway).
RARE = {
    "gateway.__main__": {"alembic", "mako", "bs4", "lxml", "httpx", "rich", "pygments"},
    "worker.__main__": {"alembic", "mako", "bs4", "lxml"},
}

LOADED = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"


@pytest.mark.parametrize("module", sorted(RARE))
def test_start_up_leaves_rare_path_libraries_unloaded(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED, module], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert loaded & RARE[module] == set()
