"""Plausibility checks: results to look at again before they reach the statistics.

Each check returns :class:`Flag` (``code``, ``organ``, ``reason`` in words). A flag asks
for a second look; it is not an error and never stops an export.

- ``fov_cut``: the organ lies on the first or last slice, so the field of view cuts it and
  its volume is a lower bound.
- ``area_jump``: the organ's area changes from one slice to the next by more than a
  quarter of its largest slice area per 5 mm of slice thickness or less
  (:func:`radipop_widgets.measure.area_steps`, :func:`step_allowed`), one
  slice differs from the mean of its neighbours by more than :data:`AREA_SPIKE` of it
  (:func:`~radipop_widgets.measure.area_spikes`), or a slice inside the organ misses it:
  a leak into a neighbour or a missed slice.
- ``pieces``: the organ is in several disconnected pieces (26-connected, pieces of at
  least :data:`MIN_PIECE_ML`).
- ``volume_range``: outside the review ranges of :data:`VOLUME_RANGE_ML`.
- ``massive_splenomegaly``: spleen above 431 mL (Linguraru et al., Acad Radiol 2013;20:
  675-684: splenomegaly above 314.5 mL, massive splenomegaly above 430.8 mL).
- ``volume_cohort``: outside the cohort's median +/- 3 MAD (the MAD scaled by 1.4826 so
  that it estimates a standard deviation) of the done studies, once there are
  :data:`COHORT_MINIMUM` of them.
- ``splenic_index``: the spleen volume differs by more than :data:`SPLENIC_TOLERANCE` from
  Prassopoulos' estimate from its splenic index, 30 + 0.58 x index mL (Eur Radiol 1997;7:
  246-248): the labels or the index's diameters are off.
- ``hu_phase``: the organ's mean HU lies outside :data:`PHASE_HU` for the estimated
  contrast phase (wrong tissue labelled, a fatty or iron-loaded liver, or a wrong phase).

The ranges are review bounds, wider than the normal values they come from. Liver: normal
adult volume about 1,000-2,000 mL by CT volumetry (Heymsfield et al., Ann Intern Med
1979;90:185-187); flagged below 700 or above 2,800 mL (a cirrhotic liver can be small, a
congested or infiltrated one large). Spleen: flagged below 30 mL (asplenia, a partial
label). HU: unenhanced liver about 55-65 HU, below 40 HU suggesting steatosis (Kodama et
al., AJR 2007;188:1307-1312), unenhanced spleen about 45 HU; the enhanced ranges are
the working bounds of this tool (portal venous liver and spleen 80-170 HU) and wide.

Examples
--------
>>> [f.code for f in volume_flags({"liver": 1500.0, "spleen": 520.0})]
['massive_splenomegaly']
>>> robust_bounds([10, 11, 12, 13, 14, 15, 16, 17, 18, 100]) is not None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..labels import LIVER, SPLEEN
from ..measure import area_spikes, area_steps

#: Review ranges of the organ volumes (mL).
VOLUME_RANGE_ML = {"liver": (700.0, 2800.0), "spleen": (30.0, None)}
MASSIVE_SPLEEN_ML = 431.0
#: Mean HU of the organ per estimated contrast phase (names of segmentation.phase).
PHASE_HU = {
    "native": {"liver": (40.0, 75.0), "spleen": (30.0, 65.0)},
    "arterial": {"liver": (50.0, 120.0), "spleen": (70.0, 220.0)},
    "portal venous": {"liver": (80.0, 170.0), "spleen": (80.0, 170.0)},
    "delayed": {"liver": (60.0, 140.0), "spleen": (60.0, 140.0)},
}
MIN_PIECE_ML = 1.0
#: The step from one slice to the next, per :data:`AREA_STEP_MM` of slice thickness or
#: less: the organ's own shape reaches 0.23 at 5 mm, 0.31 at 7.5 mm and 0.38 at 10 mm on
#: the suite's cases (``benchmarks/bench_flags.py --thick``), so thicker slices allow
#: proportionally more.
AREA_STEP = 0.25
AREA_STEP_MM = 5.0
#: One slice against the mean of its neighbours. Chosen by the worst case of the robustness
#: suite (``benchmarks/variants.py``: 128 studies, every phase, noise, 5 mm slices, zoom,
#: orientation, padding, field of view): the reference labels reach 0.082 (a spleen), so
#: 0.12 keeps a margin of 1.5; there, one-slice leaks of 15 % of the largest slice are all
#: flagged, against 0-1 % by the step rule alone.
AREA_SPIKE = 0.12
SPLENIC_TOLERANCE = 0.4
COHORT_MINIMUM = 10
MAD_SCALE = 1.4826
ORGANS = {"liver": LIVER, "spleen": SPLEEN}


@dataclass(frozen=True)
class Flag:
    """A result to look at again: ``code`` (see the module), ``organ``, ``reason``."""

    code: str
    organ: str
    reason: str

    def text(self) -> str:
        return f"{self.organ}: {self.reason}"


def field_of_view_flags(measurements: dict, n_slices: int) -> list[Flag]:
    """Organs on the first or last slice of the study."""
    flags = []
    for organ in ORGANS:
        m = measurements.get(organ)
        if not m:
            continue
        first, last = m["slices"]
        ends = [name for name, hit in (("first", first == 0), ("last", last == n_slices - 1))
                if hit]
        if ends:
            flags.append(Flag("fov_cut", organ, f"on the {' and '.join(ends)} slice: cut by "
                              "the field of view, the volume is a lower bound"))
    return flags


def step_allowed(slice_mm: float | None) -> float:
    """The largest step between slices that is no jump, for slices ``slice_mm`` apart."""
    return AREA_STEP * max(1.0, (slice_mm or 0.0) / AREA_STEP_MM)


def area_flags(measurements: dict, slice_mm: float | None = None) -> list[Flag]:
    """Per-slice area jumps and slices missed inside the organ (``slice_mm``: the slice
    spacing; unknown, the step allowed is that of thin slices)."""
    flags = []
    allowed = step_allowed(slice_mm)
    for organ in ORGANS:
        m = measurements.get(organ)
        if not m:
            continue
        steps = area_steps(m, allowed)
        spikes = area_spikes(m, AREA_SPIKE)
        missing = list(m.get("missing_slices") or [])
        if missing:
            flags.append(Flag("area_jump", organ, f"slice(s) {_slices(missing)} inside the "
                              "organ are not labelled (a missed slice)"))
        elif steps:
            flags.append(Flag("area_jump", organ, f"the area jumps by more than "
                              f"{allowed:.0%} of its largest slice at slice(s) "
                              f"{_slices(steps)} (a leak or a missed piece)"))
        elif spikes:
            flags.append(Flag("area_jump", organ, f"the area at slice(s) {_slices(spikes)} "
                              f"differs from its neighbours' mean by more than "
                              f"{AREA_SPIKE:.0%} of its largest slice (a leak or a missed "
                              "piece on that slice)"))
    return flags


def piece_flags(labels: np.ndarray, spacing) -> list[Flag]:
    """Organs in several disconnected pieces of at least :data:`MIN_PIECE_ML`."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    flags = []
    for organ, value in ORGANS.items():
        mask = labels == value
        box = ndimage.find_objects(mask.astype(np.uint8))
        if not box or box[0] is None:
            continue
        pieces, n = ndimage.label(mask[box[0]], structure=np.ones((3, 3, 3), bool))
        if n < 2:
            continue
        sizes = np.bincount(pieces.ravel())[1:] * voxel_ml
        big = np.sort(sizes[sizes >= MIN_PIECE_ML])[::-1]
        if len(big) >= 2:
            others = ", ".join(f"{v:.1f}" for v in big[1:6])
            flags.append(Flag("pieces", organ, f"{len(big)} disconnected pieces (largest "
                              f"{big[0]:.0f} mL, others {others} mL)"))
    return flags


