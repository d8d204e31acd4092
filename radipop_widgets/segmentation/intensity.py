"""An organ's intensity range learned from the image around a click (pure functions).

One global histogram cannot know that the spleen of an arterial-phase study is 100 HU
brighter than its liver, or brighter than the study's "vessel" threshold. The tissue
the user clicks on can: its robust level and spread, measured on the connected tissue
of similar intensity near the click, give the organ's own range, and the candidate
regions of that organ are found with it (:func:`band_thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..labels import TISSUE_HU
from .thresholds import Thresholds


class IntensityRange(NamedTuple):
    """An organ's smoothed HU range: pixels in ``(low, high]`` are that organ's tissue.

    ``centre`` and ``spread`` (robust SD) are what clicks learned it from, ``clicks`` how
    many (0 when it was set by hand: then ``centre`` is the middle and ``spread`` 0).
    """

    low: float
    high: float
    centre: float = 0.0
    spread: float = 0.0
    clicks: int = 0

    @property
    def by_hand(self) -> bool:
        return self.clicks == 0

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of ``values`` inside the range."""
        return (values > self.low) & (values <= self.high)

    def merged(self, other: "IntensityRange") -> "IntensityRange":
        """The mean of this learned range and another click's (a hand-set range stays).

        >>> IntensityRange(40, 140, 90, 10, 1).merged(IntensityRange(60, 160, 110, 12, 1))
        IntensityRange(low=50.0, high=150.0, centre=100.0, spread=11.0, clicks=2)
        """
        if self.by_hand:
            return self
        n, m = self.clicks, other.clicks
        mean = [(a * n + b * m) / (n + m) for a, b in zip(self[:4], other[:4])]
        return IntensityRange(*mean, clicks=n + m)


@dataclass(frozen=True)
class RangeParams:
    """Rules of :func:`learn_range` (HU and mm).

    probe_mm : the click's level is the median of this disk around it.
    reach_mm : the tissue is sampled within this distance of the click.
    seed_tol_hu : first flood from the click keeps pixels within this many HU of its
        level (at least ``seed_tol_sds`` robust SDs of the probe disk).
    below_sds, below_min_hu, below_max_hu : ``low = centre - clip(below_sds * spread,
        below_min_hu, below_max_hu)``.
    above_sds, above_min_hu : ``high = centre + max(above_sds * spread, above_min_hu)``.
    floor_hu : ``low`` never lies inside fat (the fat table's upper end plus a margin).
    min_tissue_mm2, around_mm : a click whose tissue is smaller than this (a vessel or a
        lesion in the organ) learns the tissue in the ring ``around_mm`` around it instead.
    keep_below_hu, keep_above_sds : when the study's organ threshold lies in
        ``low - keep_below_hu .. centre - keep_above_sds * spread`` it is kept (see
        :func:`band_thresholds`).
    region_sds, region_min_hu : a region whose mean differs from a learned range's centre
        by more than ``max(region_sds * spread, region_min_hu)`` is other tissue (see
        :func:`consistent_regions`).
    """

    probe_mm: float = 2.5
    reach_mm: float = 30.0
    seed_tol_hu: float = 25.0
    seed_tol_sds: float = 3.0
    below_sds: float = 2.5
    below_min_hu: float = 25.0
    below_max_hu: float = 70.0
    above_sds: float = 4.0
    above_min_hu: float = 45.0
    floor_hu: float = TISSUE_HU["fat"][1] + 30.0
    min_tissue_mm2: float = 100.0
    around_mm: tuple[float, float] = (4.0, 12.0)
    keep_below_hu: float = 30.0
    keep_above_sds: float = 1.0
    region_sds: float = 3.0
    region_min_hu: float = 20.0


DEFAULT_RANGE = RangeParams()


