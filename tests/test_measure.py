"""Volumes and per-organ statistics against direct numpy computations and the shared cases."""

from __future__ import annotations

import numpy as np
import pytest
from realdata import shared_case
from synthetic import blob_labels, study_from_files

from radipop_widgets.measure import (
    KEYS,
    liver_spleen_ratio,
    organ_measurements,
    volumes_ml,
)


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


# ---------------------------------------------------------------- shape and the new numbers

def ellipsoid(shape, spacing, centre_mm, axes_mm, angle_deg=0.0, value=2):
    """uint8 labels: the voxels whose centres lie inside an ellipsoid, its semi-axes
    ``axes_mm`` along (slice, in-plane u, in-plane u + 90 degrees), u at ``angle_deg``
    from the row axis towards the column axis."""
    z, y, x = (((np.arange(n) + 0.5) * s - c)
               for n, s, c in zip(shape, spacing, centre_mm))
    t = np.radians(angle_deg)
    u = y[None, :, None] * np.cos(t) + x[None, None, :] * np.sin(t)
    v = -y[None, :, None] * np.sin(t) + x[None, None, :] * np.cos(t)
    inside = ((z[:, None, None] / axes_mm[0]) ** 2 + (u / axes_mm[1]) ** 2
              + (v / axes_mm[2]) ** 2) < 1
    return np.where(inside, value, 0).astype(np.uint8)


SPACING = (2.5, 0.8, 0.6)          # anisotropic: slice, row, column mm
AXES = (60.0, 70.0, 45.0)          # semi-axes mm: craniocaudal, longest in-plane, across it


def test_ellipsoid_volume_length_diameters_and_splenic_index():
    shape = (60, 200, 260)
    labels = ellipsoid(shape, SPACING, (73.1, 79.3, 77.7), AXES, angle_deg=30)
    spleen = organ_measurements(labels, None, SPACING)["spleen"]
    a, b, c = AXES
    # volume within 1 % of 4/3 pi abc (791.7 mL)
    assert spleen["volume_ml"] == pytest.approx(4 / 3 * np.pi * a * b * c / 1000, rel=0.01)
    # sizes of the voxel boxes: within one voxel of the ellipsoid's own
    assert spleen["length_cc_mm"] == pytest.approx(2 * a, abs=SPACING[0])
    assert spleen["missing_slices"] == []
    diagonal = np.hypot(SPACING[1], SPACING[2])
    assert spleen["diameter_max_mm"] == pytest.approx(2 * b, abs=diagonal)
    # the width across: the longest chord ends on pixel corners, so its direction (and the
    # width across it) tilts a little; within two pixel diagonals
    assert spleen["diameter_perp_mm"] == pytest.approx(2 * c, abs=2 * diagonal)
    assert abs(spleen["diameter_slice"] - (73.1 / 2.5 - 0.5)) <= 1   # the widest slices
    # an ellipse's largest inscribed circle: its minor axis (within one pixel)
    assert spleen["thickness_mm"] == pytest.approx(2 * c, abs=diagonal)
    # splenic index: L x W x T in cm, 12 x 14 x 9 = 1512 cm^3 within 3 %
    assert spleen["splenic_index_cm3"] == pytest.approx(
        spleen["length_cc_mm"] * spleen["diameter_max_mm"] * spleen["thickness_mm"] / 1000)
    assert spleen["splenic_index_cm3"] == pytest.approx(2 * a * 2 * b * 2 * c / 1000, rel=0.03)


@pytest.mark.parametrize("angle", [0, 17, 45, 90, 123])
def test_diameters_do_not_depend_on_the_direction(angle):
    labels = ellipsoid((9, 150, 190), SPACING, (11.25, 60.0, 57.0), (10.0, 50.0, 20.0),
                       angle_deg=angle, value=1)
    liver = organ_measurements(labels, None, SPACING)["liver"]
    diagonal = np.hypot(SPACING[1], SPACING[2])
    assert liver["diameter_max_mm"] == pytest.approx(100.0, abs=diagonal)
    assert liver["diameter_perp_mm"] == pytest.approx(40.0, abs=2 * diagonal)
    assert liver["thickness_mm"] == pytest.approx(40.0, abs=diagonal)
    assert liver["splenic_index_cm3"] is None          # the spleen's number only


