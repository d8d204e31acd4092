"""Exports a pipeline pairs voxel by voxel with its image (issue 9, Exports): a study loaded
from NIfTI is exported on its source voxel grid with its source affine and header, whatever
the source orientation; DICOM studies keep their export."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from realdata import shared_case
from synthetic import (
    ORIENTATION_CODES,
    blob_labels,
    orientation_affine,
    synthetic_study,
)

from radipop_widgets.export import export_organ_masks
from radipop_widgets.io import load_study
from radipop_widgets.labelmap import nifti_affine, read_nifti_labels, write_nifti_labels

THRESHOLD_HU = 500


def _source_ct(shape=(7, 6, 5), seed=0):
    """Random HU with air everywhere and bone-bright voxels at known places."""
    rng = np.random.default_rng(seed)
    data = rng.integers(-1000, 1200, shape).astype(np.int16)
    return data


def _assert_on_source_grid(path, source_path, expected):
    """The label file has the source's shape, affine and geometry header, and ``expected``
    (source voxel order) as its data."""
    written, source = nib.load(path), nib.load(source_path)
    assert written.shape == source.shape[:3]
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
    for key in ("qform_code", "sform_code", "xyzt_units", "dim_info"):
        assert int(written.header[key]) == int(source.header[key]), key
    np.testing.assert_allclose(written.header["pixdim"][1:4], source.header["pixdim"][1:4])
    np.testing.assert_allclose(written.header.get_qform(), source.header.get_qform(), atol=1e-5)
    np.testing.assert_allclose(written.header.get_sform(), source.header.get_sform(), atol=1e-5)
    assert written.header.get_slope_inter() in ((None, None), (1.0, 0.0))
    assert not written.header.extensions
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), expected)


def _bright(study):
    return (study.hu > THRESHOLD_HU).astype(np.uint8)


@pytest.mark.parametrize("code", ["RAS", "LPS", "LAS", "RPI", "PSR", "SLA", "IRP", "ALI"])
def test_nifti_study_exports_on_the_source_grid(tmp_path, code):
    data = _source_ct()
    source = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, orientation_affine(code, data.shape, zooms=(3.0, 2.0, 1.5))),
             source)
    study = load_study(source)
    assert study.source_grid is not None
    labels = _bright(study)
    path = write_nifti_labels(tmp_path / "labels.nii.gz", labels, study)
    _assert_on_source_grid(path, source, (data > THRESHOLD_HU).astype(np.uint8))
    masks = export_organ_masks(tmp_path / "masks", labels, study)
    _assert_on_source_grid(masks["liver"], source, (data > THRESHOLD_HU).astype(np.uint8))
    _assert_on_source_grid(masks["spleen"], source, np.zeros(data.shape, np.uint8))


def test_every_axis_order_and_direction_round_trips(tmp_path):
    data = _source_ct((4, 3, 5), seed=3)
    for code in ORIENTATION_CODES:
        source = tmp_path / f"{code}.nii"
        nib.save(nib.Nifti1Image(data, orientation_affine(code, data.shape)), source)
        study = load_study(source)
        path = write_nifti_labels(tmp_path / f"{code}-labels.nii", _bright(study), study)
        written = nib.load(path)
        assert written.shape == data.shape, code
        np.testing.assert_allclose(written.affine, nib.load(source).affine, atol=1e-6)
        np.testing.assert_array_equal(np.asanyarray(written.dataobj),
                                      (data > THRESHOLD_HU).astype(np.uint8), err_msg=code)


def test_a_box_labelled_in_the_viewer_lands_on_the_same_source_voxels(tmp_path):
    data = np.full((10, 8, 6), -1000, np.int16)
    data[2:5, 1:3, 4] = 300  # a box of soft tissue at known source indices
    source = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, orientation_affine("LIP", data.shape)), source)
    study = load_study(source)
    labels = (study.hu == 300).astype(np.uint8)  # what a user labels on screen
    assert labels.sum() == 6
    path = write_nifti_labels(tmp_path / "labels.nii.gz", labels, study)
    found = np.argwhere(np.asanyarray(nib.load(path).dataobj) == 1)
    np.testing.assert_array_equal(found, np.argwhere(data == 300))


def test_nifti2_and_single_volume_4d_sources(tmp_path):
    data = _source_ct()
    affine = orientation_affine("LAS", data.shape)
    for name, img in (("n2.nii", nib.Nifti2Image(data, affine)),
                      ("four.nii.gz", nib.Nifti1Image(data[..., None], affine))):
        nib.save(img, tmp_path / name)
        study = load_study(tmp_path / name)
        path = write_nifti_labels(tmp_path / f"labels-{name}", _bright(study), study)
        written = nib.load(path)
        assert type(written.header) is type(img.header)
        assert written.shape == data.shape
        np.testing.assert_allclose(written.affine, affine, atol=1e-6)
        np.testing.assert_array_equal(np.asanyarray(written.dataobj),
                                      (data > THRESHOLD_HU).astype(np.uint8))


def test_the_source_header_extensions_and_description_are_not_copied(tmp_path):
    data = _source_ct()
    img = nib.Nifti1Image(data, orientation_affine("RAS", data.shape))
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"Doe^Jane"))
    img.header["descrip"] = b"Patient Doe^Jane"
    img.header.set_slope_inter(1.0, 0.0)
    nib.save(img, tmp_path / "ct.nii")
    study = load_study(tmp_path / "ct.nii")
    path = write_nifti_labels(tmp_path / "labels.nii", _bright(study), study)
    raw = path.read_bytes()
    assert b"Doe" not in raw
    assert not nib.load(path).header.extensions


def test_shared_abdomen_exports_on_its_own_grid(tmp_path):
    source = shared_case("ct-abdomen-3mm") / "ct.nii.gz"
    study = load_study(source)
    labels = _bright(study)
    path = write_nifti_labels(tmp_path / "labels.nii.gz", labels, study)
    source_img = nib.load(source)
    written = nib.load(path)
    assert written.shape == source_img.shape
    np.testing.assert_allclose(written.affine, source_img.affine, atol=1e-5)  # diag(3, 3, 3)
    bright = np.asanyarray(source_img.dataobj) > THRESHOLD_HU
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), bright.astype(np.uint8))
    # the reference labels of the case pair with the export voxel for voxel
    reference = nib.load(source.parent / "reference_labels.nii.gz")
    np.testing.assert_allclose(reference.affine, written.affine, atol=1e-4)


def test_dicom_studies_keep_todays_export(tmp_path):
    study = synthetic_study(shape=(5, 7, 9))
    assert study.source_grid is None
    labels = blob_labels(study.shape)
    path = write_nifti_labels(tmp_path / "labels.nii.gz", labels, study)
    img = nib.load(path)
    assert img.shape == (9, 7, 5)
    np.testing.assert_allclose(img.affine, nifti_affine(study), atol=1e-5)
    back, affine = read_nifti_labels(path)
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_allclose(affine, study.affine, atol=1e-4)


def test_a_session_of_a_nifti_study_still_saves_on_the_study_grid(tmp_path):
    from radipop_widgets.persist import load_session, save_session

    data = _source_ct()
    (tmp_path / "data").mkdir()
    nib.save(nib.Nifti1Image(data, orientation_affine("RAS", data.shape)),
             tmp_path / "data" / "ct.nii")
    study = load_study(tmp_path / "data" / "ct.nii")
    labels = _bright(study)
    folder = save_session(tmp_path / "session", labels, {}, study)
    back, _ = load_session(folder, study)
    np.testing.assert_array_equal(back, labels)


def test_a_study_resampled_after_loading_is_written_on_its_own_grid(tmp_path):
    import dataclasses

    data = _source_ct()
    nib.save(nib.Nifti1Image(data, orientation_affine("RAS", data.shape)), tmp_path / "ct.nii")
    study = load_study(tmp_path / "ct.nii")
    moved = dataclasses.replace(study, affine=study.affine @ np.diag([1.0, 1, -1, 1]))
    path = write_nifti_labels(tmp_path / "labels.nii.gz", _bright(moved), moved)
    np.testing.assert_allclose(nib.load(path).affine, nifti_affine(moved), atol=1e-5)
    half = dataclasses.replace(study, hu=study.hu[::2])
    path = write_nifti_labels(tmp_path / "half.nii.gz", _bright(half), half)
    assert nib.load(path).shape == half.shape[::-1]
