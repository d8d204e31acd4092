"""NIfTI reader: reorients to the axial DICOM convention and converts RAS to LPS."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    axcodes2ornt,
    apply_orientation,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from ..errors import NotCTError, UnreadableFileError
from ..study import METADATA_KEYS, SliceSource, Study
from ._common import StudyEntry, check_hu_range, check_memory

# Array axes (i, j, k) after reorientation point to patient Left, Posterior, Superior, so
# (slice, row, col) = (k, j, i) is a standard axial DICOM slice stack (LPS, ascending z).
TARGET = axcodes2ornt(("L", "P", "S"))
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# (slice, row, col, 1) -> (i, j, k, 1) of the reoriented array
SRC_TO_IJK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)


def is_nifti(path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names."""
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def load_nifti(path, progress=None) -> Study:
    """Load a 3-D NIfTI CT volume as a Study in the axial DICOM orientation.

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` file holding Hounsfield units (after the header's
        scl_slope / scl_inter scaling).
    progress : callable, optional
        ``progress(done, total)`` per converted slice.
    """
    path = Path(path)
    img, shape3 = _open(path)
    check_memory(shape3[::-1], path)
    try:
        raw = np.asanyarray(img.dataobj.get_unscaled()).reshape(shape3)
    except Exception as exc:
        raise UnreadableFileError(f"{path}: the image data cannot be read ({exc}); the file is "
                                  "probably truncated. Copy or export it again.") from exc
    slope, inter = img.dataobj.slope, img.dataobj.inter
    transform = ornt_transform(io_orientation(img.affine), TARGET)
    data = apply_orientation(raw, transform)  # a view: axes (L, P, S)
    ras = img.affine @ inv_ornt_aff(transform, shape3)
    n = data.shape[2]
    hu = np.empty((n, data.shape[1], data.shape[0]), np.int16)
    if progress is not None:
        progress(0, n)
    for k in range(n):
        values = data[:, :, k].T
        if slope != 1 or inter != 0 or values.dtype.kind == "f":
            values = np.rint(values * float(slope) + float(inter))
        check_hu_range(float(values.min()), float(values.max()), path)
        hu[k] = values
        if progress is not None:
            progress(k + 1, n)
    affine = RAS_TO_LPS @ ras @ SRC_TO_IJK
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return Study(hu=hu, spacing=tuple(float(z) for z in zooms), affine=affine,
                 series_description=path.name, modality="CT",
                 sources=[SliceSource(str(path), None, None)] * n,
                 metadata=dict.fromkeys(METADATA_KEYS), warnings=[], path=path)


def nifti_entry(path) -> StudyEntry | None:
    """Header-only StudyEntry for a NIfTI CT file; None for label maps and unreadable files."""
    try:
        img, shape3 = _open(Path(path))
    except (UnreadableFileError, NotCTError):
        return None
    if img.get_data_dtype().itemsize < 2 and img.dataobj.slope == 1:
        return None  # 8-bit data cannot hold Hounsfield units: a label map
    axial = np.flatnonzero(io_orientation(img.affine)[:, 0] == 2)
    n_slices = shape3[int(axial[0])] if axial.size else shape3[2]
    return StudyEntry(str(path), "nifti", Path(path).name, n_slices, None)


def _open(path):
    """The nibabel image and its 3-D shape; raise for unreadable or non-3-D files."""
    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise UnreadableFileError(f"{path}: not a readable NIfTI file ({exc}); check that the "
                                  "file is complete and really .nii / .nii.gz.") from exc
    shape = img.shape
    if len(shape) < 3 or any(s != 1 for s in shape[3:]):
        raise NotCTError(f"{path}: holds a {len(shape)}-D image of shape {shape}; a CT study is "
                         "one 3-D volume. Extract the CT volume into its own NIfTI file.")
    return img, tuple(int(s) for s in shape[:3])
