"""The NIfTI label-map codec: a label volume with a study's geometry, to and from ``.nii.gz``.

Used by the exports (:mod:`radipop_widgets.export`) and by the session folders
(:mod:`radipop_widgets.persist`), which is why it lives in neither.

Geometry. ``Study.affine`` maps (slice, row, column, 1) to DICOM patient
coordinates (LPS, mm). NIfTI files here store the volume with axes i = column,
j = row, k = slice, and their affine maps (i, j, k, 1) to RAS (= diag(-1, -1, 1)
LPS), as dcm2niix and nibabel expect. The bytes of a C-ordered (slice, row,
column) array are exactly the Fortran-ordered (i, j, k) NIfTI data, so nothing
is copied.

A study read from NIfTI remembers its source grid (``Study.source_grid``); its
exports (:func:`write_nifti_labels`) are written on that grid, with the source's
shape, affine and geometry header, so that image and labels pair voxel for voxel.
Session folders keep the study grid (:func:`write_nifti_stream`).

Reading (:func:`read_nifti_labels`) checks the header (dimensions, data type, the
expected shape, the memory it needs) before a byte of data is inflated, so a small
gzip bomb is refused from its header.

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
from nibabel.orientations import apply_orientation, inv_ornt_aff

from .atomic import atomic_writer
from .errors import MaskFileError, SessionError
from .io._common import available_memory
from .study import SourceGrid, Study

__all__ = ["check_labels", "nifti_affine", "read_nifti_labels", "read_nifti_labels_header",
           "write_nifti_labels", "write_nifti_stream"]

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


_DESCRIPTION = b"radipop-widgets label map"


def _study_grid_image(labels: np.ndarray, study: Study):
    affine = nifti_affine(study)
    img = nib.Nifti1Image(labels.transpose(2, 1, 0), affine, dtype=np.uint8)
    img.set_qform(affine, code=1)  # 1 = scanner coordinates
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = _DESCRIPTION
    return img


def _source_grid_image(labels: np.ndarray, grid: SourceGrid):
    """``labels`` (slice, row, column) on the source grid, with the source's geometry header."""
    lps_ijk = labels.transpose(2, 1, 0)  # the reoriented (L, P, S) array of the loader
    # ``grid.ornt`` takes source axis a to LPS axis t (flipped or not); the inverse takes
    # LPS axis t back to a, with the same flip.
    ornt = np.asarray(grid.ornt, float)
    inverse = np.empty_like(ornt)
    inverse[ornt[:, 0].astype(int), 0] = np.arange(3)
    inverse[ornt[:, 0].astype(int), 1] = ornt[:, 1]
    data = apply_orientation(lps_ijk, inverse)
    if data.shape != tuple(grid.shape):
        raise SessionError(f"labels reoriented to the source grid have shape {data.shape}, "
                           f"the source {tuple(grid.shape)}; the study does not match its "
                           "source file. Reload the study.")
    header = grid.header.copy()
    header.extensions.clear()  # may hold anything, patient data included
    header.set_data_shape(data.shape)
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    for key in ("cal_min", "cal_max", "intent_code"):
        header[key] = 0
    for key in ("intent_name", "aux_file"):
        header[key] = b""
    header["descrip"] = _DESCRIPTION
    klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    return klass(np.ascontiguousarray(data), None, header=header)


def _on_source_grid(study: Study) -> bool:
    """True when ``study`` still has the geometry of the NIfTI grid it was read from (a
    study resampled or re-posed after loading is written on its own grid)."""
    grid = study.source_grid
    if grid is None:
        return False
    try:
        ornt = np.asarray(grid.ornt, float)
        ras = np.asarray(grid.affine, float) @ inv_ornt_aff(ornt, tuple(grid.shape))
        target = np.empty(3, int)
        target[ornt[:, 0].astype(int)] = grid.shape
    except Exception:  # a damaged grid: the study's own geometry is the truth
        return False
    return (tuple(target[::-1]) == tuple(study.shape)
            and np.allclose(_LPS_TO_RAS @ ras @ _SWAP_IK, study.affine, atol=1e-3))


