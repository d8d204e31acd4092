"""Partial-volume rim on tiny synthetic slices: pixels that are mostly organ join."""

import numpy as np
import pytest

from radipop_widgets.segmentation.rim import RimParams, partial_volume_rim

ANY_OUTSIDE = RimParams(outside_hu=(-np.inf, np.inf))


def covered_disk(shape, center, radius, sub=8):
    """Fraction of each pixel inside a disk (supersampled)."""
    off = (np.arange(sub) + 0.5) / sub - 0.5
    yy = np.arange(shape[0])[:, None, None, None] + off[None, None, :, None]
    xx = np.arange(shape[1])[None, :, None, None] + off[None, None, None, :]
    inside = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2
    return inside.mean(axis=(2, 3))


def scene(organ_hu=100.0, out_hu=-100.0):
    frac = covered_disk((40, 40), (20.3, 19.6), 10.4)
    hu = out_hu + frac * (organ_hu - out_hu)
    labels = (frac > 0.999).astype(np.uint8)          # the fully covered pixels
    return hu, labels, frac


def test_rim_adds_the_pixels_that_are_mostly_organ():
    hu, labels, frac = scene()
    rim = partial_volume_rim(hu, labels, 1, noise_sd=5.0)
    ring = (frac > 0) & (labels == 0)
    assert ring.sum() > 40
    assert rim[ring & (frac > 0.55)].all()
    assert not rim[frac < 0.45].any()
    assert not rim[labels == 1].any()


def test_no_rim_without_contrast_to_the_outside():
    # muscle around the organ, 10 HU darker: less than 4 noise SDs, fraction unknown
    hu, labels, frac = scene(organ_hu=60.0, out_hu=50.0)
    assert not partial_volume_rim(hu, labels, 1, noise_sd=5.0, params=ANY_OUTSIDE).any()
    # the same contrast with little noise is enough
    assert partial_volume_rim(hu, labels, 1, noise_sd=1.0, params=ANY_OUTSIDE).any()


def test_rim_only_against_fat():
    # an enhancing organ in soft tissue (muscle, bowel) or against lung: no rim; in fat: rim
    for out_hu, expected in ((40.0, False), (-800.0, False), (-100.0, True)):
        hu, labels, frac = scene(organ_hu=150.0, out_hu=out_hu)
        assert partial_volume_rim(hu, labels, 1, noise_sd=5.0).any() == expected, out_hu
        assert partial_volume_rim(hu, labels, 1, noise_sd=5.0, params=ANY_OUTSIDE).any()


def test_rim_never_takes_other_labels_or_forbidden_pixels():
    hu, labels, frac = scene()
    labels[:20][(frac[:20] > 0) & (labels[:20] == 0)] = 2      # another organ above
    free = np.ones(labels.shape, bool)
    free[:, :18] = False                                      # a cut on the left
    rim = partial_volume_rim(hu, labels, 1, noise_sd=5.0, free=free)
    assert rim.any()
    assert not rim[labels != 0].any() and not rim[~free].any()


def test_rim_only_next_to_the_added_part():
    hu, labels, frac = scene()
    near = labels.astype(bool).copy()
    near[:, :20] = False
    rim = partial_volume_rim(hu, labels, 1, noise_sd=5.0, near=near)
    assert rim.any() and not rim[:, :18].any()
    assert not partial_volume_rim(hu, labels, 3, noise_sd=5.0).any()


@pytest.mark.parametrize("radius", [0, 0.5, 1, 1.5, 2, 2.5, 3.5, 4.2])
def test_the_rim_distances_are_the_euclidean_distance_transform(radius):
    from scipy import ndimage

    from radipop_widgets.segmentation.rim import _within

    rng = np.random.default_rng(int(radius * 10))
    for _ in range(20):
        mask = ndimage.binary_opening(rng.random((40, 50)) < 0.35) | (rng.random((40, 50)) < 0.01)
        distance = ndimage.distance_transform_edt(~mask)
        assert np.array_equal(_within(mask, radius), distance <= radius)
        assert np.array_equal(_within(mask, radius, strict=True), distance < radius)