def volume_flags(volumes_ml: dict) -> list[Flag]:
    """Volumes outside the review ranges; massive splenomegaly."""
    flags = []
    for organ, (low, high) in VOLUME_RANGE_ML.items():
        ml = volumes_ml.get(organ)
        if not ml:
            continue  # not labelled: nothing to judge
        if low is not None and ml < low or high is not None and ml > high:
            bounds = f"{low:.0f}-{high:.0f} mL" if high else f"at least {low:.0f} mL"
            flags.append(Flag("volume_range", organ, f"{ml:.0f} mL is outside the "
                              f"physiological review range ({bounds})"))
    spleen = volumes_ml.get("spleen") or 0.0
    if spleen > MASSIVE_SPLEEN_ML:
        flags.append(Flag("massive_splenomegaly", "spleen", f"{spleen:.0f} mL: massive "
                          f"splenomegaly (> {MASSIVE_SPLEEN_ML:.0f} mL); a second look, not "
                          "an error"))
    return flags


def splenic_index_flags(measurements: dict) -> list[Flag]:
    """The spleen's volume against 30 + 0.58 x its splenic index."""
    m = measurements.get("spleen")
    index = m.get("splenic_index_cm3") if m else None
    if not index:
        return []
    expected = 30.0 + 0.58 * index
    off = (m["volume_ml"] - expected) / expected
    if abs(off) <= SPLENIC_TOLERANCE:
        return []
    return [Flag("splenic_index", "spleen", f"{m['volume_ml']:.0f} mL, but its splenic index "
                 f"{index:.0f} cm^3 gives {expected:.0f} mL (30 + 0.58 x index): {off:+.0%}")]