def brute_force_feret(mask2d, row_mm, col_mm):
    """Max distance between all corners of all pixels, and the width across it."""
    rows, cols = np.nonzero(mask2d)
    corners = np.array([(r + dr) * row_mm for r in rows for dr in (0, 1) for _ in (0, 1)])
    xs = np.array([(c + dc) * col_mm for c in cols for _ in (0, 1) for dc in (0, 1)])
    pts = np.column_stack([corners, xs])
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    i, j = np.unravel_index(np.argmax(d), d.shape)
    u = (pts[j] - pts[i]) / d[i, j]
    proj = pts @ np.array([-u[1], u[0]])
    return d[i, j], proj.max() - proj.min()


@pytest.mark.parametrize("seed", range(6))
def test_feret_matches_brute_force_on_random_shapes(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((3, 14, 12)) < 0.15).astype(np.uint8)  # scattered pieces
    labels[1] = 0                                                   # and a gap
    liver = organ_measurements(labels, None, (3.0, 0.7, 1.3))["liver"]
    best = max((brute_force_feret(labels[z], 0.7, 1.3), z) for z in (0, 2) if labels[z].any())
    (d, w), z = best
    assert liver["diameter_max_mm"] == pytest.approx(d)
    assert liver["diameter_slice"] == z
    assert liver["diameter_perp_mm"] == pytest.approx(w)
    assert liver["missing_slices"] == [1] and liver["length_cc_mm"] == 9.0


def test_gaps_count_in_the_length_and_are_listed():
    labels = ellipsoid((40, 60, 60), (2.0, 1.0, 1.0), (40.0, 30.0, 30.0), (30.0, 20.0, 20.0))
    full = organ_measurements(labels, None, (2.0, 1.0, 1.0))["spleen"]
    labels[[12, 20, 21]] = 0
    gapped = organ_measurements(labels, None, (2.0, 1.0, 1.0))["spleen"]
    assert gapped["missing_slices"] == [12, 20, 21]
    assert gapped["length_cc_mm"] == full["length_cc_mm"] == 30 * 2.0
    assert gapped["slices"] == full["slices"] == (5, 34)
    assert gapped["volume_ml"] < full["volume_ml"]
    assert [z for z, _ in gapped["area_mm2"]] == [z for z in range(5, 35) if z not in (12, 20, 21)]


def test_median_hu_equals_numpy():
    shape = (37, 30, 28)
    labels = blob_labels(shape, seed=4)
    labels[5, 0, :4] = 7      # an even count
    labels[5, 1, :3] = 9      # an odd count
    hu = np.random.default_rng(5).normal(60, 25, shape).astype(np.int16)
    hu[labels == 9] = [5000, 5001, -3000]             # beyond the histogram: exact still
    out = organ_measurements(labels, hu, (2.5, 0.8, 0.6))
    for name, value in [("liver", 1), ("spleen", 2), ("organ_3", 3), ("organ_7", 7),
                        ("organ_9", 9)]:
        assert out[name]["median_hu"] == np.median(hu[labels == value]), name
        assert out[name]["mean_hu"] == pytest.approx(hu[labels == value].mean(), rel=1e-9)
        assert out[name]["sd_hu"] == pytest.approx(hu[labels == value].std(), rel=1e-7)
    floats = organ_measurements(labels, hu + 0.25, (2.5, 0.8, 0.6))
    for value, name in [(1, "liver"), (9, "organ_9")]:
        voxels = hu[labels == value] + 0.25
        assert floats[name]["median_hu"] == pytest.approx(np.median(voxels))
        assert floats[name]["mean_hu"] == pytest.approx(voxels.mean(), rel=1e-9)
        assert floats[name]["sd_hu"] == pytest.approx(voxels.std(), rel=1e-7)


