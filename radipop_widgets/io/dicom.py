"""DICOM series reader.

Headers are read first (``stop_before_pixels``), files are grouped into series,
localizers and non-image objects are set aside, slices are sorted along the slice
normal and checked, and only then is pixel data decoded, slice by slice, straight
into a preallocated int16 volume. A multi-frame (Enhanced CT) file gives one slice per
frame, its geometry and rescale taken from the per-frame or shared functional groups.

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
"""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, get_decoder, iter_pixels
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import (
    DecodeError,
    DuplicateSliceError,
    InconsistentSlicesError,
    MissingSliceError,
    MultipleSeriesError,
    NoImagesError,
    NotCTError,
    SeriesNotFoundError,
    StudyError,
    UnreadableFileError,
)
from ..study import METADATA_KEYS, SliceSource, Study, affine_from_geometry
from ._common import StudyEntry, check_hu_like, check_hu_range, check_memory

NON_IMAGE_MODALITIES = {"SEG", "SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "PR", "KO", "REG",
                        "DOC", "PLAN", "RWV", "FID", "AU", "ECG"}
CT_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",
                  "1.2.840.10008.5.1.4.1.1.2.2"}
ORIENTATION_TOLERANCE = 1e-3   # per component of ImageOrientationPatient
DUPLICATE_TOLERANCE_MM = 1e-2  # slices closer than this along the normal share a position
GAP_FACTOR = 1.5               # a step larger than this x the median step means a missing slice
TRUNCATED_WARNING = "End of file reached"
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
AXIAL = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


@dataclass
class _Header:
    """What the header pass keeps of one image file."""

    path: str
    key: str            # series selection key: the SeriesInstanceUID or "no-uid/..."
    series_uid: str
    description: str
    modality: str
    sop_class: str
    sop_uid: str
    instance_number: int | None
    iop: np.ndarray     # AXIAL when the file has none (``iop_assumed``)
    ipp: np.ndarray | None
    slice_location: float | None
    rows: int
    cols: int
    pixel_spacing: tuple[float, float]
    thickness: float | None
    rescale: tuple[float, float] | None  # (slope, intercept); None when absent
    transfer_syntax: str
    localizer: bool
    forced: bool        # read without the DICM prefix / file meta header
    frame: int | None = None  # 0-based frame of a multi-frame file
    iop_assumed: bool = False


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
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    headers, skipped = _read_headers(files)
    groups = _group_series(headers, skipped)
    if not groups:
        raise NoImagesError(f"{path}: no CT image slices found ({len(files)} files looked at"
                            f"{_skip_summary(skipped)}). Point to the folder or file that holds "
                            "the exported DICOM series (or a .nii/.nii.gz file).")
    key = _choose_series(groups, series, path, skipped)
    slices, spacing, affine, notes = _arrange(groups[key], path, skipped)
    study = _decode(slices, spacing, affine, path, progress)
    study.warnings = _skip_warnings(skipped) + notes + study.warnings
    return study


def scan_dicom_folder(folder) -> list[StudyEntry]:
    """Header-only listing of the CT series whose files lie directly in ``folder``."""
    folder = Path(folder)
    headers, skipped = [], []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            h, s = _read_headers([f])
        except UnreadableFileError:
            continue
        headers += h
        skipped += s
    groups = _group_series(headers, skipped)
    return [StudyEntry(str(folder), "dicom", hs[0].description or "(no description)",
                       len(hs), key)
            for key, hs in groups.items() if _is_ct(hs[0])]


# --- header pass -----------------------------------------------------------------------------

def _read_headers(files):
    """Headers of the image slices (one per frame), and ``(reason, path)`` of files set aside."""
    headers, skipped = [], []
    for f in files:
        read = _read_header(f)
        if read is None:
            skipped.append(("not a DICOM file", str(f)))
            continue
        ds, has_pixels, forced = read
        reason = _not_a_slice(ds, has_pixels, f)
        if reason:
            skipped.append((reason, str(f)))
        elif "PerFrameFunctionalGroupsSequence" in ds:
            frames = _frame_headers(ds, f, forced)
            if frames:
                headers += frames
            else:
                skipped.append(("multi-frame image without position, orientation or pixel "
                                "spacing for every frame", str(f)))
        else:
            headers.append(_header(ds, f, forced))
    return headers, skipped


