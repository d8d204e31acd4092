"""Partition rules and threshold suggestion on tiny synthetic slices."""

import numpy as np
import pytest

from radipop_widgets.segmentation import Thresholds, partition, suggest_thresholds
from radipop_widgets.segmentation.partition import DEFAULT_PARAMS, PartitionParams

T = Thresholds(bone=300, vessel=150, organ=50)
RAW = PartitionParams(smooth_mm=0, bone_margin_mm=0, hole_mm2=0, small_mm2=0, closing_mm=0)


def disk(shape, center, radius):
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2


def test_strictly_above_organ_threshold():
    hu = np.full((20, 20), -100, np.int16)
    hu[2:8, 2:8] = 50      # equal to the threshold: not an organ
    hu[10:18, 10:18] = 51
    regions = partition(hu, T, pixel_mm=1.0, params=RAW)
    assert regions[5, 5] == 0
    assert regions[12, 12] > 0 and regions.max() == 1


def test_vessels_and_bone_removed():
    hu = np.full((30, 30), -100, np.int16)
    hu[5:25, 5:25] = 100
    hu[10:12, 5:25] = 200     # a contrast vessel across the organ splits it
    hu[20:24, 20:24] = 500    # bone
    regions = partition(hu, T, pixel_mm=1.0, params=RAW)
    assert (regions[10:12] == 0).all()
    assert regions[21, 21] == 0
    assert regions[7, 7] != regions[15, 15] and regions[7, 7] > 0 and regions[15, 15] > 0


def test_small_holes_filled_small_objects_removed_in_mm():
    # the same scene at 1 mm and at 3 mm pixels gives the same decisions
    for pixel_mm, scale in ((1.0, 3), (3.0, 1)):
        n = 30 * scale
        hu = np.full((n, n), -100, np.int16)
        hu[3 * scale:27 * scale, 3 * scale:20 * scale] = 100
        hu[10 * scale:12 * scale, 10 * scale:12 * scale] = 200   # 36 mm^2 vessel inside
        hu[2 * scale:3 * scale + 1, 24 * scale:25 * scale] = 100   # speck of about 9-18 mm^2
        params = PartitionParams(smooth_mm=0, bone_margin_mm=0, hole_mm2=100, small_mm2=30,
                                 closing_mm=0, min_peak_mm=1000, band_mm=0)
        regions = partition(hu, T, pixel_mm=pixel_mm, params=params)
        assert regions[10 * scale, 10 * scale] > 0, "vessel hole should be filled"
        assert regions[2 * scale, 24 * scale] == 0, "speck should be removed"
        assert regions.max() == 1


def test_touching_disks_separated_and_one_organ_kept_whole():
    shape = (120, 200)
    hu = np.full(shape, -100, np.int16)
    a, b = disk(shape, (60, 55), 40), disk(shape, (60, 140), 40)
    bridge = np.zeros(shape, bool)
    bridge[57:63, 90:105] = True                  # 6 px neck between two 80 px organs
    hu[a | b | bridge] = 100
    regions = partition(hu, T, pixel_mm=1.0)
    assert regions[60, 55] > 0 and regions[60, 140] > 0
    assert regions[60, 55] != regions[60, 140]
    # a single elongated organ with a wide waist stays in one region
    hu2 = np.full(shape, -100, np.int16)
    hu2[disk(shape, (60, 60), 40) | disk(shape, (60, 120), 40)] = 100
    regions2 = partition(hu2, T, pixel_mm=1.0)
    assert regions2[60, 60] == regions2[60, 120] > 0


def test_barrier_splits_regions_without_leak():
    hu = np.full((40, 40), 100, np.int16)
    barrier = np.zeros((40, 40), bool)
    barrier[np.arange(40), np.arange(40)] = True   # 8-connected diagonal
    barrier[np.arange(1, 40), np.arange(39)] = True  # made 4-connected
    regions = partition(hu, T, pixel_mm=1.0, barrier=barrier, params=RAW)
    assert regions[30, 5] != regions[5, 30]


