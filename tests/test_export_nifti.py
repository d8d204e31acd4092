"""NIfTI label export: geometry (DICOM and NIfTI-derived studies), round trips, organ masks."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from realdata import shared_case
from synthetic import (blob_labels, oblique_affine, study_like_nifti_loader, synthetic_study,
                       write_nifti)

from radipop_widgets import export, labelmap
from radipop_widgets.errors import MaskFileError, SessionError
from radipop_widgets.export import export_organ_masks
from radipop_widgets.labelmap import nifti_affine, read_nifti_labels, write_nifti_labels

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def test_nifti_affine_of_axial_study_flips_x_y_and_orders_axes_col_row_slice():
    study = synthetic_study(spacing=(2.5, 0.8, 0.7))
    expected = np.array([[-0.7, 0, 0, 100.0],
                         [0, -0.8, 0, 120.0],
                         [0, 0, 2.5, -50.0],
                         [0, 0, 0, 1]])
    np.testing.assert_allclose(nifti_affine(study), expected)


def test_voxel_centres_match_dicom_geometry_from_headers():
    # Geometry as the DICOM headers state it: IPP per slice, IOP, PixelSpacing (row, col).
    iop_row, iop_col = np.array([0.0, 1, 0]), np.array([0.0, 0, -1])  # a sagittal-like tilt
    normal = np.cross(iop_row, iop_col)
    pixel_spacing = (0.9, 0.6)
    ipp = [np.array([5.0, -20, 30]) + z * 3.0 * normal for z in range(5)]
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = 3.0 * normal, pixel_spacing[0] * iop_col, \
        pixel_spacing[1] * iop_row
    affine[:3, 3] = ipp[0]
    study = synthetic_study(shape=(5, 7, 9), spacing=(3.0, 0.9, 0.6), affine=affine)
    nifti = nifti_affine(study)
    for z, r, c in [(0, 0, 0), (4, 6, 8), (2, 3, 1), (1, 6, 0)]:
        lps = ipp[z] + c * pixel_spacing[1] * iop_row + r * pixel_spacing[0] * iop_col
        ras = (nifti @ [c, r, z, 1])[:3]
        np.testing.assert_allclose(ras, LPS_TO_RAS @ lps, atol=1e-9)


def test_round_trip_oblique_geometry(tmp_path):
    spacing = (1.5, 0.7, 0.9)
    study = synthetic_study(shape=(7, 11, 13), spacing=spacing, affine=oblique_affine(spacing))
    labels = blob_labels(study.shape)
    path = write_nifti_labels(tmp_path / "mask_liver_and_spleen.nii.gz", labels, study)

    img = nib.load(path)
    assert img.shape == (13, 11, 7)  # (i, j, k) = (column, row, slice)
    assert img.get_data_dtype() == np.uint8
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), nifti_affine(study), atol=1e-5)
    np.testing.assert_allclose(img.get_sform(), nifti_affine(study), atol=1e-5)
    data = np.asanyarray(img.dataobj)
    np.testing.assert_array_equal(data, labels.transpose(2, 1, 0))
    # Every voxel centre lands on the same patient point as through Study.affine.
    for k, j, i in [(0, 0, 0), (6, 10, 12), (3, 4, 9)]:
        ras = (img.affine @ [i, j, k, 1])[:3]
        lps = (study.affine @ [k, j, i, 1])[:3]
        np.testing.assert_allclose(ras, LPS_TO_RAS @ lps, atol=1e-4)

    back, affine = read_nifti_labels(path)
    assert back.dtype == np.uint8 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_allclose(affine, study.affine, atol=1e-4)


def _assert_same_image_up_to_axis_order(path, original_data, original_affine):
    written = nib.as_closest_canonical(nib.load(path))
    source = nib.as_closest_canonical(nib.Nifti1Image(original_data, original_affine))
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(source.dataobj))


def test_nifti_derived_study_reproduces_the_source_affine_synthetic(tmp_path):
    # A RAS NIfTI like ct-abdomen-3mm (i -> R, j -> A, k -> S) with an offset and a flip.
    source_affine = np.array([[3.0, 0, 0, -180], [0, 3.0, 0, -150], [0, 0, 3.0, -400],
                              [0, 0, 0, 1]])
    data = blob_labels((9, 8, 10)).transpose(2, 1, 0)  # (i, j, k) = (10, 8, 9)
    study, labels = study_like_nifti_loader(data, source_affine)
    path = write_nifti_labels(tmp_path / "m.nii.gz", labels, study)
    _assert_same_image_up_to_axis_order(path, data, source_affine)
    # Exactly: the loader reversed i and j (R -> L, A -> P); the export keeps that order.
    ni, nj = data.shape[:2]
    flip_ij = np.array([[-1, 0, 0, ni - 1], [0, -1, 0, nj - 1], [0, 0, 1, 0], [0, 0, 0, 1]])
    written = nib.load(path)
    np.testing.assert_allclose(written.affine, source_affine @ flip_ij, atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), data[::-1, ::-1, :])


def test_nifti_derived_study_reproduces_shared_abdomen_geometry(tmp_path):
    case = shared_case("ct-abdomen-3mm")
    ref = nib.load(case / "reference_labels.nii.gz")
    data = np.asanyarray(ref.dataobj).astype(np.uint8)
    study, labels = study_like_nifti_loader(data, ref.affine)
    path = write_nifti_labels(tmp_path / "mask_liver_and_spleen.nii.gz", labels, study)
    _assert_same_image_up_to_axis_order(path, data, ref.affine)
    assert int((np.asanyarray(nib.load(path).dataobj) == 1).sum()) == 41692


def test_write_rejects_wrong_shape(tmp_path):
    study = synthetic_study()
    with pytest.raises(SessionError, match="shape"):
        write_nifti_labels(tmp_path / "x.nii.gz", np.zeros((2, 2, 2), np.uint8), study)
    assert not (tmp_path / "x.nii.gz").exists()
    assert list(tmp_path.iterdir()) == []


def test_export_organ_masks(tmp_path):
    study = synthetic_study()
    labels = blob_labels(study.shape)
    paths = export_organ_masks(tmp_path / "out", labels, study)
    assert sorted(p.name for p in paths.values()) == ["liver.nii.gz", "spleen.nii.gz"]
    for value, name in [(1, "liver"), (2, "spleen")]:
        img = nib.load(paths[name])
        data = np.asanyarray(img.dataobj)
        assert data.dtype == np.uint8 and set(np.unique(data)) == {0, 1}
        np.testing.assert_array_equal(data.transpose(2, 1, 0), labels == value)
        np.testing.assert_allclose(img.affine, nifti_affine(study), atol=1e-5)


@pytest.mark.parametrize("damage", ["truncated", "not_nifti", "four_d", "fractional", "negative"])
def test_read_rejects_malformed_label_files(tmp_path, damage):
    study = synthetic_study()
    path = write_nifti_labels(tmp_path / "labels.nii.gz", blob_labels(study.shape), study)
    if damage == "truncated":
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif damage == "not_nifti":
        path.write_bytes(b"this is not a NIfTI file")
    elif damage == "four_d":
        write_nifti(path, np.zeros((2, 2, 2, 2), np.uint8), np.eye(4))
    elif damage == "fractional":
        write_nifti(path, np.full((2, 2, 2), 0.5, np.float32), np.eye(4))
    else:
        write_nifti(path, np.full((2, 2, 2), -1, np.int16), np.eye(4))
    with pytest.raises(MaskFileError):
        read_nifti_labels(path)


def test_read_missing_file(tmp_path):
    with pytest.raises(MaskFileError, match="missing"):
        read_nifti_labels(tmp_path / "nope.nii.gz")


def test_with_the_nifti_loader_the_export_matches_the_reference_grid(tmp_path, abdomen_nifti):
    from radipop_widgets.io import load_study

    study = load_study(abdomen_nifti)
    ref = nib.load(abdomen_nifti.parent / "reference_labels.nii.gz")
    data = np.asanyarray(ref.dataobj).astype(np.uint8)
    simulated, labels = study_like_nifti_loader(data, ref.affine)
    assert study.shape == simulated.shape
    np.testing.assert_allclose(study.affine, simulated.affine, atol=1e-4)
    path = write_nifti_labels(tmp_path / "mask_liver_and_spleen.nii.gz", labels, study)
    _assert_same_image_up_to_axis_order(path, data, ref.affine)


def test_export_still_offers_the_codec():
    """The README, the Session and the benchmarks use the codec through ``export``."""
    for name in ("nifti_affine", "write_nifti_labels", "write_nifti_stream", "read_nifti_labels"):
        assert getattr(export, name) is getattr(labelmap, name)