def _read_header(path):
    """``(dataset, has_pixel_data, forced)`` without pixels, or None when not DICOM."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
            if head[128:132] == b"DICM":
                force = False
            elif len(head) >= 8 and int.from_bytes(head[:2], "little") in (0x0002, 0x0008):
                force = True  # a dataset written without preamble / file meta
            else:
                return None
            fp.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=force)
            syntax = ds.file_meta.get("TransferSyntaxUID")
            # a deflated file is inflated whole while reading, so the position says nothing
            has_pixels = (fp.tell() < os.fstat(fp.fileno()).st_size
                          or syntax == DeflatedExplicitVRLittleEndian)
        if not force and not (_sop_class(ds) and syntax and UID(syntax).is_valid):
            raise ValueError("no valid SOP class or transfer syntax in the header")
    except Exception as exc:  # pydicom raises many types on damaged files
        raise UnreadableFileError(
            f"{path}: cannot be read as DICOM ({type(exc).__name__}: {str(exc)[:200]}). The "
            "file is damaged or truncated; export it again or remove it from the folder.") from exc
    return ds, has_pixels, force


def _not_a_slice(ds, has_pixels, path):
    """Why ``ds`` is not a greyscale image with geometry (None if it is one)."""
    sop_class = _sop_class(ds)
    if sop_class == DICOMDIR_CLASS:
        return "DICOMDIR (an index; the images it lists are read from the folder itself)"
    modality = str(ds.get("Modality") or "").upper()
    claims_image = "Image Storage" in UID(sop_class).name
    if modality in NON_IMAGE_MODALITIES or not (claims_image or "Rows" in ds):
        return "not an image (" + (modality or UID(sop_class).name or "unknown object") + ")"
    if not has_pixels or "Rows" not in ds or "Columns" not in ds:
        raise UnreadableFileError(
            f"{path}: the file ends before its pixel data (truncated copy?). Copy or export "
            "the file again, or remove it from the folder.")
    if int(ds.get("SamplesPerPixel") or 1) != 1:
        return "colour image (secondary capture or screenshot)"
    if "PerFrameFunctionalGroupsSequence" in ds:
        return None  # Enhanced multi-frame: geometry per frame, checked by _frame_headers
    if int(ds.get("NumberOfFrames") or 1) > 1:
        return "multi-frame image without per-frame functional groups (no slice geometry)"
    if not ds.get("PixelSpacing") or (not ds.get("ImagePositionPatient")
                                      and _float_or_none(ds.get("SliceLocation")) is None):
        return "image without position (ImagePositionPatient or SliceLocation) or pixel spacing"
    return None


def _header(ds, path, forced) -> _Header:
    """The header of a single-frame slice."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    iop = ds.get("ImageOrientationPatient")
    ipp = ds.get("ImagePositionPatient")
    return _Header(
        path=str(path), **_header_fields(ds),
        iop=np.asarray(iop, float) if iop else AXIAL, iop_assumed=not iop,
        ipp=np.asarray(ipp, float) if ipp else None,
        slice_location=_float_or_none(ds.get("SliceLocation")),
        pixel_spacing=(float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
        thickness=_float_or_none(ds.get("SliceThickness")), rescale=_rescale(ds),
        localizer=any("LOCALIZER" in v for v in image_type), forced=forced)


def _frame_headers(ds, path, forced) -> list[_Header]:
    """One header per frame of an Enhanced (multi-frame) image; [] when geometry is missing."""
    first = _header_fields(ds)
    headers = []
    for i in range(int(ds.get("NumberOfFrames") or 1)):
        position = _frame_item(ds, i, "PlanePositionSequence")
        orientation = _frame_item(ds, i, "PlaneOrientationSequence")
        measures = _frame_item(ds, i, "PixelMeasuresSequence")
        if not (position and position.get("ImagePositionPatient") and orientation
                and orientation.get("ImageOrientationPatient") and measures
                and measures.get("PixelSpacing")):
            return []
        frame_type = _frame_item(ds, i, "CTImageFrameTypeSequence")
        image_type = (frame_type.get("FrameType") if frame_type else None) or \
            ds.get("ImageType") or []
        headers.append(_Header(
            path=str(path), **first, frame=i,
            iop=np.asarray(orientation.ImageOrientationPatient, float),
            ipp=np.asarray(position.ImagePositionPatient, float), slice_location=None,
            pixel_spacing=(float(measures.PixelSpacing[0]), float(measures.PixelSpacing[1])),
            thickness=_float_or_none(measures.get("SliceThickness")),
            rescale=_rescale(_frame_item(ds, i, "PixelValueTransformationSequence") or ds),
            localizer=any("LOCALIZER" in str(v).upper() for v in image_type), forced=forced))
    return headers


def _header_fields(ds) -> dict:
    """The _Header fields shared by all frames of a multi-frame file."""
    uid = str(ds.get("SeriesInstanceUID") or "").strip()
    number = str(ds.get("SeriesNumber") or "").strip()
    return dict(
        key=uid or ("no-uid/series-" + number if number else "no-uid"), series_uid=uid,
        description=str(ds.get("SeriesDescription") or ""),
        modality=str(ds.get("Modality") or "").upper(), sop_class=_sop_class(ds),
        sop_uid=_sop_uid(ds), instance_number=_int_or_none(ds.get("InstanceNumber")),
        rows=int(ds.Rows), cols=int(ds.Columns),
        transfer_syntax=str(getattr(ds.get("file_meta"), "TransferSyntaxUID", "") or ""))


def _frame_item(ds, i, sequence):
    """First item of functional group ``sequence`` for frame ``i``: per-frame, else shared."""
    for groups, index in ((ds.get("PerFrameFunctionalGroupsSequence"), i),
                          (ds.get("SharedFunctionalGroupsSequence"), 0)):
        if groups and index < len(groups) and groups[index].get(sequence):
            return groups[index][sequence][0]
    return None


def _rescale(item):
    """``(slope, intercept)`` of ``item``; None when it has neither these nor a Modality LUT."""
    if item.get("ModalityLUTSequence"):
        return (1.0, 0.0)  # unused: _store_hu applies the LUT
    slope = _float_or_none(item.get("RescaleSlope"))
    intercept = _float_or_none(item.get("RescaleIntercept"))
    if slope is None and intercept is None:
        return None
    return (slope or 1.0, intercept or 0.0)


def _sop_uid(ds) -> str:
    """SOPInstanceUID, or the file meta MediaStorageSOPInstanceUID when it is empty."""
    meta = ds.get("file_meta")
    return str(ds.get("SOPInstanceUID") or (meta.get("MediaStorageSOPInstanceUID")
                                            if meta else "") or "").strip()


def _sop_class(ds) -> str:
    """SOP class from the file meta header (complete even in a truncated file), else dataset."""
    meta = ds.get("file_meta")
    return str((meta.get("MediaStorageSOPClassUID") if meta else "") or ds.get("SOPClassUID")
               or "")


def _text_or_none(value):
    text = "" if value is None else str(value).strip()
    return text or None


def _float_or_none(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _skip_warnings(skipped) -> list[str]:
    """One line per reason a file was set aside (a few example paths each)."""
    by_reason = defaultdict(list)
    for reason, path in skipped:
        by_reason[reason].append(path)
    lines = []
    for reason, paths in by_reason.items():
        examples = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
        lines.append(f"{len(paths)} file(s) skipped, {reason}: {examples}")
    return lines


def _skip_summary(skipped) -> str:
    return "".join("; " + line for line in _skip_warnings(skipped))


# --- series choice ---------------------------------------------------------------------------

def _group_series(headers, skipped):
    """Series key -> its slices of the majority orientation; localizers go to ``skipped``."""
    by_key = defaultdict(list)
    for h in headers:
        by_key[h.key].append(h)
    groups = {}
    for key, hs in by_key.items():
        common = Counter(tuple(np.round(h.iop, 3)) for h in hs if not h.localizer)
        ref = np.array(common.most_common(1)[0][0]) if common else None
        kept = []
        for h in hs:
            if ref is None or h.localizer or np.abs(h.iop - ref).max() > ORIENTATION_TOLERANCE:
                skipped.append(("localizer or other orientation than the series", h.path))
            else:
                kept.append(h)
        if kept:
            groups[key] = kept
    return groups


def _is_ct(h) -> bool:
    return h.modality == "CT" or (not h.modality and h.sop_class in CT_SOP_CLASSES)


def _series_summary(key, hs) -> dict:
    h = hs[0]
    return {"series": key, "uid": h.series_uid or None, "description": h.description,
            "modality": h.modality or "?", "n_slices": len(hs)}


def _series_lines(groups) -> str:
    return "\n".join(f"  series={s['series']!r}: {s['description'] or '(no description)'!r}, "
                     f"{s['modality']}, {s['n_slices']} slices"
                     for s in (_series_summary(k, hs) for k, hs in groups.items()))


def _choose_series(groups, series, path, skipped) -> str:
    if series is not None:
        if series not in groups:
            raise SeriesNotFoundError(
                f"{path}: no series {series!r} here. Pass one of these as series=:\n"
                + _series_lines(groups))
        key = series
    elif len(groups) == 1:
        key = next(iter(groups))
    else:
        ct = [k for k, hs in groups.items() if _is_ct(hs[0])]
        if len(ct) > 1:
            raise MultipleSeriesError(
                f"{path}: holds {len(groups)} series; choose one by passing its UID as "
                f"series= to load_study:\n" + _series_lines(groups),
                series=[_series_summary(k, hs) for k, hs in groups.items()])
        key = ct[0] if ct else next(iter(groups))
        for other, hs in groups.items():
            if other != key:
                skipped += [(f"other series ({hs[0].modality or '?'})", h.path) for h in hs]
    h = groups[key][0]
    if not _is_ct(h):
        raise NotCTError(
            f"{path}: series {key!r} is {h.modality or 'of unknown modality'}, not CT; only CT "
            "in Hounsfield units can be segmented. Load a CT series (pass series= to choose "
            "one):\n" + _series_lines(groups))
    return key


# --- ordering and geometry -------------------------------------------------------------------

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


def _source_text(h) -> str:
    return h.path if h.frame is None else f"{h.path} (frame {h.frame + 1})"


# --- pixel pass ------------------------------------------------------------------------------

def _decode(slices, spacing, affine, path, progress) -> Study:
    n, rows, cols = len(slices), slices[0].rows, slices[0].cols
    check_memory((n, rows, cols), path)
    for ts in sorted({h.transfer_syntax for h in slices} - {""}):
        _check_decoder(ts, path)
    hu = np.empty((n, rows, cols), np.int16)
    z_of = {(h.path, h.frame): z for z, h in enumerate(slices)}
    by_file = defaultdict(list)  # in order of first slice: the first file holds slice 0
    for h in slices:
        by_file[h.path].append(h)
    inverted, metadata, done = False, None, 0
    if progress is not None:
        progress(0, n)
    for hs in by_file.values():
        for h, ds, arr in _file_pixels(hs):
            if arr.shape != (rows, cols):
                raise InconsistentSlicesError(
                    f"{h.path}: pixel data is {arr.shape}, the header says {(rows, cols)}; "
                    "the file is damaged: export the series again or move the file out of the "
                    "folder.")
            inverted |= _store_hu(arr, ds, h.rescale, hu[z_of[h.path, h.frame]], h.path)
            if metadata is None:
                metadata = {k: _text_or_none(ds.get(k)) for k in METADATA_KEYS}
                study_uid = _text_or_none(ds.get("StudyInstanceUID"))
                frame_uid = _text_or_none(ds.get("FrameOfReferenceUID"))
            done += 1
            if progress is not None:
                progress(done, n)
    thicknesses = Counter(h.thickness for h in slices if h.thickness is not None)
    metadata["SliceThickness"] = (f"{thicknesses.most_common(1)[0][0]:g}" if thicknesses
                                  else None)
    notes = ["MONOCHROME1 pixel data inverted (v -> max - v within BitsStored) before "
             "rescaling"] if inverted else []
    if any(h.rescale is None for h in slices):
        lowest = int(hu.min())
        check_hu_like(lowest, path, "has no RescaleSlope/RescaleIntercept (nor Modality LUT)",
                      "Export the series again with its rescale values (CT usually has slope 1 "
                      "and intercept -1024), or add them with a DICOM editor.")
        notes.append("no RescaleSlope/RescaleIntercept: stored values taken as Hounsfield "
                     f"units (they reach {lowest} HU, as air or fat do)")
    return Study(
        hu=hu, spacing=tuple(float(s) for s in spacing), affine=affine,
        series_uid=slices[0].series_uid or None,
        study_uid=study_uid, frame_of_reference_uid=frame_uid,
        series_description=slices[0].description, modality=slices[0].modality or "CT",
        sources=[SliceSource(h.path, h.sop_uid or None, h.instance_number,
                             None if h.frame is None else h.frame + 1) for h in slices],
        metadata=metadata,
        warnings=notes, path=path)


def _check_decoder(ts, path):
    uid = UID(ts)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as exc:
        raise DecodeError(
            f"{path}: pixel data uses transfer syntax {uid.name} ({uid}), which pydicom cannot "
            "decode. Convert the series to an uncompressed transfer syntax (e.g. "
            "`gdcmconv --raw` or `dcmdjpeg`) and load it again.") from exc
    if not decoder.is_available:
        raise DecodeError(
            f"{path}: pixel data uses {uid.name} and no decoder for it is installed here. "
            "Install one of: " + "; ".join(decoder.missing_dependencies)
            + " (e.g. `pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg pyjpegls`).")


def _file_pixels(hs):
    """Yield ``(header, dataset, stored values)`` for the slices ``hs`` of one file."""
    h = hs[0]
    if h.frame is None:
        yield (h, *_read_pixels(h))
        return
    hs = sorted(hs, key=lambda h: h.frame)
    try:
        ds = pydicom.dcmread(h.path, stop_before_pixels=True, force=h.forced)
        frames = iter_pixels(h.path, indices=[h.frame for h in hs])
        for h, arr in zip(hs, frames, strict=True):
            yield h, ds, arr
    except StudyError:
        raise
    except Exception as exc:
        raise _pixel_error(h, exc) from exc


def _stored(h):
    """The stored values of one slice (for comparing copies)."""
    return next(_file_pixels([h]))[2]


def _read_pixels(h):
    """The full dataset of a single-frame slice and its stored pixel values."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(h.path, force=h.forced)
            if "TransferSyntaxUID" not in ds.file_meta:  # no meta header: use what was read
                implicit, little = ds.original_encoding
                ds.file_meta.TransferSyntaxUID = (
                    ImplicitVRLittleEndian if implicit else
                    ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        except Exception as exc:
            raise UnreadableFileError(f"{h.path}: cannot be read as DICOM ({exc}); export the "
                                      "file again or remove it from the folder.") from exc
        truncated = any(TRUNCATED_WARNING in str(w.message) for w in caught)
        if truncated or "PixelData" not in ds:
            raise UnreadableFileError(f"{h.path}: the pixel data is incomplete (truncated "
                                      "file?); copy or export the file again.")
        try:
            arr = ds.pixel_array
        except Exception as exc:
            raise _pixel_error(h, exc) from exc
    return ds, arr


def _pixel_error(h, exc) -> StudyError:
    """The error for pixel data that cannot be read or decoded."""
    if not (h.transfer_syntax and UID(h.transfer_syntax).is_compressed):
        return UnreadableFileError(
            f"{h.path}: the pixel data cannot be read ({exc}); the file is probably "
            "truncated or its header is wrong. Export the series again, or move this file "
            "out of the folder to load the rest (a missing slice will then be reported).")
    return DecodeError(
        f"{h.path}: the {UID(h.transfer_syntax).name} pixel data cannot be decoded "
        f"({type(exc).__name__}: {exc}); the file may be damaged. Export the series "
        "again, uncompressed if possible.")


def _store_hu(arr, ds, rescale, out, source) -> bool:
    """Write the Hounsfield units of stored values ``arr`` into int16 ``out``.

    Same values as pydicom's ``apply_modality_lut`` (rounded to integers) with the
    slice's ``rescale`` (slope, intercept; identity when None); MONOCHROME1 stored
    values are inverted within the BitsStored range first. Returns True when the slice
    was MONOCHROME1.
    """
    inverted = str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    if inverted:
        bits = int(ds.get("BitsStored") or arr.dtype.itemsize * 8)
        top = -1 if int(ds.get("PixelRepresentation") or 0) else (1 << bits) - 1
        arr = top - arr.astype(np.int32)
    if "ModalityLUTSequence" in ds:
        values = np.rint(apply_modality_lut(arr, ds))
        check_hu_range(values.min(), values.max(), source)
        out[...] = values
        return inverted
    slope, intercept = rescale or (1.0, 0.0)
    ends = (float(arr.min()) * slope + intercept, float(arr.max()) * slope + intercept)
    check_hu_range(min(ends), max(ends), source)
    if slope == 1 and intercept.is_integer():
        np.add(arr, np.int32(intercept), out=out, casting="unsafe")
    else:
        values = arr.astype(np.float64)
        values *= slope
        values += intercept
        np.rint(values, out=values)
        out[...] = values
    return inverted
