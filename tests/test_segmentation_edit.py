"""Cut lines never leak; strokes have their width."""

import numpy as np
import pytest
from scipy import ndimage

from radipop_widgets.segmentation.edit import line_mask, line_pixels, stroke_mask

EIGHT = np.ones((3, 3), bool)


@pytest.mark.parametrize("points", [
    [(0, 0), (49, 49)], [(49, 0), (0, 49)], [(0, 10), (49, 37)], [(-20, 3), (70, 41)],
    [(0, 25), (20, 5), (49, 40)],
])
def test_line_separates_for_8_connectivity(points):
    mask = line_mask(points, (50, 50))
    parts, n = ndimage.label(~mask, structure=EIGHT)
    assert n >= 2


def test_line_is_4_connected_and_clipped():
    r, c = line_pixels([(3, 3), (30, 17), (-100, 30)], (32, 32))
    assert r.min() >= 0 and r.max() < 32 and c.max() < 32
    mask = np.zeros((32, 32), bool)
    mask[r, c] = True
    _, n = ndimage.label(mask)     # 4-connectivity
    assert n == 1


def test_hostile_points():
    assert not line_mask([(np.nan, 1), (np.inf, 3)], (10, 10)).any()
    mask = line_mask([(-1e12, 5), (1e12, 5)], (10, 10))   # clipped, no huge allocation
    assert mask[:, 5].all() and mask.sum() == 10
    with pytest.raises(ValueError, match="row, col"):
        line_mask("not points", (10, 10))
    with pytest.raises(ValueError, match="row, col"):
        line_mask([(10**400, 1), (2, 2)], (10, 10))    # an int too large for a float


def test_stroke_width_in_pixels():
    mask = stroke_mask([(20, 5), (20, 35)], (40, 40), width_px=6)
    assert mask[17:24, 20].all() and not mask[15, 20] and not mask[25, 20]
    assert stroke_mask([(5, 5)], (10, 10), 1).sum() == 1
