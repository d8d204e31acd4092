"""Study loading: DICOM series and NIfTI volumes as a ``Study`` in Hounsfield units."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import NoImagesError
from ..study import Study
from ._common import MEMORY_LIMIT_ENV, StudyEntry
from .dicom import load_dicom
from .dicom_files import scan_dicom_folder
from .nifti import is_nifti, load_nifti, nifti_entry

__all__ = ["MEMORY_LIMIT_ENV", "StudyEntry", "load_study", "scan_studies"]


def load_study(path, series=None, progress=None) -> Study:
    """Load a CT study in Hounsfield units with its geometry.

    Parameters
    ----------
    path : str or Path
        A folder of DICOM files (searched recursively, any file names), a single DICOM
        file, or a NIfTI file (``.nii`` / ``.nii.gz``).
    series : str, optional
        SeriesInstanceUID to load when the folder holds several series (the error
        raised otherwise lists them).
    progress : callable, optional
        Called as ``progress(done, total)`` while slices are read.

    Returns
    -------
    Study
        ``hu`` int16 (slices, rows, columns), slices ascending along the slice normal;
        ``affine`` maps (slice, row, column, 1) to patient LPS mm.

    Raises
    ------
    StudyError
        A subclass naming the problem (no images, not CT, several series, missing or
        duplicate slices, unreadable file, undecodable pixel data, too large, ...).
    """
    path = Path(path)
    if not path.exists():
        raise NoImagesError(f"{path}: no such file or folder; check the path.")
    if path.is_file() and is_nifti(path):
        return load_nifti(path, progress=progress)
    return load_dicom(path, series=series, progress=progress)


def scan_studies(root) -> list[StudyEntry]:
    """List the loadable studies under ``root`` from headers only.

    Every folder holding DICOM files gives one entry per CT series whose files lie
    directly in it; every ``.nii`` / ``.nii.gz`` CT volume gives one entry (8-bit
    label maps are left out). Hidden folders are not searched.
    """
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        niftis = sorted(f for f in files if is_nifti(f))
        for name in niftis:
            entry = nifti_entry(Path(folder) / name)
            if entry is not None:
                entries.append(entry)
        if len(niftis) < len(files):
            entries += scan_dicom_folder(folder)
    return entries
