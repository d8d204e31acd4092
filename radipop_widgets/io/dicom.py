"""DICOM series reader.

Headers are read first (``stop_before_pixels``), files are grouped into series,
localizers and non-image objects are set aside, slices are sorted along the slice
normal and checked, and only then is pixel data decoded, slice by slice, straight
into a preallocated int16 volume. A multi-frame (Enhanced CT) file gives one slice per
frame, its geometry and rescale taken from the per-frame or shared functional groups.
Here: the loader and the ordering of slices; the header values are read in
:mod:`.dicom_header`, files found and grouped in :mod:`.dicom_files`, pixels decoded in
:mod:`.dicom_pixels`.

Decisions on real-world quirks:

- No RescaleSlope/RescaleIntercept (nor Modality LUT): stored values are taken as HU
  only if the volume holds values below ``HU_LIKE_MINIMUM`` (air or fat, as every body
  CT does; never the case for unsigned data); otherwise ``NotHUError``. A warning says so.
- Some slices of a series without ImagePositionPatient: refused (their place is
  unknown). No slice with it but all with SliceLocation: placed by SliceLocation along
  the normal (axial if ImageOrientationPatient is absent too), with a warning.
- Two slices at one position: the second is skipped with a warning when its pixel data
  and rescale equal the first's (a copy), else ``DuplicateSliceError``.
- An empty SOPInstanceUID falls back to the file meta MediaStorageSOPInstanceUID.
- Geometry is checked file by file: PixelSpacing two finite positive values up to
  ``MAX_PIXEL_MM``, ImagePositionPatient three finite coordinates, ImageOrientationPatient
  two orthogonal unit vectors. Direction cosines within 1 % of unit length and of a right
  angle (rounded or sloppily written) are normalised, with a warning when they are off by
  more than 0.1 %; anything else is refused (``SpacingError``, ``PositionError``,
  ``OrientationError``), as is text where a number belongs (``HeaderValueError``).
- RescaleSlope 0 or not a number, RescaleIntercept not a number: ``RescaleError``.
- Colour data (SamplesPerPixel > 1, RGB, YBR, PALETTE COLOR): the file is set aside as a
  colour image; a folder of nothing else raises ``ColourImageError``.
- Sub-folders that cannot be read, and symbolic links to folders (not followed), are
  skipped with a warning.
- A deflated file is inflated in a bounded stream first: it must not inflate to more than
  its header declares (``UnreadableFileError``), nor need more memory than there is.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import (
    ColourImageError,
    DuplicateSliceError,
    InconsistentSlicesError,
    MissingSliceError,
    NoImagesError,
)
from ..study import Study, affine_from_geometry
from ._common import check_spacing
from .dicom_files import (
    _choose_series,
    _group_series,
    _list_files,
    _read_headers,
    _skip_summary,
    _skip_warnings,
)
from .dicom_header import _source_text
from .dicom_pixels import _decode, _stored

DUPLICATE_TOLERANCE_MM = 1e-2  # slices closer than this along the normal share a position
GAP_FACTOR = 1.5               # a step larger than this x the median step means a missing slice


def load_dicom(path, series=None, progress=None) -> Study:
    """Load one CT series from a DICOM folder (searched recursively) or a single file.

    Parameters
    ----------
    path : str or Path
        A folder of DICOM files (any names, sub-folders allowed; hidden files and
        folders are ignored) or one DICOM file.
    series : str, optional
        SeriesInstanceUID of the series to load (or the ``"no-uid/..."`` key that
        ``MultipleSeriesError`` lists for a series without UID).
    progress : callable, optional
        ``progress(done, total)`` after each decoded slice.

    Returns
    -------
    Study
    """
    path = Path(path)
    folder_notes = []
    files = [path] if path.is_file() else _list_files(path, folder_notes)
    headers, skipped = _read_headers(files)
    groups = _group_series(headers, skipped)
    if not groups:
        colour = [p for reason, p in skipped if reason.startswith("colour image")]
        summary = "".join("; " + note for note in folder_notes) + _skip_summary(skipped)
        if colour:
            kinds = sorted({reason[len("colour image ("):-1] for reason, _ in skipped
                            if reason.startswith("colour image")})
            raise ColourImageError(
                f"{path}: holds colour images ({', '.join(kinds)}; e.g. {colour[0]}), not CT "
                "in Hounsfield units: a colour map or screenshot cannot be segmented. Point to "
                f"the greyscale CT series ({len(files)} files looked at{summary}).")
        raise NoImagesError(f"{path}: no CT image slices found ({len(files)} files looked at"
                            f"{summary}). Point to the folder or file that holds "
                            "the exported DICOM series (or a .nii/.nii.gz file).")
    key = _choose_series(groups, series, path, skipped)
    slices, spacing, affine, notes = _arrange(groups[key], path, skipped)
    study = _decode(slices, spacing, affine, path, progress)
    study.warnings = folder_notes + _skip_warnings(skipped) + notes + study.warnings
    return study


def _arrange(hs, path, skipped):
    """Sorted, de-duplicated slices, spacing, affine and notes; raise on inconsistent sets."""
    sizes = Counter((h.rows, h.cols) for h in hs)
    if len(sizes) > 1:
        odd = next(h for h in hs if (h.rows, h.cols) != sizes.most_common(1)[0][0])
        raise InconsistentSlicesError(
            f"{path}: slices of different sizes in one series ("
            + ", ".join(f"{r}x{c}: {n} files" for (r, c), n in sizes.items())
            + f"; e.g. {odd.path}). Remove the files that do not belong to the series or "
            "export it again.")
    if any(not np.allclose(h.pixel_spacing, hs[0].pixel_spacing, atol=1e-3) for h in hs):
        raise InconsistentSlicesError(
            f"{path}: slices of one series have different PixelSpacing; remove the files that "
            "do not belong to the series or export it again.")
    notes = []
    normal = np.cross(hs[0].iop[:3], hs[0].iop[3:])
    normal /= np.linalg.norm(normal)
    hs = _placed(hs, normal, path, notes)
    where = np.array([h.ipp @ normal for h in hs])
    order = np.argsort(where, kind="stable")
    slices, where = _drop_copies([hs[i] for i in order], where[order], path, skipped)
    if len(slices) == 1:
        step = 1.0
        notes.append("single slice: the slice spacing is unknown and set to 1 mm")
        slice_direction = normal
    else:
        steps = np.diff(where)
        step = float(np.median(steps))
        if steps.max() > GAP_FACTOR * step:
            i = int(np.argmax(steps))
            raise MissingSliceError(
                f"{path}: a slice is missing between {where[i]:.2f} and {where[i + 1]:.2f} mm "
                f"(gap {steps[i]:.2f} mm, usual step {step:.2f} mm; after {slices[i].path}). "
                "Export the complete series again.")
        if np.abs(steps - step).max() > 0.01 * step + 1e-3:
            notes.append(f"slice steps vary from {steps.min():.3f} to {steps.max():.3f} mm; "
                         f"the volume uses the median step {step:.3f} mm")
        slice_direction = (slices[-1].ipp - slices[0].ipp) / ((len(slices) - 1) * step)
        tilt = np.degrees(np.arccos(np.clip(slice_direction @ normal
                                            / np.linalg.norm(slice_direction), -1, 1)))
        if tilt > 0.5:
            notes.append(f"gantry tilt of {tilt:.1f} degrees: slices are sheared in patient "
                         "space (the affine includes the shear)")
    notes += _oddity_notes(slices)
    first = slices[0]
    spacing = (step, first.pixel_spacing[0], first.pixel_spacing[1])
    check_spacing(spacing, path, "the voxel size (slice step, PixelSpacing)")
    affine = affine_from_geometry(first.ipp, first.iop[:3], first.iop[3:], slice_direction,
                                  spacing)
    return slices, spacing, affine, notes


def _placed(hs, normal, path, notes):
    """``hs`` with positions; SliceLocation stands in when no slice has ImagePositionPatient."""
    missing = [h for h in hs if h.ipp is None]
    if not missing:
        return hs
    if len(missing) < len(hs):
        raise InconsistentSlicesError(
            f"{path}: {len(missing)} of {len(hs)} slices have no ImagePositionPatient (e.g. "
            f"{missing[0].path}), so their place in the volume is unknown. Export the series "
            "again from the scanner or PACS, or remove those files.")
    notes.append("no ImagePositionPatient in the series: slices placed by SliceLocation along "
                 "the slice normal; the in-plane patient position is unknown (set to 0 mm)")
    return [replace(h, ipp=h.slice_location * normal) for h in hs]


def _drop_copies(slices, where, path, skipped):
    """Drop slices that repeat the previous one (same position and pixels); raise otherwise."""
    kept = [0]
    for i in range(1, len(slices)):
        a, b = slices[kept[-1]], slices[i]
        if where[i] - where[kept[-1]] >= DUPLICATE_TOLERANCE_MM:
            kept.append(i)
        elif a.rescale == b.rescale and np.array_equal(_stored(a), _stored(b)):
            skipped.append(("second copy of the same image (same position and pixel data)",
                            _source_text(b)))
        else:
            raise DuplicateSliceError(
                f"{path}: {_source_text(a)} and {_source_text(b)} lie at the same position "
                f"({where[i]:.2f} mm along the slice normal) with different pixel data. The "
                "folder probably holds two series with empty or equal UIDs (or a multi-frame "
                "file with several stacks): keep one series per folder, or remove the "
                "duplicates.")
    return [slices[i] for i in kept], where[kept]


def _oddity_notes(slices) -> list[str]:
    """Warnings about the kept slices: assumed orientation, thickness, shared SOP UIDs."""
    notes = []
    normalised = [h for h in slices if h.iop_note]
    if normalised:
        notes.append(f"ImageOrientationPatient of {len(normalised)} slice(s) is not exactly two "
                     f"orthogonal unit vectors ({normalised[0].iop_note}; e.g. "
                     f"{_source_text(normalised[0])}); normalised before use")
    if any(h.iop_assumed for h in slices):
        notes.append("no ImageOrientationPatient: axial orientation assumed (columns towards "
                     "patient left, rows towards posterior)")
    thicknesses = Counter(h.thickness for h in slices if h.thickness is not None)
    if len(thicknesses) > 1:
        notes.append("SliceThickness varies within the series ("
                     + ", ".join(f"{t:g} mm: {n} slices" for t, n in sorted(thicknesses.items()))
                     + "); the volume follows the slice positions, metadata gives the most "
                     "common thickness")
    files = defaultdict(set)
    for h in slices:
        if h.sop_uid:
            files[h.sop_uid].add(h.path)
    shared = sum(len(paths) for paths in files.values() if len(paths) > 1)
    if shared:
        notes.append(f"{shared} files share their SOPInstanceUID with another file of the "
                     "series (a faulty anonymiser?); a DICOM SEG cannot reference them "
                     "unambiguously")
    return notes