def _robust(values: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based SD."""
    centre = float(np.median(values))
    return centre, float(1.4826 * np.median(np.abs(values - centre)))


def learn_range(smooth: np.ndarray, row: int, col: int, *, pixel_mm: float,
                params: RangeParams = DEFAULT_RANGE) -> IntensityRange:
    """The intensity range of the tissue under ``(row, col)`` of a smoothed slice.

    The level at the click is the median of a small disk; the tissue is the part of the
    slice near the click (``reach_mm``) that is connected to it through pixels of about
    that level; its median and robust SD set the range (see :class:`RangeParams`).

    Parameters
    ----------
    smooth : ndarray (rows, cols)
        Smoothed HU (e.g. :func:`~radipop_widgets.segmentation.partition.smooth_slice`).
    row, col : int
        The click.
    pixel_mm : float
        In-plane pixel size.

    Examples
    --------
    >>> img = np.full((80, 80), -100.0); img[20:60, 20:60] = 175.0
    >>> r = learn_range(img, 40, 40, pixel_mm=1.0)
    >>> r.low < 175 < r.high, r.low > -100
    (True, True)
    """
    reach = int(np.ceil(params.reach_mm / pixel_mm))
    r0, c0 = max(row - reach, 0), max(col - reach, 0)
    window = np.asarray(smooth[r0:row + reach + 1, c0:col + reach + 1], np.float32)
    r, c = row - r0, col - c0
    yy, xx = np.ogrid[:window.shape[0], :window.shape[1]]
    dist2 = (yy - r) ** 2 + (xx - c) ** 2
    probe = dist2 <= max(params.probe_mm / pixel_mm, 1.0) ** 2
    level, spread = _robust(window[probe])
    near = dist2 <= reach * reach
    tissue = probe
    for _ in range(2):
        tol = max(params.seed_tol_hu, params.seed_tol_sds * spread)
        similar = near & (np.abs(window - level) <= tol)
        similar[r, c] = True
        comps, _ = ndimage.label(similar)
        connected = comps == comps[r, c]
        if np.count_nonzero(connected) >= np.count_nonzero(probe):
            tissue = connected
        level, spread = _robust(window[tissue])
    if np.count_nonzero(tissue) * pixel_mm ** 2 < params.min_tissue_mm2:
        level, spread = _around(window, dist2, level, spread, pixel_mm, params)
    below = float(np.clip(params.below_sds * spread, params.below_min_hu, params.below_max_hu))
    above = max(params.above_sds * spread, params.above_min_hu)
    low = max(level - below, params.floor_hu)
    return IntensityRange(low, max(level + above, low + 1.0), level, spread, 1)


def _around(window, dist2, level, spread, pixel_mm, params):
    """(level, spread) of the tissue around a click that fell on something small (a vessel
    or a lesion inside the organ, less than ``min_tissue_mm2``): the largest piece of the
    non-fat tissue in the ring ``around_mm`` around it, at the ring's median level; the
    click's own level when the ring is mostly fat (the tip of an organ)."""
    inner, outer = (params.around_mm[0] / pixel_mm) ** 2, (params.around_mm[1] / pixel_mm) ** 2
    ring = (dist2 >= inner) & (dist2 <= outer) & (window > params.floor_hu)
    if np.count_nonzero(ring) < 0.5 * np.count_nonzero((dist2 >= inner) & (dist2 <= outer)):
        return level, spread
    ring_level, ring_spread = _robust(window[ring])
    tol = max(params.seed_tol_hu, params.seed_tol_sds * ring_spread)
    similar = (dist2 <= outer) & (np.abs(window - ring_level) <= tol)
    comps, n = ndimage.label(similar)
    if n == 0:
        return level, spread
    sizes = np.bincount(comps.ravel())
    sizes[0] = 0
    return _robust(window[comps == int(np.argmax(sizes))])


def band_thresholds(base: Thresholds, band: IntensityRange,
                    params: RangeParams = DEFAULT_RANGE) -> Thresholds:
    """Partition thresholds that find the organ of ``band`` on a slice at ``base``.

    A hand-set range is used as it is. A learned one corrects the study's thresholds
    only where they contradict the clicked tissue: the organ threshold is kept unless it
    lies more than ``keep_below_hu`` below the range (fat or muscle would join) or less
    than ``keep_above_sds`` spreads below its centre (it cuts through the organ); the
    vessel threshold is kept unless it lies less than ``above_min_hu`` above the centre
    (the organ would be removed as vessel). Bone stays at least 50 HU above the vessel.

    >>> band_thresholds(Thresholds(227, 127, -30), IntensityRange(105, 285, 175, 25, 1))
    Thresholds(bone=335.0, vessel=285.0, organ=105.0)
    >>> band_thresholds(Thresholds(255, 155, 60), IntensityRange(65, 135, 95, 10, 1))
    Thresholds(bone=255.0, vessel=155.0, organ=60.0)
    """
    organ, vessel = float(band.low), float(band.high)
    if not band.by_hand:
        if band.low - params.keep_below_hu <= base.organ <= band.centre - (
                params.keep_above_sds * band.spread):
            organ = float(base.organ)
        if base.vessel >= band.centre + params.above_min_hu:
            vessel = float(base.vessel)
    return Thresholds(bone=float(max(base.bone, vessel + 50.0)), vessel=vessel, organ=organ)


def consistent_regions(regions: np.ndarray, hu_slice: np.ndarray, band: IntensityRange,
                       params: RangeParams = DEFAULT_RANGE) -> np.ndarray:
    """``regions`` without the regions whose mean HU is not the organ's.

    Every pixel of a region lies in the band, but a bowel loop or the duodenum next to
    the liver's tip can lie in it too while its mean sits at the band's edge: with a
    learned range, a region whose mean is more than ``max(region_sds * spread,
    region_min_hu)`` from the range's centre is another tissue (extend does not take it).
    A hand-set range keeps every region.

    >>> reg = np.array([[1, 1, 2, 2]]); hu = np.array([[110, 112, 150, 152]])
    >>> consistent_regions(reg, hu, IntensityRange(86, 156, 111, 6, 1)).tolist()
    [[1, 1, 0, 0]]
    """
    if band.by_hand or regions.max() == 0:
        return regions
    n = int(regions.max()) + 1
    size = np.bincount(regions.ravel(), minlength=n)
    mean = np.bincount(regions.ravel(), np.asarray(hu_slice, np.float64).ravel(), n) / \
        np.maximum(size, 1)
    tol = max(params.region_sds * band.spread, params.region_min_hu)
    keep = np.abs(mean - band.centre) <= tol
    keep[0] = False
    return np.where(keep[regions], regions, 0)