def test_every_organ_has_every_key_and_the_ratio_needs_both_organs():
    labels = np.zeros((4, 6, 6), np.uint8)
    labels[1:3, 1:4, 1:4] = 1
    labels[2, 4:6, 4:6] = 2
    labels[0, 0, 0] = 5
    out = organ_measurements(labels, None, (2.0, 1.0, 1.0))
    assert all(tuple(m) == KEYS for m in out.values())
    # a 2 x 2 pixel square: diameter the diagonal, thickness one pixel (even: one short)
    assert out["spleen"]["thickness_mm"] == 1.0
    assert out["spleen"]["splenic_index_cm3"] == pytest.approx(0.2 * 0.2 * np.sqrt(2) * 0.1)
    assert liver_spleen_ratio(out) == pytest.approx(18 / 4)
    assert liver_spleen_ratio({k: v for k, v in out.items() if k != "spleen"}) is None
    assert liver_spleen_ratio({}) is None


def test_a_slab_measures_like_the_whole_volume():
    shape = (37, 30, 28)
    labels = blob_labels(shape, seed=6)
    labels[labels == 3] = 0
    labels[:3] = labels[-3:] = 0
    hu = np.random.default_rng(7).normal(60, 25, shape).astype(np.int16)
    whole = organ_measurements(labels, hu, (2.5, 0.8, 0.6))
    used = np.flatnonzero(labels.any(axis=(1, 2)))
    a, b = int(used[0]), int(used[-1]) + 1
    assert a > 0 or b < shape[0]
    assert organ_measurements(labels[a:b], hu[a:b], (2.5, 0.8, 0.6), first_slice=a) == whole


def test_shared_abdomen_lengths_and_diameters():
    import nibabel as nib

    from radipop_widgets.io import load_study

    case = shared_case("ct-abdomen-3mm")
    study = load_study(case / "ct.nii.gz")
    data = np.asarray(nib.load(case / "reference_labels.nii.gz").dataobj)
    labels = np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0)).astype(np.uint8)
    m = organ_measurements(labels, study.hu, study.spacing)
    liver, spleen = m["liver"], m["spleen"]
    # the data README: liver on slices 69..111, spleen on 82..111 (3 mm), no gaps
    assert liver["slices"] == (69, 111) and liver["length_cc_mm"] == pytest.approx(43 * 3.0)
    assert spleen["slices"] == (82, 111) and spleen["length_cc_mm"] == pytest.approx(30 * 3.0)
    assert liver["missing_slices"] == spleen["missing_slices"] == []
    assert liver["volume_ml"] == pytest.approx(1125.7, abs=0.1)
    assert spleen["volume_ml"] == pytest.approx(261.0, abs=0.1)
    # an adult liver's and spleen's axial sizes, and the spleen's index from them
    assert 150 < liver["diameter_max_mm"] < 260 and 60 < liver["diameter_perp_mm"] < 200
    assert 80 < spleen["diameter_max_mm"] < 160 and 20 < spleen["diameter_perp_mm"] < 90
    assert 30 < spleen["thickness_mm"] < spleen["diameter_perp_mm"]   # a crescent
    assert spleen["splenic_index_cm3"] == pytest.approx(
        9.0 * spleen["diameter_max_mm"] * spleen["thickness_mm"] / 100)
    assert liver_spleen_ratio(m) == pytest.approx(1125.7 / 261.0, rel=1e-3)
    print({k: {q: v[q] for q in KEYS[:-1]} for k, v in m.items()})


def test_a_crescent_is_thinner_than_its_width_across():
    """Half an annulus, radii 60 and 45 mm: 15 mm thick, 120 mm end to end, 60 mm across."""
    spacing = (2.0, 0.5, 0.5)
    y, x = np.mgrid[:160, :280] * 0.5 + 0.25 - np.array([10.0, 70.0])[:, None, None]
    r = np.hypot(y, x)
    slab = (r < 60) & (r >= 45) & (y >= 0)
    labels = np.repeat(slab[None], 5, axis=0).astype(np.uint8) * 2
    spleen = organ_measurements(labels, None, spacing)["spleen"]
    assert spleen["diameter_max_mm"] == pytest.approx(120.0, abs=1.0)
    # the width across spans the hollow (about 60 mm; the longest chord's direction tilts
    # by a degree between the flat ends' pixel corners), the thickness does not
    assert 59.0 < spleen["diameter_perp_mm"] < 64.0
    assert spleen["thickness_mm"] == pytest.approx(15.0, abs=0.5)
    assert spleen["splenic_index_cm3"] == pytest.approx(1.0 * 12.0 * 1.5, rel=0.05)
