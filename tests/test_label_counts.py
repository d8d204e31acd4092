"""The per-slice label counts behind the header's volumes: equal to counting the volume."""

import numpy as np

from radipop_widgets.history import label_patch
from radipop_widgets.label_counts import LabelCounts


def full_counts(labels):
    return np.stack([np.bincount(s.ravel(), minlength=256) for s in labels])


def test_counts_equal_a_full_count_with_empty_and_labelled_slices_and_after_edits():
    rng = np.random.default_rng(3)
    labels = np.zeros((6, 20, 30), np.uint8)
    labels[1] = rng.integers(0, 3, (20, 30))
    labels[4, 5:9, 2:20] = 2
    labels[5, 0, 0] = 255
    counts = LabelCounts(labels)
    assert np.array_equal(counts.counts, full_counts(labels))
    new = labels[3].copy()
    new[2:6, 2:6] = 1
    patch = label_patch(3, labels[3], new)
    labels[3] = new
    counts.update([patch], undo=False)
    assert np.array_equal(counts.counts, full_counts(labels))
    assert counts.slices_with(1).tolist() == [1, 3]
