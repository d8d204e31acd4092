"""DICOM SEG export: the labels as a DICOM Segmentation referencing the source series."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import CTImageStorage, generate_uid

from ._version import __version__
from .atomic import atomic_write_bytes
from .errors import SessionError
from .labelmap import check_labels
from .labels import label_name, organ
from .study import Study

_UID_FIELDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")


# highdicom and pydicom's code dictionary are imported where a SEG is written: together
# they take ~0.27 s to import (python -X importtime), on top of the ~1.1 s of everything
# else rw.Session imports, and only the DICOM SEG export needs them.

def _segment_description(number: int, label: int):
    import highdicom as hd  # lazy: see above
    from pydicom.sr.codedict import codes  # lazy: see above

    code, meaning = organ(label).snomed            # the organ table names the codes
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label_name(label),
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=hd.sr.CodedConcept(code, "SCT", meaning),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="radipop-widgets", version=__version__,
            family=codes.cid7162.HistogramAnalysis),
    )


_TYPE2_STUDY_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                           "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                           "ReferringPhysicianName")


def _read_sources(study: Study):
    paths = [s.path for s in study.sources]
    if len(paths) != study.n_slices or any(p is None for p in paths) or any(
            str(p).endswith((".nii", ".nii.gz")) for p in paths):
        raise SessionError("DICOM SEG needs a study loaded from DICOM files (it references "
                           "them); this study has no DICOM source per slice. Export NIfTI "
                           "instead.")
    if any(s.frame is not None for s in study.sources):
        raise SessionError("DICOM SEG export from an Enhanced (multi-frame) CT series is not "
                           "supported yet; export NIfTI instead.")
    datasets = []
    for z, (path, source) in enumerate(zip(paths, study.sources)):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise SessionError(f"DICOM SEG needs the source files, but slice {z} ({path}) "
                               f"cannot be read: {exc}. Reopen the study from its "
                               "folder.") from exc
        uid = ds.get("SOPInstanceUID") or ds.file_meta.get("MediaStorageSOPInstanceUID", "")
        if source.sop_instance_uid and uid != source.sop_instance_uid:  # loader's fallback
            raise SessionError(f"{path} is no longer the file slice {z} was loaded from; "
                               "reload the study before exporting.")
        if (ds.get("Rows"), ds.get("Columns")) != tuple(study.shape[1:]):
            raise SessionError(f"{path} has another image size than the study")
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet  # empty means the default repertoire; highdicom rejects ''
        for keyword in _TYPE2_STUDY_ATTRIBUTES:
            if keyword not in ds:  # type 2: must be present in the SEG, may be empty
                setattr(ds, keyword, "")
        if not ds.get("SOPClassUID", ""):  # empty in the Siemens files; the meta header has it
            ds.SOPClassUID = ds.file_meta.get("MediaStorageSOPClassUID") or CTImageStorage
        datasets.append(ds)
    return datasets


def _fill_missing_uids(datasets, generate: bool) -> list[str]:
    """Give datasets deterministic UIDs where they are empty; return what was filled."""
    empty = sorted({f for ds in datasets for f in _UID_FIELDS if not ds.get(f, "")})
    if not empty:
        return []
    if not generate:
        raise SessionError(
            f"The source series has empty {', '.join(empty)}; a DICOM SEG must reference "
            "its source images by these UIDs. Export NIfTI instead, or call "
            "export_dicom_seg(..., generate_missing_uids=True) to make up UIDs (the SEG then "
            "matches its images only by position, not by reference).")
    seed = "|".join(f"{ds.get('InstanceNumber', '')}:{ds.get('ImagePositionPatient', '')}"
                    for ds in datasets)
    shared = {f: generate_uid(entropy_srcs=[seed, f]) for f in _UID_FIELDS[1:]}
    for i, ds in enumerate(datasets):
        for field in empty:
            if field == "SOPInstanceUID":
                ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, field, str(i)])
            else:
                setattr(ds, field, shared[field])
    return empty


def dicom_seg_problem(study: Study) -> str | None:
    """Why a DICOM SEG cannot reference ``study``'s images, or None when it can
    (checked from the Study alone, so a user interface can say it before trying)."""
    if any(source.frame is not None for source in study.sources):
        return ("DICOM SEG export from an Enhanced (multi-frame) CT series is not supported "
                "yet. Export NIfTI labels instead.")
    missing = [name for name, value in (("SeriesInstanceUID", study.series_uid),
                                        ("StudyInstanceUID", study.study_uid)) if not value]
    if not study.sources or not all(source.sop_instance_uid for source in study.sources):
        missing.insert(0, "SOPInstanceUID")
    if not missing:
        return None
    if not any(source.sop_instance_uid for source in study.sources) and not study.series_uid:
        return ("DICOM SEG needs a DICOM study: this one has no DICOM identifiers (NIfTI or "
                "anonymised without UIDs). Export NIfTI labels instead.")
    return (f"DICOM SEG needs the identifiers of the source images, and this series has "
            f"none for {', '.join(missing)}. Export NIfTI labels instead.")


def export_dicom_seg(path, labels: np.ndarray, study: Study, *,
                     segmentation_type: str = "BINARY",
                     generate_missing_uids: bool = False) -> Path:
    """Write the labels as a DICOM Segmentation (highdicom) referencing the source series.

    One segment per label present: liver (SCT 10200004) and spleen (SCT 78961009)
    under the category Anatomical Structure, other labels as Organ. Frames without
    any label are omitted. The write is atomic.

    Parameters
    ----------
    path : path of the .dcm file to write
    labels : ndarray (slices, rows, columns)
    study : Study loaded from DICOM; its source files must still exist.
    segmentation_type : "BINARY" (read by every SEG viewer) or "LABELMAP" (DICOM 2024).
    generate_missing_uids : bool
        Source files with empty SOP/Series/Study/Frame-of-Reference UIDs cannot be
        referenced. False (default) raises SessionError; True makes up deterministic
        UIDs for them and warns (UserWarning): the SEG then matches the images by
        position only.

    Raises
    ------
    SessionError
        NIfTI study, source files missing or changed, empty UIDs, nothing labelled.
    """
    import highdicom as hd  # lazy: see _segment_description

    labels = check_labels(labels, study)
    present = [int(v) for v in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)) if v]
    if not present:
        raise SessionError("Nothing is labelled; a DICOM SEG needs at least one organ.")
    datasets = _read_sources(study)
    filled = _fill_missing_uids(datasets, generate_missing_uids)
    if filled:
        warnings.warn(f"The source series has empty {', '.join(filled)}; the DICOM SEG "
                      "references made-up UIDs and matches its images by position only.",
                      UserWarning, stacklevel=2)
    lut = np.zeros(256, np.uint8)
    lut[present] = np.arange(1, len(present) + 1)
    with warnings.catch_warnings():
        # highdicom re-checks the source's PatientName and warns about one-part names.
        warnings.filterwarnings("ignore", message=".*intended person name")
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=lut[labels],
            segmentation_type=segmentation_type,
            segment_descriptions=[_segment_description(i + 1, v) for i, v in enumerate(present)],
            series_instance_uid=generate_uid(),
            series_number=900,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="radipop-widgets",
            manufacturer_model_name="radipop-widgets",
            software_versions=__version__,
            device_serial_number="0",
            series_description="radipop-widgets liver/spleen",
        )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return atomic_write_bytes(path, buffer.getvalue())
