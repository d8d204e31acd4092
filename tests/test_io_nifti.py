"""load_study on NIfTI: axial DICOM orientation, LPS affine, scaling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from radipop_widgets.errors import NotCTError, NotHUError
from radipop_widgets.io import load_study, nifti, scan_studies

from synthetic import ras_volume, write_nifti

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def test_ras_volume_is_shown_like_an_axial_dicom_slice(tmp_path):
    data, affine = ras_volume()
    study = load_study(write_nifti(tmp_path / "ct.nii.gz", data, affine))
    assert study.hu.dtype == np.int16 and study.shape == (4, 5, 6)
    for k in range(4):  # row 0 anterior, column 0 patient right
        np.testing.assert_array_equal(study.hu[k], data[::-1, ::-1, k].T)
    assert study.spacing == pytest.approx((2.5, 0.9, 0.8))
    ni, nj = data.shape[:2]
    for k, r, c in [(0, 0, 0), (3, 4, 5), (2, 1, 3)]:
        ras = affine @ [ni - 1 - c, nj - 1 - r, k, 1]
        np.testing.assert_allclose(study.affine @ [k, r, c, 1], LPS_FROM_RAS @ ras)
    # as in DICOM: column index towards patient left (+x LPS), row towards posterior (+y)
    np.testing.assert_allclose(study.affine[:3, :3],
                               [[0, 0, 0.8], [0, 0.9, 0], [2.5, 0, 0]], atol=1e-12)
    assert study.series_uid is None and all(v is None for v in study.metadata.values())
    assert len(study.sources) == 4 and study.sources[0].path.endswith("ct.nii.gz")


def test_any_storage_orientation_gives_the_same_study(tmp_path):
    data, affine = ras_volume()
    ni, nj, nk = data.shape
    # stored with axes (S->I, L->R flipped, A): d2[a, b, c] = data[ni-1-b, c, nk-1-a]
    d2 = data.transpose(2, 0, 1)[::-1, ::-1, :]
    to_original = np.array([[0, -1, 0, ni - 1], [0, 0, 1, 0], [-1, 0, 0, nk - 1], [0, 0, 0, 1]],
                           float)
    reference = load_study(write_nifti(tmp_path / "ras.nii", data, affine))
    other = load_study(write_nifti(tmp_path / "other.nii", np.ascontiguousarray(d2),
                             affine @ to_original))
    np.testing.assert_array_equal(other.hu, reference.hu)
    np.testing.assert_allclose(other.affine, reference.affine, atol=1e-9)
    assert other.spacing == pytest.approx(reference.spacing)


@pytest.fixture
def one_plane_slabs(monkeypatch):
    """Read one plane per slab, so every slab boundary is exercised."""
    monkeypatch.setattr(nifti, "SLAB_VOXELS", 1)


def axial(data):
    """A RAS-stored (i, j, k) array as (slice, row, col) of an axial DICOM stack."""
    return data[::-1, ::-1, :].transpose(2, 1, 0)


@pytest.mark.parametrize("name", ["s.nii", "s.nii.gz"])
def test_scaled_data_gives_hu(tmp_path, one_plane_slabs, name):
    raw = np.arange(60, dtype=np.int16).reshape(3, 4, 5) * 37 - 1000
    study = load_study(write_nifti(tmp_path / name, raw, np.eye(4), slope=0.5, inter=-10.25))
    np.testing.assert_array_equal(study.hu, axial(np.rint(raw * 0.5 - 10.25)))
    unsigned = np.arange(60, dtype=np.uint16).reshape(3, 4, 5) * 50  # dcm2niix style
    study = load_study(write_nifti(tmp_path / ("u" + name), unsigned, np.eye(4), slope=1, inter=-1024))
    np.testing.assert_array_equal(study.hu, axial(unsigned.astype(np.int32) - 1024))


def test_float_data_with_fractions_is_rounded(tmp_path, one_plane_slabs):
    floats = np.random.default_rng(1).uniform(-1024, 2000, (3, 4, 5)).astype(np.float32)
    floats[0, 0, 0], floats[1, 1, 1] = -999.6, 40.5
    study = load_study(write_nifti(tmp_path / "f.nii.gz", floats, np.eye(4)))
    np.testing.assert_array_equal(study.hu, axial(np.rint(floats)))
    assert study.hu[0, 3, 2] == -1000 and study.hu[1, 2, 1] == 40  # half to even


def test_4d_with_a_single_volume_is_accepted(tmp_path):
    data, affine = ras_volume()
    study = load_study(write_nifti(tmp_path / "ct4.nii.gz", data[..., None], affine))
    np.testing.assert_array_equal(study.hu, axial(data))
    assert study.spacing == pytest.approx((2.5, 0.9, 0.8))


@pytest.mark.parametrize("codes", ["LAS", "PSR", "ILA"])
def test_non_axial_storage_is_reoriented_with_a_correct_affine(tmp_path, one_plane_slabs,
                                                                codes):
    """Known points: each voxel's world position (from the file's affine) is kept."""
    shape = (6, 5, 4)
    data = np.random.default_rng(2).integers(-1000, 2000, shape).astype(np.int16)
    # file affine with axes along the letters of ``codes`` (RAS world, mm)
    directions = {"R": (1, 0, 0), "L": (-1, 0, 0), "A": (0, 1, 0), "P": (0, -1, 0),
                  "S": (0, 0, 1), "I": (0, 0, -1)}
    affine = np.eye(4)
    for axis, (code, mm) in enumerate(zip(codes, (0.8, 0.9, 2.5))):
        affine[:3, axis] = np.array(directions[code]) * mm
    affine[:3, 3] = (10.0, -20.0, 30.0)
    assert "".join(nib.aff2axcodes(affine)) == codes
    study = load_study(write_nifti(tmp_path / "v.nii.gz", data, affine))
    assert study.hu.size == data.size
    # the axial convention: column towards patient left, row posterior, slice superior
    used = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], bool)  # x <- col, y <- row, z <- slice
    assert (study.affine[:3, :3][used] > 0).all()
    np.testing.assert_allclose(study.affine[:3, :3][~used], 0, atol=1e-12)
    world_to_file = np.linalg.inv(affine) @ LPS_FROM_RAS
    for z, r, c in np.ndindex(study.shape):
        i, j, k = np.rint(world_to_file @ study.affine @ [z, r, c, 1])[:3].astype(int)
        assert study.hu[z, r, c] == data[i, j, k]


def test_label_maps_and_non_hu_volumes_are_refused(tmp_path):
    data, affine = ras_volume()
    labels = (data > 500).astype(np.uint8)
    with pytest.raises(NotHUError, match=r"8-bit values \(uint8\) without scaling, which "
                                         r"cannot be Hounsfield units: it looks like a label map"):
        load_study(write_nifti(tmp_path / "labels.nii.gz", labels, affine))
    with pytest.raises(NotHUError, match=r"is a NIfTI volume of int16, and its values \(lowest "
                                         r"0\) do not look like Hounsfield units.*label map"):
        load_study(write_nifti(tmp_path / "labels16.nii.gz", labels.astype(np.int16), affine))
    with pytest.raises(NotCTError, match=r"scl_slope / scl_inter"):  # CT without intercept
        load_study(write_nifti(tmp_path / "raw.nii", (data + 1024).astype(np.uint16), affine))
    assert [e.path for e in scan_studies(tmp_path)] == [str(tmp_path / "labels16.nii.gz"),
                                                        str(tmp_path / "raw.nii")]


def test_progress(tmp_path, one_plane_slabs):
    data, affine = ras_volume()
    calls = []
    load_study(write_nifti(tmp_path / "ct.nii", data, affine), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.shared_data
def test_shared_abdomen_case_and_its_labels(abdomen_nifti):
    ct = nib.load(abdomen_nifti)
    data = np.asarray(ct.dataobj)
    study = load_study(abdomen_nifti)
    assert study.shape == (112, 101, 122) and study.spacing == pytest.approx((3.0, 3.0, 3.0))
    for k in range(study.n_slices):  # README: radiological display of slice k
        np.testing.assert_array_equal(study.hu[k], data[::-1, ::-1, k].T)
    assert int(study.hu.min()) == -1207 and int(study.hu.max()) == 3382
    labels_path = abdomen_nifti.parent / "reference_labels.nii.gz"
    with pytest.raises(NotHUError, match="label map"):
        load_study(labels_path)
    reference = nib.load(labels_path)
    np.testing.assert_allclose(reference.affine, ct.affine)
    labels = axial(np.asarray(reference.dataobj))
    liver, spleen = labels == 1, labels == 2
    assert np.count_nonzero(liver) == 41692 and np.count_nonzero(spleen) == 9668
    assert np.flatnonzero(liver.any(axis=(1, 2))).tolist() == list(range(69, 112))
    assert np.flatnonzero(spleen.any(axis=(1, 2))).tolist() == list(range(82, 112))
    for organ in (liver, spleen):  # homogeneous soft tissue (a flipped map gives ~-60..190
        assert 20 < study.hu[organ].mean() < 150 and study.hu[organ].std() < 60  # and sd >180)
    # the liver lies on the patient's right: low column indices (column 0 = patient right)
    assert np.nonzero(liver)[2].mean() < study.shape[2] / 2 < np.nonzero(spleen)[2].mean()
    ni, nj = data.shape[:2]
    for k, r, c in [(0, 0, 0), (111, 100, 121), (80, 40, 30)]:
        ras = ct.affine @ [ni - 1 - c, nj - 1 - r, k, 1]
        np.testing.assert_allclose(study.affine @ [k, r, c, 1], LPS_FROM_RAS @ ras, atol=1e-6)
