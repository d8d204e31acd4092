"""The NIfTI label-map codec: a label volume with a study's geometry, to and from ``.nii.gz``.

Used by the exports (:mod:`radipop_widgets.export`) and by the session folders
(:mod:`radipop_widgets.persist`), which is why it lives in neither.

Geometry. ``Study.affine`` maps (slice, row, column, 1) to DICOM patient
coordinates (LPS, mm). NIfTI files here store the volume with axes i = column,
j = row, k = slice, and their affine maps (i, j, k, 1) to RAS (= diag(-1, -1, 1)
LPS), as dcm2niix and nibabel expect. The bytes of a C-ordered (slice, row,
column) array are exactly the Fortran-ordered (i, j, k) NIfTI data, so nothing
is copied.

Examples
--------
A label map written for a study reads back with the study's affine:

>>> import tempfile
>>> from radipop_widgets.io.phantom import phantom_study
>>> study, labels = phantom_study(shape=(4, 64, 64), pixel_mm=6.4, slice_mm=25)
>>> tmp = tempfile.TemporaryDirectory()
>>> path = write_nifti_labels(Path(tmp.name) / "labels.nii.gz", labels, study)
>>> back, affine = read_nifti_labels(path)
>>> bool((back == labels).all()), bool(np.allclose(affine, study.affine))
(True, True)
>>> tmp.cleanup()
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from .atomic import atomic_writer
from .errors import MaskFileError, SessionError
from .study import Study

__all__ = ["check_labels", "nifti_affine", "read_nifti_labels", "write_nifti_labels",
           "write_nifti_stream"]

# (slice, row, col) <-> (i, j, k) = (col, row, slice); the permutation is its own inverse.
_SWAP_IK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GZIP_LEVEL = 1  # label maps compress ~100x even at level 1; higher levels cost 3x the time


def nifti_affine(study: Study) -> np.ndarray:
    """RAS affine of a NIfTI with axes i = column, j = row, k = slice of ``study``.

    Examples
    --------
    An axial study: x and y flip sign (LPS -> RAS), i steps along the columns,
    k along the slices.

    >>> from radipop_widgets.io.phantom import phantom_study
    >>> study, _ = phantom_study(shape=(4, 64, 64), pixel_mm=6.4, slice_mm=25)
    >>> nifti_affine(study)
    array([[  -6.4,    0. ,    0. ,  201.6],
           [   0. ,   -6.4,    0. ,  201.6],
           [   0. ,    0. ,   25. , -200. ],
           [   0. ,    0. ,    0. ,    1. ]])
    """
    return _LPS_TO_RAS @ np.asarray(study.affine, float) @ _SWAP_IK


def check_labels(labels: np.ndarray, study: Study) -> np.ndarray:
    """``labels`` as a C-contiguous uint8 array of the study's shape.

    Raises
    ------
    SessionError
        Another shape than the study, or values outside 0..255.

    Examples
    --------
    >>> from radipop_widgets.study import Study
    >>> study = Study(hu=np.zeros((2, 3, 4), np.int16), spacing=(1, 1, 1), affine=np.eye(4))
    >>> check_labels(np.ones((2, 3, 4), int), study).dtype
    dtype('uint8')
    >>> check_labels(np.ones((2, 3, 3), np.uint8), study)
    Traceback (most recent call last):
    radipop_widgets.errors.SessionError: labels have shape (2, 3, 3) but the study (2, 3, 4)
    """
    labels = np.asarray(labels)
    if labels.shape != tuple(study.shape):
        raise SessionError(f"labels have shape {labels.shape} but the study {study.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise SessionError("labels must be 0..255 to be stored as uint8")
        labels = labels.astype(np.uint8)
    return np.ascontiguousarray(labels)


def write_nifti_stream(fileobj, labels: np.ndarray, study: Study) -> None:
    """Write ``labels`` as a gzip-compressed uint8 NIfTI-1 to an open binary file."""
    labels = check_labels(labels, study)
    affine = nifti_affine(study)
    img = nib.Nifti1Image(labels.transpose(2, 1, 0), affine, dtype=np.uint8)
    img.set_qform(affine, code=1)  # 1 = scanner coordinates
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"radipop-widgets label map"
    with gzip.GzipFile(fileobj=fileobj, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as gz:
        img.to_file_map({"image": nib.FileHolder(fileobj=gz)})


def write_nifti_labels(path, labels: np.ndarray, study: Study) -> Path:
    """Write the label map (1 = liver, 2 = spleen) as ``.nii.gz`` with the study's geometry.

    uint8, qform and sform set (code 1, scanner), axes i = column, j = row, k = slice:
    the ``mask_liver_and_spleen.nii.gz`` the RADIPOP radiomics pipeline reads. It lines
    up voxel for voxel (up to axis order) with a NIfTI conversion of the same series.
    The write is atomic.
    """
    path = Path(path)
    with atomic_writer(path) as f:
        write_nifti_stream(f, labels, study)
    return path


def read_nifti_labels(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI label map written by :func:`write_nifti_labels`.

    Returns
    -------
    labels : ndarray of uint8 (slices, rows, columns)
    affine : ndarray (4, 4) from (slice, row, column, 1) to LPS, as ``Study.affine``.

    Raises
    ------
    MaskFileError
        Missing, truncated or not NIfTI; not 3-D; values not integers in 0..255.
    """
    path = Path(path)
    if not path.is_file():
        raise MaskFileError(f"label file {path} is missing")
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise MaskFileError(f"{path} is not a readable NIfTI file ({type(exc).__name__}: "
                            f"{exc}); it is damaged or truncated.") from exc
    if data.ndim != 3:
        raise MaskFileError(f"{path} has {data.ndim} dimensions; a label volume has 3")
    if data.dtype.kind not in "iub":
        if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
            raise MaskFileError(f"{path} holds non-integer values; it is not a label map")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise MaskFileError(f"{path} holds values outside 0..255; it is not a label map")
    labels = np.ascontiguousarray(data.astype(np.uint8, copy=False).transpose(2, 1, 0))
    affine = _LPS_TO_RAS @ img.affine @ _SWAP_IK
    return labels, affine
