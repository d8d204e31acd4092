"""Hostile and careless input to the loader: impossible geometry, malformed header values,
colour data, bombs, unreadable and symlinked folders (issue 9, Loader). Each input gets its
own StudyError subclass, never a raw exception."""

from __future__ import annotations

import os
import tracemalloc

import nibabel as nib
import numpy as np
import pydicom
import pytest
from synthetic import (
    deflated_bomb_dicom,
    enhanced_ct,
    gzip_bomb_nifti,
    patch_nifti_header,
    ras_volume,
    save,
    set_raw,
    shuffled_frames,
    write_ct_series,
    write_nifti,
)

from radipop_widgets import measure
from radipop_widgets.errors import (
    ColourImageError,
    EmptyVolumeError,
    GeometryError,
    HeaderValueError,
    NotHUError,
    OrientationError,
    PositionError,
    RescaleError,
    SpacingError,
    StudyError,
    StudyTooLargeError,
    UnreadableFileError,
)
from radipop_widgets.io import MEMORY_LIMIT_ENV, load_study, scan_studies

PIXEL_SPACING, ORIENTATION, POSITION = 0x00280030, 0x00200037, 0x00200032
SLOPE, INTERCEPT, PHOTOMETRIC = 0x00281053, 0x00281052, 0x00280004


def _series(folder, tag, vr, text, *, only=None, n=4):
    """A CT series whose files (or file ``only``) hold ``text`` as the raw value of ``tag``."""
    paths, _ = write_ct_series(folder, n=n)
    for i, path in enumerate(paths):
        if only is not None and i != only:
            continue
        ds = pydicom.dcmread(path)
        set_raw(ds, tag, vr, text)
        ds.save_as(path, enforce_file_format=True)
    return paths


# ---------------------------------------------------------------- DICOM geometry and values

BAD_DICOM = [
    # (what, tag, VR, raw value, error, message)
    ("spacing zero", PIXEL_SPACING, "DS", r"0\0", SpacingError, r"PixelSpacing .*0.*positive"),
    ("spacing negative", PIXEL_SPACING, "DS", r"-0.7\-0.8", SpacingError, "positive"),
    ("spacing inf", PIXEL_SPACING, "DS", r"inf\inf", SpacingError, "finite"),
    ("spacing 1e300", PIXEL_SPACING, "DS", r"1e300\1e300", SpacingError, "implausibly large"),
    ("spacing text", PIXEL_SPACING, "DS", r"abc\def", SpacingError, r"'abc\\\\def'.* 2 numbers"),
    ("spacing one value", PIXEL_SPACING, "DS", "0.7", SpacingError, "holds 1 value, 2 expected"),
    ("spacing corrupted number", PIXEL_SPACING, "DS", r"0.7.1\0.8", SpacingError, "0.7.1"),
    ("orientation not unit", ORIENTATION, "DS", r"3\0\0\0\3\0", OrientationError,
     r"not unit vectors \(lengths 3, 3\)"),
    ("orientation not orthogonal", ORIENTATION, "DS", r"1\0\0\0.7071068\0.7071068\0",
     OrientationError, r"not orthogonal \(45\.0 degrees from a right angle\)"),
    ("orientation zero", ORIENTATION, "DS", r"0\0\0\0\0\0", OrientationError, "not unit"),
    ("orientation text", ORIENTATION, "DS", "axial", OrientationError, "'axial'"),
    ("orientation five values", ORIENTATION, "DS", r"1\0\0\0\1", OrientationError,
     "holds 5 values, 6 expected"),
    ("orientation NaN", ORIENTATION, "DS", r"nan\0\0\0\1\0", OrientationError, "finite"),
    ("position two values", POSITION, "DS", r"1\2", PositionError, "holds 2 values, 3 expected"),
    ("position corrupted number", POSITION, "DS", r"1\2\x3", PositionError, "x3"),
    ("position inf", POSITION, "DS", r"inf\0\0", PositionError, "finite"),
    ("position 1e300", POSITION, "DS", r"0\0\1e300", PositionError, "implausibly far"),
    ("slope zero", SLOPE, "DS", "0", RescaleError, r"RescaleSlope 0 .*cannot give"),
    ("slope text", SLOPE, "DS", "one", RescaleError, "RescaleSlope 'one'"),
    ("slope inf", SLOPE, "DS", "inf", RescaleError, "RescaleSlope"),
    ("intercept text", INTERCEPT, "DS", "-1024HU", RescaleError, "RescaleIntercept '-1024HU'"),
    ("palette colour", PHOTOMETRIC, "CS", "PALETTE COLOR", ColourImageError, "PALETTE COLOR"),
    ("rgb with one sample", PHOTOMETRIC, "CS", "RGB", ColourImageError, "RGB"),
    ("ybr", PHOTOMETRIC, "CS", "YBR_FULL", ColourImageError, "YBR_FULL"),
    ("columns zero", 0x00280011, "US", b"\x00\x00", HeaderValueError, "Columns 0"),
    ("frames text", 0x00280008, "IS", "many", HeaderValueError, "NumberOfFrames 'many'"),
]


