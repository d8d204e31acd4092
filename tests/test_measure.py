"""Volumes and per-organ statistics against direct numpy computations and the shared cases."""

from __future__ import annotations

import numpy as np
import pytest
from realdata import shared_case
from synthetic import blob_labels, study_from_files

from radipop_widgets.measure import organ_measurements, volumes_ml


def test_volumes_from_counts_and_spacing():
    labels = np.zeros((40, 9, 7), np.uint8)  # more slices than one bincount slab
    labels[3:37, 2:5, 1:3] = 1  # 34 * 3 * 2 = 204 voxels
    labels[20, 0, 0] = 2
    labels[21, 0, 0] = 3
    spacing = (2.0, 0.5, 0.25)  # 0.25 mm^3 = 0.00025 mL per voxel
    assert volumes_ml(labels, spacing) == pytest.approx({"liver": 204 * 0.00025,
                                                         "spleen": 0.00025})
    assert volumes_ml(np.zeros((2, 3, 3), np.uint8), spacing) == {"liver": 0.0, "spleen": 0.0}


def test_organ_measurements_match_numpy():
    shape = (37, 30, 28)
    labels = blob_labels(shape, seed=2)
    labels[5, 0, :4] = 7
    hu = np.random.default_rng(3).normal(60, 25, shape).astype(np.int16)
    spacing = (2.5, 0.8, 0.6)
    out = organ_measurements(labels, hu, spacing)
    assert sorted(out) == ["liver", "organ_3", "organ_7", "spleen"]
    for name, value in [("liver", 1), ("spleen", 2), ("organ_3", 3), ("organ_7", 7)]:
        mask = labels == value
        m = out[name]
        slices = np.flatnonzero(mask.any(axis=(1, 2)))
        assert m["label"] == value and m["voxels"] == int(mask.sum())
        assert m["volume_ml"] == pytest.approx(mask.sum() * 2.5 * 0.8 * 0.6 / 1000)
        assert m["slices"] == (slices[0], slices[-1])
        assert m["mean_hu"] == pytest.approx(hu[mask].mean(), rel=1e-9)
        assert m["sd_hu"] == pytest.approx(hu[mask].std(), rel=1e-7)
        assert [z for z, _ in m["area_mm2"]] == list(slices)
        for z, area in m["area_mm2"]:
            assert area == pytest.approx(mask[z].sum() * 0.8 * 0.6)
    assert sum(a for _, a in out["liver"]["area_mm2"]) * 2.5 / 1000 == \
        pytest.approx(out["liver"]["volume_ml"])


def test_without_hu_and_without_organs():
    labels = np.zeros((3, 4, 4), np.uint8)
    assert organ_measurements(labels, None, (1, 1, 1)) == {}
    labels[1, 1, 1] = 2
    spleen = organ_measurements(labels, None, (1, 1, 1))["spleen"]
    assert spleen["mean_hu"] is None and spleen["sd_hu"] is None
    assert spleen["area_mm2"] == [(1, 1.0)] and spleen["slices"] == (1, 1)


@pytest.mark.parametrize("bad", [np.zeros((3, 4), np.uint8), np.zeros((2, 3, 4), np.int32)])
def test_rejects_wrong_input(bad):
    with pytest.raises(ValueError):
        volumes_ml(bad, (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        volumes_ml(np.zeros((2, 2, 2), np.uint8), (1, 0, 1))
    with pytest.raises(ValueError, match="hu has shape"):
        organ_measurements(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3)), (1, 1, 1))


def test_shared_siemens_reference_volumes():
    case = shared_case("ct-siemens-20slices")
    labels = np.load(case / "reference_labels.npz")["labels"]
    volumes = volumes_ml(labels, (2.0, 0.9765625, 0.9765625))
    assert volumes["liver"] == pytest.approx(699.4, abs=0.05)
    assert volumes["spleen"] == pytest.approx(249.2, abs=0.05)


def test_shared_ge_liver_statistics():
    case = shared_case("ge-ct-3slices")
    study = study_from_files(sorted((case / "dicom").glob("*.dcm")))
    labels = np.load(case / "reference_labels.npz")["labels"]
    liver = organ_measurements(labels, study.hu, study.spacing)["liver"]
    assert liver["voxels"] == 107098 and liver["slices"] == (0, 2)
    assert liver["mean_hu"] == pytest.approx(37, abs=0.5)
    assert liver["volume_ml"] == pytest.approx(107098 * 0.810547 ** 2 / 1000, rel=1e-4)
