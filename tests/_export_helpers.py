"""Test helpers for the export / persist / measure tests: synthetic studies and DICOM series.

Studies are built here directly (not through ``load_study``) so these tests check the
exports against DICOM geometry computed independently of the loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

import dicom_factory
from radipop_widgets.study import SliceSource, Study, affine_from_geometry


def blob_labels(shape, seed=0) -> np.ndarray:
    """uint8 labels with a liver (1) and spleen (2) blob, a few other-organ (3) voxels."""
    n, rows, cols = shape
    z, y, x = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    labels = np.zeros(shape, np.uint8)
    labels[((y - rows * 0.5) / (rows * 0.3)) ** 2 + ((x - cols * 0.3) / (cols * 0.25)) ** 2
           + ((z - n * 0.5) / (n * 0.45)) ** 2 < 1] = 1
    labels[((y - rows * 0.5) / (rows * 0.15)) ** 2 + ((x - cols * 0.78) / (cols * 0.12)) ** 2
           + ((z - n * 0.6) / (n * 0.3)) ** 2 < 1] = 2
    rng = np.random.default_rng(seed)
    labels[rng.random(shape) < 0.002] = 3
    return labels


def synthetic_study(shape=(6, 20, 24), spacing=(2.5, 0.8, 0.7), affine=None, series_uid="1.2.3.4",
                    instance_numbers=None, seed=0) -> Study:
    """An in-memory Study (no files) with random HU and an axial or given affine."""
    rng = np.random.default_rng(seed)
    hu = rng.integers(-200, 300, shape).astype(np.int16)
    if affine is None:
        affine = affine_from_geometry((-100.0, -120.0, -50.0), (1, 0, 0), (0, 1, 0), (0, 0, 1),
                                      spacing)
    if instance_numbers is None:
        instance_numbers = list(range(1, shape[0] + 1))
    sources = [SliceSource(None, None, n) for n in instance_numbers]
    return Study(hu=hu, spacing=tuple(spacing), affine=np.asarray(affine, float),
                 series_uid=series_uid, study_uid="1.2.3", frame_of_reference_uid="1.2.3.5",
                 sources=sources)


def oblique_affine(spacing, seed=1) -> np.ndarray:
    """A (slice, row, col) -> LPS affine with a random rotation (orthonormal directions)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    row_dir, col_dir = q[:, 0], q[:, 1]
    return affine_from_geometry((12.0, -30.0, 80.0), row_dir, col_dir,
                                np.cross(row_dir, col_dir), spacing)


def write_ct_series(folder, shape=(4, 16, 20), empty_uids=False, seed=0) -> list[Path]:
    """Write a small axial CT series with fresh UIDs (``dicom_factory.write_ct_series``;
    empty SOP, series and study UIDs with ``empty_uids``). Returns the file paths in
    ascending z order."""
    n, rows, cols = shape
    uids = ({"sop_uid": "", "series_uid": "", "study_uid": ""} if empty_uids else
            {"series_uid": generate_uid(), "study_uid": generate_uid()})
    paths, _ = dicom_factory.write_ct_series(folder, n, rows, cols, seed=seed,
                                             frame_uid=generate_uid(), **uids)
    return paths


def study_from_files(paths) -> Study:
    """A Study from single-frame axial DICOM files, slices by ascending z (no loader)."""
    datasets = [pydicom.dcmread(p) for p in paths]
    order = np.argsort([float(ds.ImagePositionPatient[2]) for ds in datasets])
    datasets = [datasets[i] for i in order]
    paths = [paths[i] for i in order]
    hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                   for ds in datasets]).astype(np.int16)
    iop = np.asarray(datasets[0].ImageOrientationPatient, float)
    rows_mm, cols_mm = (float(v) for v in datasets[0].PixelSpacing)
    p0 = np.asarray(datasets[0].ImagePositionPatient, float)
    step_vec = np.asarray(datasets[1].ImagePositionPatient, float) - p0
    step = float(np.linalg.norm(step_vec))
    spacing = (step, rows_mm, cols_mm)
    affine = affine_from_geometry(p0, iop[:3], iop[3:], step_vec / step, spacing)
    first = datasets[0]
    return Study(
        hu=hu, spacing=spacing, affine=affine,
        series_uid=first.SeriesInstanceUID or None, study_uid=first.StudyInstanceUID or None,
        frame_of_reference_uid=first.get("FrameOfReferenceUID") or None,
        sources=[SliceSource(str(p), ds.SOPInstanceUID or None, int(ds.InstanceNumber))
                 for p, ds in zip(paths, datasets)],
        path=Path(paths[0]).parent)
