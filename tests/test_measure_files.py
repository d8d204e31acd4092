"""The measurement files beside a NIfTI export: the API's numbers, documented columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import PATIENT, blob_labels, synthetic_study

from radipop_widgets.measure import KEYS, liver_spleen_ratio, organ_measurements
from radipop_widgets.measure_files import COLUMNS, measurement_paths, write_measurements
from radipop_widgets.session import Session

NUMBERS = ("volume_ml", "mean_hu", "sd_hu", "median_hu", "length_cc_mm", "diameter_max_mm",
           "diameter_perp_mm", "thickness_mm", "splenic_index_cm3")


@pytest.fixture
def session(tmp_path):
    study = synthetic_study(shape=(14, 40, 44), spacing=(2.5, 0.8, 0.7), metadata=PATIENT)
    study.path = tmp_path / "Doe^Jane abdomen"       # folder names may carry the name
    study.series_description = "Doe Jane liver"
    s = Session(study, workspace=tmp_path / "ws")
    s.labels[...] = blob_labels(study.shape, seed=1)
    s.labels[7][s.labels[7] == 2] = 0                 # a missed spleen slice
    return s


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def test_export_nifti_writes_the_api_numbers_beside_it(session, tmp_path):
    (tmp_path / "out").mkdir()
    path = session.export_nifti(tmp_path / "out" / "labels.nii.gz")
    assert path == tmp_path / "out" / "labels.nii.gz" and path.is_file()
    json_path, csv_path = measurement_paths(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "labels.nii.gz", "labels_measurements.csv", "labels_measurements.json"]
    api = session.measurements()
    assert api["spleen"]["missing_slices"] == [7]

    document = json.loads(json_path.read_text())
    assert document["labels_file"] == "labels.nii.gz"
    assert document["spacing_mm"] == [2.5, 0.8, 0.7] and document["shape"] == [14, 40, 44]
    assert document["liver_spleen_volume_ratio"] == liver_spleen_ratio(api)
    assert list(document["organs"]) == list(api)
    for name, m in api.items():
        back = document["organs"][name]
        assert tuple(back) == KEYS
        assert back == json.loads(json.dumps(m))        # tuples as lists, else equal

    rows = read_csv(csv_path)
    assert [r["organ"] for r in rows] == list(api)
    for row in rows:
        m = api[row["organ"]]
        assert int(row["label"]) == m["label"] and int(row["voxels"]) == m["voxels"]
        for key in NUMBERS:
            assert (row[key] == "") if m[key] is None else float(row[key]) == m[key], key
        assert (int(row["first_slice"]), int(row["last_slice"])) == m["slices"]
        assert [int(z) for z in row["missing_slices"].split()] == m["missing_slices"]
        assert int(row["diameter_slice"]) == m["diameter_slice"]
        assert float(row["liver_spleen_volume_ratio"]) == liver_spleen_ratio(api)
    assert rows[0]["splenic_index_cm3"] == "" and rows[1]["splenic_index_cm3"] != ""


def test_no_patient_identifiers_in_the_files(session, tmp_path):
    path = session.export_nifti(tmp_path / "labels.nii.gz")
    for written in measurement_paths(path):
        text = written.read_text()
        for word in ("Doe", "Jane", "P-007", "19700101", "abdomen"):
            assert word not in text, (written.name, word)


def test_rewritten_atomically_and_without_organs(session, tmp_path):
    path = tmp_path / "labels.nii.gz"
    session.export_nifti(path)
    session.labels[...] = 0
    session.export_nifti(path)
    json_path, csv_path = measurement_paths(path)
    assert json.loads(json_path.read_text())["organs"] == {}
    assert read_csv(csv_path) == []                      # the header only
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "labels.nii.gz", "labels_measurements.csv", "labels_measurements.json"]


def test_without_ct_the_hu_cells_are_empty(tmp_path):
    labels = np.zeros((3, 5, 5), np.uint8)
    labels[1, 1:3, 1:3] = 1
    _, csv_path = write_measurements(tmp_path / "x.nii",
                                     organ_measurements(labels, None, (1, 1, 1)),
                                     (1, 1, 1), labels.shape)
    assert csv_path.name == "x_measurements.csv"
    row, = read_csv(csv_path)
    assert row["mean_hu"] == row["median_hu"] == row["liver_spleen_volume_ratio"] == ""
    assert float(row["volume_ml"]) == 0.004
