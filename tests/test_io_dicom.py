"""load_study on DICOM: HU, order, geometry, identifiers, codecs, series choice, skipping."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from radipop_widgets.errors import MultipleSeriesError
from radipop_widgets.io import load_study, scan_studies
from radipop_widgets.io.phantom import phantom_study, write_phantom_series
from radipop_widgets.study import METADATA_KEYS

from realdata import shared_case
from synthetic import PATIENT, ct_slice, save, stored_values, write_ct_series, write_nifti

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def voxel_to_patient(affine, z, r, c):
    return (affine @ np.array([z, r, c, 1.0]))[:3]


# --- synthetic series ------------------------------------------------------------------------

def test_hu_order_spacing_affine_and_sources(tmp_path):
    paths, stored = write_ct_series(tmp_path / "a" / "b", n=6, rows=8, cols=10, step=2.5,
                                    origin=(-100, -120, -50), pixel_mm=(0.7, 0.8))
    (tmp_path / "notes.txt").write_text("not dicom")
    (tmp_path / ".DS_Store").write_bytes(b"\0" * 10)
    write_ct_series(tmp_path / ".trash", n=2, seed=3)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)
    assert study.hu.dtype == np.int16 and study.shape == (6, 8, 10)
    assert study.spacing == pytest.approx((2.5, 0.7, 0.8))
    assert [s.path for s in study.sources] == [str(p) for p in paths]
    assert [s.instance_number for s in study.sources] == [6, 5, 4, 3, 2, 1]
    for z in range(6):
        np.testing.assert_allclose(voxel_to_patient(study.affine, z, 0, 0),
                                   (-100, -120, -50 + 2.5 * z))
    # column index moves along +x (0.8 mm), row index along +y (0.7 mm)
    np.testing.assert_allclose(voxel_to_patient(study.affine, 0, 3, 2),
                               (-100 + 2 * 0.8, -120 + 3 * 0.7, -50))
    assert study.series_uid == "1.2.826.0.1.3680043.8.498.1"
    assert study.study_uid == "1.2.826.0.1.3680043.8.498.2"
    assert study.frame_of_reference_uid == "1.2.826.0.1.3680043.8.498.3"
    assert study.series_description == "synthetic abdomen" and study.modality == "CT"
    assert study.metadata == {**PATIENT, "SliceThickness": "2.5"}
    assert set(study.metadata) == set(METADATA_KEYS)
    # repr is what logs and tracebacks show: it must not carry patient metadata
    assert PATIENT["PatientName"] not in repr(study) and PATIENT["PatientID"] not in repr(study)
    assert any("not a DICOM file" in w and "notes.txt" in w for w in study.warnings)
    assert not any(".DS_Store" in w or ".trash" in w for w in study.warnings)


def test_sorts_along_slice_normal_not_z(tmp_path):
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # normal = +y (posterior)
    paths, stored = write_ct_series(tmp_path, n=4, iop=coronal, step=3.0, origin=(0, 10, 0))
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)
    np.testing.assert_allclose(study.affine[:3, 0], (0, 3, 0), atol=1e-9)
    np.testing.assert_allclose(study.affine[:3, 1], (0, 0, -0.7), atol=1e-9)


def test_missing_metadata_and_empty_uids_are_none(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=3, series_uid="", study_uid="", frame_uid="",
                                    sop_uid="")
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.PatientName, ds.ContentDate
        ds.save_as(p)
    study = load_study(tmp_path)
    assert study.series_uid is study.study_uid is study.frame_of_reference_uid is None
    # an empty SOPInstanceUID falls back to the file meta MediaStorageSOPInstanceUID
    meta = [pydicom.dcmread(s.path).file_meta.MediaStorageSOPInstanceUID for s in study.sources]
    assert [s.sop_instance_uid for s in study.sources] == meta and all(meta)
    assert study.metadata["PatientName"] is None and study.metadata["ContentDate"] is None
    assert study.metadata["PatientID"] == "P-007"
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)


@pytest.mark.parametrize("slope, intercept", [(1, -1024), (0.5, -1000.5), (2, -2048), (1, 0)])
def test_hu_equals_pydicom_modality_lut(tmp_path, slope, intercept):
    stored = stored_values(3, 6, 7, low=-900, high=3000, dtype=np.int16)
    paths, _ = write_ct_series(tmp_path, stored=stored, slope=slope, intercept=intercept)
    study = load_study(tmp_path)
    for z, source in enumerate(study.sources):
        ds = pydicom.dcmread(source.path)
        np.testing.assert_array_equal(study.hu[z], np.rint(apply_modality_lut(ds.pixel_array, ds)))


def test_monochrome1_is_inverted_before_rescale(tmp_path):
    stored = stored_values(3, 6, 7, high=4096)
    write_ct_series(tmp_path, stored=4095 - stored, photometric="MONOCHROME1", bits_stored=12)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)
    assert any("MONOCHROME1" in w for w in study.warnings)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, RLELossless,
                                    JPEGLSLossless, JPEG2000Lossless, JPEGLosslessSV1],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("dtype, low, high", [(np.uint16, 0, 4096), (np.int16, -2048, 2048)])
def test_transfer_syntaxes_decode_to_the_same_hu(tmp_path, syntax, dtype, low, high):
    # 32 x 40: the smallest size the OpenJPEG encoder accepts with its default levels
    stored = stored_values(3, 32, 40, low=low, high=high, dtype=dtype)
    paths, _ = write_ct_series(tmp_path, stored=stored, transfer_syntax=syntax, bits_stored=12)
    assert pydicom.dcmread(paths[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)


def test_single_file(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=3)
    study = load_study(paths[1])
    np.testing.assert_array_equal(study.hu, stored[1:2].astype(np.int32) - 1024)
    assert study.spacing[0] == 1.0 and any("single slice" in w for w in study.warnings)


def test_progress_reports_every_slice(tmp_path):
    write_ct_series(tmp_path, n=4)
    calls = []
    load_study(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


def test_localizer_and_non_image_objects_are_skipped(tmp_path):
    paths, stored = write_ct_series(tmp_path / "ct", n=4)
    scout = ct_slice(stored_values(1, 8, 10)[0], (0, 0, 0), iop=(0, 1, 0, 0, 0, -1),
                     instance_number=99, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    save(scout, tmp_path / "ct" / "scout.dcm")
    sr = pydicom.dcmread(paths[0], stop_before_pixels=True)
    sr.Modality, sr.SOPClassUID = "SR", "1.2.840.10008.5.1.4.1.1.88.11"
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    sr.save_as(tmp_path / "report.dcm")
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)
    text = "\n".join(study.warnings)
    assert "localizer" in text and "scout.dcm" in text
    assert "not an image (SR)" in text and "report.dcm" in text


def test_oblique_extra_slice_in_series_is_skipped_as_localizer(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=5)
    save(ct_slice(stored[0], (0, 0, 0), iop=(1, 0, 0, 0, 0, -1), instance_number=50),
         tmp_path / "other_orientation")
    study = load_study(tmp_path)
    assert study.n_slices == 5 and any("other_orientation" in w for w in study.warnings)


def test_duplicate_copy_of_a_file_is_skipped(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=3)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "same").write_bytes(Path(paths[1]).read_bytes())
    study = load_study(tmp_path)
    assert study.n_slices == 3 and any("second copy" in w for w in study.warnings)


def test_series_choice(tmp_path):
    write_ct_series(tmp_path / "s1", n=3, series_uid="1.2.3.1", description="soft tissue")
    _, stored2 = write_ct_series(tmp_path / "s2", n=4, seed=1, series_uid="1.2.3.2",
                                 description="bone", series_number=4)
    with pytest.raises(MultipleSeriesError, match=r"(?s)series=.*1\.2\.3\.1.*'soft tissue', "
                       r"CT, 3 slices.*1\.2\.3\.2.*'bone', CT, 4 slices") as info:
        load_study(tmp_path)
    assert {s["uid"]: s["n_slices"] for s in info.value.series} == {"1.2.3.1": 3,
                                                                     "1.2.3.2": 4}
    study = load_study(tmp_path, series="1.2.3.2")
    np.testing.assert_array_equal(study.hu, stored2.astype(np.int32) - 1024)
    assert study.series_uid == "1.2.3.2"


def test_series_without_uid_are_told_apart_by_series_number(tmp_path):
    write_ct_series(tmp_path, n=3, series_uid="", series_number=2)
    _, stored = write_ct_series(tmp_path, n=2, seed=5, series_uid="", series_number=7)
    with pytest.raises(MultipleSeriesError, match="no-uid/series-7"):
        load_study(tmp_path)
    study = load_study(tmp_path, series="no-uid/series-7")
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)


def test_only_ct_series_is_picked_next_to_another_modality(tmp_path):
    _, stored = write_ct_series(tmp_path / "ct", n=3, series_uid="1.2.3.1")
    write_ct_series(tmp_path / "mr", n=3, series_uid="1.2.3.9", modality="MR")
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)
    assert any("other series (MR)" in w for w in study.warnings)


def test_gantry_tilt_affine_follows_positions(tmp_path):
    stored = stored_values(4, 8, 10)
    for z in range(4):  # positions shift along y as z grows: a 10 degree tilt
        save(ct_slice(stored[z], (0, z * 2.0 * np.tan(np.radians(10)), z * 2.0),
                      instance_number=z + 1), tmp_path / f"{z}.dcm")
    study = load_study(tmp_path)
    assert study.spacing[0] == pytest.approx(2.0)
    for z in range(4):
        np.testing.assert_allclose(voxel_to_patient(study.affine, z, 0, 0),
                                   (0, z * 2.0 * np.tan(np.radians(10)), z * 2.0), atol=1e-9)
    assert any("gantry tilt of 10.0 degrees" in w for w in study.warnings)


def test_scan_studies_lists_series_and_nifti(tmp_path):
    write_ct_series(tmp_path / "p1", n=3, series_uid="1.2.3.1", description="venous")
    write_ct_series(tmp_path / "p1", n=2, seed=1, series_uid="1.2.3.2", description="late")
    write_ct_series(tmp_path / "p2" / "ct", n=4, series_uid="", series_number="")
    write_ct_series(tmp_path / "p3", n=2, series_uid="1.2.3.5", modality="MR")
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    write_nifti(tmp_path / "v.nii.gz", np.full((4, 5, 6), -1000, np.int16), affine)
    write_nifti(tmp_path / "labels.nii", np.zeros((4, 5, 6), np.uint8), affine)
    (tmp_path / ".hidden").mkdir()
    write_ct_series(tmp_path / ".hidden", n=2, series_uid="1.2.3.7")
    entries = sorted(scan_studies(tmp_path), key=lambda e: (e.path, e.n_slices))
    got = [(Path(e.path).relative_to(tmp_path).as_posix(), e.kind, e.description, e.n_slices,
            e.series_uid) for e in entries]
    assert got == [("p1", "dicom", "late", 2, "1.2.3.2"),
                   ("p1", "dicom", "venous", 3, "1.2.3.1"),
                   ("p2/ct", "dicom", "synthetic abdomen", 4, "no-uid"),
                   ("v.nii.gz", "nifti", "v.nii.gz", 6, None)]
    for e in entries:
        assert load_study(e.path, series=e.series_uid).n_slices == e.n_slices


def test_phantom_series_loads_back_exactly(tmp_path):
    kw = dict(shape=(6, 64, 64), pixel_mm=6.4, slice_mm=25.0)
    write_phantom_series(tmp_path, **kw)
    study = load_study(tmp_path)  # also holds reference_labels.npz: skipped, not DICOM
    expected, labels = phantom_study(**kw)
    np.testing.assert_array_equal(study.hu, expected.hu)
    np.testing.assert_array_equal(np.load(tmp_path / "reference_labels.npz")["labels"], labels)
    np.testing.assert_allclose(study.affine, expected.affine, atol=1e-9)
    assert study.spacing == pytest.approx(expected.spacing)
    assert [s.instance_number for s in study.sources] == [6, 5, 4, 3, 2, 1]
    assert study.metadata["PatientID"] == expected.metadata["PatientID"]
    assert any("reference_labels.npz" in w for w in study.warnings)


# --- the shared real CT ----------------------------------------------------------------------

def assert_hu_matches_modality_lut(study):
    for z, source in enumerate(study.sources):
        ds = pydicom.dcmread(source.path)
        np.testing.assert_array_equal(study.hu[z], apply_modality_lut(ds.pixel_array, ds))


@pytest.mark.shared_data
def test_siemens_series(siemens_dir):
    study = load_study(siemens_dir)
    assert study.shape == (20, 512, 512) and study.hu.dtype == np.int16
    assert_hu_matches_modality_lut(study)
    zs = [float(pydicom.dcmread(s.path, stop_before_pixels=True).ImagePositionPatient[2])
          for s in study.sources]
    assert zs == sorted(zs) and zs[0] == -804.5
    assert [s.instance_number for s in study.sources] == list(range(286, 266, -1))
    assert study.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert study.series_uid is None and study.study_uid is None
    assert study.metadata["SliceThickness"] == "3" and study.warnings == []
    assert int(study.hu.min()) == -1024 and int(study.hu.max()) == 1839


@pytest.mark.shared_data
def test_siemens_reference_labels_and_totalseg_affine(siemens_dir):
    study = load_study(siemens_dir)
    labels = np.load(siemens_dir.parent / "reference_labels.npz")["labels"]
    assert round(float(study.hu[labels == 1].mean())) == 89
    assert round(float(study.hu[labels == 2].mean())) == 80
    seg = nib.load(siemens_dir.parent / "totalseg_seg.nii.gz")
    # voxel centres: study (z, row, col) is seg (col, 511 - row, z), in the same place
    to_seg = np.linalg.inv(LPS_FROM_RAS @ seg.affine) @ study.affine
    for z, r, c in [(0, 0, 0), (19, 511, 511), (7, 100, 300), (12, 400, 37)]:
        np.testing.assert_allclose((to_seg @ [z, r, c, 1])[:3], (c, 511 - r, z), atol=1e-4)
    data = np.asarray(seg.dataobj)
    resampled = data[np.arange(512)[None, None, :], 511 - np.arange(512)[None, :, None],
                     np.arange(20)[:, None, None]]
    np.testing.assert_array_equal(resampled == 5, labels == 1)
    np.testing.assert_array_equal(resampled == 1, labels == 2)


def read_nrrd(path):
    raw = Path(path).read_bytes()
    head, body = raw.split(b"\n\n", 1)
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines()[1:]
                  if ": " in line)
    assert fields["type"] == "short" and fields["encoding"] == "gzip"
    numbers = lambda text: [float(v) for v in re.findall(r"-?[\d.]+(?:e-?\d+)?", text)]
    affine = np.eye(4)
    affine[:3, :3] = np.array(numbers(fields["space directions"])).reshape(3, 3).T
    affine[:3, 3] = numbers(fields["space origin"])
    sizes = [int(v) for v in fields["sizes"].split()]
    data = np.frombuffer(gzip.decompress(body), "<i2").reshape(sizes[::-1])  # (k, j, i)
    return data, affine


@pytest.mark.shared_data
def test_ge_series_implicit_vr_with_seg_next_to_it(ge_dir):
    study = load_study(ge_dir.parent)  # also holds liver_seg.dcm (a SEG), .nrrd and .npz
    assert study.shape == (3, 512, 512)
    assert_hu_matches_modality_lut(study)
    assert pydicom.dcmread(study.sources[0].path).file_meta.TransferSyntaxUID == \
        ImplicitVRLittleEndian
    assert [s.instance_number for s in study.sources] == [3, 2, 1]
    assert [Path(s.path).name for s in study.sources] == ["03.dcm", "02.dcm", "01.dcm"]
    assert study.spacing == pytest.approx((1.0, 0.810547, 0.810547))
    assert any("not an image (SEG)" in w for w in study.warnings)
    labels = np.load(ge_dir.parent / "reference_labels.npz")["labels"]
    assert np.count_nonzero(labels == 1) == 107098
    assert round(float(study.hu[labels == 1].mean())) == 37
    nrrd, nrrd_affine = read_nrrd(ge_dir.parent / "liver_seg.nrrd")
    np.testing.assert_array_equal(nrrd == 1, labels == 1)
    # nrrd index (i, j, k) = (col, row, slice): the same LPS affine up to that permutation
    swap = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    np.testing.assert_allclose(study.affine, nrrd_affine @ swap, atol=1e-4)


@pytest.mark.shared_data
def test_scan_shared_data():
    root = shared_case("ct-siemens-20slices").parent
    entries = {Path(e.path).relative_to(root).as_posix(): e for e in scan_studies(root)}
    # every case of the shared folder is listed, reference label maps are not
    assert {"ct-siemens-20slices/dicom", "ge-ct-3slices/dicom",
            "ct-abdomen-3mm/ct.nii.gz"} <= set(entries)
    assert not any("reference" in name or "totalseg" in name for name in entries)
    assert entries["ct-siemens-20slices/dicom"].n_slices == 20
    assert entries["ct-abdomen-3mm/ct.nii.gz"].n_slices == 112
