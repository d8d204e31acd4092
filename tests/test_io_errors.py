"""Every load_study failure has its own StudyError subclass and a message that says the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from radipop_widgets.errors import (
    DecodeError,
    DuplicateSliceError,
    HURangeError,
    InconsistentSlicesError,
    MissingSliceError,
    MultipleSeriesError,
    NoImagesError,
    NotCTError,
    SeriesNotFoundError,
    StudyError,
    StudyTooLargeError,
    UnreadableFileError,
)
from radipop_widgets.io import MEMORY_LIMIT_ENV, load_study

from synthetic import ct_slice, save, stored_values, write_ct_series, write_nifti


def test_all_io_errors_are_study_errors():
    for cls in (DecodeError, DuplicateSliceError, HURangeError, InconsistentSlicesError,
                MissingSliceError, MultipleSeriesError, NoImagesError, NotCTError,
                SeriesNotFoundError, StudyTooLargeError, UnreadableFileError):
        assert issubclass(cls, StudyError)


def test_missing_path(tmp_path):
    with pytest.raises(NoImagesError, match="no such file or folder; check the path"):
        load_study(tmp_path / "nowhere")


def test_empty_folder(tmp_path):
    with pytest.raises(NoImagesError, match=r"no CT image slices found \(0 files"):
        load_study(tmp_path)


def test_folder_without_images_says_what_was_skipped(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    paths, _ = write_ct_series(tmp_path / "ct", n=1)
    sr = pydicom.dcmread(paths[0], stop_before_pixels=True)
    sr.Modality = "SR"
    sr.save_as(paths[0])
    with pytest.raises(NoImagesError, match=r"no CT image slices found \(2 files looked at; "
                       r".*Point to the folder") as info:
        load_study(tmp_path)
    assert "not a DICOM file: " + str(tmp_path / "readme.txt") in str(info.value)
    assert "not an image (SR): " + str(paths[0]) in str(info.value)


def test_not_ct(tmp_path):
    write_ct_series(tmp_path, n=3, modality="MR")
    with pytest.raises(NotCTError, match=r"is MR, not CT; only CT in Hounsfield units"):
        load_study(tmp_path)


def test_requested_series_not_ct(tmp_path):
    write_ct_series(tmp_path / "ct", n=3, series_uid="1.2.3.1")
    write_ct_series(tmp_path / "pt", n=3, series_uid="1.2.3.2", modality="PT")
    with pytest.raises(NotCTError, match=r"series '1\.2\.3\.2' is PT, not CT"):
        load_study(tmp_path, series="1.2.3.2")


def test_several_ct_series(tmp_path):
    write_ct_series(tmp_path / "a", n=3, series_uid="1.2.3.1", description="arterial")
    write_ct_series(tmp_path / "b", n=2, series_uid="1.2.3.2", description="venous")
    with pytest.raises(MultipleSeriesError,
                       match=r"(?s)holds 2 series; choose one by passing its UID as series=.*"
                             r"'arterial', CT, 3 slices.*'venous', CT, 2 slices"):
        load_study(tmp_path)


def test_series_not_found(tmp_path):
    write_ct_series(tmp_path, n=3, series_uid="1.2.3.1")
    with pytest.raises(SeriesNotFoundError,
                       match=r"(?s)no series '9\.9' here\. Pass one of these.*1\.2\.3\.1"):
        load_study(tmp_path, series="9.9")


def test_slices_of_different_sizes(tmp_path):
    write_ct_series(tmp_path, n=3)
    save(ct_slice(stored_values(1, 9, 10)[0], (-100, -120, -50 + 7.5), instance_number=9),
         tmp_path / "odd_size")
    with pytest.raises(InconsistentSlicesError,
                       match=r"slices of different sizes in one series \(8x10: 3 files, "
                             r"9x10: 1 files; e\.g\. .*odd_size\)"):
        load_study(tmp_path)


def test_slices_with_different_pixel_spacing(tmp_path):
    write_ct_series(tmp_path, n=3)
    save(ct_slice(stored_values(1, 8, 10)[0], (-100, -120, -50 + 7.5), pixel_mm=(0.9, 0.9)),
         tmp_path / "odd_spacing")
    with pytest.raises(InconsistentSlicesError, match="different PixelSpacing"):
        load_study(tmp_path)


def test_missing_slice(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=6, step=2.5)
    Path(paths[3]).unlink()
    with pytest.raises(MissingSliceError,
                       match=r"a slice is missing between -45\.00 and -40\.00 mm \(gap 5\.00 mm, "
                             r"usual step 2\.50 mm.*Export the complete series again"):
        load_study(tmp_path)


def test_duplicate_positions(tmp_path):
    write_ct_series(tmp_path / "a", n=3)
    write_ct_series(tmp_path / "b", n=3, seed=1)  # same UID, same positions, other SOP UIDs
    with pytest.raises(DuplicateSliceError,
                       match=r"lie at the same position \(-50\.00 mm along the slice normal\)"):
        load_study(tmp_path)


def test_truncated_header(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=3)
    Path(paths[1]).write_bytes(Path(paths[1]).read_bytes()[:400])
    with pytest.raises(UnreadableFileError, match=r"ends before its pixel data \(truncated"):
        load_study(tmp_path)


def test_truncated_uncompressed_pixel_data(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=3)
    Path(paths[2]).write_bytes(Path(paths[2]).read_bytes()[:-40])
    with pytest.raises(UnreadableFileError, match="pixel data cannot be read.*truncated"):
        load_study(tmp_path)


def test_truncated_compressed_pixel_data(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=3, rows=32, cols=40,
                               transfer_syntax=JPEG2000Lossless)
    Path(paths[0]).write_bytes(Path(paths[0]).read_bytes()[:-100])
    with pytest.raises(UnreadableFileError, match=r"pixel data is incomplete \(truncated"):
        load_study(tmp_path)


def test_damaged_file_with_dicom_prefix(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=2)
    data = bytearray(Path(paths[0]).read_bytes())
    data[132:400] = np.random.default_rng(0).integers(0, 256, 268, np.uint8).tobytes()
    Path(paths[0]).write_bytes(bytes(data))
    with pytest.raises(UnreadableFileError, match=r"cannot be read as DICOM"):
        load_study(tmp_path)
    Path(paths[0]).unlink()
    junk = b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + bytes(range(256)) * 4
    (tmp_path / "damaged.dcm").write_bytes(junk)
    with pytest.raises(UnreadableFileError, match=r"damaged\.dcm: cannot be read as DICOM"):
        load_study(tmp_path)


def test_corrupt_compressed_pixel_data(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=3, rows=32, cols=40, transfer_syntax=JPEGLSLossless)
    ds = pydicom.dcmread(paths[1])
    ds.PixelData = encapsulate([b"\xff\xd8" + bytes(range(200))])
    ds.save_as(paths[1])
    with pytest.raises(DecodeError, match=r"(?s)JPEG-LS Lossless .* cannot be decoded .*damaged"):
        load_study(tmp_path)


def test_transfer_syntax_without_decoder(tmp_path):
    paths, _ = write_ct_series(tmp_path, n=2, rows=32, cols=40,
                               transfer_syntax=JPEG2000Lossless)
    for p in paths:  # a video transfer syntax pydicom has no pixel decoder for
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
        ds.save_as(p)
    with pytest.raises(DecodeError, match=r"MPEG2 .*which pydicom cannot decode\. Convert the "
                                          r"series to an uncompressed transfer syntax"):
        load_study(tmp_path)


def test_decoder_not_installed(tmp_path, monkeypatch):
    write_ct_series(tmp_path, n=2, rows=32, cols=40, transfer_syntax=JPEG2000Lossless)
    monkeypatch.setattr(get_decoder(JPEG2000Lossless), "_available", {})
    with pytest.raises(DecodeError, match=r"no decoder for it is installed here\. Install"):
        load_study(tmp_path)


def test_too_large_is_checked_before_reading_pixels(tmp_path, monkeypatch):
    paths, _ = write_ct_series(tmp_path, n=4)
    Path(paths[0]).write_bytes(Path(paths[0]).read_bytes()[:-40])  # would fail when decoded
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(4 * 8 * 10 * 2 - 1))
    with pytest.raises(StudyTooLargeError,
                       match=r"volume \(4, 8, 10\) needs .* GiB as int16 but only .* available"):
        load_study(tmp_path)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(4 * 8 * 10 * 2))
    with pytest.raises(UnreadableFileError):  # the limit let it through to the pixels
        load_study(tmp_path)


def test_memory_limit_that_is_not_a_number_says_so(tmp_path, monkeypatch):
    write_ct_series(tmp_path, n=2)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "8GB")
    with pytest.raises(ValueError, match=r"RADIPOP_MEMORY_LIMIT='8GB' is not a number of bytes"):
        load_study(tmp_path)


def test_hu_outside_int16(tmp_path):
    write_ct_series(tmp_path, n=2, slope=100.0, intercept=0.0)
    with pytest.raises(HURangeError, match=r"do not fit in int16 .*rescale slope/intercept"):
        load_study(tmp_path)


# --- NIfTI -----------------------------------------------------------------------------------

def test_nifti_4d(tmp_path):
    write_nifti(tmp_path / "t.nii", np.zeros((4, 4, 3, 2), np.int16), np.eye(4))
    with pytest.raises(NotCTError, match=r"4-D image of shape \(4, 4, 3, 2\); a CT study is one"):
        load_study(tmp_path / "t.nii")


def test_nifti_damaged(tmp_path):
    write_nifti(tmp_path / "c.nii.gz", np.zeros((40, 40, 30), np.int16), np.eye(4))
    data = (tmp_path / "c.nii.gz").read_bytes()
    (tmp_path / "c.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFileError, match=r"probably truncated|not a readable NIfTI"):
        load_study(tmp_path / "c.nii.gz")
    (tmp_path / "x.nii").write_bytes(b"not nifti at all")
    with pytest.raises(UnreadableFileError, match=r"not a readable NIfTI file"):
        load_study(tmp_path / "x.nii")


def test_nifti_non_finite_and_out_of_range(tmp_path):
    values = np.zeros((4, 4, 3), np.float32)
    values[1, 1, 1] = np.nan
    write_nifti(tmp_path / "nan.nii", values, np.eye(4))
    with pytest.raises(HURangeError, match="NaN or infinite"):
        load_study(tmp_path / "nan.nii")
    values[1, 1, 1] = 1e6
    write_nifti(tmp_path / "big.nii", values, np.eye(4))
    with pytest.raises(HURangeError, match="do not fit in int16"):
        load_study(tmp_path / "big.nii")


def test_nifti_too_large(tmp_path, monkeypatch):
    write_nifti(tmp_path / "v.nii", np.zeros((4, 5, 6), np.int16), np.eye(4))
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "100")
    with pytest.raises(StudyTooLargeError, match=r"volume \(6, 5, 4\) needs"):
        load_study(tmp_path / "v.nii")
