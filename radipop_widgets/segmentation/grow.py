"""One-action corrections: grow a piece from a click, remove a piece with its rim
(pure functions on one slice)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .intensity import IntensityRange

#: a grown piece stays within this distance of the click when no candidate region holds it
GROW_REACH_MM = 40.0


def grow_from(smooth: np.ndarray, row: int, col: int, band: IntensityRange, *,
              allowed: np.ndarray, pixel_mm: float, reach_mm: float = GROW_REACH_MM
              ) -> np.ndarray:
    """Pixels connected to ``(row, col)`` through ``allowed`` pixels of ``band``, within
    ``reach_mm`` of the click (empty when the click itself is outside the band).

    >>> img = np.zeros((20, 20)); img[5:15, 5:15] = 100
    >>> int(grow_from(img, 10, 10, IntensityRange(50, 150), allowed=np.ones((20, 20), bool),
    ...               pixel_mm=1.0).sum())
    100
    """
    reach = int(np.ceil(reach_mm / pixel_mm))
    r0, c0 = max(row - reach, 0), max(col - reach, 0)
    box = (slice(r0, row + reach + 1), slice(c0, col + reach + 1))
    inside = band.contains(np.asarray(smooth[box])) & np.asarray(allowed[box], bool)
    yy, xx = np.ogrid[:inside.shape[0], :inside.shape[1]]
    inside &= (yy - (row - r0)) ** 2 + (xx - (col - c0)) ** 2 <= reach * reach
    out = np.zeros(smooth.shape, bool)
    if not inside[row - r0, col - c0]:
        return out
    comps, _ = ndimage.label(inside)
    out[box] = comps == comps[row - r0, col - c0]
    return out


def leftover_rim(labels_slice: np.ndarray, removed: np.ndarray, regions: np.ndarray,
                 ring_px: float = 1.5) -> np.ndarray:
    """Labelled pixels that were the partial-volume rim of ``removed`` and would stay
    behind: outside every candidate region, within ``ring_px`` of the removed pixels
    and not within ``ring_px`` of what is left of their label inside candidate regions.

    >>> lab = np.zeros((9, 9), np.uint8); lab[2:7, 2:7] = 1
    >>> reg = np.zeros((9, 9), np.int32); reg[3:6, 3:6] = 1
    >>> removed = reg == 1
    >>> int(leftover_rim(lab, removed, reg).sum())     # the 16 rim pixels around it
    16
    """
    removed = np.asarray(removed, bool)
    out = np.zeros(removed.shape, bool)
    if not removed.any():
        return out
    dist = ndimage.distance_transform_edt(~removed)
    ring = (dist > 0) & (dist <= ring_px) & (regions == 0)
    for label in np.unique(labels_slice[removed | ring]):
        if label == 0:
            continue
        kept = (labels_slice == label) & ~removed & (regions > 0)
        near_kept = ndimage.distance_transform_edt(~kept) <= ring_px if kept.any() else \
            np.zeros_like(kept)
        out |= ring & (labels_slice == label) & ~near_kept
    return out
