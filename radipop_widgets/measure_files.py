"""The organ statistics as files: ``<name>_measurements.json`` and ``<name>_measurements.csv``
beside a NIfTI label export.

Both hold the numbers of :func:`radipop_widgets.measure.organ_measurements` unchanged
(floats at full precision), one organ per labelled value; an organ that is not labelled
has no entry and no row. Neither holds a patient name, ID or the study's path or series
description (folder names and descriptions may carry the patient's name). Each file is
written atomically (:mod:`radipop_widgets.atomic`).

CSV columns (:data:`COLUMNS`, one row per organ; an empty cell is a number the organ does
not have, e.g. the splenic index of the liver, or the HU numbers without a CT):

=========================== =============================================================
``organ``                   ``liver``, ``spleen``, ``organ_<n>``
``label``                   the label value (1 liver, 2 spleen)
``voxels``                  voxel count
``volume_ml``               volume in mL
``mean_hu``, ``sd_hu``,     HU mean, population SD and median of the organ's voxels
``median_hu``
``first_slice``,            first and last slice index holding the organ (0-based, in the
``last_slice``              study's order: ascending along the slice normal)
``missing_slices``          slices between them without the organ, space-separated
``length_cc_mm``            craniocaudal length: slices spanned x slice spacing
``diameter_max_mm``         the largest axial (maximal Feret) diameter
``diameter_perp_mm``        the width across it on the same slice
``diameter_slice``          the slice of that diameter
``thickness_mm``            on that slice, the diameter of the largest circle inside
                            the organ (its thickness between inner and outer border)
``splenic_index_cm3``       length x diameter_max x thickness in cm (spleen only)
``liver_spleen_volume_ratio`` liver / spleen volume, the same on every row (empty unless
                            both organs are labelled)
=========================== =============================================================

The JSON file holds the same numbers per organ (``organs``), the area of every slice
(``area_mm2``: [slice, mm^2] pairs), the ratio, the voxel spacing and the volume's shape.

Examples
--------
>>> import tempfile
>>> labels = np.zeros((3, 4, 4), np.uint8)
>>> labels[1:, :2, :2] = 2
>>> tmp = tempfile.TemporaryDirectory()
>>> paths = write_measurements(Path(tmp.name) / "labels.nii.gz",
...                            organ_measurements(labels, None, (2.0, 0.5, 0.5)),
...                            (2.0, 0.5, 0.5), labels.shape)
>>> [p.name for p in paths]
['labels_measurements.json', 'labels_measurements.csv']
>>> print(paths[1].read_text().splitlines()[1])
spleen,2,8,0.004,,,,1,2,,4.0,1.414...,1.414...,1,0.5,0.0028...,
>>> tmp.cleanup()
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes
from .measure import liver_spleen_ratio, organ_measurements

__all__ = ["COLUMNS", "FORMAT", "export_measurements", "measurement_paths", "measurement_rows", "measurements_json",
           "write_measurements"]

FORMAT = "radipop-widgets organ measurements"
VERSION = 1
COLUMNS = ("organ", "label", "voxels", "volume_ml", "mean_hu", "sd_hu", "median_hu",
           "first_slice", "last_slice", "missing_slices", "length_cc_mm", "diameter_max_mm",
           "diameter_perp_mm", "diameter_slice", "thickness_mm", "splenic_index_cm3",
           "liver_spleen_volume_ratio")


def measurement_paths(nifti_path) -> tuple[Path, Path]:
    """The JSON and CSV paths beside a NIfTI file: ``x.nii.gz`` -> ``x_measurements.json``.

    >>> [p.name for p in measurement_paths("out/labels.nii.gz")]
    ['labels_measurements.json', 'labels_measurements.csv']
    """
    path = Path(nifti_path)
    stem = path.name
    for suffix in (".nii.gz", ".nii"):
        if stem.lower().endswith(suffix):
            stem = stem[:-len(suffix)]
            break
    return (path.with_name(f"{stem}_measurements.json"),
            path.with_name(f"{stem}_measurements.csv"))


def measurement_rows(measurements: dict[str, dict]) -> list[dict]:
    """One dict per organ with the :data:`COLUMNS` (None where an organ has no number)."""
    ratio = liver_spleen_ratio(measurements)
    rows = []
    for name, m in measurements.items():
        rows.append({
            "organ": name, "label": m["label"], "voxels": m["voxels"],
            "volume_ml": m["volume_ml"], "mean_hu": m["mean_hu"], "sd_hu": m["sd_hu"],
            "median_hu": m["median_hu"], "first_slice": m["slices"][0],
            "last_slice": m["slices"][1],
            "missing_slices": " ".join(str(z) for z in m["missing_slices"]),
            "length_cc_mm": m["length_cc_mm"], "diameter_max_mm": m["diameter_max_mm"],
            "diameter_perp_mm": m["diameter_perp_mm"], "diameter_slice": m["diameter_slice"],
            "thickness_mm": m["thickness_mm"],
            "splenic_index_cm3": m["splenic_index_cm3"], "liver_spleen_volume_ratio": ratio})
    return rows


def _csv_bytes(measurements: dict[str, dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in measurement_rows(measurements):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().encode("utf-8")


def _plain(value):
    """JSON-able: tuples to lists, numpy numbers to Python ones, NaN / inf to None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def measurements_json(measurements: dict[str, dict], spacing, shape, labels_file=None) -> dict:
    """The JSON document of the measurements (see the module's description)."""
    return _plain({
        "format": FORMAT, "version": VERSION,
        "labels_file": labels_file,
        "spacing_mm": [float(s) for s in spacing],
        "shape": [int(n) for n in shape],
        "slice_index": "0-based slice of the study, ascending along the slice normal "
                       "(towards the head for axial CT)",
        "liver_spleen_volume_ratio": liver_spleen_ratio(measurements),
        "organs": measurements,
    })


def write_measurements(nifti_path, measurements: dict[str, dict], spacing, shape
                       ) -> tuple[Path, Path]:
    """Write the JSON and CSV files beside ``nifti_path`` (atomically); returns their paths."""
    json_path, csv_path = measurement_paths(nifti_path)
    document = measurements_json(measurements, spacing, shape, Path(nifti_path).name)
    atomic_write_bytes(json_path, (json.dumps(document, indent=1) + "\n").encode("utf-8"))
    atomic_write_bytes(csv_path, _csv_bytes(measurements))
    return json_path, csv_path


def export_measurements(nifti_path, labels: np.ndarray, study) -> tuple[Path, Path]:
    """Measure ``labels`` on ``study`` and write the files beside ``nifti_path``."""
    return write_measurements(nifti_path, organ_measurements(labels, study.hu, study.spacing),
                              study.spacing, labels.shape)
