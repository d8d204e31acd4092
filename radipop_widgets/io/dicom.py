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

import math
import os
import warnings
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder, iter_pixels
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import (
    ColourImageError,
    DecodeError,
    DuplicateSliceError,
    HeaderValueError,
    InconsistentSlicesError,
    MissingSliceError,
    MultipleSeriesError,
    NoImagesError,
    NotCTError,
    OrientationError,
    PositionError,
    RescaleError,
    SeriesNotFoundError,
    SpacingError,
    StudyError,
    StudyTooLargeError,
    UnreadableFileError,
)
from ..study import METADATA_KEYS, SliceSource, Study, affine_from_geometry
from ._common import (
    MAX_PIXEL_MM,
    StudyEntry,
    available_memory,
    check_hu_like,
    check_hu_range,
    check_memory,
    check_spacing,
)

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
UNIT_TOLERANCE = 0.01      # direction cosines this close to unit and orthogonal are normalised
UNIT_WARNING = 1e-3        # ... with a warning when they are off by more than this
MAX_POSITION_MM = 1e6      # ImagePositionPatient farther than 1 km from the origin is corrupt
DEFLATED_HEAD = 1 << 20    # inflated bytes in which a deflated file's header must fit
DEFLATED_RATIO = 64        # without a readable header, the largest inflation accepted
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


def _list_files(root: Path, notes: list) -> list[Path]:
    """The files under ``root`` (hidden files and folders left out), sorted; a sentence in
    ``notes`` for each sub-folder that cannot be read or is a symbolic link (not followed,
    so that a link cannot lead the loader out of the data folder or round in a loop)."""
    files = []

    def unreadable(exc):
        notes.append(f"folder {exc.filename} could not be read ({exc.strerror or exc}) and "
                     "was skipped; make it readable to load the files in it")

    for folder, dirs, names in os.walk(root, onerror=unreadable):
        kept = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            full = os.path.join(folder, name)
            if os.path.islink(full):
                notes.append(f"folder {full} is a symbolic link and was not followed; copy "
                             "the files it points to into the study folder to load them")
            else:
                kept.append(name)
        dirs[:] = kept
        for name in names:
            if not name.startswith("."):
                candidate = Path(folder) / name
                if candidate.is_file():
                    files.append(candidate)
    return sorted(files)


def scan_dicom_folder(folder) -> list[StudyEntry]:
    """Header-only listing of the CT series whose files lie directly in ``folder``."""
    folder = Path(folder)
    headers, skipped = [], []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            h, s = _read_headers([f])
        except StudyError:  # the picker lists what loads; load_study says what is wrong
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
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns on the values checked here
                reason = _not_a_slice(ds, has_pixels, f)
                if reason:
                    skipped.append((reason, str(f)))
                elif "PerFrameFunctionalGroupsSequence" in ds:
                    frames = _frame_headers(ds, f, forced)
                    if frames:
                        headers += frames
                    else:
                        skipped.append(("multi-frame image without position, orientation or "
                                        "pixel spacing for every frame", str(f)))
                else:
                    headers.append(_header(ds, f, forced))
        except StudyError:
            raise
        except Exception as exc:  # a header value no check above foresaw
            raise HeaderValueError(
                f"{f}: a header value cannot be read ({type(exc).__name__}: {str(exc)[:200]}); "
                "the file is damaged or was written by a faulty tool. Export the series again "
                "or remove the file from the folder.") from exc
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
            if not force:
                _check_deflated(fp, path)
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
    except StudyError:
        raise
    except Exception as exc:  # pydicom raises many types on damaged files
        raise UnreadableFileError(
            f"{path}: cannot be read as DICOM ({type(exc).__name__}: {str(exc)[:200]}). The "
            "file is damaged or truncated; export it again or remove it from the folder.") from exc
    return ds, has_pixels, force


_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
             b"UV"}


