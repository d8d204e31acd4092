"""NIfTI reader: reorients to the axial DICOM convention and converts RAS to LPS."""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.fileslice import fileslice
from nibabel.openers import ImageOpener
from nibabel.orientations import (
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from ..errors import (
    ColourImageError,
    EmptyVolumeError,
    HeaderValueError,
    NotCTError,
    NotHUError,
    SpacingError,
    StudyError,
    UnreadableFileError,
)
from ..study import METADATA_KEYS, SliceSource, SourceGrid, Study
from ._common import (
    StudyEntry,
    check_affine,
    check_hu_like,
    check_hu_range,
    check_memory,
    check_spacing,
)

# Array axes (i, j, k) after reorientation point to patient Left, Posterior, Superior, so
# (slice, row, col) = (k, j, i) is a standard axial DICOM slice stack (LPS, ascending z).
TARGET = axcodes2ornt(("L", "P", "S"))
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# (slice, row, col, 1) -> (i, j, k, 1) of the reoriented array
SRC_TO_IJK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
SLAB_VOXELS = 1 << 19  # voxels read and scaled at a time (4 MiB as float64)


def is_nifti(path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names."""
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def load_nifti(path, progress=None) -> Study:
    """Load a 3-D NIfTI CT volume as a Study in the axial DICOM orientation.

    The data are read in slabs along the file's last axis (contiguous on disk, also
    when gzipped), scaled, rounded and written straight into the int16 volume, so the
    peak memory is the volume plus one slab.

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` file holding Hounsfield units (after the header's
        scl_slope / scl_inter scaling). A 4-D file with a single volume is accepted.
    progress : callable, optional
        ``progress(done, total)`` after each slab, counting planes along the file's
        last axis.

    The study remembers the source grid (``Study.source_grid``: shape, reorientation and
    header), on which its NIfTI exports are written.

    Raises
    ------
    NotHUError
        8-bit data, or values without air or fat (a label map, MR/PET, CT without intercept).
    ColourImageError
        RGB data.
    EmptyVolumeError, HeaderValueError, GeometryError, StudyTooLargeError
        A zero or negative dimension; an affine that is not finite, has a zero or absurd
        voxel size or axes that do not span space; more voxels than memory holds (all
        checked from the header, before any data is read).
    """
    path = Path(path)
    img, shape3 = _open(path)
    _check_not_8bit(img, path)
    check_memory(shape3[::-1], path)
    check_affine(img.affine, path)
    transform = ornt_transform(io_orientation(img.affine), TARGET)
    ras = img.affine @ inv_ornt_aff(transform, shape3)
    target = np.empty(3, int)  # (L, P, S) shape
    target[transform[:, 0].astype(int)] = shape3
    hu = np.empty(target[::-1], np.int16)
    # ``hu`` seen with the file's axes: undo apply_orientation (transpose, then flips)
    stored_view = hu.transpose(2, 1, 0).transpose(transform[:, 0].astype(int))
    stored_view = np.flip(stored_view, axis=tuple(np.flatnonzero(transform[:, 1] < 0)))
    proxy = img.dataobj
    slope, inter = float(proxy.slope), float(proxy.inter)
    dtype = img.get_data_dtype()
    n = shape3[2]
    per_slab = max(1, SLAB_VOXELS // (shape3[0] * shape3[1]))
    lowest = np.inf
    if progress is not None:
        progress(0, n)
    try:
        with ImageOpener(str(path)) as f:
            for k in range(0, n, per_slab):
                values = fileslice(f, (slice(None), slice(None), slice(k, k + per_slab)),
                                   shape3, dtype, proxy.offset, order="F")
                if slope != 1 or inter != 0 or values.dtype.kind == "f":
                    values = values.astype(np.float64)
                    values *= slope
                    values += inter
                    np.rint(values, out=values)
                lo, hi = float(values.min()), float(values.max())
                check_hu_range(lo, hi, path)
                lowest = min(lowest, lo)
                stored_view[:, :, k:k + per_slab] = values
                if progress is not None:
                    progress(min(k + per_slab, n), n)
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # truncated or damaged data
        raise UnreadableFileError(f"{path}: the image data cannot be read ({exc}); the file is "
                                  "probably truncated. Copy or export it again.") from exc
    check_hu_like(lowest, path, f"is a NIfTI volume of {dtype}",
                  "It looks like a label map, a mask or an MR/PET image: load the CT image "
                  "itself. For CT saved without its intercept, set scl_slope / scl_inter in "
                  "the header (usually 1 and -1024).")
    affine = RAS_TO_LPS @ ras @ SRC_TO_IJK
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    check_spacing(zooms, path)
    grid = SourceGrid(shape=shape3, ornt=np.array(transform, float), header=img.header.copy())
    return Study(hu=hu, spacing=tuple(float(z) for z in zooms), affine=affine,
                 series_description=path.name, modality="CT",
                 sources=[SliceSource(str(path), None, None)] * hu.shape[0],
                 metadata=dict.fromkeys(METADATA_KEYS), warnings=[], path=path,
                 source_grid=grid)


def nifti_entry(path) -> StudyEntry | None:
    """Header-only StudyEntry for a NIfTI CT file; None for label maps and unreadable files."""
    try:
        img, shape3 = _open(Path(path))
        _check_not_8bit(img, path)
        check_affine(img.affine, path)
    except StudyError:
        return None
    axial = np.flatnonzero(io_orientation(img.affine)[:, 0] == 2)
    n_slices = shape3[int(axial[0])] if axial.size else shape3[2]
    return StudyEntry(str(path), "nifti", Path(path).name, n_slices, None)


def _check_not_8bit(img, path) -> None:
    """Raise NotHUError for unscaled 8-bit data, which cannot hold Hounsfield units."""
    dtype = img.get_data_dtype()
    if dtype.itemsize < 2 and img.dataobj.slope == 1 and img.dataobj.inter == 0:
        raise NotHUError(
            f"{path}: holds 8-bit values ({dtype}) without scaling, which cannot be Hounsfield "
            "units: it looks like a label map or mask. Load the CT image itself.")


def _open(path):
    """The nibabel image and its 3-D shape; raise for unreadable, non-3-D, empty or
    non-numeric files and affines that are not finite (header only)."""
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.header.get_data_shape())
        dtype = img.get_data_dtype()
        affine = np.asarray(img.affine, float)
    except Exception as exc:
        raise UnreadableFileError(f"{path}: not a readable NIfTI file ({exc}); check that the "
                                  "file is complete and really .nii / .nii.gz.") from exc
    if any(s < 0 for s in shape):
        raise HeaderValueError(f"{path}: the header declares a negative dimension {shape}; "
                               "the file is damaged. Convert or export the image again.")
    if len(shape) < 3 or any(s != 1 for s in shape[3:]):
        raise NotCTError(f"{path}: holds a {len(shape)}-D image of shape {shape}; a CT study is "
                         "one 3-D volume. Extract the CT volume into its own NIfTI file.")
    if 0 in shape[:3]:
        raise EmptyVolumeError(f"{path}: the image has shape {shape[:3]}: there is no voxel to "
                               "load. Convert or export the image again.")
    if dtype.fields is not None or dtype.kind == "V":
        raise ColourImageError(f"{path}: holds colour (RGB) data ({dtype}), not Hounsfield "
                               "units; load the CT image itself.")
    if dtype.kind == "c":
        raise NotHUError(f"{path}: holds complex values ({dtype}), which are not Hounsfield "
                         "units; load the CT image itself.")
    if dtype.kind not in "iuf":
        raise NotHUError(f"{path}: holds {dtype} values, which are not Hounsfield units; load "
                         "the CT image itself.")
    if int(img.header["sform_code"]) == 0:  # the affine is built from pixdim (qform or none)
        zooms = [float(z) for z in _raw_header(path, img)["pixdim"][1:4]]
        if not all(np.isfinite(zooms)) or 0 in zooms:
            shown = ", ".join(f"{z:g}" for z in zooms)
            raise SpacingError(f"{path}: the voxel size in the header (pixdim ({shown})) is "
                               "zero or not finite, so the geometry is unknown (nibabel would "
                               "take 1 mm); correct the header or convert the image again.")
    del affine  # read once above so that a damaged header fails here, checked by the caller
    return img, shape[:3]


def _raw_header(path, img):
    """The header as stored: nibabel's own copy has zero pixdim values already set to 1."""
    klass = type(img.header)
    try:
        with ImageOpener(str(path)) as f:
            return klass(binaryblock=f.read(klass.sizeof_hdr), check=False)
    except Exception as exc:
        raise UnreadableFileError(f"{path}: the header cannot be read again ({exc}); the file "
                                  "is damaged.") from exc
