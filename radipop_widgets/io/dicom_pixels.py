"""DICOM pixel pass: decoding slice by slice (multi-frame files frame by frame) into the
int16 volume, in Hounsfield units."""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, get_decoder, iter_pixels
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import (
    DecodeError,
    InconsistentSlicesError,
    StudyError,
    UnreadableFileError,
)
from ..study import METADATA_KEYS, SliceSource, Study
from ._common import check_hu_like, check_hu_range, check_memory
from .dicom_header import _get, _source_text, _text_or_none

TRUNCATED_WARNING = "End of file reached"


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