@pytest.mark.parametrize("what, tag, vr, value, error, message", BAD_DICOM,
                         ids=[case[0] for case in BAD_DICOM])
def test_bad_dicom_header_values_get_their_own_error(tmp_path, what, tag, vr, value, error,
                                                     message):
    _series(tmp_path, tag, vr, value)
    with pytest.raises(error, match=message) as info:
        load_study(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_one_bad_file_is_named(tmp_path):
    paths = _series(tmp_path, PIXEL_SPACING, "DS", r"0\0", only=2)
    with pytest.raises(SpacingError, match=str(paths[2])):
        load_study(tmp_path)


def test_geometry_errors_are_study_errors():
    for cls in (SpacingError, OrientationError, PositionError):
        assert issubclass(cls, GeometryError) and issubclass(cls, StudyError)
    assert issubclass(RescaleError, NotHUError) and issubclass(HeaderValueError,
                                                                UnreadableFileError)


def test_nearly_unit_orientation_is_normalised_with_a_warning(tmp_path):
    _series(tmp_path, ORIENTATION, "DS", r"1.004\0\0\0\0.996\0.002")
    study = load_study(tmp_path)
    directions = study.affine[:3, 1:3] / np.asarray(study.spacing[1:])  # column, row
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, atol=1e-9)
    assert abs(directions[:, 0] @ directions[:, 1]) < 1e-9
    assert any("ImageOrientationPatient" in w and "normalised" in w for w in study.warnings)
    assert measure.volumes_ml(np.ones(study.shape, np.uint8), study.spacing)["liver"] > 0


def test_orientation_rounded_in_the_file_loads_without_a_warning(tmp_path):
    _series(tmp_path, ORIENTATION, "DS", r"0.99999\0.00001\0\0\1\0")
    study = load_study(tmp_path)
    assert not any("ImageOrientationPatient" in w for w in study.warnings)


def test_multiframe_with_zero_pixel_spacing(tmp_path):
    stored, _, positions = shuffled_frames(n=4)
    save(enhanced_ct(stored, positions, pixel_mm=(0.0, 0.0)), tmp_path / "mf.dcm")
    with pytest.raises(SpacingError, match="PixelSpacing"):
        load_study(tmp_path)


def test_multiframe_with_text_orientation(tmp_path):
    stored, _, positions = shuffled_frames(n=4)
    ds = enhanced_ct(stored, positions)
    set_raw(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0], ORIENTATION,
            "DS", "axial")
    save(ds, tmp_path / "mf.dcm")
    with pytest.raises(OrientationError, match="'axial'"):
        load_study(tmp_path)


def test_rgb_series_with_three_samples_is_refused(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=3)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = bytes(ds.Rows * ds.Columns * 3)
        ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ColourImageError, match="colour"):
        load_study(tmp_path)


def test_a_colour_screenshot_beside_a_ct_series_is_still_only_skipped(tmp_path):
    write_ct_series(tmp_path / "ct", n=3)
    _series(tmp_path / "shot", PHOTOMETRIC, "CS", "PALETTE COLOR", n=1)
    shot = next((tmp_path / "shot").iterdir())
    ds = pydicom.dcmread(shot)
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.99"
    ds.save_as(shot, enforce_file_format=True)
    study = load_study(tmp_path)
    assert study.n_slices == 3
    assert any("colour image" in w and str(shot) in w for w in study.warnings)


def test_deflated_dicom_bomb_is_refused_before_inflating(tmp_path):
    deflated_bomb_dicom(tmp_path / "bomb.dcm", 100_000_000)  # 100 MB from ~100 KB
    assert (tmp_path / "bomb.dcm").stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableFileError, match="inflates to more than"):
            load_study(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2 ** 20


# ---------------------------------------------------------------- folders

def test_unreadable_sub_folder_is_skipped_with_a_warning(tmp_path, monkeypatch):
    write_ct_series(tmp_path / "a", n=3, seed=0)
    write_ct_series(tmp_path / "b", n=3, seed=0, origin=(-100.0, -120.0, -42.5))
    real = os.scandir
    locked = str(tmp_path / "b")

    def scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)
    study = load_study(tmp_path)
    assert study.n_slices == 3
    assert any("could not be read" in w and locked in w for w in study.warnings)


