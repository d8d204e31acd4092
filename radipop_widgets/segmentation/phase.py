"""Contrast phase of a study, estimated from its aorta (pure functions).

The aorta is found without a model of the anatomy or of the orientation: on sampled
slices it is the brightest homogeneous disk of blood size (about 14 mm across,
``AORTA_MM``) that is brighter than its ring of surroundings (retroperitoneal fat and
tissue) and is not bone. In a native study that may be a muscle instead, of about the
same HU: the phase is the same. Its HU grades the phase the way radiologists read it from the aorta:
native below 100 HU, delayed 100-150, portal venous 150-250, arterial above 250.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

AORTA_MM = 7.0            # radius of the inner disk
RING_MM = (12.0, 16.0)    # ring of surroundings
MAX_INNER_SD = 30.0       # blood is homogeneous (smoothed HU)
MIN_CONTRAST_HU = 40.0    # and brighter than its surroundings,
MAX_PEAK_ABOVE_HU = 150.0  # with nothing much brighter near it (cortical bone of a vertebra)
PHASES = (("native", -np.inf), ("delayed", 100.0), ("portal venous", 150.0),
          ("arterial", 250.0))


class Phase(NamedTuple):
    """The estimated phase, the aorta's HU it comes from, and how many slices agreed."""

    name: str
    aorta_hu: float
    slices: int

    def text(self) -> str:
        return f"{self.name} (aorta {self.aorta_hu:.0f} HU on {self.slices} slices)"


def _disk(radius_px: float, inner: float = 0.0) -> np.ndarray:
    r = int(np.ceil(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    d2 = yy * yy + xx * xx
    return (d2 <= radius_px * radius_px) & (d2 >= inner * inner)


def aorta_candidate(hu_slice: np.ndarray, pixel_mm: float) -> tuple[float, float] | None:
    """(HU of the aorta, its contrast to the surroundings) on one slice, or None."""
    step = max(1, int(round(2.0 / pixel_mm)))            # work on ~2 mm pixels
    img = ndimage.uniform_filter(np.asarray(hu_slice, np.float32), step)[::step, ::step]
    px = pixel_mm * step
    inner, ring = _disk(AORTA_MM / px), _disk(RING_MM[1] / px, RING_MM[0] / px)
    mean = ndimage.convolve(img, inner / inner.sum(), mode="nearest")
    sq = ndimage.convolve(img * img, inner / inner.sum(), mode="nearest")
    sd = np.sqrt(np.maximum(sq - mean * mean, 0))
    around = ndimage.convolve(img, ring / ring.sum(), mode="nearest")
    peak = ndimage.maximum_filter(img, footprint=inner)
    blood = ((mean > -20) & (mean < 600) & (sd < MAX_INNER_SD)
             & (peak < mean + MAX_PEAK_ABOVE_HU) & (mean - around >= MIN_CONTRAST_HU))
    if not blood.any():
        return None
    i = int(np.argmax(np.where(blood, mean, -np.inf)))
    return float(mean.flat[i]), float(mean.flat[i] - around.flat[i])


def estimate_phase(hu: np.ndarray, pixel_mm: float, n_slices: int = 12) -> Phase | None:
    """The contrast phase from the aorta on up to ``n_slices`` slices of the middle 80 %.

    Returns None when no slice shows a disk of blood (no aorta in the field of view).

    >>> hu = np.full((3, 128, 128), -100, np.int16)          # fat
    >>> yy, xx = np.mgrid[:128, :128]
    >>> hu[:, (yy - 64) ** 2 + (xx - 64) ** 2 < 100] = 320   # a 20 mm bright aorta
    >>> estimate_phase(hu, pixel_mm=1.0).name
    'arterial'
    """
    n = hu.shape[0]
    zs = np.unique(np.linspace(0.1 * (n - 1), 0.9 * (n - 1), min(n_slices, n)).round())
    found = [c for c in (aorta_candidate(hu[int(z)], pixel_mm) for z in zs) if c]
    if not found:
        return None
    aorta = float(np.median([hu_ for hu_, _ in found]))
    name = [p for p, low in PHASES if aorta >= low][-1]
    return Phase(name, aorta, len(found))
