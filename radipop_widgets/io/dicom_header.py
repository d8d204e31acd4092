"""DICOM header values of one file: the checks of its geometry (pixel spacing,
orientation, position) and rescale, and the header the loader keeps per slice or frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.multival import MultiValue
from pydicom.uid import UID

from ..errors import (
    HeaderValueError,
    OrientationError,
    PositionError,
    RescaleError,
    SpacingError,
    UnreadableFileError,
)
from ._common import MAX_PIXEL_MM, check_spacing

NON_IMAGE_MODALITIES = {"SEG", "SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "PR", "KO", "REG",
                        "DOC", "PLAN", "RWV", "FID", "AU", "ECG"}
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
AXIAL = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
UNIT_TOLERANCE = 0.01      # direction cosines this close to unit and orthogonal are normalised
UNIT_WARNING = 1e-3        # ... with a warning when they are off by more than this
MAX_POSITION_MM = 1e6      # ImagePositionPatient farther than 1 km from the origin is corrupt
GREYSCALE = ("", "MONOCHROME1", "MONOCHROME2")


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
    iop_note: str | None = None  # how the orientation was normalised, if it was noticeably


def _not_a_slice(ds, has_pixels, path):
    """Why ``ds`` is not a greyscale image with geometry (None if it is one)."""
    sop_class = _sop_class(ds)
    if sop_class == DICOMDIR_CLASS:
        return "DICOMDIR (an index; the images it lists are read from the folder itself)"
    modality = str(_get(ds, "Modality") or "").upper()
    claims_image = "Image Storage" in UID(sop_class).name
    if modality in NON_IMAGE_MODALITIES or not (claims_image or "Rows" in ds):
        return "not an image (" + (modality or UID(sop_class).name or "unknown object") + ")"
    if not has_pixels or "Rows" not in ds or "Columns" not in ds:
        raise UnreadableFileError(
            f"{path}: the file ends before its pixel data (truncated copy?). Copy or export "
            "the file again, or remove it from the folder.")
    samples = _whole(ds, "SamplesPerPixel", path, default=1)
    photometric = str(_get(ds, "PhotometricInterpretation") or "").strip().upper()
    if samples != 1 or photometric not in GREYSCALE:
        return f"colour image ({photometric or f'{samples} samples per pixel'})"
    if "PerFrameFunctionalGroupsSequence" in ds:
        return None  # Enhanced multi-frame: geometry per frame, checked by _frame_headers
    if _whole(ds, "NumberOfFrames", path, default=1) > 1:
        return "multi-frame image without per-frame functional groups (no slice geometry)"
    if not _present(ds, "PixelSpacing") or (not _present(ds, "ImagePositionPatient")
                                            and _float_or_none(_get(ds, "SliceLocation")) is None):
        return "image without position (ImagePositionPatient or SliceLocation) or pixel spacing"
    return None


def _header(ds, path, forced) -> _Header:
    """The header of a single-frame slice."""
    image_type = [str(v).upper() for v in _values(_get(ds, "ImageType"))]
    iop, iop_note = _orientation(ds, path)
    return _Header(
        path=str(path), **_header_fields(ds, path),
        iop=AXIAL if iop is None else iop, iop_assumed=iop is None, iop_note=iop_note,
        ipp=_position(ds, path),
        slice_location=_float_or_none(_get(ds, "SliceLocation")),
        pixel_spacing=_pixel_spacing(ds, path),
        thickness=_float_or_none(_get(ds, "SliceThickness")), rescale=_rescale(ds, path),
        localizer=any("LOCALIZER" in v for v in image_type), forced=forced)


def _frame_headers(ds, path, forced) -> list[_Header]:
    """One header per frame of an Enhanced (multi-frame) image; [] when geometry is missing."""
    first = _header_fields(ds, path)
    headers = []
    for i in range(_whole(ds, "NumberOfFrames", path, default=1)):
        position = _frame_item(ds, i, "PlanePositionSequence")
        orientation = _frame_item(ds, i, "PlaneOrientationSequence")
        measures = _frame_item(ds, i, "PixelMeasuresSequence")
        if not (position and _present(position, "ImagePositionPatient") and orientation
                and _present(orientation, "ImageOrientationPatient") and measures
                and _present(measures, "PixelSpacing")):
            return []
        frame_type = _frame_item(ds, i, "CTImageFrameTypeSequence")
        image_type = (_get(frame_type, "FrameType") if frame_type else None) or \
            _get(ds, "ImageType") or []
        where = f"{path} (frame {i + 1})"
        iop, iop_note = _orientation(orientation, where)
        headers.append(_Header(
            path=str(path), **first, frame=i, iop=iop, iop_note=iop_note,
            ipp=_position(position, where), slice_location=None,
            pixel_spacing=_pixel_spacing(measures, where),
            thickness=_float_or_none(_get(measures, "SliceThickness")),
            rescale=_rescale(_frame_item(ds, i, "PixelValueTransformationSequence") or ds,
                             where),
            localizer=any("LOCALIZER" in str(v).upper() for v in _values(image_type)),
            forced=forced))
    return headers


def _header_fields(ds, path) -> dict:
    """The _Header fields shared by all frames of a multi-frame file."""
    uid = str(_get(ds, "SeriesInstanceUID") or "").strip()
    number = str(_get(ds, "SeriesNumber") or "").strip()
    return dict(
        key=uid or ("no-uid/series-" + number if number else "no-uid"), series_uid=uid,
        description=str(_get(ds, "SeriesDescription") or ""),
        modality=str(_get(ds, "Modality") or "").upper(), sop_class=_sop_class(ds),
        sop_uid=_sop_uid(ds), instance_number=_int_or_none(_get(ds, "InstanceNumber")),
        rows=_whole(ds, "Rows", path), cols=_whole(ds, "Columns", path),
        transfer_syntax=str(getattr(ds.get("file_meta"), "TransferSyntaxUID", "") or ""))


# --- header values ---------------------------------------------------------------------------

_FIX = ("the header is corrupted: export the series again, or correct the value with a "
        "DICOM editor (or remove the file from the folder).")


def _get(ds, keyword, default=None):
    """``ds.get(keyword)``, or ``default`` when the stored value cannot be converted."""
    try:
        return ds.get(keyword, default)
    except Exception:
        return default


def _raw_text(ds, keyword) -> str:
    """The value of ``keyword`` as stored (for messages), at most 64 characters."""
    try:
        value = ds.get_item(keyword).value
    except Exception:
        return "?"
    if isinstance(value, bytes):
        return value.decode("latin1", "replace").strip(" \x00")[:64]
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)[:64]
    return str(value)[:64]


_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
             "UI", "UR", "UT"}


def _present(ds, keyword) -> bool:
    """True when ``keyword`` holds a non-empty value (without converting it)."""
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return False
    try:
        element = ds.get_item(tag)
        value = element.value
    except Exception:
        return True  # something is there: the reader of the value says what is wrong
    if isinstance(value, bytes) and element.VR not in _TEXT_VRS:
        return len(value) > 0  # binary (US, FL, ...): spaces and zeros are values
    if isinstance(value, (bytes, str)):
        return bool(value.strip(b" \x00" if isinstance(value, bytes) else " \x00"))
    if isinstance(value, (list, tuple, MultiValue)):
        return len(value) > 0
    return value is not None


def _values(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _numbers(ds, keyword, count, where, error, what):
    """The ``count`` floats of a decimal attribute; None when absent or empty.

    Raises ``error`` (naming ``where``) for text where numbers belong, another number of
    values, or values that are not finite.
    """
    if not _present(ds, keyword):
        return None
    raw = _raw_text(ds, keyword)
    try:
        values = [float(v) for v in _values(ds.get(keyword))]
    except Exception:
        raise error(f"{where}: {keyword} {raw!r} is not {count} numbers ({what}); "
                    f"{_FIX}") from None
    if len(values) != count:
        raise error(f"{where}: {keyword} holds {len(values)} value{'' if len(values) == 1 else 's'}"
                    f", {count} expected ({what}); {_FIX}")
    if not all(math.isfinite(v) for v in values):
        raise error(f"{where}: {keyword} ({raw}) is not finite ({what}); {_FIX}")
    return np.array(values)


def _whole(ds, keyword, where, default=None, minimum=1) -> int:
    """A whole-number attribute (Rows, NumberOfFrames, ...) of at least ``minimum``."""
    if not _present(ds, keyword):
        if default is None:
            raise HeaderValueError(f"{where}: {keyword} is missing; {_FIX}")
        return default
    raw = _raw_text(ds, keyword)
    try:
        value = ds.get(keyword)
        number = int(value)
        if number != float(value):
            raise ValueError
    except Exception:
        raise HeaderValueError(f"{where}: {keyword} {raw!r} is not a whole number; "
                               f"{_FIX}") from None
    if number < minimum:
        raise HeaderValueError(f"{where}: {keyword} {number} is not allowed (at least "
                               f"{minimum}); {_FIX}")
    return number


def _pixel_spacing(ds, where) -> tuple[float, float]:
    values = _numbers(ds, "PixelSpacing", 2, where, SpacingError, "row and column spacing in mm")
    if values is None:
        raise SpacingError(f"{where}: PixelSpacing is missing; {_FIX}")
    check_spacing(values, where, "PixelSpacing", limits=(MAX_PIXEL_MM, MAX_PIXEL_MM))
    return float(values[0]), float(values[1])


def _position(ds, where):
    values = _numbers(ds, "ImagePositionPatient", 3, where, PositionError,
                      "x, y, z of the first pixel in mm")
    if values is not None and np.abs(values).max() > MAX_POSITION_MM:
        raise PositionError(f"{where}: ImagePositionPatient ({_raw_text(ds, 'ImagePositionPatient')}"
                            f") mm lies implausibly far from the origin; {_FIX}")
    return values


def _orientation(ds, where):
    """``(iop, note)``: the normalised ImageOrientationPatient (None when absent) and a
    sentence when it had to be normalised noticeably."""
    iop = _numbers(ds, "ImageOrientationPatient", 6, where, OrientationError,
                   "two direction cosine vectors")
    if iop is None:
        return None, None
    row, col = iop[:3], iop[3:]
    lengths = np.linalg.norm(row), np.linalg.norm(col)
    shown = _raw_text(ds, "ImageOrientationPatient")
    if max(abs(n - 1) for n in lengths) > UNIT_TOLERANCE:
        raise OrientationError(
            f"{where}: ImageOrientationPatient ({shown}) is not unit vectors (lengths "
            f"{lengths[0]:.3g}, {lengths[1]:.3g}), so the pixel spacing and slice direction "
            f"it gives are wrong; {_FIX}")
    cosine = float(row @ col) / (lengths[0] * lengths[1])
    if abs(cosine) > UNIT_TOLERANCE:
        off = abs(90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cosine)))))
        raise OrientationError(
            f"{where}: ImageOrientationPatient ({shown}) is not orthogonal ({off:.1f} degrees "
            f"from a right angle): rows and columns must be perpendicular; {_FIX}")
    row = row / lengths[0]
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    note = None
    if max(abs(n - 1) for n in lengths) > UNIT_WARNING or abs(cosine) > UNIT_WARNING:
        note = (f"lengths {lengths[0]:.4f}, {lengths[1]:.4f}, "
                f"{abs(90.0 - math.degrees(math.acos(cosine))):.2f} degrees off a right angle")
    return np.concatenate([row, col]), note


def _frame_item(ds, i, sequence):
    """First item of functional group ``sequence`` for frame ``i``: per-frame, else shared."""
    for groups, index in ((ds.get("PerFrameFunctionalGroupsSequence"), i),
                          (ds.get("SharedFunctionalGroupsSequence"), 0)):
        if groups and index < len(groups) and groups[index].get(sequence):
            return groups[index][sequence][0]
    return None


def _rescale(item, where):
    """``(slope, intercept)`` of ``item``; None when it has neither these nor a Modality LUT.

    Raises RescaleError for a slope of 0 or values that are not finite numbers (they
    would be taken for 1 and 0, and the image would silently not be in HU).
    """
    if _get(item, "ModalityLUTSequence"):
        return (1.0, 0.0)  # unused: _store_hu applies the LUT
    found = []
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = None
        if _present(item, keyword):
            raw = _raw_text(item, keyword)
            try:
                (value,) = [float(v) for v in _values(item.get(keyword))]
            except Exception:
                raise RescaleError(f"{where}: {keyword} {raw!r} is not a number, so the "
                                   "stored values cannot give Hounsfield units; "
                                   f"{_FIX}") from None
            if not math.isfinite(value):
                raise RescaleError(f"{where}: {keyword} {value:g} cannot give Hounsfield "
                                   f"units; {_FIX}")
        found.append(value)
    slope, intercept = found
    if slope is None and intercept is None:
        return None
    if slope == 0:
        raise RescaleError(f"{where}: RescaleSlope 0 makes every pixel the same value; it "
                           f"cannot give Hounsfield units. {_FIX}")
    return (1.0 if slope is None else slope, 0.0 if intercept is None else intercept)


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


def _source_text(h) -> str:
    return h.path if h.frame is None else f"{h.path} (frame {h.frame + 1})"
