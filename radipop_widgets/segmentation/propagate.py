"""Carry a label from one slice to its neighbours through the candidate regions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage

from ..labels import label_name


@dataclass(frozen=True)
class ExtendParams:
    """Rules of :func:`carry`; sizes in mm.

    min_overlap, min_share : a candidate region joins the label when at least
        ``min_overlap`` of it lies under the label on the previous slice, or when it holds
        at least ``min_share`` of the previous label (the organ merged with a neighbour).
    margin_mm : how far the outline may move between two slices: the joining regions
        contribute only their part within this distance of the previous label (a shape
        prior; on the shared CT this lowered the spleen's excess volume, Siemens +3.4 ->
        +2.6 %, abdomen liver +9.9 -> +3.2 % at K = 3).
    max_growth : a slice whose label area grows more than this factor over the previous
        slice (after clipping) is a leak: stop.
    min_cover : the organ ended when the new label covers less than this fraction of the
        previous slice's label.
    min_area_mm2 : the organ ended when less than this area is left.
    max_jump_mm, max_jump_radius : the centroid moving more than ``max_jump_mm`` and
        more than ``max_jump_radius`` times the previous label's equivalent radius
        (``sqrt(area / pi)``) between slices is a jump: stop. The relative part lets a
        large organ gain a lobe (the liver's left lobe joining on a 3 mm study moves the
        centre by a third of its radius) while a small label still may not wander off.
    taper, regrow : once the label has shrunk below ``taper`` times its starting area,
        growing again by more than ``regrow`` times the smallest area seen (and more than
        ``min_area_mm2``) is another structure taking over: stop (leak).
    piece_overlap : a piece of the new label detached (8-connected) from its largest
        piece joins only when at least this fraction of it lies under the previous
        label (a lobe that continues; not the stomach wall or duodenum next to an ending
        lobe); 0 turns the rule off.
    """

    min_overlap: float = 0.5
    min_share: float = 0.05
    margin_mm: float = 5.0
    max_growth: float = 1.5
    min_cover: float = 0.2
    min_area_mm2: float = 20.0
    max_jump_mm: float = 25.0
    max_jump_radius: float = 0.5
    taper: float = 0.5
    regrow: float = 1.3
    piece_overlap: float = 0.7


DEFAULT_EXTEND = ExtendParams()


class ExtendStatus(str, enum.Enum):
    """What an extend did on a slice (a str, so it prints and compares as its value).

    >>> ExtendStatus.LEAK == "leak", str(ExtendStatus.ENDED)
    (True, 'ended')
    """

    LABELLED = "labelled"
    ENDED = "ended"
    LEAK = "leak"
    JUMP = "jump"
    ALREADY_LABELLED = "already labelled"
    END_OF_SERIES = "end of series"

    def __str__(self) -> str:
        return self.value


@dataclass
class ExtendRow:
    """What happened on one slice."""

    slice: int
    label: int
    pixels: int
    status: ExtendStatus
    reason: str


@dataclass
class ExtendReport:
    """Per-slice rows of an extend, in the order they were done."""

    rows: list[ExtendRow] = field(default_factory=list)

    @property
    def slices(self) -> tuple[int, ...]:
        """Slices whose labels changed."""
        return tuple(sorted({r.slice for r in self.rows if r.status == ExtendStatus.LABELLED}))

    def text(self) -> str:
        """One human line per slice."""
        if not self.rows:
            return "nothing to extend: the slice has no label"
        return "\n".join(f"slice {r.slice}: {label_name(r.label)} {r.status}"
                         f" ({r.pixels} px) - {r.reason}" for r in self.rows)


def _bbox(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return (slice(max(int(rows[0]) - pad, 0), int(rows[-1]) + pad + 1),
            slice(max(int(cols[0]) - pad, 0), int(cols[-1]) + pad + 1))


def carry(source: np.ndarray, regions: np.ndarray, free: np.ndarray, *, pixel_mm: float,
          params: ExtendParams = DEFAULT_EXTEND) -> tuple[np.ndarray, str, str]:
    """The label of the next slice from the label of this one.

    Parameters
    ----------
    source : bool ndarray
        The label on the previous slice.
    regions : int ndarray
        Candidate regions of the next slice.
    free : bool ndarray
        Pixels of the next slice the label may take (unlabelled or already this label).
    pixel_mm : float
        In-plane pixel size.

    Returns
    -------
    mask, status, reason
        ``status`` is ``LABELLED`` (``mask`` is the new label) or ``ENDED``, ``LEAK``,
        ``JUMP`` (``mask`` is empty and propagation stops), an :class:`ExtendStatus`.
    """
    mask = np.zeros(source.shape, bool)
    n_src = int(np.count_nonzero(source))
    if n_src == 0:
        return mask, ExtendStatus.ENDED, "no label on the previous slice"
    n = int(regions.max()) + 1
    size = np.bincount(regions.ravel(), minlength=n)
    overlap = np.bincount(regions[source], minlength=n)
    overlap[0] = 0
    joined = (overlap / np.maximum(size, 1) >= params.min_overlap) | (
        overlap >= params.min_share * n_src)
    joined[0] = False
    # the new label lies within the margin of the previous one: work in that box
    box = _bbox(source, int(np.ceil(params.margin_mm / pixel_mm)) + 1)
    found, status, reason = _carry_box(source[box], joined[regions[box]], free[box], n_src,
                                       pixel_mm=pixel_mm, params=params)
    mask[box] = found
    return mask, status, reason


def _carry_box(source, joined, free, n_src, *, pixel_mm, params):
    """:func:`carry` inside a box holding every pixel the label may take (``joined``:
    pixels of the regions that join the label)."""
    empty = np.zeros(source.shape, bool)
    margin_px = params.margin_mm / pixel_mm
    near = ndimage.distance_transform_edt(~source) <= margin_px if margin_px >= 0.5 else source
    taken = joined & free
    mask = _main_pieces(taken & near, source, params)
    area = int(np.count_nonzero(mask))
    clipped = area < np.count_nonzero(taken)
    px2 = pixel_mm * pixel_mm
    cover = int(np.count_nonzero(mask & source)) / n_src
    if area * px2 < params.min_area_mm2 or cover < params.min_cover:
        return empty, ExtendStatus.ENDED, (
            f"the organ ended: {cover:.0%} of the previous label has a matching region here "
            f"({area * px2:.0f} mm^2)")
    if area > params.max_growth * n_src:
        return empty, ExtendStatus.LEAK, (
            f"leak: the label would grow x{area / n_src:.1f} even within {params.margin_mm:g} mm "
            "of the previous outline")
    jump = np.hypot(*(np.mean(np.nonzero(mask), axis=1)
                      - np.mean(np.nonzero(source), axis=1))) * pixel_mm
    radius = np.sqrt(n_src * px2 / np.pi)
    if jump > max(params.max_jump_mm, params.max_jump_radius * radius):
        return empty, ExtendStatus.JUMP, (
            f"jump: the centre moved {jump:.0f} mm (the label's radius is {radius:.0f} mm)")
    reason = f"{cover:.0%} overlap, area x{area / n_src:.2f}"
    if clipped:
        reason += f", clipped to {params.margin_mm:g} mm around the previous outline"
    return mask, ExtendStatus.LABELLED, reason


def _main_pieces(mask, source, params):
    """``mask`` without its detached pieces: a piece apart from the largest one stays
    only when at least ``piece_overlap`` of it lies under the previous label."""
    if params.piece_overlap <= 0:
        return mask
    pieces, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n < 2:
        return mask
    size = np.bincount(pieces.ravel(), minlength=n + 1)
    under = np.bincount(pieces[source], minlength=n + 1)
    keep = under >= params.piece_overlap * size
    keep[np.argmax(size[1:]) + 1] = True
    keep[0] = False
    return keep[pieces]


def extend_label(get_labels: Callable[[int], np.ndarray], get_regions: Callable[[int], np.ndarray],
                 z: int, label: int, direction: int, count: int | None, n_slices: int, *,
                 pixel_mm: float, params: ExtendParams = DEFAULT_EXTEND):
    """Carry ``label`` from slice ``z`` slice by slice in ``direction`` (+1 / -1).

    Parameters
    ----------
    get_labels, get_regions : callable
        Label slice and candidate regions of a slice index.
    count : int or None
        At most this many slices; None = until the stopping rule or the series end.
        A slice that already has the label ends the carrying; from there on up to
        ``count`` labelled slices are completed with the parts of the label that carry
        into them (at least ``min_share`` of their label: a lobe that joins the organ
        between two key slices), while there are such parts.

    Yields
    ------
    (z, mask or None, ExtendRow)
        ``mask`` is the new label of slice ``z`` to write (None when stopped).
    """
    source = get_labels(z) == label
    start_area = smallest = int(source.sum())
    min_px = params.min_area_mm2 / (pixel_mm * pixel_mm)
    limit = n_slices if count is None else max(0, int(count))
    target = z
    for _ in range(limit):
        target += direction
        if not 0 <= target < n_slices:
            yield target - direction, None, ExtendRow(
                target - direction, label, 0, ExtendStatus.END_OF_SERIES, "last slice reached")
            return
        current = get_labels(target)
        if (current == label).any():
            yield from _complete(get_labels, get_regions, source, target, label, direction,
                                 n_slices, limit, pixel_mm=pixel_mm, params=params)
            return
        mask, status, reason = carry(source, get_regions(target), current == 0,
                                     pixel_mm=pixel_mm, params=params)
        area = int(mask.sum())
        if (status == ExtendStatus.LABELLED and smallest < params.taper * start_area
                and area > max(params.regrow * smallest, smallest + min_px)):
            status, reason = ExtendStatus.LEAK, (
                f"leak: the label grows again (x{area / smallest:.1f} the smallest area) after "
                "the organ tapered: another structure takes over")
        if status != ExtendStatus.LABELLED:
            yield target, None, ExtendRow(target, label, 0, status, reason)
            return
        smallest = min(smallest, area)
        yield target, mask, ExtendRow(target, label, area, status, reason)
        source = mask
    target += direction
    if 0 <= target < n_slices and (get_labels(target) == label).any():
        yield from _complete(get_labels, get_regions, source, target, label, direction,
                             n_slices, limit, pixel_mm=pixel_mm, params=params)


def _complete(get_labels, get_regions, source, target, label, direction, n_slices, limit, *,
              pixel_mm, params):
    """Labelled slices met by an extend gain the parts its label carries into them (see
    :func:`extend_label`), slice by slice while there are some, at most ``limit`` slices.

    On the 3 mm abdomen this recovers the left lobe that joins the liver between two key
    slices (liver Dice K = 3 0.895 -> 0.913, K = 5 0.881 -> 0.900).
    """
    for _ in range(limit):
        if not 0 <= target < n_slices:
            return
        current = get_labels(target)
        have = current == label
        if not have.any():
            return
        mask, status, _ = carry(source, get_regions(target), (current == 0) | have,
                                pixel_mm=pixel_mm, params=params)
        added = mask & ~have
        pieces, n = ndimage.label(added)
        big = np.bincount(pieces.ravel(), minlength=n + 1) >= params.min_share * have.sum()
        big[0] = False
        added = big[pieces]
        if status != ExtendStatus.LABELLED or not added.any():
            yield target, None, ExtendRow(target, label, int(have.sum()),
                                          ExtendStatus.ALREADY_LABELLED,
                                          "the slice already has this label: stop here")
            return
        yield target, added, ExtendRow(target, label, int(added.sum()), ExtendStatus.LABELLED,
                                       "completed: the label gained a part carried from the "
                                       "neighbouring slice")
        source = have | added
        target += direction
