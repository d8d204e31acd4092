"""The cohort export: one mask per done study and one table of the cohort.

For every done study of a :class:`~radipop_widgets.cohort.worklist.Worklist`:
``<out>/<id>/mask_liver_and_spleen.nii.gz`` (1 = liver, 2 = spleen, on the study's source
grid: :func:`radipop_widgets.labelmap.write_nifti_labels`) and one row of
``<out>/cohort.csv`` (:data:`COLUMNS`). ``<id>`` is the PatientID (else the StudyID, else
the study's key), or with a salt its pseudonym (:mod:`.pseudonym`); a second study of the
same patient gets ``<id>-2``. With a salt the table holds no PatientID and no UID (UIDs
are replaced by salted hashes as well). Patient names are never read into the export.

A study that cannot be exported (its files are gone or damaged, its session unreadable)
is named in :attr:`ExportReport.failed` with the reason; the others are exported. A done
series added from a PACS is read from its cache folder like a data folder's series; one
that is not downloaded (or whose cache was deleted) is named in
:attr:`ExportReport.skipped`, with what to do.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import labelmap, measure, persist
from .._version import __version__
from ..atomic import atomic_write_bytes
from ..errors import RadipopError
from ..io import load_study
from ..persist_paths import _folder_safe
from ..segmentation.phase import estimate_phase
from .flags import cohort_flags, study_flags
from .pseudonym import pseudonym
from .status import DONE
from .worklist import Worklist, WorklistRow

MASK_FILE = "mask_liver_and_spleen.nii.gz"
TABLE_FILE = "cohort.csv"
ORGAN_COLUMNS = ("volume_ml", "mean_hu", "sd_hu", "median_hu", "length_cc_mm",
                 "first_slice", "last_slice", "diameter_max_mm", "diameter_perp_mm",
                 "thickness_mm")
COLUMNS = ("id", "pseudonymised", "patient_id", "study_id", "study_uid", "series_uid",
           "series_description", "n_slices", "slice_thickness_mm", "slice_spacing_mm",
           "pixel_mm", "phase", "aorta_hu",
           *(f"liver_{c}" for c in ORGAN_COLUMNS), *(f"spleen_{c}" for c in ORGAN_COLUMNS),
           "splenic_index_cm3", "liver_spleen_ratio", "flags", "flag_reasons", "annotator",
           "done_at", "saved_at", "exported_at", "software_version", "mask")


@dataclass
class ExportReport:
    """What :func:`export_cohort` wrote: ``rows`` (dicts of :data:`COLUMNS`), ``failed``
    ((study, reason) pairs), ``skipped`` (done PACS series not downloaded: (series,
    reason) pairs), ``table`` (the CSV's path)."""

    out: Path
    rows: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    table: Path | None = None


def _number(value, digits=2):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return round(float(value), digits)


def _identity(study, row: WorklistRow, salt: bytes | None) -> dict:
    meta = study.metadata or {}
    patient, study_id = meta.get("PatientID"), meta.get("StudyID")
    base = str(patient or study_id or row.key)
    if salt is None:
        return {"id": _folder_safe(base), "pseudonymised": False, "patient_id": patient or "",
                "study_id": study_id or "", "study_uid": study.study_uid or "",
                "series_uid": study.series_uid or ""}
    hashed = {k: pseudonym(v, salt) if v else "" for k, v in
              (("study_uid", study.study_uid), ("series_uid", study.series_uid))}
    return {"id": pseudonym(base, salt), "pseudonymised": True, "patient_id": "",
            "study_id": "", **hashed}


def _organ_columns(organ: str, m: dict | None) -> dict:
    m = m or {}
    first, last = m.get("slices") or (None, None)
    values = {**m, "first_slice": first, "last_slice": last}
    return {f"{organ}_{c}": ("" if values.get(c) is None else
                             values[c] if isinstance(values[c], int) else _number(values[c]))
            for c in ORGAN_COLUMNS}


def export_study(row: WorklistRow, out: Path, worklist: Worklist, salt: bytes | None,
                 used: set) -> tuple[dict, dict]:
    """Write one done study's mask; returns its table row and its volumes."""
    session = row.session
    if session is None:
        raise RadipopError("no readable session (saved or autosaved) is left for it")
    study = load_study(row.entry.path, series=row.entry.series_uid)
    labels = persist.open_session(session.folder, study).labels
    pixel_mm = math.sqrt(study.spacing[1] * study.spacing[2])
    phase = estimate_phase(study.hu, pixel_mm)
    measurements = measure.organ_measurements(labels, study.hu, study.spacing)
    flags = study_flags(labels, measurements, study.spacing, phase.name if phase else None)
    ident = _identity(study, row, salt)
    name, n = ident["id"], 2
    while name in used:
        name, n = f"{ident['id']}-{n}", n + 1
    used.add(name)
    (out / name).mkdir(parents=True, exist_ok=True)
    mask = labelmap.write_nifti_labels(out / name / MASK_FILE, labels, study)
    thickness = (study.metadata or {}).get("SliceThickness") or row.thickness_mm
    table = {
        **ident, "id": name, "series_description": study.series_description,
        "n_slices": study.n_slices, "slice_thickness_mm": _number(_float(thickness), 3),
        "slice_spacing_mm": _number(study.spacing[0], 3), "pixel_mm": _number(pixel_mm, 3),
        "phase": phase.name if phase else "", "aorta_hu": _number(phase.aorta_hu if phase
                                                                  else None, 0),
        **_organ_columns("liver", measurements.get("liver")),
        **_organ_columns("spleen", measurements.get("spleen")),
        "splenic_index_cm3": _number((measurements.get("spleen") or {}).get(
            "splenic_index_cm3")),
        "liver_spleen_ratio": _number(measure.liver_spleen_ratio(measurements), 3),
        "flags": ";".join(f.code for f in flags),
        "flag_reasons": " | ".join(f.text() for f in flags),
        "annotator": row.by or "", "done_at": row.done_at or "",
        "saved_at": session.saved_at or "",
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "software_version": __version__, "mask": str(mask.relative_to(out)),
    }
    worklist.note(row.key, phase=phase.name if phase else None,
                  flags=[f.__dict__ for f in flags], flags_for=session.saved_at)
    volumes = {o: (measurements.get(o) or {}).get("volume_ml") for o in ("liver", "spleen")}
    return table, volumes


def _pacs_name(row: WorklistRow) -> str:
    p = row.pacs
    return f"{row.description} ({p.patient_id or 'no ID'}, {p.date or 'no date'}, PACS)"


def _not_cached(row: WorklistRow) -> str:
    """Why a done PACS series is not exported, and what to do."""
    return (f"series {row.pacs.series_uid} of {row.pacs.server} is not downloaded (or its "
            "cache was deleted): open it in the Study tab, which downloads it, then export "
            "again")


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def export_cohort(worklist: Worklist, out, salt: bytes | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> ExportReport:
    """Export every done study of ``worklist`` (scanned now) into ``out``.

    Parameters
    ----------
    worklist : Worklist
    out : path
        Created if needed; must not lie inside the data folder.
    salt : bytes, optional
        Pseudonymise: ids and UIDs become salted hashes, no PatientID is written.
    progress : callable, optional
        ``progress(done, total, what)`` after each study.
    """
    out = Path(out).expanduser().resolve()
    if worklist.data_root is not None and out.is_relative_to(worklist.data_root):
        raise RadipopError(f"{out} lies inside the data folder {worklist.data_root}; nothing is "
                           "written next to the source images. Choose another --out folder.")
    rows = [r for r in worklist.scan() if r.status == DONE]
    report, used, volumes = ExportReport(out), set(), {}
    if worklist.pacs_problem:
        report.failed.append(("the PACS series of the worklist", worklist.pacs_problem))
    out.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        if row.pacs is not None and not row.pacs.cached:
            report.skipped.append((_pacs_name(row), _not_cached(row)))
        else:
            try:
                table, volumes[row.key] = export_study(row, out, worklist, salt, used)
                table["_key"] = row.key
                report.rows.append(table)
            except (RadipopError, OSError) as exc:
                report.failed.append((row.description, str(exc)))
        if progress is not None:
            progress(i + 1, len(rows), row.description)
    for key, flags in cohort_flags(volumes).items():
        table = next(t for t in report.rows if t["_key"] == key)
        if flags:
            table["flags"] = ";".join(filter(None, [table["flags"]] + [f.code for f in flags]))
            table["flag_reasons"] = " | ".join(filter(None, [table["flag_reasons"]]
                                                      + [f.text() for f in flags]))
    for table in report.rows:
        table.pop("_key")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.rows)
    report.table = out / TABLE_FILE
    atomic_write_bytes(report.table, buffer.getvalue().encode("utf-8"))
    return report
