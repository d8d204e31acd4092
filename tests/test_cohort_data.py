"""A folder of generated studies for the cohort tests (and the benchmark): the phantom in
varied sizes, phases and orientations, as DICOM series and NIfTI files, a broken study
among them; sessions made through the Session API."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from synthetic import orientation_affine

from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import make_phantom, write_phantom_series
from radipop_widgets.session import Session

#: (name, kind, shape, pixel mm, slice mm, phase, orientation)
STUDIES = (
    ("a_portal", "dicom", (10, 96, 96), 4.0, 15.0, "portal", None),
    ("b_portal_small", "dicom", (8, 64, 80), 5.0, 20.0, "portal", None),
    ("c_arterial", "nifti", (10, 80, 80), 4.5, 15.0, "arterial", "LPS"),
    ("d_native", "nifti", (9, 80, 96), 4.5, 16.0, "native", "RAS"),
    ("e_broken", "dicom", (8, 64, 64), 5.0, 20.0, "portal", None),
)
#: The patient name written into the generated DICOM (distinct from every description)
PATIENT_NAME = "Kowalczyk^Zofia"
NAME_PARTS = ["Kowalczyk", "Zofia"]


def write_nifti_phantom(path: Path, shape, pixel_mm, slice_mm, phase, code, seed=0):
    """The phantom as a NIfTI volume on a grid with axis codes ``code``, and next to it
    nothing else: the labels are returned in the study's (loaded) order by
    :func:`loaded_labels`."""
    hu, labels = make_phantom(shape, pixel_mm, slice_mm, seed, phase)
    # study axes (slice S, row P, column L) -> NIfTI (i = L, j = P, k = S), i.e. "LPS"
    data = hu.transpose(2, 1, 0)
    lab = labels.transpose(2, 1, 0)
    if code == "RAS":
        data, lab = data[::-1, ::-1], lab[::-1, ::-1]
    affine = orientation_affine(code, data.shape, zooms=(pixel_mm, pixel_mm, slice_mm))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), path)
    # the labels as an HU-like volume on the same grid, so the loader orients them alike
    coded = (lab.astype(np.int16) * 1000 - 1000)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(coded), affine),
             path.with_name(path.name.replace(".nii.gz", ".labels.nii.gz")))
    return path


def loaded_labels(study_path: Path):
    """The reference labels of a generated study in the loaded study's order."""
    if study_path.suffix == ".gz":
        coded = load_study(study_path.with_name(study_path.name.replace(".nii.gz",
                                                                        ".labels.nii.gz")))
        return ((coded.hu.astype(np.int32) + 1000) // 1000).astype(np.uint8)
    return np.load(study_path.parent / "reference_labels.npz")["labels"]


def make_cohort(root: Path, studies=STUDIES, hidden_labels: bool = True) -> dict:
    """Write ``studies`` under ``root/data``; returns name -> study path. The labels
    NIfTIs go to ``root/labels`` (outside the data folder)."""
    data, side = root / "data", root / "labels"
    data.mkdir(parents=True, exist_ok=True)
    side.mkdir(exist_ok=True)
    paths = {}
    for i, (name, kind, shape, pixel, step, phase, code) in enumerate(studies):
        if kind == "dicom":
            write_phantom_series(data / name, shape=shape, pixel_mm=pixel, slice_mm=step,
                                 seed=i)
            for f in (data / name / "dicom").iterdir():
                ds = pydicom.dcmread(f)
                ds.PatientName = PATIENT_NAME
                ds.save_as(f)
            paths[name] = data / name / "dicom"
        else:
            path = write_nifti_phantom(side / f"{name}.nii.gz", shape, pixel, step, phase,
                                       code, seed=i)
            target = data / path.name
            target.write_bytes(path.read_bytes())
            paths[name] = target
    return paths


def label_study(path: Path, workspace: Path, *, labels=None, save=True, autosave=False):
    """Open the study, give it its reference labels (or ``labels``) through the Session,
    save it (or only autosave); returns the Session."""
    study = load_study(path)
    if labels is None:
        labels = loaded_labels(_labels_source(path))
    session = Session(study, workspace=workspace, autosave=autosave)
    session.set_labels(labels)
    if save:
        session.save()
    return session


def _labels_source(path: Path) -> Path:
    """Where the labels of a study written by :func:`make_cohort` are."""
    if path.suffix == ".gz":
        return path.parents[1] / "labels" / path.name
    return path


def test_the_generated_nifti_labels_fit_their_study(tmp_path):
    paths = make_cohort(tmp_path, STUDIES[2:4])
    for name in ("c_arterial", "d_native"):
        study = load_study(paths[name])
        labels = loaded_labels(_labels_source(paths[name]))
        assert labels.shape == study.shape and set(np.unique(labels)) == {0, 1, 2}
        liver = study.hu[labels == 1].mean()
        assert 40 < liver < 130                      # the liver's HU lies under its label
