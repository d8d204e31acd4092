"""Thresholds in Hounsfield units and their per-study suggestion."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..labels import TISSUE_HU


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

#: Calibration of :func:`suggest_thresholds` on the shared real CT (portal-venous Siemens
#: series: liver 93 HU; non-contrast 3 mm abdomen: liver 46, spleen 35 HU; GE non-contrast
#: liver 45 HU) by the robot-user benchmark: the best organ threshold lay near the 45th
#: percentile of the smoothed soft tissue (-20..250 HU) inside the body, and never above
#: 40 HU below a distinct organ peak of the upper half of that distribution (the
#: enhanced liver / spleen peak); enhanced vessels start about 55 HU above that peak.
ORGAN_PERCENTILE = 45.0
ORGAN_BELOW_PEAK = 40.0
#: when the most common soft tissue lies above the percentile (the field of view is
#: mostly one organ: the GE upper-abdomen slab of the shared data, liver 45 HU, where
#: the percentile fell on the liver's median), the organ threshold also stays this many
#: noise SDs below that mode, so the noise does not punch holes into the organ.
ORGAN_NOISE_SDS = 3.0
#: when the organ threshold sits on the flank of a soft-tissue peak (the smoothed
#: histogram there is at least ``VALLEY_RATIO`` times its nearest local minimum within
#: ``VALLEY_SEARCH_HU`` below), it cuts through a tissue class: it moves down to that
#: valley, and on to the next while that one is again on the flank of a major peak
#: (at least ``VALLEY_MAJOR`` of the histogram's maximum). Chosen on the native-phase phantom (spleen 47 HU under a 46 HU threshold:
#: ratio 2.4, spleen Dice 0.77 -> 0.92); the real cases sit at ratios <= 1.5 or have no
#: valley there, so they keep their threshold.
VALLEY_RATIO = 2.0
VALLEY_SEARCH_HU = 20
VALLEY_MAJOR = 0.1
VESSEL_ABOVE_PEAK = 55.0
#: never an organ threshold inside fat (whose smoothed HU reaches -30): a chest CT's
#: histogram of lung, heart and muscle gave -30 HU, and fat and muscle joined the liver
ORGAN_FLOOR_HU = TISSUE_HU["fat"][1] + 30.0
#: soft tissue: what the noise and the suggestion are measured on (HU)
SOFT = TISSUE_HU["soft"]
BONE_ABOVE_VESSEL = 100.0


#: slices are read in chunks of about this many pixels (memory stays small on any study)
CHUNK_PIXELS = 4_000_000
#: HU bins of the soft-tissue histograms (0.25 HU: percentiles to a quarter HU)
BIN_HU = 0.25


def _in_plane_step(shape, max_pixels: int) -> int:
    """In-plane subsampling step from the slice size only (never from the slice count,
    so a study's suggestion does not depend on how many slices it has); odd, so that
    :func:`_mirror_start` exists."""
    per_slice = shape[-2] * shape[-1]
    step = max(1, int(np.ceil(np.sqrt(per_slice * 40 / max_pixels))))
    return step + 1 - step % 2


def _mirror_start(n: int, step: int) -> int:
    """First index of a sample ``start::step`` of ``n`` pixels that a flip maps onto
    itself (``n - 1 - 2 * start`` divisible by ``step``), so a prone or feet-first
    study samples the same pixels as its supine, head-first twin.

    >>> _mirror_start(512, 3), _mirror_start(511, 3)
    (2, 0)
    """
    return next(s for s in range(step) if (n - 1 - 2 * s) % step == 0)


def _soft_tissue_histograms(hu: np.ndarray, max_pixels: int):
    """Histograms over every slice of the 3 x 3-smoothed, subsampled HU (-20..250 HU,
    ``BIN_HU`` bins) and of the local variance in 5 x 5 windows over soft tissue
    (0.25 HU^2 bins), accumulated in chunks of slices."""
    hu = np.asarray(hu)
    if hu.ndim == 2:
        hu = hu[None]
    step = _in_plane_step(hu.shape, max_pixels)
    r0, c0 = _mirror_start(hu.shape[1], step), _mirror_start(hu.shape[2], step)
    edges = np.arange(SOFT[0], SOFT[1] + BIN_HU, BIN_HU)
    var_edges = np.arange(0.0, 4000.0, 0.25)
    hist = np.zeros(edges.size - 1, np.int64)
    var_hist = np.zeros(var_edges.size - 1, np.int64)
    chunk = max(1, CHUNK_PIXELS // (hu.shape[1] * hu.shape[2]))
    for z0 in range(0, hu.shape[0], chunk):
        sub = ndimage.uniform_filter(hu[z0:z0 + chunk, r0::step, c0::step].astype(np.float32),
                                     size=(1, 3, 3))
        hist += np.histogram(sub, edges)[0]
        mean = ndimage.uniform_filter(sub, (1, 5, 5))
        var = ndimage.uniform_filter(sub * sub, (1, 5, 5)) - mean * mean
        var_hist += np.histogram(var[(mean > SOFT[0]) & (mean < SOFT[1])], var_edges)[0]
    return hist, edges, var_hist, var_edges


def _percentile(hist: np.ndarray, edges: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of histogrammed values (bin centre)."""
    cum = np.cumsum(hist)
    i = int(np.searchsorted(cum, q / 100.0 * cum[-1]))
    return float((edges[i] + edges[i + 1]) / 2)


def noise_sd(image: np.ndarray, *, window: int = 5) -> float:
    """Noise SD of a (smoothed) image: the 25th percentile of the local SD in
    ``window`` x ``window`` windows over soft tissue (-20..250 HU).

    Flat parts of organs and muscle make the lower part of the local-SD distribution
    while edges make the upper part, so the low percentile measures the noise (and the
    organ's own texture) without a model of the anatomy. Works on a slice or a stack
    (windows per slice).
    """
    image = np.asarray(image, np.float32)
    size = (window, window) if image.ndim == 2 else (1, window, window)
    mean = ndimage.uniform_filter(image, size)
    var = ndimage.uniform_filter(image * image, size) - mean * mean
    sel = (mean > SOFT[0]) & (mean < SOFT[1])
    if not sel.any():
        raise ValueError("no soft tissue (-20..250 HU) to measure the noise on")
    return float(np.sqrt(max(np.percentile(var[sel], 25), 0.0)))


def valley_below(hist: np.ndarray, start: int, *, ratio: float = VALLEY_RATIO,
                 search: int = VALLEY_SEARCH_HU, major: float = VALLEY_MAJOR) -> int:
    """The bin below ``start`` where a threshold no longer cuts through a peak.

    While ``hist[start]`` is at least ``ratio`` times the nearest local minimum within
    ``search`` bins below and at least ``major`` times the histogram's maximum, the
    threshold lies on the flank of a major peak and moves to that minimum; so it ends
    below the lowest of adjacent organ peaks (not below minor ones), never more than
    ``search`` bins below where it started (further, the result depended on which
    pixels were sampled: the native phantom went to 38 or 20 HU with its orientation),
    and stays where it is when it already sits in (or near) a valley or no valley lies
    below.

    Parameters
    ----------
    hist : ndarray
        Smoothed histogram (1 HU bins).
    start : int
        Bin of the current threshold.
    """
    moved = True
    floor = major * float(hist.max())
    lowest = max(start - search, 1)       # never more than ``search`` below the start
    while moved and hist[start] >= floor:
        moved = False
        for i in range(start - 1, lowest - 1, -1):
            if hist[i] < hist[i + 1] and hist[i] <= hist[i - 1]:
                if hist[start] >= ratio * hist[i]:
                    start, moved = i, True
                break
    return start


def soft_tissue_levels(hu: np.ndarray, *, max_pixels: int = 2_000_000
                       ) -> tuple[float, float | None, float, float, np.ndarray]:
    """(45th percentile, upper organ peak or None, mode, noise SD, histogram) of smoothed
    soft tissue; the histogram (1 HU bins from -20 to 250 HU, Gaussian-smoothed by 3 HU)
    is the one the mode is taken from.

    Every slice counts (in-plane subsampled to about ``max_pixels / 40`` pixels a slice,
    lightly smoothed), so the same slices repeated give the same levels. The upper peak
    is the mode of the values above the percentile when it is a real peak (not the lower
    edge of that range); the noise SD is the square root of the 25th percentile of the
    local variance over soft tissue (as :func:`noise_sd`).
    """
    fine, edges, var_hist, var_edges = _soft_tissue_histograms(hu, max_pixels)
    if fine.sum() < 100:
        raise ValueError("too little soft tissue (-20..250 HU) in the image to suggest "
                         "thresholds; set them by hand with set_thresholds")
    low = _percentile(fine, edges, ORGAN_PERCENTILE)
    per_hu = int(round(1 / BIN_HU))
    hist = fine.reshape(-1, per_hu).sum(axis=1).astype(float)      # 1 HU bins, -20..250
    above = np.where(np.arange(hist.size) - 20 + 0.5 >= low, hist, 0.0)
    above = ndimage.gaussian_filter1d(above, 3)
    first = int(np.ceil(low + 20))
    top = int(np.argmax(above[first:])) + first
    peak = float(top - 20 + 0.5) if top - first > 10 else None
    hist = ndimage.gaussian_filter1d(hist, 3)
    mode = float(int(np.argmax(hist)) - 20 + 0.5)
    noise = float(np.sqrt(max(_percentile(var_hist, var_edges, 25), 0.0)))
    return low, peak, mode, noise, hist


def suggest_thresholds(hu: np.ndarray) -> Thresholds:
    """Thresholds for this study from its own soft-tissue intensity distribution.

    Parameters
    ----------
    hu : ndarray
        Volume (slices, rows, cols) or one slice, in HU.

    Returns
    -------
    Thresholds
        ``organ = min(p45, peak - 40)``, and at most ``mode - 3 noise SD`` when the
        soft-tissue mode lies above p45, then lowered to the histogram valley below when
        it sits on a peak's flank (:func:`valley_below`), never below ``ORGAN_FLOOR_HU``
        (0 HU: above fat); ``vessel = peak + 55`` (``peak = p45 + 20``
        without a distinct upper peak), ``bone = vessel + 100`` HU, with
        :func:`soft_tissue_levels`; this follows the contrast phase and the noise.
    """
    low, peak, mode, noise, hist = soft_tissue_levels(hu)
    organ = low if peak is None else min(low, peak - ORGAN_BELOW_PEAK)
    if mode >= low:
        organ = min(organ, mode - ORGAN_NOISE_SDS * noise)
    start = int(np.clip(round(organ) + 20, 0, hist.size - 1))
    organ = max(min(organ, valley_below(hist, start) - 20 + 0.5), ORGAN_FLOOR_HU)
    vessel = (low + 20 if peak is None else peak) + VESSEL_ABOVE_PEAK
    return Thresholds(bone=round(vessel + BONE_ABOVE_VESSEL), vessel=round(vessel),
                      organ=round(organ))