def test_suggest_follows_contrast_phase():
    rng = np.random.default_rng(0)
    base = np.full((4, 64, 64), -100.0)
    base[:, 10:54, 10:54] = 0
    hu_plain = base.copy()
    hu_plain[:, 10:54, 10:54] += 45 + rng.normal(0, 10, (4, 44, 44))
    hu_portal = base.copy()
    hu_portal[:, 10:54, 10:54] += 100 + rng.normal(0, 10, (4, 44, 44))
    plain, portal = suggest_thresholds(hu_plain), suggest_thresholds(hu_portal)
    assert portal.organ - plain.organ == pytest.approx(55, abs=6)
    for t, mode in ((plain, 45), (portal, 100)):
        assert t.organ < mode < t.vessel < t.bone


def test_suggest_refuses_no_soft_tissue():
    with pytest.raises(ValueError, match="set them by hand"):
        suggest_thresholds(np.full((2, 16, 16), -1000, np.int16))


def test_cropping_to_the_candidates_changes_nothing():
    # partition works in the box of the pixels above a threshold (plus a margin);
    # the result equals the computation on the whole image, at every pixel size
    from radipop_widgets.segmentation.partition import _partition_box
    rng = np.random.default_rng(1)
    hu = np.full((200, 210), -1000.0)
    hu[60:150, 50:170] = -100
    hu[65:120, 53:100] = 100
    hu[100:148, 105:168] = 80
    hu[100:105, 70:80] = 400                                  # bone inside
    hu = (hu + rng.normal(0, 15, hu.shape)).astype(np.int16)
    for pixel_mm in (0.7, 1.0, 3.0):
        cropped = partition(hu, T, pixel_mm=pixel_mm, noise_sd=15.0)
        whole = _partition_box(hu, T, pixel_mm=pixel_mm, barrier=None,
                               step_hu=DEFAULT_PARAMS.step_sds * 15.0, noise_sd=15.0,
                               params=DEFAULT_PARAMS)
        assert cropped.max() >= 2
        assert (cropped == whole).all()


def test_noise_sd_measures_known_noise_next_to_edges():
    from radipop_widgets.segmentation.thresholds import noise_sd
    rng = np.random.default_rng(2)
    for sd in (5.0, 20.0):
        img = np.full((4, 96, 96), -100.0)
        img[:, 10:86, 10:50] = 60
        img[:, 10:86, 50:86] = 120           # an internal edge must not inflate the estimate
        img += rng.normal(0, sd, img.shape)
        assert noise_sd(img) == pytest.approx(sd, rel=0.15)
    with pytest.raises(ValueError, match="no soft tissue"):
        noise_sd(np.full((8, 8), -1000.0))


def test_suggest_keeps_a_noisy_dominant_organ_whole():
    # a field of view filled by one noisy organ: the organ threshold stays 3 noise SDs
    # below its mode (the percentile alone would cut it at its median)
    rng = np.random.default_rng(3)
    hu = np.full((3, 96, 96), -100.0)
    hu[:, 8:88, 8:88] = 45 + rng.normal(0, 30, (3, 80, 80))
    t = suggest_thresholds(hu)
    assert t.organ < 45 - 2 * 30 / 3        # smoothed noise SD is about 30 / 3
    assert (partition(hu[0], t, pixel_mm=1.0)[12:84, 12:84] > 0).mean() > 0.97


def test_valley_below_only_moves_a_threshold_on_a_peak_flank():
    from radipop_widgets.segmentation.thresholds import valley_below
    x = np.arange(100.0)
    bimodal = 1000 * np.exp(-(x - 60) ** 2 / 50) + 400 * np.exp(-(x - 30) ** 2 / 50) + 10
    valley = int(np.argmin(bimodal[35:55])) + 35
    assert valley_below(bimodal, 55) == valley          # on the upper peak's flank
    assert valley_below(bimodal, valley + 2) == valley + 2   # next to the valley: stays
    assert valley_below(np.linspace(1, 100, 100), 50) == 50  # no valley: stays


