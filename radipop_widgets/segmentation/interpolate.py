"""Fill between key slices: shape-based interpolation of a label (pure functions).

The label of slices between two labelled key slices is the zero level of the linear
blend of the two slices' signed distance maps (shape-based interpolation, Raya and
Udupa 1990; what 3D Slicer's "Fill between slices" and ITK-SNAP's interpolation do in
spirit). Shapes are aligned on their centroids first, so an organ that moves between
the key slices is carried along instead of fading out where the two do not overlap.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def signed_distance(mask: np.ndarray, spacing=(1.0, 1.0)) -> np.ndarray:
    """Distance to the outline in mm, negative inside ``mask``."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    return (outside - inside).astype(np.float32)


def _shift(image: np.ndarray, offset, fill: float) -> np.ndarray:
    return ndimage.shift(image, offset, order=1, mode="constant", cval=fill)


def interpolate_masks(first: np.ndarray, last: np.ndarray, n_between: int,
                      spacing=(1.0, 1.0)) -> list[np.ndarray]:
    """The ``n_between`` masks between ``first`` and ``last`` (exclusive).

    Parameters
    ----------
    first, last : bool ndarray (rows, cols)
        The label on the two key slices; both must be non-empty.
    n_between : int
        Slices strictly between them.
    spacing : (row, col) mm

    Examples
    --------
    Two concentric disks of radius 10 and 20 give disks of radius 12.5, 15 and 17.5:

    >>> yy, xx = np.mgrid[:64, :64]
    >>> disk = lambda r: (yy - 32) ** 2 + (xx - 32) ** 2 <= r * r
    >>> mid = interpolate_masks(disk(10), disk(20), 3)
    >>> [int(np.round(np.sqrt(m.sum() / np.pi))) for m in mid]
    [12, 15, 18]
    """
    first, last = np.asarray(first, bool), np.asarray(last, bool)
    if not (first.any() and last.any()):
        raise ValueError("both key slices need the label to interpolate between them")
    c0 = np.array(ndimage.center_of_mass(first))
    c1 = np.array(ndimage.center_of_mass(last))
    centre = (c0 + c1) / 2
    # distance maps of both shapes moved onto their common centre
    d0 = signed_distance(_shift(first.astype(np.float32), centre - c0, 0.0) >= 0.5, spacing)
    d1 = signed_distance(_shift(last.astype(np.float32), centre - c1, 0.0) >= 0.5, spacing)
    out = []
    for i in range(1, n_between + 1):
        t = i / (n_between + 1)
        blend = (1 - t) * d0 + t * d1
        offset = (1 - t) * c0 + t * c1 - centre
        out.append(_shift(blend, offset, float(blend.max())) <= 0)
    return out


def fill_gaps(present: np.ndarray, max_gap: int | None = None) -> list[tuple[int, int]]:
    """Pairs of consecutive labelled slices ``(a, b)`` with unlabelled slices between.

    >>> fill_gaps(np.array([0, 1, 0, 0, 1, 1, 0, 1], bool))
    [(1, 4), (5, 7)]
    """
    zs = np.flatnonzero(present)
    return [(int(a), int(b)) for a, b in zip(zs[:-1], zs[1:])
            if b - a > 1 and (max_gap is None or b - a - 1 <= max_gap)]
