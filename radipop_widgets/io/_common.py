"""Helpers shared by the DICOM and NIfTI readers."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import (
    GeometryError,
    HURangeError,
    NotHUError,
    OrientationError,
    SpacingError,
    StudyTooLargeError,
)

#: Environment variable that overrides the memory available for one volume (bytes).
MEMORY_LIMIT_ENV = "RADIPOP_MEMORY_LIMIT"

INT16_MIN, INT16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max
#: Largest accepted in-plane pixel size and slice step (mm): CT pixels are a few tenths of a
#: millimetre to a few millimetres; anything larger is a corrupted header.
MAX_PIXEL_MM = 100.0
MAX_SLICE_MM = 1000.0
#: A CT of the body always holds air or fat below this many HU; label maps, MR, PET and
#: CT stored values without their rescale intercept do not.
HU_LIKE_MINIMUM = -100


@dataclass(frozen=True)
class StudyEntry:
    """One loadable study found by ``scan_studies``.

    Attributes
    ----------
    path : str
        Folder (DICOM) or file (NIfTI) to pass to ``load_study``.
    kind : str
        ``"dicom"`` or ``"nifti"``.
    description : str
        Series description (DICOM) or file name (NIfTI).
    n_slices : int
        Number of axial slices.
    series_uid : str or None
        The value to pass as ``series=`` to ``load_study``: the SeriesInstanceUID, or a
        ``"no-uid/..."`` key for a series whose UID is empty; None for NIfTI.
    """

    path: str
    kind: str
    description: str
    n_slices: int
    series_uid: str | None = None


def available_memory() -> int:
    """Bytes of memory a new volume may use.

    ``$RADIPOP_MEMORY_LIMIT`` (bytes) when set, else MemAvailable from /proc/meminfo,
    else the free physical pages reported by ``os.sysconf``.
    """
    override = os.environ.get(MEMORY_LIMIT_ENV)
    if override:
        try:
            return int(float(override))
        except ValueError:
            raise ValueError(f"${MEMORY_LIMIT_ENV}={override!r} is not a number of bytes; "
                             "set it to e.g. 8e9 or unset it.") from None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(shape, source) -> None:
    """Raise StudyTooLargeError when an int16 volume of ``shape`` would not fit in memory.

    The size is computed with Python integers, so a header claiming 2**62 voxels cannot
    wrap the product around to a small number.

    >>> check_memory((2 ** 62, 4, 1), "huge.nii")
    Traceback (most recent call last):
    radipop_widgets.errors.StudyTooLargeError: huge.nii: the volume (4611686018427387904, 4, 1) needs ...
    """
    needed = math.prod(int(s) for s in shape) * 2
    available = available_memory()
    if needed > available:
        raise StudyTooLargeError(
            f"{source}: the volume {tuple(int(s) for s in shape)} needs {needed / 2**30:.2f} GiB "
            f"as int16 but only {available / 2**30:.2f} GiB of memory is available. Close other "
            "programs, use a machine with more memory, or load a thinner series (fewer slices); "
            f"${MEMORY_LIMIT_ENV} (bytes) overrides the limit.")


def check_hu_range(lo, hi, source) -> None:
    """Raise HURangeError when HU values ``lo..hi`` do not fit in int16."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise HURangeError(f"{source}: the image holds NaN or infinite values, which are not "
                           "Hounsfield units; check that the file is a CT image.")
    if lo < INT16_MIN or hi > INT16_MAX:
        raise HURangeError(
            f"{source}: Hounsfield units {lo:g}..{hi:g} do not fit in int16 "
            f"({INT16_MIN}..{INT16_MAX}); the rescale slope/intercept (or NIfTI scaling) is "
            "probably wrong. Fix the header in the exporting software and export again.")


def check_hu_like(lowest, source, what, fix) -> None:
    """Raise NotHUError when the lowest value ``lowest`` is not below ``HU_LIKE_MINIMUM``.

    ``what`` says why the values are in doubt, ``fix`` what the user can do.
    """
    if lowest >= HU_LIKE_MINIMUM:
        raise NotHUError(
            f"{source}: {what}, and its values (lowest {lowest:g}) do not look like Hounsfield "
            f"units: a CT of the body always holds air or fat below {HU_LIKE_MINIMUM} HU. {fix}")


def check_spacing(spacing, source, what="the voxel size", limits=None) -> None:
    """Raise SpacingError unless ``spacing`` is finite, positive and plausible.

    ``limits`` are the largest values accepted, one per value; by default (slice, row,
    column) = (``MAX_SLICE_MM``, ``MAX_PIXEL_MM``, ``MAX_PIXEL_MM``).

    >>> check_spacing((2.5, 0.7, 0.7), "ct")
    >>> check_spacing((0.0, 0.0), "ct", "PixelSpacing", limits=(100, 100))
    Traceback (most recent call last):
    radipop_widgets.errors.SpacingError: ct: PixelSpacing (0, 0) mm must be positive; ...
    """
    values = tuple(float(v) for v in spacing)
    limits = (MAX_SLICE_MM, MAX_PIXEL_MM, MAX_PIXEL_MM) if limits is None else tuple(limits)
    shown = "(" + ", ".join(f"{v:g}" for v in values) + ")"
    fix = ("the header is corrupted: export the series again, or correct the value with a "
           "DICOM / NIfTI editor.")
    if not all(math.isfinite(v) for v in values):
        raise SpacingError(f"{source}: {what} {shown} mm is not finite; {fix}")
    if min(values) <= 0:
        raise SpacingError(f"{source}: {what} {shown} mm must be positive; {fix}")
    if any(v > limit for v, limit in zip(values, limits)):
        raise SpacingError(f"{source}: {what} {shown} mm is implausibly large for CT (up to "
                           "(" + ", ".join(f"{v:g}" for v in limits) + f") mm is accepted); {fix}")


def check_affine(affine, source) -> None:
    """Raise GeometryError for an affine that is not finite, SpacingError for a zero or
    implausible voxel size, OrientationError when its axes do not span space."""
    affine = np.asarray(affine, float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise GeometryError(f"{source}: the affine (voxel to patient coordinates) is not finite "
                            "(NaN or infinite values in the header): the geometry is unknown. "
                            "Correct the header (qform / sform) or convert the image again.")
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if np.any(zooms == 0):
        raise SpacingError(f"{source}: an axis of the affine has length zero (voxel size "
                           f"{tuple(float(z) for z in zooms)} mm); correct the header.")
    if zooms.max() > MAX_SLICE_MM:
        raise SpacingError(f"{source}: the affine gives a voxel size of "
                           f"{tuple(float(z) for z in zooms)} mm, implausibly large for CT; "
                           "correct the header (qform / sform).")
    directions = affine[:3, :3] / zooms
    if abs(np.linalg.det(directions)) < 1e-3:
        raise OrientationError(f"{source}: the axes of the affine do not span space (two of "
                               "them are parallel); correct the header (qform / sform).")
