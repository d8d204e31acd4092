"""The linear sizes of an organ in a label volume: craniocaudal length and axial diameters.

Geometry (as :class:`~radipop_widgets.study.Study`): axes (slice, row, column), spacing in
mm; slices lie along the slice normal, which for the axial CT this tool edits is the
craniocaudal axis. Every size is measured on the labelled voxels as boxes (a voxel of a
slice covers the whole slice spacing, a pixel its row x column rectangle), so a one-voxel
organ is one slice spacing long and its diameter is the pixel's diagonal; sizes are
therefore exact for boxes and, for smooth shapes, within about one voxel of the sampled
shape's true size (the width perpendicular to the longest diameter within about two
pixels: that diameter ends on pixel corners, so its direction tilts a little).

- **Craniocaudal length** (:func:`craniocaudal`): the slices spanned, first to last
  labelled slice inclusive, times the slice spacing. Slices inside that range without the
  organ (a missed slice, a gap) still count towards the length (the organ reaches across
  them); they are listed separately, so that a gap is reported, not hidden.
- **Axial diameters** (:func:`axial_diameters`): on every slice, the maximal Feret
  (caliper) diameter of the organ's pixels in mm, i.e. the largest distance between two
  points of the union of its pixel rectangles (found exactly: the farthest pair of the
  convex hull's vertices). The largest of these over all slices is ``diameter_max_mm``
  and its slice ``diameter_slice`` (the lowest slice index when several slices tie);
  ``diameter_perp_mm`` is the caliper width of that same slice perpendicular to that
  diameter (the organ's extent, on that slice, along the in-plane direction at right
  angles to the longest one). Disconnected pieces of one label on a slice are measured
  together, as one shape.
- **Thickness** (:func:`thickness`): on the slice of the largest diameter, the diameter
  of the largest circle inside the organ (twice the largest in-plane distance from a
  pixel centre to the organ's edge, within one pixel). It is what a radiologist measures
  by hand between the inner and outer border of a curved organ where it is thickest (the
  spleen at its hilum): for an ellipse it equals the width across, for a crescent it is
  much smaller than the width across, which spans the crescent's hollow.

Speed: an upper bound of every slice's Feret diameter comes from its caliper widths in
:data:`DIRECTIONS` directions (vectorised over all slices); slices are visited in the order
of that bound and the search stops when no remaining slice can beat the best exact
diameter found, so a hull is computed for a few slices only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError


def craniocaudal(slices: np.ndarray, slice_mm: float) -> tuple[float, list[int]]:
    """Length in mm of the slices spanned, and the slices of that span without the organ.

    Parameters
    ----------
    slices : ascending slice indices that hold the organ (at least one)
    slice_mm : the slice spacing

    Examples
    --------
    Slices 4, 5 and 7 of 2.5 mm: 4 slices spanned (4..7), slice 6 missing.

    >>> craniocaudal(np.array([4, 5, 7]), 2.5)
    (10.0, [6])
    """
    slices = np.asarray(slices)
    first, last = int(slices[0]), int(slices[-1])
    missing = np.setdiff1d(np.arange(first, last + 1), slices)
    return (last - first + 1) * float(slice_mm), [int(z) for z in missing]


def _row_extents(mask: np.ndarray):
    """Per (slice, row): whether the row holds the organ, its first and last column."""
    present = mask.any(axis=2)
    left = np.argmax(mask, axis=2)
    right = mask.shape[2] - 1 - np.argmax(mask[:, :, ::-1], axis=2)
    return present, left, right


_TIE = 1e-6   # mm: diameters this close are equal (the lowest slice of equal ones is chosen)

#: Directions of the caliper widths that bound each slice's Feret diameter: the diameter's
#: direction is within 90 / DIRECTIONS degrees of one, so the largest width is at least
#: cos(90 / DIRECTIONS degrees) (99.5 %) of the diameter.
DIRECTIONS = 16


def _feret_upper_bounds(present, left, right, row_mm, col_mm) -> np.ndarray:
    """Per slice an upper bound of the Feret diameter: the largest caliper width over
    :data:`DIRECTIONS` directions in [0, 180) degrees, over cos(90 / DIRECTIONS degrees)."""
    rows = np.arange(present.shape[1], dtype=np.float64)
    y0, y1 = rows * row_mm, (rows + 1) * row_mm                    # (rows,)
    x0, x1 = left * col_mm, (right + 1) * col_mm                   # (slices, rows)
    widest = np.zeros(present.shape[0])
    for angle in np.arange(DIRECTIONS) * np.pi / DIRECTIONS:
        c, s = np.cos(angle), np.sin(angle)
        ys_hi, ys_lo = np.maximum(y0 * c, y1 * c), np.minimum(y0 * c, y1 * c)
        xs_hi, xs_lo = np.maximum(x0 * s, x1 * s), np.minimum(x0 * s, x1 * s)
        high = np.where(present, ys_hi + xs_hi, -np.inf).max(axis=1)
        low = np.where(present, ys_lo + xs_lo, np.inf).min(axis=1)
        widest = np.maximum(widest, high - low)
    return widest / np.cos(np.pi / (2 * DIRECTIONS)) * (1 + 1e-9)


def _corners(rows: np.ndarray, left: np.ndarray, right: np.ndarray, row_mm, col_mm):
    """The (y, x) mm corners of each row's leftmost and rightmost pixel: the convex hull of
    the slice's pixel rectangles has its vertices among them."""
    y = np.concatenate([rows, rows + 1, rows, rows + 1]) * row_mm
    x = np.concatenate([left, left, right + 1, right + 1]) * col_mm
    return np.column_stack([y, x]).astype(np.float64)


