"""Thresholds in Hounsfield units and their per-study suggestion."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage


class Thresholds(NamedTuple):
    """The three partition thresholds in HU (a pixel is kept when strictly above).

    bone : pixels above are bone and are removed with a small margin.
    vessel : pixels above are contrast-filled vessels and are removed.
    organ : pixels above (and not removed) are organ candidates.
    """

    bone: float
    vessel: float
    organ: float


#: Defaults calibrated on the portal-venous Siemens series of the shared data
#: (liver median 93 HU, spleen 80 HU, smoothed 5th percentile of both about 60 HU,
#: portal vein and aorta above 150 HU, vertebral bone above 250 HU). For other
#: contrast phases use :func:`suggest_thresholds`, which the Session does by default.
DEFAULT_THRESHOLDS = Thresholds(bone=250.0, vessel=150.0, organ=55.0)

#: Offsets from the soft-tissue mode (HU), calibrated as follows: the mode of the
#: smoothed soft tissue inside the body is the liver / spleen / muscle peak (95 HU in
#: the portal-venous Siemens series, 45 HU in the non-contrast 3 mm abdomen). Organ
#: pixels lie within about 40 HU below it after smoothing; enhanced vessels start about
#: 55 HU above it (portal vein 150-200 HU vs liver 95 HU); bone is well above both.
ORGAN_BELOW_MODE = 40.0
VESSEL_ABOVE_MODE = 55.0
BONE_ABOVE_VESSEL = 100.0


def soft_tissue_mode(hu: np.ndarray, *, max_pixels: int = 2_000_000) -> float:
    """Most frequent HU of soft tissue (-20..250 HU) inside the body.

    The body is every pixel above -300 HU; the volume is subsampled to at most
    ``max_pixels`` pixels and lightly smoothed per slice so noise does not move the peak.
    """
    hu = np.asarray(hu)
    if hu.ndim == 2:
        hu = hu[None]
    step = max(1, int(np.ceil(np.sqrt(hu.size / max_pixels))))
    sub = hu[:, ::step, ::step].astype(np.float32)
    sub = ndimage.uniform_filter(sub, size=(1, 3, 3))
    values = sub[(sub > -20) & (sub < 250)]
    if values.size < 100:
        raise ValueError("too little soft tissue (-20..250 HU) in the image to suggest "
                         "thresholds; set them by hand with set_thresholds")
    hist, edges = np.histogram(values, bins=270, range=(-20, 250))
    hist = ndimage.gaussian_filter1d(hist.astype(float), 3)
    return float(edges[np.argmax(hist)] + 0.5)


def suggest_thresholds(hu: np.ndarray) -> Thresholds:
    """Thresholds for this study from its own soft-tissue intensity distribution.

    Parameters
    ----------
    hu : ndarray
        Volume (slices, rows, cols) or one slice, in HU.

    Returns
    -------
    Thresholds
        ``organ = mode - 40``, ``vessel = mode + 55``, ``bone = vessel + 100`` (HU), with
        the mode of :func:`soft_tissue_mode`; this follows the contrast phase.
    """
    mode = soft_tissue_mode(hu)
    vessel = mode + VESSEL_ABOVE_MODE
    return Thresholds(bone=round(vessel + BONE_ABOVE_VESSEL), vessel=round(vessel),
                      organ=round(mode - ORGAN_BELOW_MODE))
