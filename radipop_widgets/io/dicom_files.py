"""DICOM files: the folder walk, the header pass (bounded inflation of deflated files)
and the grouping into series, with the choice of one."""

from __future__ import annotations

import os
import warnings
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from ..errors import (
    HeaderValueError,
    MultipleSeriesError,
    NotCTError,
    SeriesNotFoundError,
    StudyError,
    StudyTooLargeError,
    UnreadableFileError,
)
from ._common import StudyEntry, available_memory
from .dicom_header import _frame_headers, _get, _header, _not_a_slice, _sop_class

CT_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",
                  "1.2.840.10008.5.1.4.1.1.2.2"}
ORIENTATION_TOLERANCE = 1e-3   # per component of ImageOrientationPatient
DEFLATED_HEAD = 1 << 20    # inflated bytes in which a deflated file's header must fit
DEFLATED_RATIO = 64        # without a readable header, the largest inflation accepted


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
    return [entry for entry, _ in scan_dicom_series(folder)]


def scan_dicom_series(folder) -> list[tuple[StudyEntry, dict]]:
    """:func:`scan_dicom_folder` with, per series, header details for a worklist:
    ``thickness_mm`` (median SliceThickness, None when absent), ``pixel_mm`` (row, column
    spacing of the first slice), ``rows``, ``cols``. No patient data."""
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
    return [(StudyEntry(str(folder), "dicom", hs[0].description or "(no description)",
                        len(hs), key), _series_details(hs))
            for key, hs in groups.items() if _is_ct(hs[0])]


def _series_details(hs) -> dict:
    thickness = [h.thickness for h in hs if h.thickness is not None]
    return {"thickness_mm": float(np.median(thickness)) if thickness else None,
            "pixel_mm": [float(v) for v in hs[0].pixel_spacing],
            "rows": int(hs[0].rows), "cols": int(hs[0].cols)}


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
