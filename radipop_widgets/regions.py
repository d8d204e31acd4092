"""The owner of what produces a slice's candidate regions.

:class:`CandidateRegions` holds the per-slice thresholds, the cuts and their rasterised
barriers, the organs' learned intensity ranges, the noise estimate and the locked
region cache. The Session keeps labels, selection, edits and history and asks this
object for regions; undo steps carry the (old, new) values this object applies.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from .errors import SessionError
from .segmentation.edit import MAX_POINTS, line_mask
from .segmentation.intensity import (DEFAULT_RANGE, IntensityRange, RangeParams, band_thresholds,
                                     consistent_regions)
from .segmentation.grow import GROW_REACH_MM
from .segmentation.partition import (DEFAULT_PARAMS, PartitionParams, partition, smooth_slice,
                                     smoothing_px)
from .segmentation.thresholds import Thresholds, noise_sd

#: candidate regions of this many (slice, thresholds) pairs are kept (least recently used out)
REGION_CACHE_ENTRIES = 96
#: a saved slice may hold at most this many cuts (each of at most ``MAX_POINTS`` vertices)
MAX_CUTS = 1000


class CandidateRegions:
    """Thresholds, cuts, organ ranges and cached candidate regions of one study.

    Parameters
    ----------
    hu : ndarray (slices, rows, cols)
        The study's HU.
    start : Thresholds
        Thresholds of every slice at the start (the study's suggestion, or what the
        Session was given): a slice whose thresholds differ from them was set by hand,
        and there the thresholds win over the organs' learned ranges.
    suggested : Thresholds
        The study's suggestion (saved with the state).
    pixel_mm : float
        In-plane pixel size (geometric mean of row and column spacing).
    params : PartitionParams
    range_params : RangeParams
        How learned organ ranges correct the thresholds.
    """

    def __init__(self, hu: np.ndarray, start: Thresholds, suggested: Thresholds, *,
                 pixel_mm: float, params: PartitionParams = DEFAULT_PARAMS,
                 range_params: RangeParams = DEFAULT_RANGE):
        self.hu = hu
        self.start = Thresholds(*(float(v) for v in start))
        self.suggested = Thresholds(*(float(v) for v in suggested))
        self.pixel_mm = pixel_mm
        self.params = params
        self.range_params = range_params
        self._thresholds = np.tile(np.asarray(start, float), (hu.shape[0], 1))
        self._cuts: dict[int, list[np.ndarray]] = {}
        self._barriers: dict[int, np.ndarray] = {}
        self._ranges: dict[int, IntensityRange] = {}
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the dashboard browses while a worker extends
        self._noise_sd: float | None = None

    # ------------------------------------------------------------ thresholds
    def thresholds(self, z: int) -> Thresholds:
        """(bone, vessel, organ) of slice ``z``."""
        return Thresholds(*self._thresholds[z].tolist())

    def set_thresholds(self, rows: dict) -> None:
        """Set slice -> Thresholds (what an undo step carries)."""
        for z, t in rows.items():
            self._thresholds[z] = t
        self.invalidate(rows)

    def set_by_hand(self, z: int) -> bool:
        """Whether slice ``z`` has thresholds other than the starting ones."""
        return self.thresholds(z) != self.start

    # ----------------------------------------------------------- organ ranges
    @property
    def ranges(self) -> dict[int, IntensityRange]:
        """label -> learned (or hand-set) intensity range (a copy)."""
        return dict(self._ranges)

    def set_range(self, label: int, band: IntensityRange | None) -> None:
        """Set (None: forget) the intensity range of ``label``."""
        if band is None:
            self._ranges.pop(label, None)
        else:
            self._ranges[label] = IntensityRange(*(float(v) for v in band[:4]), int(band[4]))

    def organ_thresholds(self, z: int, label: int | None) -> Thresholds:
        """Thresholds that find ``label`` on slice ``z``: corrected by its range on
        slices at the starting thresholds, the slice's own thresholds otherwise."""
        base = self.thresholds(z)
        band = self._ranges.get(label) if label is not None else None
        if band is None or self.set_by_hand(z):
            return base
        return band_thresholds(base, band, self.range_params)

    # ----------------------------------------------------------------- cuts
    def cuts(self, z: int) -> list[np.ndarray]:
        return list(self._cuts.get(z, []))

    def set_cuts(self, z: int, lines: list, added: np.ndarray | None = None) -> None:
        """Replace the cuts of slice ``z``; ``added`` (the mask of one new line) updates
        the cached barrier instead of redrawing every line."""
        cached = self._barriers.pop(z, None)
        self._cuts[z] = list(lines)
        if added is not None and cached is not None:
            self._barriers[z] = cached | added
        self.invalidate([z])

    def barrier(self, z: int) -> np.ndarray | None:
        """The cut lines of slice ``z`` as one mask (cached; None without cuts)."""
        if not self._cuts.get(z):
            return None
        barrier = self._barriers.get(z)
        if barrier is None:
            barrier = np.zeros(self.hu.shape[1:], bool)
            for line in self._cuts[z]:
                barrier |= line_mask(line, barrier.shape)
            self._barriers[z] = barrier
        return barrier

    # --------------------------------------------------------------- regions
    def regions(self, z: int, thresholds: Thresholds | None = None) -> np.ndarray:
        """Candidate regions of slice ``z`` (int32, read-only) at ``thresholds``
        (default the slice's own), cached."""
        t = self.thresholds(z) if thresholds is None else Thresholds(*thresholds)
        return self._cached((z, tuple(t)), lambda: partition(
            self.hu[z], t, pixel_mm=self.pixel_mm, barrier=self.barrier(z),
            noise_sd=self.noise_sd, params=self.params))

    def organ_regions(self, z: int, label: int | None) -> np.ndarray:
        """:meth:`regions` at :meth:`organ_thresholds` of ``label``, without regions whose
        mean is not the organ's (:func:`consistent_regions`) on slices not set by hand."""
        t = self.organ_thresholds(z, label)
        band = self._ranges.get(label)
        if band is None or self.set_by_hand(z):
            return self.regions(z, t)
        return self._cached((z, tuple(t), tuple(band)), lambda: consistent_regions(
            self.regions(z, t), self.hu[z], band, self.range_params))

    def _cached(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The LRU cache (its first key element is the slice), locked: the dashboard
        browses while a worker extends."""
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        regions = compute()
        regions.setflags(write=False)
        with self._lock:
            self._cache[key] = regions
            while len(self._cache) > REGION_CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return regions

    def invalidate(self, slices) -> None:
        """Forget the cached regions of ``slices``."""
        slices = set(slices)
        with self._lock:
            for key in [k for k in self._cache if k[0] in slices]:
                del self._cache[key]

    def compute(self, slices, progress: Callable[[int, int], None] | None = None) -> None:
        """Warm the cache for ``slices``, with progress."""
        slices = list(slices)
        for i, z in enumerate(slices):
            self.regions(z)
            if progress is not None:
                progress(i + 1, len(slices))

    def smoothed(self, z: int, near: tuple[int, int] | None = None) -> np.ndarray:
        """The smoothed slice ``z`` as the partition sees it; with ``near`` (row, col) only
        within ``GROW_REACH_MM`` of that point (what a click reads: 0.1 ms instead of 4 ms
        a click on 512 x 512), NaN elsewhere."""
        hu = self.hu[z]
        if near is None:
            return smooth_slice(hu, pixel_mm=self.pixel_mm, noise_sd=self.noise_sd,
                                params=self.params)
        # the filter reaches 2.5 sigma: a margin of that keeps the box equal to the slice's
        margin = int(np.ceil(2.5 * smoothing_px(self.pixel_mm, self.noise_sd, self.params))) + 1
        reach = int(np.ceil(GROW_REACH_MM / self.pixel_mm))
        (r, c), (rows, cols) = near, hu.shape
        r0, r1 = max(r - reach - margin, 0), min(r + reach + margin + 1, rows)
        c0, c1 = max(c - reach - margin, 0), min(c + reach + margin + 1, cols)
        out = np.full(hu.shape, np.nan, np.float32)
        box = smooth_slice(hu[r0:r1, c0:c1], pixel_mm=self.pixel_mm, noise_sd=self.noise_sd,
                           params=self.params)
        inner = (slice(max(r - reach, 0) - r0, min(r + reach + 1, rows) - r0),
                 slice(max(c - reach, 0) - c0, min(c + reach + 1, cols) - c0))
        out[r0:r1, c0:c1][inner] = box[inner]
        return out

    @property
    def noise_sd(self) -> float:
        """Noise SD of one pixel in HU (:func:`noise_sd` of up to 8 slices, computed once)."""
        if self._noise_sd is None:
            zs = np.unique(np.linspace(0, self.hu.shape[0] - 1, min(8, self.hu.shape[0])).round())
            try:
                self._noise_sd = noise_sd(self.hu[zs.astype(int)])
            except ValueError:          # no soft tissue: no partial-volume rim
                self._noise_sd = math.inf
        return self._noise_sd

    # ----------------------------------------------------------------- state
    def state(self) -> dict:
        """JSON-able part of the saved session."""
        return {
            "thresholds": self._thresholds.tolist(),
            "suggested_thresholds": list(self.suggested),
            "start_thresholds": list(self.start),
            "cuts": {str(z): [c.tolist() for c in lines] for z, lines in self._cuts.items()
                     if lines},
            "organ_ranges": {str(k): list(v) for k, v in self._ranges.items()},
        }

    def restore(self, state: dict) -> None:
        """Take the thresholds, cuts and ranges of a saved state (older sessions have no
        ranges); raises SessionError when it is damaged."""
        n = self.hu.shape[0]
        try:
            thr = np.asarray(state.get("thresholds"), float)
            if thr.shape == self._thresholds.shape and np.isfinite(thr).all():
                self._thresholds = thr
            cuts = {int(z): [np.asarray(c, float).reshape(-1, 2) for c in lines]
                    for z, lines in (state.get("cuts") or {}).items()}
            start = Thresholds(*(float(v) for v in state.get("start_thresholds")
                                 or state.get("suggested_thresholds") or self.start))
            ranges = {int(k): IntensityRange(*(float(x) for x in v[:4]), int(v[4]))
                      for k, v in (state.get("organ_ranges") or {}).items()}
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            raise SessionError(f"the saved session state is damaged ({exc})") from None
        if any(len(lines) > MAX_CUTS or any(len(c) > MAX_POINTS for c in lines)
               for lines in cuts.values()):
            raise SessionError(f"the saved session state is damaged (a slice has more than "
                               f"{MAX_CUTS} cuts or a cut more than {MAX_POINTS} points)")
        if any(not (math.isfinite(r.low) and math.isfinite(r.high) and r.low < r.high)
               for r in ranges.values()):
            raise SessionError("the saved session state is damaged (an organ range is not "
                               "two finite HU values, low < high)")
        self._cuts = {z: v for z, v in cuts.items() if 0 <= z < n}
        self._ranges = ranges
        self.start = start
        self._barriers.clear()
        with self._lock:
            self._cache.clear()
