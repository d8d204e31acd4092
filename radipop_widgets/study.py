"""The loaded CT volume with its geometry and identifiers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METADATA_KEYS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientAge",
    "PatientSex",
    "SliceThickness",
    "StudyID",
    "ContentDate",
)


@dataclass(frozen=True)
class SliceSource:
    """Where one slice came from; ``frame`` is the 1-based frame of a multi-frame file."""

    path: str | None = None
    sop_instance_uid: str | None = None
    instance_number: int | None = None
    frame: int | None = None


@dataclass(frozen=True, eq=False)
class SourceGrid:
    """The voxel grid a NIfTI study was read from, so that its labels can be written back on it.

    Attributes
    ----------
    shape : tuple of int
        The source array's (i, j, k) shape.
    ornt : ndarray (3, 2)
        nibabel orientation transform from the source array to the study's (L, P, S)
        (i, j, k) array (``nibabel.orientations.ornt_transform``); the study array is the
        source array so reoriented, then transposed to (k, j, i) = (slice, row, column).
    header : nibabel header
        A copy of the source header (NIfTI-1 or NIfTI-2): its affine, qform, sform, codes,
        pixdim and units are those of the labels written on this grid.
    """

    shape: tuple[int, int, int]
    ornt: np.ndarray
    header: object = field(repr=False)

    @property
    def affine(self) -> np.ndarray:
        """The source's RAS affine of (i, j, k, 1), as nibabel reads it."""
        return self.header.get_best_affine()


@dataclass
class Study:
    """A CT volume in Hounsfield units with the geometry every mask inherits.

    Attributes
    ----------
    hu : ndarray of int16, shape (slices, rows, columns)
        Hounsfield units. Rows and columns as pydicom's ``pixel_array``; slices
        ascending along the slice normal (towards the head for axial CT).
    spacing : tuple of float
        (slice, row, column) spacing in mm. The slice spacing is the step between
        slice positions, not SliceThickness.
    affine : ndarray (4, 4)
        Maps (slice, row, column, 1) indices to DICOM patient coordinates (LPS, mm).
    series_uid, study_uid, frame_of_reference_uid : str or None
        DICOM identifiers; None when absent or empty in the files.
    sources : list of SliceSource
        Per slice, in volume order.
    metadata : dict
        The keys of ``METADATA_KEYS``; None when absent. Never log these.
    warnings : list of str
        Files skipped and other things the user should know.
    source_grid : SourceGrid or None
        For a study read from NIfTI: the source file's voxel grid and header, on which
        the NIfTI exports are written (None for DICOM: exports follow ``affine``).
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    series_uid: str | None = None
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series_description: str = ""
    modality: str = "CT"
    sources: list[SliceSource] = field(default_factory=list)
    # repr=False: a logged or printed Study (tracebacks, debug logs) shows no patient data
    metadata: dict = field(default_factory=lambda: dict.fromkeys(METADATA_KEYS), repr=False)
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None
    source_grid: SourceGrid | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)

    @property
    def n_slices(self) -> int:
        return int(self.hu.shape[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "study"


def affine_from_geometry(origin, row_direction, column_direction, slice_direction,
                         spacing) -> np.ndarray:
    """Affine from (slice, row, column) indices to patient coordinates.

    ``row_direction`` is the unit vector along which the column index grows
    (DICOM ImageOrientationPatient[0:3]); ``column_direction`` the one along
    which the row index grows (ImageOrientationPatient[3:6]).

    Examples
    --------
    An axial slice 2.5 mm apart, pixels of 0.8 (rows) x 0.7 (columns) mm: voxel
    (slice 2, row 10, column 20) lies 14 mm right-to-left, 8 mm anterior-to-posterior
    and 5 mm up from the origin.

    >>> affine = affine_from_geometry((-100, -120, -50), (1, 0, 0), (0, 1, 0), (0, 0, 1),
    ...                               (2.5, 0.8, 0.7))
    >>> (affine @ [2, 10, 20, 1])[:3]
    array([ -86., -112.,  -45.])
    """
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(slice_direction, float) * spacing[0]
    affine[:3, 1] = np.asarray(column_direction, float) * spacing[1]
    affine[:3, 2] = np.asarray(row_direction, float) * spacing[2]
    affine[:3, 3] = np.asarray(origin, float)
    return affine