def test_suggest_keeps_the_lower_of_two_close_organs():
    # native phase: a large organ at 58 HU and a smaller one at 47 HU merge into one
    # soft-tissue peak; the threshold must fall below the lower organ, not on it
    rng = np.random.default_rng(4)
    hu = np.full((4, 128, 128), -100.0)
    hu[:, 10:118, 10:70] = 58
    hu[:, 20:100, 78:110] = 47
    hu[:, 2:8, 10:118] = 30                 # a thinner, darker structure (kidney-like)
    hu += rng.normal(0, 4, hu.shape)
    t = suggest_thresholds(hu)
    assert 30 < t.organ < 47 - 4
    assert (partition(hu[0], t, pixel_mm=1.0)[24:96, 82:106] > 0).mean() > 0.97


def test_fat_hole_stays_open_while_a_same_size_vessel_hole_fills():
    # the fissure / porta hepatis is fat inside the liver's outline: not liver
    hu = np.full((60, 90), -100, np.int16)
    hu[5:55, 5:85] = 100
    hu[20:30, 15:25] = -80      # 100 mm^2 of fat
    hu[20:30, 55:65] = 20       # 100 mm^2 below the organ threshold (a vessel, a lesion)
    params = PartitionParams(smooth_mm=0, bone_margin_mm=0, closing_mm=0, min_peak_mm=1000)
    regions = partition(hu, T, pixel_mm=1.0, params=params)
    assert (regions[20:30, 15:25] == 0).all(), "fat hole should stay open"
    assert (regions[20:30, 55:65] == regions[40, 40]).all() and regions[40, 40] > 0
    assert params.fat_hole_mm2 < 100 < params.hole_mm2


def _body_with_wall(organ_centre_col):
    """A round body (fat), a muscle band 72-86 mm from the centre with ribs in it at
    79 mm, and a round organ of muscle's HU touching the band's inner side."""
    shape = (200, 200)
    yy, xx = np.mgrid[:200, :200] - 100.0
    r = np.hypot(yy, xx)
    hu = np.full(shape, -1000.0)
    hu[r < 90] = -100
    hu[(r >= 72) & (r < 86)] = 60
    angle = np.arctan2(yy, xx)
    for a in np.deg2rad([120, 150, 180, 210, 240]):
        hu[np.hypot(yy - 79 * np.sin(a), xx - 79 * np.cos(a)) < 3] = 400
    organ = np.hypot(yy, xx - organ_centre_col) < 38
    hu[organ] = 60
    return hu.astype(np.int16), organ, r, angle


def test_body_wall_band_is_its_own_region_and_the_organ_stays_whole():
    hu, organ, r, angle = _body_with_wall(-34)        # organ reaches 72 mm at 180 deg
    regions = partition(hu, T, pixel_mm=1.0)
    inside = regions[100, 100 - 34]
    assert inside > 0
    # the whole organ but its smoothed outline is one region
    assert (regions[organ] == inside).mean() > 0.93
    assert (regions[organ] == inside).sum() == (regions[organ] > 0).sum(), "organ cut"
    # the band between the ribs next to the organ (165 deg, 77-83 mm) is not the organ
    band = (r > 77) & (r < 83) & (np.abs(np.rad2deg(angle) - 165) < 3)
    assert band.any() and (regions[band] > 0).all() and (regions[band] != inside).all()
    # without the rule the band and the organ are one region (the scene needs the rule)
    off = partition(hu, T, pixel_mm=1.0,
                    params=PartitionParams(wall_reach_mm=0, band_mm=0, step_sds=0))
    assert (off[band] == off[100, 100 - 34]).all()


