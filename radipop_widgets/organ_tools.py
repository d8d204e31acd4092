"""The organ tools of a Session: learned ranges, grow, the (edge-aware) brush, fill
between slices and extend; one method per tool, each one undo step.

:class:`OrganTools` is a part of :class:`~radipop_widgets.session.Session` (it uses the
Session's labels, candidate regions and history helpers); it holds no state of its own.
"""

from __future__ import annotations

import numpy as np

from .errors import SessionError
from .history import Step
from .labels import label_name
from .segmentation.edit import clean_points, stroke_mask
from .segmentation.grow import grow_from
from .segmentation.intensity import IntensityRange, learn_range
from .segmentation.interpolate import fill_gaps, interpolate_masks
from .segmentation.propagate import ExtendReport, ExtendRow, ExtendStatus, extend_label
from .validate import check_count, check_label, check_range, check_width


class OrganTools:
    """Organ ranges and the one-action tools (mixed into Session)."""

    def organ_range(self, label) -> IntensityRange | None:
        """The intensity range learned for ``label`` (from its clicks) or set by hand."""
        return self.candidates.ranges.get(check_label(label))

    def set_organ_range(self, label, low=None, high=None) -> None:
        """Set the range of ``label`` by hand (None keeps that end; both None forget the
        range, so the slice thresholds apply). Undoable; extend and grow use it."""
        label = check_label(label)
        old = self.candidates.ranges.get(label)
        new = None
        if low is not None or high is not None:
            if old is None and (low is None or high is None):
                raise SessionError(f"{label_name(label)} has no range yet: give low and high")
            low, high = check_range(old.low if low is None else low,
                                    old.high if high is None else high)
            new = IntensityRange(low, high, (low + high) / 2)     # clicks = 0: by hand
        if new == old:
            return
        step = Step("range")
        step.ranges[label] = (old, new)
        self._apply(step, undo=False)
        self._commit(step, f"{label_name(label)} range " + (
            f"{new.low:.0f}..{new.high:.0f} HU" if new else "removed: slice thresholds apply"))

    def grow(self, z, row, col, label) -> int:
        """Add the piece under the click to ``label`` in one action: the candidate region
        found with the organ's range (learned from this click if it has none), or where
        there is none the tissue of that range connected to the click; never over other
        labels or across cuts. Returns pixels changed."""
        z, label = self._z(z), check_label(label)
        if label == 0:
            raise SessionError("grow adds to an organ: give label 1 (liver), 2 (spleen) or 3..")
        point = self._point(z, row, col, "nothing grown")
        if point is None:
            return 0
        r, c = point
        smooth = self._smooth(z, (r, c))
        with self._one_step("grow") as step:
            self.click_range = learn_range(smooth, r, c, pixel_mm=self.pixel_mm,
                                           params=self.range_params)
            if self.organ_range(label) is None:
                self._learn(step, label)
            t = self.candidates.organ_thresholds(z, label)
            regions = self.candidates.regions(z, t)
            allowed = np.isin(self.labels[z], (0, label))
            band = self.candidates.ranges.get(label) or IntensityRange(t.organ, t.vessel)
            piece = (regions == regions[r, c]) if regions[r, c] else grow_from(
                smooth, r, c, band, allowed=allowed & ~self._barrier(z), pixel_mm=self.pixel_mm)
            piece &= allowed
            new = self.labels[z].copy()
            new[piece] = label
            self._add_rim(z, new, label, piece, regions)
            changed = self._patch(step, z, new)
        self.last_message = (f"grew {label_name(label)}: {changed} pixels on slice {z}" if changed
                             else f"nothing grown on slice {z}: no {label_name(label)} tissue "
                                  "under the click")
        return changed

    def _learn(self, step: Step, label: int) -> None:
        """Merge the click's range into ``label``'s (into ``step``); once per click."""
        if label == 0 or self.click_range is None:
            return
        old = self.candidates.ranges.get(label)
        new = self.click_range if old is None else old.merged(self.click_range)
        self.click_range = None
        if new != old:
            step.ranges[label] = (old, new)
            self.candidates.set_range(label, new)

    def draw(self, z, points, label, width_mm: float = 3.0, edge_aware: bool = False) -> int:
        """Paint a stroke along ``points`` [(row, col), ...] with ``label`` (0 erases).

        ``edge_aware`` paints only the tissue of the organ's range (learned from the
        stroke's first point when the organ has none), so the brush stops at the
        organ's edge. Returns pixels changed."""
        z, label = self._z(z), check_label(label)
        width = check_width(width_mm)
        try:
            mask = stroke_mask(points, self.study.shape[1:], width / self.pixel_mm)
            first = clean_points(points, self.study.shape[1:])[:1]
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        if not mask.any():
            self.last_message = "nothing drawn: the stroke lies outside the image"
            return 0
        if edge_aware and label:
            smooth = self._smooth(z)
            band = self.candidates.ranges.get(label)
            if band is None and len(first):
                r, c = np.clip(np.rint(first[0]).astype(int), 0, np.array(mask.shape) - 1)
                band = learn_range(smooth, int(r), int(c), pixel_mm=self.pixel_mm,
                                   params=self.range_params)
            if band is not None:
                mask &= band.contains(smooth)
        new = self.labels[z].copy()
        new[mask] = label
        with self._one_step("erase" if label == 0 else "draw") as step:
            changed = self._patch(step, z, new)
        what = "erased" if label == 0 else f"drew {label_name(label)}"
        self.last_message = (f"{what}: {changed} pixels on slice {z}" if changed else
                             f"nothing changed on slice {z}")
        return changed

    def fill_between(self, label, z0=None, z1=None, apply: bool = True) -> dict[int, np.ndarray]:
        """Interpolate ``label`` on the unlabelled slices between its labelled slices in
        ``z0..z1`` (default all), shape-based (see
        :func:`~radipop_widgets.segmentation.interpolate.interpolate_masks`), never over
        other labels. ``apply=False`` only returns the preview; applied it is one step.

        Returns
        -------
        dict slice -> bool mask of what is (or would be) added.
        """
        label = check_label(label)
        lo = 0 if z0 is None else self._z(z0)
        hi = self.study.n_slices - 1 if z1 is None else self._z(z1)
        present = (self.labels[lo:hi + 1] == label).any(axis=(1, 2))
        added = {}
        spacing = self.study.spacing[1:]
        for a, b in fill_gaps(present):
            a, b = a + lo, b + lo
            for z, mask in zip(range(a + 1, b), interpolate_masks(
                    self.labels[a] == label, self.labels[b] == label, b - a - 1, spacing)):
                mask &= self.labels[z] == 0
                if mask.any():
                    added[z] = mask
        if apply:
            with self._one_step("fill") as step:
                for z, mask in added.items():
                    new = self.labels[z].copy()
                    new[mask] = label
                    self._patch(step, z, new)
            self.last_message = (f"filled {label_name(label)} on {len(added)} slice(s)" if added
                                 else f"nothing to fill: {label_name(label)} has no gap "
                                      "between two labelled slices")
        return added

    def extend(self, z, below=None, above=None, progress=None, label=None) -> ExtendReport:
        """Carry the labels of slice ``z`` to neighbouring slices.

        Parameters
        ----------
        z : int
        below, above : int or None
            How many slices to go towards lower / higher indices; None = as far as the
            organ goes (the stopping rule), 0 = not in that direction. Slices that
            already have the label end the extend; up to as many of them gain the parts
            of the label they lack (a lobe joining between two labelled slices).
        progress : callable(done, total), optional
        label : int, optional
            Only this label (default: every label on slice ``z``). Each organ is found
            with its own intensity range where it has one.

        Returns
        -------
        ExtendReport
            Per slice what was done and why it stopped (also in :attr:`last_report`).
            The whole extend is one undo step.
        """
        z = self._z(z)
        labels = ([check_label(label)] if label is not None else
                  [int(v) for v in np.unique(self.labels[z]) if v])
        counts = {"below": check_count(below, "below"), "above": check_count(above, "above")}
        report = ExtendReport()
        total = sum(self.study.n_slices if c is None else c for c in counts.values()) * len(labels)
        done = 0
        with self._one_step("extend") as step:
            for lab in labels:
                regions = lambda i, lab=lab: self.candidates.organ_regions(i, lab)  # noqa: E731
                for direction, count in ((-1, counts["below"]), (+1, counts["above"])):
                    if count == 0:
                        continue
                    for tz, mask, row in extend_label(lambda i: self.labels[i], regions, z, lab,
                                                      direction, count, self.study.n_slices,
                                                      pixel_mm=self.pixel_mm,
                                                      params=self.extend_params):
                        report.rows.append(row)
                        if mask is not None:
                            new = self.labels[tz].copy()
                            new[mask] = lab
                            self._add_rim(tz, new, lab, mask, regions(tz))
                            self._patch(step, tz, new)
                        done += 1
                        if progress is not None:
                            progress(min(done, total), total)
        if not labels:
            report.rows.append(ExtendRow(z, 0, 0, ExtendStatus.ENDED,
                                         "the slice has no label to extend"))
        self.last_report = report
        n = len(step.patches)
        self.last_message = (f"extended to {n} slice(s)" if n else "nothing extended: "
                             + (report.rows[-1].reason if report.rows else "no slices"))
        return report

