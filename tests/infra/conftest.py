"""Fixtures of the deployment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A copy of .chalice/config.json to rewrite: the real file is never touched."""
    copy = tmp_path / "config.json"
    copy.write_text((ROOT / ".chalice" / "config.json").read_text())
    return copy
