"""Shared pytest fixtures: the official BLT fixture folder (read-only, CC-BY-NC, never copied into this repo)."""
import json
import os
from pathlib import Path

import pytest

from blt_repro.core import project_root


def fixtures_dir() -> Path:
    "`BLT_FIXTURES_DIR`, else `../shared/reference/fixtures` beside the checkout."
    return Path(os.environ.get("BLT_FIXTURES_DIR", project_root().parent / "shared" / "reference" / "fixtures"))


@pytest.fixture
def official_fixture():
    "Load one official fixture JSON by file name, or skip with the reason when it is not available."
    def load(name: str):
        path = fixtures_dir() / name
        if not path.exists():
            pytest.skip(f"official fixture {name} not found at {path} (set BLT_FIXTURES_DIR to the folder holding it)")
        return json.loads(path.read_text())
    return load
