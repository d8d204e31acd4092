"""Carrying a label between slices: overlap, merged regions, stopping rules."""

import numpy as np

from radipop_widgets.segmentation.propagate import carry, extend_label


def box(shape, r0, r1, c0, c1):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


def test_carry_takes_overlapping_region_only():
    shape = (40, 40)
    source = box(shape, 5, 25, 5, 25)
    regions = np.zeros(shape, np.int32)
    regions[6:26, 6:26] = 1          # the organ, shifted one pixel
    regions[30:38, 30:38] = 2        # something else
    mask, status, _ = carry(source, regions, np.ones(shape, bool), pixel_mm=1.0)
    assert status == "labelled"
    assert (mask == (regions == 1)).all()


def test_carry_clips_a_merged_neighbour():
    shape = (60, 60)
    source = box(shape, 10, 30, 10, 30)
    regions = np.zeros(shape, np.int32)
    regions[10:30, 10:30] = 1
    regions[10:30, 30:58] = 1        # organ merged with a large neighbour
    mask, status, reason = carry(source, regions, np.ones(shape, bool), pixel_mm=1.0)
    assert status == "labelled" and "clipped" in reason
    assert mask[20, 15] and not mask[20, 50]


def test_carry_respects_other_labels():
    shape = (20, 20)
    source = box(shape, 2, 18, 2, 18)
    regions = source.astype(np.int32)
    free = ~box(shape, 2, 18, 2, 6)
    mask, status, _ = carry(source, regions, free, pixel_mm=1.0)
    assert status == "labelled" and not (mask & ~free).any()


def test_extend_stops_where_the_organ_ends():
    shape = (8, 30, 30)
    organ = np.zeros(shape, bool)
    for z in range(2, 6):
        organ[z, 5:25, 5:25] = True
    labels = np.zeros(shape, np.uint8)
    labels[3][organ[3]] = 1
    out = []
    for z, mask, row in extend_label(lambda i: labels[i], lambda i: organ[i].astype(np.int32),
                                     3, 1, +1, None, 8, pixel_mm=1.0):
        out.append(row)
        if mask is not None:
            labels[z][mask] = 1
    assert [r.slice for r in out if r.status == "labelled"] == [4, 5]
    assert out[-1].slice == 6 and out[-1].status == "ended"


def test_extend_stops_at_a_leak():
    shape = (4, 80, 80)
    regions = np.zeros(shape, np.int32)
    regions[0, 30:50, 30:50] = 1
    regions[1, 5:75, 5:75] = 1      # the candidate suddenly covers half the body
    labels = np.zeros(shape, np.uint8)
    labels[0][regions[0] == 1] = 1
    rows = [row for _, _, row in extend_label(lambda i: labels[i], lambda i: regions[i], 0, 1,
                                              +1, None, 4, pixel_mm=1.0)]
    assert len(rows) == 1
    # clipped to 5 mm around the 20x20 label: 30x30 = 2.25x the area -> leak
    assert rows[0].status == "leak"


def test_carry_keeps_a_mostly_covered_region_near_the_previous_outline():
    # a region taken because most of it lies under the previous label still only
    # contributes its part within margin_mm: a thin tongue running away is cut off
    shape = (80, 80)
    source = box(shape, 10, 50, 10, 50)
    regions = np.zeros(shape, np.int32)
    regions[10:50, 10:50] = 1
    regions[28:32, 50:78] = 1        # 4 px tongue reaching 28 px beyond the outline
    mask, status, reason = carry(source, regions, np.ones(shape, bool), pixel_mm=1.0)
    assert status == "labelled" and "clipped to 5 mm" in reason
    assert mask[30, 54] and not mask[30, 56] and mask[10:50, 10:50].all()


def test_extend_completes_a_labelled_slice_with_a_lobe_it_lacks():
    # key slice 4 holds both lobes; slices 0-2 were labelled from a lower key slice with
    # the right lobe only. Extending down one slice goes on into the labelled slices
    # within the same count, adding the left lobe, but never a speck (< 5 % of the label)
    shape = (5, 40, 60)
    regions = np.zeros(shape, np.int32)
    regions[:, 5:35, 5:30] = 1          # right lobe
    regions[:, 10:30, 35:55] = 2        # left lobe, separate on every slice
    regions[:, 36:38, 5:7] = 3          # a speck under the key label
    labels = np.zeros(shape, np.uint8)
    labels[4][regions[4] > 0] = 1
    labels[:3][regions[:3] == 1] = 1
    out = []
    for z, mask, row in extend_label(lambda i: labels[i], lambda i: regions[i], 4, 1, -1, 2, 5,
                                     pixel_mm=1.0):
        out.append(row)
        if mask is not None:
            labels[z][mask] = 1
    assert [r.slice for r in out if r.status == "labelled"] == [3, 2, 1]
    assert (labels[1:4][regions[1:4] == 2] == 1).all()
    assert (labels[0][regions[0] == 2] == 0).all(), "completion stays within the count"
    assert (labels[1:3][regions[1:3] == 3] == 0).all(), "no specks added"


def test_carry_drops_a_detached_piece_mostly_outside_the_previous_label():
    from radipop_widgets.segmentation.propagate import ExtendParams
    shape = (60, 60)
    source = box(shape, 5, 35, 5, 25) | box(shape, 45, 52, 45, 52)
    regions = np.zeros(shape, np.int32)
    regions[5:35, 5:20] = 1          # the organ
    regions[5:35, 22:40] = 2         # a neighbour under 15 % of the label, 2 px apart
    regions[45:52, 45:52] = 3        # a lobe that was already a piece of its own
    free = np.ones(shape, bool)
    mask, status, _ = carry(source, regions, free, pixel_mm=1.0)
    assert status == "labelled"
    assert mask[20, 10] and mask[48, 48], "the organ and the continuing piece stay"
    assert not mask[5:35, 22:40].any(), "the detached neighbour is dropped"
    off, _, _ = carry(source, regions, free, pixel_mm=1.0, params=ExtendParams(piece_overlap=0))
    assert off[5:35, 22:30].all(), "the scene needs the rule"
