"""Every plausibility flag, each triggered by a constructed case, and silent on a clean one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radipop_widgets.cohort import flags as F
from radipop_widgets.measure import area_steps, organ_measurements

SPACING = (5.0, 2.0, 2.0)    # 20 mm^3 voxels


def ellipsoid(shape, centre, radii):
    z, r, c = np.ogrid[:shape[0], :shape[1], :shape[2]]
    return (((z - centre[0]) / radii[0]) ** 2 + ((r - centre[1]) / radii[1]) ** 2
            + ((c - centre[2]) / radii[2]) ** 2) < 1


def clean_case():
    """A liver of ~1.4 L and a spleen of ~220 mL, inside the field of view, one piece each,
    with portal-venous HU."""
    shape = (40, 160, 160)
    labels = np.zeros(shape, np.uint8)
    labels[ellipsoid(shape, (20, 70, 55), (12, 38, 38))] = 1
    labels[ellipsoid(shape, (20, 80, 130), (9, 18, 16))] = 2
    hu = np.full(shape, -100, np.int16)
    hu[labels == 1], hu[labels == 2] = 110, 120
    return labels, hu


def codes(labels, hu, phase="portal venous"):
    m = organ_measurements(labels, hu, SPACING)
    return [(f.code, f.organ) for f in F.study_flags(labels, m, SPACING, phase)], m


def test_a_clean_case_has_no_flag():
    labels, hu = clean_case()
    found, m = codes(labels, hu)
    assert found == [], found
    assert 1100 < m["liver"]["volume_ml"] < 1800 and 150 < m["spleen"]["volume_ml"] < 300


def test_an_organ_on_the_first_or_last_slice_is_cut_by_the_field_of_view():
    labels, hu = clean_case()
    labels[0][labels[20] == 1] = 1                     # liver on slice 0
    found, _ = codes(labels, hu)
    assert ("fov_cut", "liver") in found
    flag = F.field_of_view_flags(organ_measurements(labels, hu, SPACING), labels.shape[0])[0]
    assert "first slice" in flag.reason and "lower bound" in flag.reason


def test_a_missed_slice_and_a_leak_are_area_jumps():
    labels, hu = clean_case()
    missed = labels.copy()
    missed[20][missed[20] == 2] = 0
    found, _ = codes(missed, hu)
    assert ("area_jump", "spleen") in found
    leak = labels.copy()
    leak[22, 20:150, 100:159][leak[22, 20:150, 100:159] == 0] = 2   # one slice leaks
    flags = F.area_flags(organ_measurements(leak, hu, SPACING))
    assert [f.code for f in flags if f.organ == "spleen"] == ["area_jump"]
    assert "slice(s) 22" in flags[-1].reason


def test_a_small_leak_on_one_slice_is_an_area_jump_where_the_step_is_small():
    """A leak of 15 % of the largest slice on a slice where the organ shrinks: the step from
    the slice before stays under 25 %, but the slice stands out from both neighbours."""
    labels, hu = clean_case()
    liver = labels == 1
    areas = liver.sum(axis=(1, 2))
    z = 23                                               # the liver shrinks here
    assert areas[z] < areas[z - 1]
    leak = labels.copy()
    grow, added = liver[z], np.zeros_like(liver[z])
    while added.sum() < 0.15 * areas.max():
        grow = ndimage.binary_dilation(grow)
        added = grow & (labels[z] == 0)
    leak[z][added] = 1
    m = organ_measurements(leak, hu, SPACING)
    assert area_steps(m["liver"], F.AREA_STEP) == []          # the step rule is silent
    flags = [f for f in F.area_flags(m) if f.organ == "liver"]
    assert [f.code for f in flags] == ["area_jump"] and f"slice(s) {z}" in flags[0].reason
    assert "neighbours" in flags[0].reason


def test_disconnected_pieces():
    labels, hu = clean_case()
    labels[ellipsoid(labels.shape, (20, 140, 30), (3, 8, 8))] = 1     # a far piece of liver
    found, _ = codes(labels, hu)
    assert ("pieces", "liver") in found


def test_physiological_volume_ranges_and_massive_splenomegaly():
    assert [f.code for f in F.volume_flags({"liver": 400.0, "spleen": 150.0})] == ["volume_range"]
    assert [f.code for f in F.volume_flags({"liver": 3500.0, "spleen": 150.0})] == ["volume_range"]
    spleen = F.volume_flags({"liver": 1500.0, "spleen": 431.5})
    assert [f.code for f in spleen] == ["massive_splenomegaly"]
    assert "second look, not an error" in spleen[0].reason
    assert F.volume_flags({"liver": 1500.0, "spleen": 430.0}) == []
    assert [f.code for f in F.volume_flags({"liver": 1500.0, "spleen": 12.0})] == ["volume_range"]
    assert F.volume_flags({"liver": 0.0, "spleen": 0.0}) == []       # not labelled: no opinion


def test_cohort_bounds_only_from_ten_studies():
    volumes = {f"s{i}": {"liver": 1500.0 + 20 * i, "spleen": 200.0 + 3 * i} for i in range(9)}
    volumes["odd"] = {"liver": 2600.0, "spleen": 205.0}
    found = F.cohort_flags(volumes)
    assert [f.code for f in found["odd"]] == ["volume_cohort"]
    assert "median +/- 3 MAD" in found["odd"][0].reason
    assert all(found[f"s{i}"] == [] for i in range(9))
    del volumes["s0"]
    assert all(v == [] for v in F.cohort_flags(volumes).values())    # 9 studies: no bounds


def test_spleen_volume_inconsistent_with_its_splenic_index():
    consistent = {"spleen": {"volume_ml": 300.0, "splenic_index_cm3": 450.0}}
    assert F.splenic_index_flags(consistent) == []                    # 30 + 0.58 * 450 = 291
    off = F.splenic_index_flags({"spleen": {"volume_ml": 600.0, "splenic_index_cm3": 300.0}})
    assert [f.code for f in off] == ["splenic_index"] and "204 mL" in off[0].reason


def test_mean_hu_outside_the_organs_range_for_the_phase():
    labels, hu = clean_case()
    found, _ = codes(labels, hu, phase="native")     # 110 / 120 HU is no native liver
    assert ("hu_phase", "liver") in found and ("hu_phase", "spleen") in found
    hu[labels == 1] = 20                              # a dark liver in portal venous phase
    found, _ = codes(labels, hu)
    assert found == [("hu_phase", "liver")]
    assert codes(labels, hu, phase=None)[0] == []     # no phase estimated: no HU check


@pytest.mark.parametrize("code", ["fov_cut", "area_jump", "pieces", "volume_range",
                                  "massive_splenomegaly", "volume_cohort", "splenic_index",
                                  "hu_phase"])
def test_every_flag_is_documented(code):
    assert f"``{code}``" in F.__doc__


def test_the_step_allowed_between_slices_grows_with_the_slice_thickness():
    """An organ's area changes more between 10 mm slices than between 2.5 mm ones: a steady
    30 % per slice is a jump at 2.5 mm, the organ's own shape at 10 mm."""
    areas = [100.0, 500.0, 900.0, 1300.0]              # steady: no slice stands out
    m = {"liver": {"area_mm2": list(enumerate(areas)), "missing_slices": []}}
    assert [f.code for f in F.area_flags(m, slice_mm=2.5)] == ["area_jump"]
    assert F.area_flags(m, slice_mm=10.0) == []
    assert [f.code for f in F.area_flags(m)] == ["area_jump"]      # thickness unknown
