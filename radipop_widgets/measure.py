"""Organ volumes and per-organ statistics from a label volume (vectorised, no Python loops
over voxels)."""

from __future__ import annotations

import numpy as np

from .labels import MEASURED, label_name

_SLAB = 16  # slices per pass: bounds the int64 temporaries to ~16 slices


def _per_slice_stats(labels: np.ndarray, hu: np.ndarray | None):
    """Count, sum of HU and sum of HU^2 per (slice, label value), each (slices, 256).

    Only labelled voxels enter the bincounts; background (value 0) is not counted.
    """
    n, rows, cols = labels.shape
    counts = np.zeros((n, 256), np.int64)
    sums = np.zeros((n, 256)) if hu is not None else None
    sumsq = np.zeros((n, 256)) if hu is not None else None
    for start in range(0, n, _SLAB):
        stop = min(start + _SLAB, n)
        flat = labels[start:stop].reshape(-1)
        where = np.flatnonzero(flat)
        index = (where // (rows * cols)) * 256 + flat[where]
        size = (stop - start) * 256
        counts[start:stop] = np.bincount(index, minlength=size).reshape(-1, 256)
        if hu is not None:
            values = hu[start:stop].reshape(-1)[where].astype(np.float64)
            sums[start:stop] = np.bincount(index, values, size).reshape(-1, 256)
            sumsq[start:stop] = np.bincount(index, values * values, size).reshape(-1, 256)
    return counts, sums, sumsq


def _check(labels: np.ndarray, spacing) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be a 3-D uint8 array, got {labels.ndim}-D {labels.dtype}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive (slice, row, column) mm, got {spacing}")
    return labels


def volumes_ml(labels: np.ndarray, spacing) -> dict[str, float]:
    """Liver and spleen volume in mL (voxel count x voxel volume); 0.0 when absent.

    Parameters
    ----------
    labels : ndarray of uint8 (slices, rows, columns)
    spacing : (slice, row, column) mm

    Examples
    --------
    Eight liver voxels of 2 x 5 x 5 mm (50 mm^3 each) and no spleen:

    >>> labels = np.zeros((2, 4, 4), np.uint8)
    >>> labels[:, :2, :2] = 1
    >>> volumes_ml(labels, (2.0, 5.0, 5.0))
    {'liver': 0.4, 'spleen': 0.0}
    """
    labels = _check(labels, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {label_name(v): float(np.count_nonzero(labels == v) * voxel_ml)
            for v in (o.value for o in MEASURED)}


def organ_measurements(labels: np.ndarray, hu: np.ndarray | None, spacing) -> dict[str, dict]:
    """Statistics of every label present, for review.

    Parameters
    ----------
    labels : ndarray of uint8 (slices, rows, columns)
    hu : ndarray (slices, rows, columns) in HU, or None to skip the HU statistics
    spacing : (slice, row, column) mm

    Returns
    -------
    dict label name (``liver``, ``spleen``, ``organ_<n>``) -> dict with
        ``label`` (int), ``voxels``, ``volume_ml``, ``slices`` (first, last slice index),
        ``mean_hu`` and ``sd_hu`` (population SD; None without ``hu``), and ``area_mm2``:
        list of (slice index, area in mm^2) for every slice holding the organ.

    Examples
    --------
    >>> labels = np.zeros((3, 4, 4), np.uint8)
    >>> labels[1:, :2, :2] = 2
    >>> hu = np.where(labels == 2, 110, -50).astype(np.int16)
    >>> spleen = organ_measurements(labels, hu, (2.0, 0.5, 0.5))["spleen"]
    >>> spleen["voxels"], spleen["slices"], spleen["mean_hu"], spleen["sd_hu"]
    (8, (1, 2), 110.0, 0.0)
    >>> spleen["area_mm2"]
    [(1, 1.0), (2, 1.0)]
    """
    labels = _check(labels, spacing)
    if hu is not None and np.shape(hu) != labels.shape:
        raise ValueError(f"hu has shape {np.shape(hu)}, labels {labels.shape}")
    counts, sums, sumsq = _per_slice_stats(labels, hu)
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    voxel_ml = pixel_mm2 * float(spacing[0]) / 1000.0
    totals = counts.sum(axis=0)
    out = {}
    for value in np.flatnonzero(totals[1:]) + 1:
        n = int(totals[value])
        slices = np.flatnonzero(counts[:, value])
        mean = sd = None
        if hu is not None:
            mean = float(sums[:, value].sum() / n)
            var = max(float(sumsq[:, value].sum() / n) - mean * mean, 0.0)
            sd = var ** 0.5
        out[label_name(value)] = {
            "label": int(value),
            "voxels": n,
            "volume_ml": n * voxel_ml,
            "slices": (int(slices[0]), int(slices[-1])),
            "mean_hu": mean,
            "sd_hu": sd,
            "area_mm2": [(int(z), float(counts[z, value] * pixel_mm2)) for z in slices],
        }
    return out
