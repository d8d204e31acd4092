"""Partial-volume rim: outline pixels that are mostly organ join the label (pure function)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..labels import TISSUE_HU


@dataclass(frozen=True)
class RimParams:
    """Rules of :func:`partial_volume_rim`; sizes in pixels (partial volume is a pixel
    effect: it matters at 3 mm, little at 0.8 mm).

    ring_px : candidate pixels lie within this distance of the label (its 8-neighbours).
    outside_px : (near, far) the local outside value is the mean of pixels not in the
        label at these distances from it, in a ``window`` x ``window`` neighbourhood.
    contrast_sds : the organ must differ from the local outside by this many noise SDs
        of a pixel, so the organ fraction of a pixel (error ``noise / contrast``) is
        known to about +-0.25.
    fraction : a pixel joins when more than this fraction of it is organ.
    outside_hu : (low, high) the rim is only where the local outside lies in this HU
        range: fat, the partial-volume case; next to other soft tissue (above ``high``)
        or lung and air (below ``low``) the fraction is not that of the organ.
    """

    ring_px: float = 1.5
    outside_px: tuple[float, float] = (2.0, 3.5)
    window: int = 7
    contrast_sds: float = 4.0
    fraction: float = 0.5
    outside_hu: tuple[float, float] = TISSUE_HU["fat_rim"]


DEFAULT_RIM = RimParams()


def partial_volume_rim(hu_slice: np.ndarray, labels_slice: np.ndarray, label: int, *,
                       noise_sd: float, near: np.ndarray | None = None,
                       free: np.ndarray | None = None,
                       params: RimParams = DEFAULT_RIM) -> np.ndarray:
    """Unlabelled pixels on the outline of ``label`` that are mostly organ.

    A pixel on an organ's border holds organ and whatever lies outside (fat, air,
    another tissue): its HU is the mix ``out + f (organ - out)``. With ``organ`` the
    median HU of the label and ``out`` the mean HU just outside the label nearby, a
    neighbour of the label joins when its organ fraction ``f`` exceeds
    ``params.fraction``, where the organ differs from that outside by at least
    ``params.contrast_sds`` noise SDs (no rim against tissue of the organ's HU, where
    the fraction is unknown), and only where that outside is fat
    (``params.outside_hu``).

    Parameters
    ----------
    hu_slice : ndarray (rows, cols)
        HU values.
    labels_slice : int ndarray (rows, cols)
        Labels of the slice; only unlabelled pixels (0) can join.
    label : int
        The organ.
    noise_sd : float
        Noise SD of one pixel in HU (e.g. ``thresholds.noise_sd`` of the raw slices).
    near : bool ndarray, optional
        Only pixels next to this part of the label (what an edit added) can join.
    free : bool ndarray, optional
        Pixels that may join (e.g. not on a cut line); default all.

    Returns
    -------
    bool ndarray
        The pixels to add to the label.
    """
    labels_slice = np.asarray(labels_slice)
    out = np.zeros(labels_slice.shape, bool)
    organ_mask = labels_slice == label
    seed = organ_mask if near is None else (np.asarray(near, bool) & organ_mask)
    if not seed.any():
        return out
    pad = int(np.ceil(params.outside_px[1])) + params.window // 2 + 1
    rows = np.flatnonzero(seed.any(axis=1))
    cols = np.flatnonzero(seed.any(axis=0))
    box = (slice(max(int(rows[0]) - pad, 0), int(rows[-1]) + pad + 1),
           slice(max(int(cols[0]) - pad, 0), int(cols[-1]) + pad + 1))
    lab = organ_mask[box]
    hu = np.asarray(hu_slice[box], np.float32)
    ring = _within(lab, params.ring_px) & ~lab & (labels_slice[box] == 0)
    if near is not None:
        ring &= ndimage.binary_dilation(seed[box], np.ones((3, 3), bool))
    if free is not None:
        ring &= np.asarray(free[box], bool)
    if not ring.any():
        return out
    organ = float(np.median(np.asarray(hu_slice)[organ_mask]))
    band = (_within(lab, params.outside_px[1])
            & ~_within(lab, params.outside_px[0], strict=True)).astype(np.float32)
    weight = ndimage.uniform_filter(band, params.window)
    total = ndimage.uniform_filter(hu * band, params.window)
    known = ring & (weight > 0.5 / params.window ** 2)
    outside = total[known] / weight[known]
    contrast = organ - outside
    frac = (hu[known] - outside) / np.where(contrast != 0, contrast, 1.0)
    take = (np.abs(contrast) >= params.contrast_sds * max(float(noise_sd), 1.0)) & \
        (frac > params.fraction) & (outside > params.outside_hu[0]) & \
        (outside < params.outside_hu[1])
    add = np.zeros(lab.shape, bool)
    add[known] = take
    out[box] = add
    return out


def _within(mask: np.ndarray, radius: float, strict: bool = False) -> np.ndarray:
    """Pixels at a Euclidean distance <= ``radius`` (< when ``strict``) of ``mask``: the
    distance transform's answer for small radii, by one dilation with a disk (3x faster
    than the transform of a liver-sized box, and this runs on every click)."""
    reach = int(np.floor(radius))
    offsets = np.arange(-reach, reach + 1)
    squared = offsets[:, None] ** 2 + offsets[None, :] ** 2
    disk = squared < radius ** 2 if strict else squared <= radius ** 2
    if not disk.any():
        return np.zeros_like(mask)
    return ndimage.binary_dilation(mask, disk) if disk.size > 1 else mask.copy()
