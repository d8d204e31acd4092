"""The bundled synthetic study: deterministic, realistic HU, exact labels, a valid series."""

import numpy as np
import pydicom
import pytest

from radipop_widgets.io.phantom import make_phantom, phantom_study, write_phantom_series
from radipop_widgets.labels import LIVER, SPLEEN

SMALL = dict(shape=(12, 128, 128), pixel_mm=3.2, slice_mm=12.5)


def test_same_seed_same_volume_other_seed_other_noise():
    hu_a, labels_a = make_phantom(**SMALL, seed=3)
    hu_b, labels_b = make_phantom(**SMALL, seed=3)
    hu_c, labels_c = make_phantom(**SMALL, seed=4)
    np.testing.assert_array_equal(hu_a, hu_b)
    np.testing.assert_array_equal(labels_a, labels_c)
    assert not np.array_equal(hu_a, hu_c)


def test_tissues_have_realistic_hounsfield_units():
    hu, labels = make_phantom(**SMALL)
    assert hu.dtype == np.int16
    assert 90 < np.median(hu[labels == LIVER]) < 130
    assert 95 < np.median(hu[labels == SPLEEN]) < 140
    assert hu.min() <= -990  # air outside the body and in the stomach
    assert hu.max() >= 600  # spine and ribs
    body_fat = (hu > -150) & (hu < -50)
    assert body_fat.mean() > 0.05


def test_organ_volumes_do_not_depend_on_resolution():
    coarse = phantom_study(**SMALL)[1]
    fine = phantom_study(shape=(24, 256, 256), pixel_mm=1.6, slice_mm=6.25)[1]
    for label in (LIVER, SPLEEN):
        coarse_ml = (coarse == label).sum() * 3.2 * 3.2 * 12.5 / 1000
        fine_ml = (fine == label).sum() * 1.6 * 1.6 * 6.25 / 1000
        assert coarse_ml == pytest.approx(fine_ml, rel=0.08)
    liver_ml = (fine == LIVER).sum() * 1.6 * 1.6 * 6.25 / 1000
    assert 1200 < liver_ml < 2200  # an adult liver


def test_liver_on_patient_right_spleen_on_patient_left():
    _, labels = make_phantom(**SMALL)
    columns = np.arange(labels.shape[2])
    liver_col = columns[np.nonzero(labels == LIVER)[2]].mean()
    spleen_col = columns[np.nonzero(labels == SPLEEN)[2]].mean()
    # Column 0 is patient right in a standard axial slice.
    assert liver_col < labels.shape[2] / 2 < spleen_col


def test_written_series_is_valid_ct_with_hu_after_rescale(tmp_path):
    write_phantom_series(tmp_path, **SMALL)
    files = sorted((tmp_path / "dicom").glob("*.dcm"))
    assert len(files) == SMALL["shape"][0]
    hu, _ = make_phantom(**SMALL)
    by_z = sorted((pydicom.dcmread(f) for f in files), key=lambda ds: ds.ImagePositionPatient[2])
    for k, ds in enumerate(by_z):
        assert ds.Modality == "CT"
        restored = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
        np.testing.assert_array_equal(restored, hu[k])
    z = [float(ds.ImagePositionPatient[2]) for ds in by_z]
    np.testing.assert_allclose(np.diff(z), SMALL["slice_mm"])
    labels = np.load(tmp_path / "reference_labels.npz")["labels"]
    assert labels.shape == SMALL["shape"]


@pytest.mark.parametrize("phase, liver_range", [("native", (45, 70)), ("arterial", (60, 85)),
                                                 ("portal", (95, 120))])
def test_contrast_phases_change_organ_hu_not_anatomy(phase, liver_range):
    hu, labels = make_phantom(**SMALL, phase=phase)
    _, portal_labels = make_phantom(**SMALL)
    np.testing.assert_array_equal(labels, portal_labels)
    assert liver_range[0] < np.median(hu[labels == LIVER]) < liver_range[1]


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="phase must be one of"):
        make_phantom(**SMALL, phase="delayed")