def feret(points: np.ndarray) -> tuple[float, float]:
    """Maximal Feret diameter of a 2-D point set and its width perpendicular to it.

    Parameters
    ----------
    points : (n, 2) array of coordinates in mm

    Returns
    -------
    (diameter, perpendicular width), in the points' unit.

    Examples
    --------
    A 3 x 4 rectangle: the diagonal (5) and, across it, 2 x 12 / 5 = 4.8.

    >>> corners = np.array([[0, 0], [3, 0], [0, 4], [3, 4]], float)
    >>> [round(v, 6) for v in feret(corners)]
    [5.0, 4.8]
    """
    points = np.asarray(points, np.float64)
    try:
        hull = points[ConvexHull(points).vertices]
    except QhullError:          # all points on one line: the hull is the points themselves
        hull = points
    gaps = hull[:, None, :] - hull[None, :, :]
    distance = np.einsum("ijk,ijk->ij", gaps, gaps)
    i, j = np.unravel_index(np.argmax(distance), distance.shape)
    diameter = float(np.sqrt(distance[i, j]))
    if diameter == 0:
        return 0.0, 0.0
    across = np.array([-gaps[i, j, 1], gaps[i, j, 0]]) / diameter
    projected = hull @ across
    return diameter, float(projected.max() - projected.min())


def axial_diameters(mask: np.ndarray, first_slice: int, row_mm: float, col_mm: float):
    """The largest axial Feret diameter of ``mask``, its perpendicular width and its slice.

    Parameters
    ----------
    mask : bool ndarray (slices, rows, columns), the organ on consecutive slices
    first_slice : the study slice index of ``mask[0]`` (added to the slice returned)
    row_mm, col_mm : pixel spacing along the rows (row step) and the columns (column step)

    Returns
    -------
    (diameter_max_mm, diameter_perp_mm, slice index); (0.0, 0.0, None) for an empty mask.

    Examples
    --------
    A 3 x 4 pixel block of 1 x 1 mm on slice 7 and a 2 x 2 block on slice 8:

    >>> mask = np.zeros((2, 6, 6), bool)
    >>> mask[0, 1:4, 1:5] = True
    >>> mask[1, :2, :2] = True
    >>> d, w, z = axial_diameters(mask, 7, 1.0, 1.0)
    >>> round(d, 6), round(w, 6), z
    (5.0, 4.8, 7)
    """
    rows_used, cols_used = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(
        mask.any(axis=(0, 1)))
    if rows_used.size == 0:
        return 0.0, 0.0, None
    # the organ's rows and columns only (the sizes do not depend on where it lies)
    mask = mask[:, rows_used[0]:rows_used[-1] + 1, cols_used[0]:cols_used[-1] + 1]
    present, left, right = _row_extents(mask)
    on_slice = present.any(axis=1)
    bound = np.where(on_slice, _feret_upper_bounds(present, left, right, row_mm, col_mm), -1.0)
    best = (-1.0, 0.0, None)
    for z in np.argsort(-bound, kind="stable"):
        if bound[z] < best[0] - _TIE:
            break
        rows = np.flatnonzero(present[z])
        d, w = feret(_corners(rows, left[z, rows], right[z, rows], row_mm, col_mm))
        z = int(z) + int(first_slice)
        if d > best[0] + _TIE or (d >= best[0] - _TIE and z < best[2]):
            best = (d, w, z)
    return best


def thickness(mask2d: np.ndarray, row_mm: float, col_mm: float) -> float:
    """Diameter in mm of the largest circle inside the organ's pixels of one slice.

    Twice the largest distance from a pixel centre of the organ to the nearest pixel
    centre outside it, less one pixel (the edge lies half a pixel before that centre on
    each side): exact for bands an odd number of pixels wide, one pixel short for even
    ones; 0.0 for an empty mask.

    Examples
    --------
    A band 5 pixels (5 x 0.8 = 4 mm) thick and 20 pixels long:

    >>> band = np.zeros((9, 30), bool)
    >>> band[2:7, 5:25] = True
    >>> round(thickness(band, 0.8, 0.8), 6)
    4.0
    """
    rows, cols = np.flatnonzero(mask2d.any(axis=1)), np.flatnonzero(mask2d.any(axis=0))
    if rows.size == 0:
        return 0.0
    crop = np.pad(mask2d[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 1)
    inside = ndimage.distance_transform_edt(crop, sampling=(row_mm, col_mm)).max()
    return float(max(2 * inside - min(row_mm, col_mm), min(row_mm, col_mm)))