def test_symlinked_sub_folder_is_skipped_with_a_warning(tmp_path):
    write_ct_series(tmp_path / "data" / "a", n=3)
    write_ct_series(tmp_path / "elsewhere", n=3, origin=(-100.0, -120.0, -42.5))
    (tmp_path / "data" / "link").symlink_to(tmp_path / "elsewhere")
    study = load_study(tmp_path / "data")
    assert study.n_slices == 3
    assert any("symbolic link" in w and "link" in w for w in study.warnings)


# ---------------------------------------------------------------- NIfTI

@pytest.fixture
def nifti_file(tmp_path):
    data, affine = ras_volume()
    return write_nifti(tmp_path / "ct.nii", data, affine)


@pytest.mark.parametrize("fields, error, message", [
    ({"dim": [3, 0, 5, 4, 1, 1, 1, 1]}, EmptyVolumeError, r"shape \(0, 5, 4\).*no voxel"),
    ({"dim": [3, -6, 5, 4, 1, 1, 1, 1]}, HeaderValueError, "negative"),
    ({"srow_x": [np.nan, 0, 0, 0], "qform_code": 0, "sform_code": 1}, GeometryError,
     "not finite"),
    ({"srow_x": [np.inf, 0, 0, 0], "qform_code": 0, "sform_code": 1}, GeometryError,
     "not finite"),
    ({"srow_x": [1e30, 0, 0, 0], "qform_code": 0, "sform_code": 1}, SpacingError,
     "implausibly large"),
    ({"srow_x": [0, 0, 0, 0], "qform_code": 0, "sform_code": 1}, SpacingError, "zero"),
    ({"pixdim": [1, np.nan, 1, 1, 1, 1, 1, 1], "qform_code": 1, "sform_code": 0},
     GeometryError, "not finite"),
    ({"pixdim": [1, 0, 0.9, 2.5, 1, 1, 1, 1], "qform_code": 1, "sform_code": 0},
     SpacingError, r"pixdim \(0, 0.9, 2.5\)"),
    ({"pixdim": [1, 0, 0, 0, 1, 1, 1, 1], "qform_code": 0, "sform_code": 0},
     SpacingError, "zero"),
], ids=["zero dimension", "negative dimension", "NaN affine", "inf affine", "1e30 affine",
        "zero axis", "NaN pixdim", "zero pixdim with qform", "zero pixdim without codes"])
def test_impossible_nifti_headers(nifti_file, fields, error, message):
    patch_nifti_header(nifti_file, **fields)
    with pytest.raises(error, match=message):
        load_study(nifti_file)
    scan_studies(nifti_file.parent)  # the picker lists or leaves it out, never raises


def test_nifti_rgb_data_is_refused(tmp_path):
    data, affine = ras_volume()
    rgb = np.zeros(data.shape, [("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, affine), tmp_path / "rgb.nii")
    with pytest.raises(ColourImageError, match="RGB"):
        load_study(tmp_path / "rgb.nii")
    assert scan_studies(tmp_path) == []


def test_nifti_complex_data_is_refused(tmp_path):
    data, affine = ras_volume()
    path = write_nifti(tmp_path / "c.nii", data.astype(np.complex64), affine)
    with pytest.raises(NotHUError, match="complex"):
        load_study(path)


@pytest.mark.parametrize("dim", [[3, 2 ** 62, 5, 4, 1, 1, 1, 1], [3, 2 ** 61, 2 ** 3, 4, 1, 1, 1, 1],
                                 [3, 2 ** 40, 2 ** 20, 2 ** 10, 1, 1, 1, 1]])
def test_nifti2_dimension_that_wraps_the_memory_check(tmp_path, monkeypatch, dim):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    data, affine = ras_volume()
    nib.save(nib.Nifti2Image(data, affine), tmp_path / "n2.nii")
    patch_nifti_header(tmp_path / "n2.nii", dim=dim)
    with pytest.raises(StudyTooLargeError, match="needs"):
        load_study(tmp_path / "n2.nii")


def test_gzip_bomb_study_is_refused_from_its_header(tmp_path, monkeypatch):
    path = gzip_bomb_nifti(tmp_path / "bomb.nii.gz", (1024, 1024, 256), np.int16)
    assert path.stat().st_size < 2_000_000
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(256 * 2 ** 20))
    tracemalloc.start()
    try:
        with pytest.raises(StudyTooLargeError, match="0.50 GiB"):
            load_study(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20