def test_body_wall_needs_ribs():
    # no bone: no wall; a big bone (the spine) is not a rib (the fat band rule off)
    hu, organ, r, angle = _body_with_wall(-34)
    from radipop_widgets.segmentation.partition import smooth_slice
    from radipop_widgets.segmentation.wall import body_wall
    ribs_only = PartitionParams(band_mm=0)
    smooth = smooth_slice(hu, pixel_mm=1.0)
    assert body_wall(smooth, T, pixel_mm=1.0, params=ribs_only)[r > 80].any()
    smooth[smooth > T.bone] = 60
    assert not body_wall(smooth, T, pixel_mm=1.0, params=ribs_only).any()
    smooth[90:130, 80:120] = 500                          # 1600 mm^2 of bone
    assert not body_wall(smooth, T, pixel_mm=1.0, params=ribs_only).any()


def test_muscle_band_inside_subcutaneous_fat_without_ribs():
    # no ribs; the organ (muscle's HU) overlaps the muscle ring 72-86 mm out to 78 mm:
    # the 10 mm inside the subcutaneous fat (86-96 mm) is the wall, not the organ
    hu, organ, r, angle = _body_with_wall(-40)
    hu[hu > T.bone] = 60
    hu[(r >= 86) & (r < 96)] = -100
    deg = np.abs(np.rad2deg(angle))
    ring = (r > 79) & (r < 84) & (deg > 160)
    regions = partition(hu, T, pixel_mm=1.0)
    inside = regions[100, 60]
    assert inside > 0 and (regions[organ] == inside).mean() > 0.9
    assert (regions[ring] > 0).all() and (regions[ring] != inside).all()
    off = partition(hu, T, pixel_mm=1.0, params=PartitionParams(band_mm=0, step_sds=0))
    assert (off[ring] == off[100, 60]).all(), "the scene needs the rule"


def test_intensity_step_separates_touching_tissues_of_different_hu():
    # spleen (115 HU) lying on the kidney (160 HU) over a wide contact: one region by
    # shape, two by the intensity step (45 HU = 3.75 noise SDs of 12 HU)
    shape = (120, 200)
    rng = np.random.default_rng(3)
    hu = np.full(shape, -100.0)
    hu[disk(shape, (60, 60), 40) | disk(shape, (60, 120), 40)] = 115
    hu[disk(shape, (60, 120), 40) & ~disk(shape, (60, 60), 40)] = 160
    hu = (hu + rng.normal(0, 12, shape)).astype(np.int16)
    t = Thresholds(bone=400, vessel=250, organ=50)
    regions = partition(hu, t, pixel_mm=1.0, noise_sd=12.0)
    assert regions[60, 50] > 0 and regions[60, 135] > 0
    assert regions[60, 50] != regions[60, 135]
    off = partition(hu, t, pixel_mm=1.0, noise_sd=12.0, params=PartitionParams(step_sds=0))
    assert off[60, 50] == off[60, 135] > 0, "the scene needs the rule"
    # the same shape of one tissue stays whole; a 15 HU step is below 3 noise SDs
    hu2 = np.where(hu > 140, hu - 30, hu).astype(np.int16)
    same = partition(hu2, t, pixel_mm=1.0, noise_sd=12.0)
    assert same[60, 50] == same[60, 135] > 0


def test_an_organ_cut_by_the_field_of_view_is_not_body_wall():
    # a field of view smaller than the patient: the image edge is not the skin, so the
    # organ lying on it stays one candidate region (not a strip of "body wall")
    hu = np.full((160, 160), -100.0)
    hu[20:140, 0:90] = 60                                  # organ running off the left edge
    rng = np.random.default_rng(3)
    hu = (hu + rng.normal(0, 5, hu.shape)).astype(np.int16)
    regions = partition(hu, T, pixel_mm=1.0, noise_sd=5.0)
    organ = hu > 30
    ids, counts = np.unique(regions[organ], return_counts=True)
    assert counts[ids > 0].max() > 0.95 * organ.sum()