def write_nifti_stream(fileobj, labels: np.ndarray, study: Study, *,
                       source_grid: bool = False) -> None:
    """Write ``labels`` as a gzip-compressed uint8 NIfTI to an open binary file.

    ``source_grid`` True writes a NIfTI study's labels on its source grid (see
    :func:`write_nifti_labels`); False (sessions) on the study grid.
    """
    labels = check_labels(labels, study)
    if source_grid and _on_source_grid(study):
        img = _source_grid_image(labels, study.source_grid)
    else:
        img = _study_grid_image(labels, study)
    with gzip.GzipFile(fileobj=fileobj, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as gz:
        img.to_file_map({"image": nib.FileHolder(fileobj=gz)})


def write_nifti_labels(path, labels: np.ndarray, study: Study) -> Path:
    """Write the label map (1 = liver, 2 = spleen) as ``.nii.gz`` (or ``.nii``) with the
    study's geometry.

    uint8, axes i = column, j = row, k = slice, qform and sform set (code 1, scanner):
    the ``mask_liver_and_spleen.nii.gz`` the RADIPOP radiomics pipeline reads. It lines
    up voxel for voxel (up to axis order) with a NIfTI conversion of the same series.

    A study loaded from NIfTI is written on its source voxel grid instead: the source's
    shape, axis order and directions, affine, qform / sform and their codes, pixdim and
    units (header extensions and the description are not copied), so the labels pair
    voxel for voxel with the image they were drawn on. The write is atomic.
    """
    path = Path(path)
    with atomic_writer(path) as f:
        if path.name.lower().endswith(".nii"):
            labels = check_labels(labels, study)
            img = (_source_grid_image(labels, study.source_grid)
                   if _on_source_grid(study) else _study_grid_image(labels, study))
            img.to_file_map({"image": nib.FileHolder(fileobj=f)})
        else:
            write_nifti_stream(f, labels, study, source_grid=True)
    return path


def read_nifti_labels(path, shape=None) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI label map written by :func:`write_nifti_labels` (on the study grid).

    Parameters
    ----------
    path : path
    shape : tuple (slices, rows, columns), optional
        The shape the labels must have; checked from the header before any data is read.

    Returns
    -------
    labels : ndarray of uint8 (slices, rows, columns)
    affine : ndarray (4, 4) from (slice, row, column, 1) to LPS, as ``Study.affine``.

    Raises
    ------
    MaskFileError
        Missing, truncated or not NIfTI; not 3-D; another ``shape``; a data type that is
        not numbers (RGB, complex); more voxels than memory holds; values not integers
        in 0..255. The header checks come before the data is inflated.
    """
    img, affine = read_nifti_labels_header(path, shape)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise MaskFileError(f"{path} is not a readable NIfTI file ({type(exc).__name__}: "
                            f"{exc}); it is damaged or truncated.") from exc
    data = data.reshape(data.shape[:3])
    if data.dtype.kind not in "iub":
        if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
            raise MaskFileError(f"{path} holds non-integer values; it is not a label map")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise MaskFileError(f"{path} holds values outside 0..255; it is not a label map")
    labels = np.ascontiguousarray(data.astype(np.uint8, copy=False).transpose(2, 1, 0))
    return labels, affine


def read_nifti_labels_header(path, shape=None):
    """The nibabel image (data not read) and the (slice, row, column) -> LPS affine of a
    label map, after the checks of :func:`read_nifti_labels` that need only the header."""
    path = Path(path)
    if not path.is_file():
        raise MaskFileError(f"label file {path} is missing")
    try:
        img = nib.load(path)
        dims = tuple(int(n) for n in img.header.get_data_shape())
        dtype = img.get_data_dtype()
        ras = np.asarray(img.affine, float)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise MaskFileError(f"{path} is not a readable NIfTI file ({type(exc).__name__}: "
                            f"{exc}); it is damaged or truncated.") from exc
    if len(dims) < 3 or any(n != 1 for n in dims[3:]):
        raise MaskFileError(f"{path} has {len(dims)} dimensions {dims}; a label volume has 3")
    found = dims[:3][::-1]  # (slice, row, column)
    if any(n < 0 for n in found):
        raise MaskFileError(f"{path} declares a negative dimension {dims}; it is damaged")
    if shape is not None and found != tuple(int(n) for n in shape):
        raise MaskFileError(f"{path} declares {found} voxels but {tuple(shape)} are expected; "
                            "the label file does not belong here (or is damaged).")
    if dtype.fields is not None or dtype.kind not in "iubf" or dtype.itemsize > 8:
        raise MaskFileError(f"{path} holds {dtype} data; a label map holds integers")
    needed = int(np.prod(found, dtype=object)) * (dtype.itemsize + 1)
    if needed > available_memory():
        raise MaskFileError(f"{path} declares {found} voxels of {dtype}, which need "
                            f"{needed / 2 ** 30:.2f} GiB: more memory than is available. "
                            "It is not the label map of a study that fits in memory.")
    if not np.all(np.isfinite(ras)):
        raise MaskFileError(f"{path} has an affine that is not finite; it is damaged")
    return img, _LPS_TO_RAS @ ras @ _SWAP_IK