def hu_flags(measurements: dict, phase: str | None) -> list[Flag]:
    """Mean HU outside the organ's range for the estimated contrast phase."""
    ranges = PHASE_HU.get(phase or "")
    if ranges is None:
        return []
    flags = []
    for organ, (low, high) in ranges.items():
        m = measurements.get(organ)
        mean = m.get("mean_hu") if m else None
        if mean is not None and not low <= mean <= high:
            flags.append(Flag("hu_phase", organ, f"mean {mean:.0f} HU, outside {low:.0f}-"
                              f"{high:.0f} HU of the {phase} phase"))
    return flags


def study_flags(labels: np.ndarray, measurements: dict, spacing, phase: str | None) -> list[Flag]:
    """Every check on one study's labels and their measurements (not the cohort's)."""
    volumes = {organ: m["volume_ml"] for organ, m in measurements.items() if organ in ORGANS}
    return (field_of_view_flags(measurements, labels.shape[0])
            + area_flags(measurements, float(spacing[0]))
            + piece_flags(labels, spacing) + volume_flags(volumes)
            + splenic_index_flags(measurements) + hu_flags(measurements, phase))


def robust_bounds(values) -> tuple[float, float] | None:
    """(median - 3 MAD, median + 3 MAD), the MAD scaled by 1.4826; None for fewer than
    :data:`COHORT_MINIMUM` values."""
    values = np.asarray([v for v in values if v], float)
    if len(values) < COHORT_MINIMUM:
        return None
    median = float(np.median(values))
    mad = MAD_SCALE * float(np.median(np.abs(values - median)))
    return median - 3 * mad, median + 3 * mad


def cohort_flags(volumes: dict) -> dict:
    """``{study: {organ: mL}}`` of the done studies -> ``{study: [Flag]}`` for volumes
    outside the cohort's robust bounds (empty below :data:`COHORT_MINIMUM` studies)."""
    out = {key: [] for key in volumes}
    for organ in ORGANS:
        bounds = robust_bounds(v.get(organ) for v in volumes.values())
        if bounds is None:
            continue
        low, high = bounds
        for key, v in volumes.items():
            ml = v.get(organ)
            if ml and not low <= ml <= high:
                out[key].append(Flag("volume_cohort", organ, f"{ml:.0f} mL is outside the "
                                     f"cohort's median +/- 3 MAD ({low:.0f}-{high:.0f} mL)"))
    return out


def _slices(zs) -> str:
    zs = list(zs)
    return ", ".join(map(str, zs[:6])) + (", ..." if len(zs) > 6 else "")
