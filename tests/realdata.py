"""Where the real CT of the shared data folder lives; tests skip with a reason without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RADIPOP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_case(name: str) -> Path:
    """Path of a case in the shared data folder, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real CT case {name!r} not found at {path} "
                    "(set RADIPOP_SHARED_DATA to the shared data folder to run this test)")
    return path
