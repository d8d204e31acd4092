"""Shared fixtures: the real CT in ../shared/data (skipped when absent) and the phantom."""

from __future__ import annotations

from pathlib import Path

import pytest

from realdata import shared_case


@pytest.fixture
def siemens_dir() -> Path:
    return shared_case("ct-siemens-20slices") / "dicom"


@pytest.fixture
def ge_dir() -> Path:
    return shared_case("ge-ct-3slices") / "dicom"


@pytest.fixture
def abdomen_nifti() -> Path:
    return shared_case("ct-abdomen-3mm") / "ct.nii.gz"
