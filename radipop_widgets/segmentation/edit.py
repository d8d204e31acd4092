"""Rasterise user strokes and cut lines (pure functions, (row, col) pixels)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: at most this many polyline vertices are accepted from the browser
MAX_POINTS = 10_000


def clean_points(points, shape) -> np.ndarray:
    """Validated (n, 2) float array of (row, col) vertices.

    Non-finite vertices are dropped; coordinates are clipped to a margin of one image
    size around the image so a hostile value cannot make the line allocate much memory.

    Raises
    ------
    ValueError
        If ``points`` is not a sequence of (row, col) pairs or has too many vertices.
    """
    try:
        pts = np.asarray(points, dtype=float)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError("points must be a sequence of (row, col) pairs of numbers") from exc
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2) as (row, col) pairs, got {pts.shape}")
    if len(pts) > MAX_POINTS:
        raise ValueError(f"a line may have at most {MAX_POINTS} points, got {len(pts)}; "
                         "simplify the stroke")
    pts = pts[np.isfinite(pts).all(axis=1)]
    span = float(max(shape))
    return np.clip(pts, -span, 2 * span)


def line_pixels(points, shape) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a 4-connected polyline through ``points``, limited to the image.

    Consecutive pixels share an edge, so the line separates the image for both 4- and
    8-connectivity (no diagonal leak through a thin diagonal line).
    """
    pts = clean_points(points, shape)
    if len(pts) == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    if len(pts) == 1:
        pts = np.vstack([pts, pts])
    rows, cols = [], []
    for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:]):
        n = int(np.ceil(2 * (abs(r1 - r0) + abs(c1 - c0)))) + 2
        t = np.linspace(0.0, 1.0, n)
        rows.append(np.rint(r0 + t * (r1 - r0)).astype(np.intp))
        cols.append(np.rint(c0 + t * (c1 - c0)).astype(np.intp))
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    keep = np.ones(r.size, bool)
    keep[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    r, c = r[keep], c[keep]
    # a diagonal step gets the corner pixel between its ends: 4-connected line
    diag = np.nonzero((r[1:] != r[:-1]) & (c[1:] != c[:-1]))[0]
    if diag.size:
        r = np.insert(r, diag + 1, r[diag])
        c = np.insert(c, diag + 1, c[diag + 1])
    inside = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    return r[inside], c[inside]


def line_mask(points, shape) -> np.ndarray:
    """Boolean mask of :func:`line_pixels`."""
    mask = np.zeros(shape, bool)
    mask[line_pixels(points, shape)] = True
    return mask


def stroke_mask(points, shape, width_px: float) -> np.ndarray:
    """Pixels within ``width_px / 2`` of the polyline (a round brush)."""
    r, c = line_pixels(points, shape)
    mask = np.zeros(shape, bool)
    if r.size == 0:
        return mask
    radius = max(float(width_px) / 2.0, 0.5)
    pad = int(np.ceil(radius)) + 1
    r0, r1 = max(r.min() - pad, 0), min(r.max() + pad + 1, shape[0])
    c0, c1 = max(c.min() - pad, 0), min(c.max() + pad + 1, shape[1])
    box = np.ones((r1 - r0, c1 - c0), bool)
    box[r - r0, c - c0] = False
    mask[r0:r1, c0:c1] = ndimage.distance_transform_edt(box) <= radius
    return mask
