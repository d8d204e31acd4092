"""Helpers shared by the DICOM and NIfTI readers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import HURangeError, NotHUError, StudyTooLargeError

#: Environment variable that overrides the memory available for one volume (bytes).
MEMORY_LIMIT_ENV = "RADIPOP_MEMORY_LIMIT"

INT16_MIN, INT16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max
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
    """Raise StudyTooLargeError when an int16 volume of ``shape`` would not fit in memory."""
    needed = int(np.prod(shape, dtype=np.int64)) * 2
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