def _file_meta_end(fp):
    """``(offset, transfer syntax)`` after the file meta group that starts at byte 132."""
    fp.seek(132)
    syntax = None
    while True:
        offset = fp.tell()
        tag = fp.read(4)
        if len(tag) < 4 or int.from_bytes(tag[:2], "little") != 0x0002:
            return offset, syntax
        vr = fp.read(2)
        if vr in _LONG_VRS:
            fp.read(2)
            length = int.from_bytes(fp.read(4), "little")
        else:
            length = int.from_bytes(fp.read(2), "little")
        if length > 1 << 16:
            return offset, syntax  # not a sane meta element: pydicom will say what is wrong
        value = fp.read(length)
        if tag == b"\x02\x00\x10\x00":
            syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")


def _check_deflated(fp, path) -> None:
    """Refuse a deflated file that inflates to more than its header declares.

    pydicom inflates a Deflated Explicit VR Little Endian dataset whole before reading a
    single element, so a file of a few hundred KB could take gigabytes. Here the data is
    inflated as a stream in 1 MiB pieces (nothing kept but the first MiB): the header in
    that first MiB declares the image size, which must fit in memory, and the whole
    stream may not inflate to more than header plus image (``DEFLATED_RATIO`` times the
    compressed size when the header is not in the first MiB).
    """
    start, syntax = _file_meta_end(fp)
    if syntax != DeflatedExplicitVRLittleEndian:
        return
    compressed = os.fstat(fp.fileno()).st_size - start
    fp.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    head, total, limit, pending = bytearray(), 0, None, b""
    while not inflater.eof:
        if not pending:
            pending = fp.read(1 << 16)
            if not pending:
                break
        out = inflater.decompress(pending, 1 << 20)
        pending = inflater.unconsumed_tail
        total += len(out)
        if len(head) < DEFLATED_HEAD:
            head += out[:DEFLATED_HEAD - len(head)]
        if limit is None and len(head) >= DEFLATED_HEAD:
            limit = _deflated_limit(bytes(head), compressed, path)
        if limit is not None and total > limit:
            raise UnreadableFileError(
                f"{path}: the deflated data inflates to more than its header declares (over "
                f"{limit / 2 ** 20:.0f} MiB from {compressed / 2 ** 20:.2f} MiB): the file is "
                "damaged or made to exhaust memory. Export the series again, uncompressed.")


def _deflated_limit(head: bytes, compressed: int, path) -> int:
    """Bytes a deflated dataset whose first inflated MiB is ``head`` may inflate to."""
    def stop(tag, vr, length):
        return tag >= 0x7FE00010 or (length != 0xFFFFFFFF and length > len(head))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = read_dataset(DicomBytesIO(head), False, True, stop_when=stop)
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(_get(ds, "NumberOfFrames") or 1)
        samples = int(_get(ds, "SamplesPerPixel") or 1)
        bits = int(_get(ds, "BitsAllocated") or 16)
    except Exception:
        return max(DEFLATED_RATIO * compressed, 16 << 20)
    declared = rows * cols * frames * samples * max(1, -(-bits // 8))
    if declared > available_memory():
        raise StudyTooLargeError(
            f"{path}: declares {declared / 2 ** 30:.2f} GiB of pixel data, more than the memory "
            "available; load a smaller series.")
    return DEFLATED_HEAD + declared + (1 << 16)


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
            try:
                inverted |= _store_hu(arr, ds, h.rescale, hu[z_of[h.path, h.frame]], h.path)
            except StudyError:
                raise
            except Exception as exc:  # a Modality LUT or pixel attribute no check foresaw
                raise UnreadableFileError(
                    f"{_source_text(h)}: the pixel values cannot be turned into Hounsfield "
                    f"units ({type(exc).__name__}: {str(exc)[:200]}); the file is damaged. "
                    "Export the series again or remove the file from the folder.") from exc
            if metadata is None:
                metadata = {k: _text_or_none(_get(ds, k)) for k in METADATA_KEYS}
                study_uid = _text_or_none(_get(ds, "StudyInstanceUID"))
                frame_uid = _text_or_none(_get(ds, "FrameOfReferenceUID"))
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
