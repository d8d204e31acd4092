"""The cohort export: masks on the source grid, cohort.csv checked against the sessions,
pseudonyms, no patient name anywhere, the command line end to end."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_cohort_data import NAME_PARTS, label_study, make_cohort

from radipop_widgets import __version__, measure
from radipop_widgets.cohort import COLUMNS, Worklist, export_cohort, pseudonym
from radipop_widgets.cohort.pseudonym import SaltError, new_salt_file, read_salt
from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import PHANTOM_METADATA
from radipop_widgets.labelmap import read_nifti_labels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def done_cohort(tmp_path_factory):
    """Four studies segmented and done (two of the same phantom patient), a broken one
    done before its files broke, one not started."""
    root = tmp_path_factory.mktemp("export")
    paths = make_cohort(root)
    ws = root / "ws"
    sessions = {}
    for name in ("a_portal", "b_portal_small", "c_arterial", "d_native", "e_broken"):
        sessions[name] = label_study(paths[name], ws)
    worklist = Worklist(root / "data", ws)
    worklist.scan()
    for row in worklist.rows:
        worklist.mark_done(row.key, user="alice")
    files = sorted(paths["e_broken"].iterdir())
    files[len(files) // 2].unlink()                    # broken after it was done
    return root, paths, sessions


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_table_and_masks_match_the_sessions(done_cohort, tmp_path):
    root, _, sessions = done_cohort
    calls = []
    report = export_cohort(Worklist(root / "data", root / "ws"), tmp_path / "out",
                           progress=lambda i, n, what: calls.append((i, n)))
    assert calls[-1] == (5, 5) and len(report.rows) == 4
    assert [what for what, _ in report.failed] == ["Abdomen phantom (synthetic)"]
    assert "slice is missing" in report.failed[0][1]
    rows = read_csv(tmp_path / "out" / "cohort.csv")
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 4
    by_series = {r["series_description"]: r for r in rows}
    for name in ("a_portal", "b_portal_small", "c_arterial", "d_native"):
        session = sessions[name]
        study = session.study
        row = next(r for r in rows if r["n_slices"] == str(study.n_slices)
                   and float(r["slice_spacing_mm"]) == pytest.approx(study.spacing[0])
                   and float(r["pixel_mm"]) == pytest.approx(study.spacing[1]))
        m = session.measurements()
        for organ in ("liver", "spleen"):
            assert float(row[f"{organ}_volume_ml"]) == pytest.approx(m[organ]["volume_ml"],
                                                                     abs=0.01)
            assert float(row[f"{organ}_mean_hu"]) == pytest.approx(m[organ]["mean_hu"], abs=0.01)
            assert float(row[f"{organ}_median_hu"]) == pytest.approx(m[organ]["median_hu"])
            assert float(row[f"{organ}_length_cc_mm"]) == pytest.approx(
                m[organ]["length_cc_mm"])
        assert float(row["splenic_index_cm3"]) == pytest.approx(
            m["spleen"]["splenic_index_cm3"], abs=0.01)
        assert float(row["liver_spleen_ratio"]) == pytest.approx(
            measure.liver_spleen_ratio(m), abs=1e-3)
        assert row["annotator"] == "alice" and row["done_at"] and row["saved_at"]
        assert row["software_version"] == __version__
        assert row["phase"] == (session.phase.name if session.phase else "")
        # the mask: 1 liver, 2 spleen, on the study's source grid
        assert Path(row["mask"]).name == "mask_liver_and_spleen.nii.gz"
        img = nib.load(tmp_path / "out" / row["mask"])
        grid = study.source_grid
        assert img.shape == (grid.shape if grid is not None else study.shape[::-1])
        if grid is not None:
            assert np.allclose(img.affine, grid.affine)
        mask = np.asarray(img.dataobj)
        assert (np.bincount(mask.ravel(), minlength=3)[:3]
                == np.bincount(session.labels.ravel(), minlength=3)[:3]).all()
        if grid is None:     # a DICOM study: the label map of its own reader, voxel for voxel
            assert (read_nifti_labels(tmp_path / "out" / row["mask"])[0]
                    == session.labels).all()
    dicom = [r for r in rows if r["patient_id"] == PHANTOM_METADATA["PatientID"]]
    assert sorted(r["id"] for r in dicom) == ["PHANTOM-001", "PHANTOM-001-2"]
    assert "Abdomen phantom (synthetic)" in by_series


def test_flags_reach_the_table(done_cohort, tmp_path):
    root, _, _ = done_cohort
    export_cohort(Worklist(root / "data", root / "ws"), tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "cohort.csv")
    # the phantom's liver reaches above its 150 mm field of view: cut on the last slice
    for row in rows:
        assert len(row["flags"].split(";")) == len(row["flag_reasons"].split(" | "))
        assert "fov_cut" in row["flags"].split(";")
        assert "liver: on the last slice: cut by the field of view" in row["flag_reasons"]
    # and the worklist shows the flags the export found, for the session they were found on
    rows = Worklist(root / "data", root / "ws").scan()
    assert sum("fov_cut" in [f.code for f in r.flags] for r in rows) == 4


def test_pseudonyms_are_stable_and_need_the_salt(done_cohort, tmp_path):
    root, _, _ = done_cohort
    salt_file = new_salt_file(tmp_path / "salt")
    assert oct(salt_file.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        new_salt_file(salt_file)                              # never replaced
    salt = read_salt(salt_file)
    first = export_cohort(Worklist(root / "data", root / "ws"), tmp_path / "one", salt)
    second = export_cohort(Worklist(root / "data", root / "ws"), tmp_path / "two", salt)
    ids = sorted(r["id"] for r in first.rows)
    assert ids == sorted(r["id"] for r in second.rows)       # stable
    patient = PHANTOM_METADATA["PatientID"]
    assert pseudonym(patient, salt) in ids
    assert all(r["patient_id"] == "" and r["pseudonymised"] for r in first.rows)
    assert all(not r["series_uid"].startswith("1.2") for r in first.rows)
    other = read_salt(new_salt_file(tmp_path / "other"))
    assert pseudonym(patient, other) not in ids               # another salt: other names
    # without the salt, hashing the ID does not give the pseudonym
    import hashlib
    plain = {hashlib.sha256(patient.encode()).hexdigest()[:16],
             hashlib.md5(patient.encode()).hexdigest()[:16]}
    assert not plain & {i.removeprefix("P-").split("-")[0] for i in ids}
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(SaltError, match="fewer than 16"):
        read_salt(short)


def test_no_export_inside_the_data_folder(done_cohort):
    root, _, _ = done_cohort
    with pytest.raises(Exception, match="inside the data folder"):
        export_cohort(Worklist(root / "data", root / "ws"), root / "data" / "out")


def grep_names(folder: Path) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip
                data = gzip.decompress(data)
            hits += [f"{path}: {p}" for p in NAME_PARTS if p.encode() in data]
    return hits


def run_cli(*args, env=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "radipop_widgets", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_command_line_end_to_end(done_cohort, tmp_path):
    root, _, _ = done_cohort
    data, ws = str(root / "data"), str(root / "ws")
    status = run_cli("cohort", "status", "--data", data, "--workspace", ws)
    assert status.returncode == 0, status.stderr
    assert "5 studies: 5 done" in status.stdout and "alice" in status.stdout
    salt = tmp_path / "salt"
    made = run_cli("cohort", "salt", str(salt))
    assert made.returncode == 0 and salt.is_file()
    out = tmp_path / "out"
    result = run_cli("cohort", "export", "--data", data, "--workspace", ws, "--out", str(out),
                     "--pseudonymise", "--salt-file", str(salt))
    assert result.returncode == 1                          # one study failed, the rest written
    assert "4 done studies exported" in result.stdout
    assert "exporting [" in result.stderr and "5/5" in result.stderr   # the progress bar
    assert "not exported: Abdomen phantom (synthetic): " in result.stderr
    rows = read_csv(out / "cohort.csv")
    assert len(rows) == 4 and all(r["id"].startswith("P-") for r in rows)
    assert all((out / r["mask"]).is_file() for r in rows)
    for text in (status.stdout, status.stderr, result.stdout, result.stderr):
        assert not [p for p in NAME_PARTS if p in text]
    assert grep_names(out) == [] and grep_names(Path(ws) / ".cohort") == []
    assert PHANTOM_METADATA["PatientID"] not in (out / "cohort.csv").read_text()
    refused = run_cli("cohort", "export", "--data", data, "--workspace", ws, "--out",
                      str(tmp_path / "x"), "--pseudonymise")
    assert refused.returncode == 2 and "needs --salt-file" in refused.stderr


def test_a_nifti_mask_pairs_with_its_image(done_cohort, tmp_path):
    root, paths, _ = done_cohort
    report = export_cohort(Worklist(root / "data", root / "ws"), tmp_path / "out")
    study = load_study(paths["c_arterial"])
    row = next(r for r in report.rows if r["series_description"] == study.series_description)
    image = nib.load(paths["c_arterial"])
    mask = nib.load(tmp_path / "out" / row["mask"])
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine)
