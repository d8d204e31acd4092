"""Other vendors' and exporters' quirks: each loads correctly or is refused with a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.pixels import apply_modality_lut
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from radipop_widgets.errors import (
    DuplicateSliceError,
    HURangeError,
    InconsistentSlicesError,
    NotCTError,
    NotHUError,
)
from radipop_widgets.io import load_study

from synthetic import save_raw, stored_values, write_ct_series


def hu_of(stored, intercept=-1024):
    return stored.astype(np.int32) + intercept


@pytest.mark.parametrize("implicit_vr", [True, False], ids=["implicit", "explicit"])
def test_raw_datasets_without_preamble_or_meta(tmp_path, implicit_vr):
    paths, stored = write_ct_series(tmp_path, n=3)
    for p in paths:
        save_raw(pydicom.dcmread(p), p, implicit_vr=implicit_vr)
        assert Path(p).read_bytes()[:2] == b"\x08\x00"
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, hu_of(stored))
    assert all(s.sop_instance_uid for s in study.sources)


def test_file_meta_without_preamble(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=3)
    for p in paths:
        Path(p).write_bytes(Path(p).read_bytes()[132:])  # drop preamble and "DICM"
    np.testing.assert_array_equal(load_study(tmp_path).hu, hu_of(stored))


def test_dicomdir_is_skipped_and_reported(tmp_path):
    paths, stored = write_ct_series(tmp_path / "export", n=4)
    fs = FileSet()
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.StudyDate, ds.StudyTime = "20240102", "101500"  # the DICOMDIR records need them
        fs.add(ds)
    fs.write(tmp_path / "media")  # DICOMDIR plus the files under media/PT000000/...
    study = load_study(tmp_path / "media")
    np.testing.assert_array_equal(study.hu, hu_of(stored))
    assert any(w.startswith("1 file(s) skipped, DICOMDIR") and w.endswith("DICOMDIR")
               for w in study.warnings)


def test_missing_rescale_signed_hu_loads_with_a_warning(tmp_path):
    stored = stored_values(3, 8, 10, low=-1024, high=1500, dtype=np.int16)
    paths, _ = write_ct_series(tmp_path, stored=stored)
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType
        ds.save_as(p)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored)
    assert any("no RescaleSlope/RescaleIntercept: stored values taken as Hounsfield units"
               in w for w in study.warnings)


@pytest.mark.parametrize("dtype, low", [(np.uint16, 0), (np.int16, -50)])
def test_missing_rescale_without_air_or_fat_is_refused(tmp_path, dtype, low):
    paths, _ = write_ct_series(tmp_path, stored=stored_values(3, 8, 10, low=low, high=2000,
                                                             dtype=dtype))
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.save_as(p)
    with pytest.raises(NotHUError, match=r"has no RescaleSlope/RescaleIntercept .*do not look "
                                         r"like Hounsfield units.*intercept -1024"):
        load_study(tmp_path)
    assert issubclass(NotHUError, NotCTError)


def test_signed_pixel_data_with_negative_hu(tmp_path):
    stored = stored_values(3, 8, 10, low=-2000, high=3000, dtype=np.int16)
    write_ct_series(tmp_path, stored=stored, intercept=0.0, bits_stored=16)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored)
    assert study.hu.min() < -1000


def test_junk_above_bits_stored_is_masked(tmp_path):
    stored = stored_values(3, 8, 10, high=4096)
    paths, _ = write_ct_series(tmp_path, stored=stored | np.uint16(0xA000), bits_stored=12)
    np.testing.assert_array_equal(load_study(tmp_path).hu, hu_of(stored))
    signed = stored_values(3, 8, 10, low=-2048, high=2048, dtype=np.int16)
    junk = (signed.view(np.uint16) & 0x0FFF) | 0x5000  # 12-bit two's complement + junk
    write_ct_series(tmp_path / "signed", stored=junk.view(np.int16), bits_stored=12,
                    intercept=0.0)
    np.testing.assert_array_equal(load_study(tmp_path / "signed").hu, signed)


def test_fractional_slope_rounds_like_the_modality_lut_and_overflow_is_refused(tmp_path):
    stored = stored_values(3, 8, 10, high=4096)
    paths, _ = write_ct_series(tmp_path / "half", stored=stored, slope=0.5, intercept=-1024.0)
    study = load_study(tmp_path / "half")
    for z, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        np.testing.assert_array_equal(study.hu[z], np.rint(apply_modality_lut(ds.pixel_array, ds)))
    big = stored_values(2, 8, 10, low=0, high=65535)
    big[0, 0, 0] = 65535
    write_ct_series(tmp_path / "big", stored=big, slope=0.5, intercept=0.0, bits_stored=16)
    with pytest.raises(HURangeError, match=r"\.\.32767\.5 do not fit in int16"):
        load_study(tmp_path / "big")


@pytest.mark.parametrize("syntax", [DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian],
                         ids=lambda s: s.name)
def test_deflated_and_big_endian(tmp_path, syntax):
    paths, stored = write_ct_series(tmp_path, n=3, transfer_syntax=syntax)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(load_study(tmp_path).hu, hu_of(stored))


def test_some_slices_without_position_are_refused(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=4)
    ds = pydicom.dcmread(paths[2])
    ds.SliceLocation = -45.0
    del ds.ImagePositionPatient
    ds.save_as(paths[2])
    with pytest.raises(InconsistentSlicesError,
                       match=r"1 of 4 slices have no ImagePositionPatient \(e\.g\. .*\), so "
                             r"their place in the volume is unknown"):
        load_study(tmp_path)


def test_slice_location_only_series(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=4, step=3.0)
    for z, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.SliceLocation = 100.0 + 3.0 * z
        del ds.ImagePositionPatient, ds.ImageOrientationPatient
        ds.save_as(p)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, hu_of(stored))
    assert study.spacing == pytest.approx((3.0, 0.7, 0.8))
    np.testing.assert_allclose(study.affine @ [2, 1, 1, 1], (0.8, 0.7, 106.0, 1), atol=1e-9)
    text = "\n".join(study.warnings)
    assert "placed by SliceLocation" in text and "axial orientation assumed" in text


def test_identical_copy_under_another_uid_is_skipped(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=3)
    ds = pydicom.dcmread(paths[1])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    ds.save_as(tmp_path / "anonymised_copy", enforce_file_format=True)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, hu_of(stored))
    assert any(w.startswith("1 file(s) skipped, second copy of the same image (same position "
                            "and pixel data)") for w in study.warnings)


def test_same_uid_with_other_pixels_is_refused(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=3)
    ds = pydicom.dcmread(paths[1])
    ds.PixelData = (ds.pixel_array + 1).astype(np.uint16).tobytes()
    ds.save_as(tmp_path / "edited")
    with pytest.raises(DuplicateSliceError, match="same position .* with different pixel data"):
        load_study(tmp_path)


def test_shared_sop_uids_at_different_positions_warn(tmp_path):
    _, stored = write_ct_series(tmp_path, n=3, sop_uid="1.2.3.4")
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, hu_of(stored))
    assert any("3 files share their SOPInstanceUID" in w for w in study.warnings)


def test_mixed_slice_thickness(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=5)
    for p, thickness in zip(paths, ["5", "2.5", "2.5", "2.5", "5"]):
        ds = pydicom.dcmread(p)
        ds.SliceThickness = thickness
        ds.save_as(p)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, hu_of(stored))
    assert study.spacing[0] == pytest.approx(2.5) and study.metadata["SliceThickness"] == "2.5"
    assert any("SliceThickness varies within the series (2.5 mm: 3 slices, 5 mm: 2 slices)"
               in w for w in study.warnings)


@pytest.mark.parametrize("charset, name, encoded", [
    ("ISO_IR 100", "Müller^Jürgen", "Müller^Jürgen".encode("latin-1")),
    ("ISO_IR 192", "山田^太郎", "山田^太郎".encode("utf-8"))])
def test_non_ascii_patient_name(tmp_path, charset, name, encoded):
    paths, _ = write_ct_series(tmp_path, n=2)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.SpecificCharacterSet, ds.PatientName = charset, name
        ds.save_as(p)
        assert encoded in Path(p).read_bytes()
    assert load_study(tmp_path).metadata["PatientName"] == name


def test_empty_sop_uid_without_meta_header_is_none(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=2, sop_uid="")
    for p in paths:
        save_raw(pydicom.dcmread(p), p)
    assert [s.sop_instance_uid for s in load_study(tmp_path).sources] == [None, None]


def test_copied_folder_with_duplicate_files(tmp_path):
    paths, stored = write_ct_series(tmp_path / "a", n=4)
    shutil.copytree(tmp_path / "a", tmp_path / "a copy")
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, hu_of(stored))
    assert any(w.startswith("4 file(s) skipped, second copy") for w in study.warnings)
