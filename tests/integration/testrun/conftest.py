"""Fixtures the test-stage integration tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The build state directory the goldens' inventories are kept in (IMAGEFACTORY_STATE,
    the same directory `klab_cli.klab` gives the subprocess)."""
    path = tmp_path / "build-state"
    monkeypatch.setenv("IMAGEFACTORY_STATE", str(path))
    return path
