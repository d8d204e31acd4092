"""Enhanced CT (multi-frame) files: per-frame geometry and rescale, frames sorted like slices."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from radipop_widgets.errors import DuplicateSliceError
from radipop_widgets.io import load_study, scan_studies

from synthetic import ORIGIN, enhanced_ct, save, shuffled_frames, stored_values, write_ct_series

@pytest.mark.parametrize("per_frame", [(), ("orientation", "measures", "rescale")],
                         ids=["shared-groups", "per-frame-groups"])
@pytest.mark.parametrize("syntax", [None, RLELossless, JPEG2000Lossless],
                         ids=["uncompressed", "rle", "j2k"])
def test_one_multiframe_file_loads_in_position_order(tmp_path, per_frame, syntax):
    stored, order, positions = shuffled_frames(rows=32, cols=40)
    ds = enhanced_ct(stored[order], positions, per_frame=per_frame)
    kw = {} if syntax is None else {"transfer_syntax": syntax}
    path = save(ds, tmp_path / "multiframe.dcm", **kw)
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)
    assert study.spacing == pytest.approx((2.5, 0.7, 0.8))
    for z, r, c in [(0, 0, 0), (5, 3, 7), (2, 31, 39)]:
        np.testing.assert_allclose(study.affine @ [z, r, c, 1],
                                   [*(ORIGIN + (0.8 * c, 0.7 * r, 2.5 * z)), 1], atol=1e-9)
    # each slice names its file, the file's SOPInstanceUID and its 1-based frame number
    assert {s.path for s in study.sources} == {str(path)}
    assert {s.sop_instance_uid for s in study.sources} == {ds.SOPInstanceUID}
    assert [s.frame for s in study.sources] == [int(np.flatnonzero(order == z)[0]) + 1
                                                for z in range(6)]
    assert study.series_description == "enhanced abdomen"
    assert study.metadata["SliceThickness"] == "2.5" and study.warnings == []


def test_per_frame_rescale(tmp_path):
    stored, order, positions = shuffled_frames(high=4000)
    rescales = [(1.0, -1024.0), (0.5, -1000.0), (2.0, -2048.0)] * 2  # per stored frame
    save(enhanced_ct(stored[order], positions, rescales=rescales, per_frame=("rescale",)),
         tmp_path / "mf.dcm")
    study = load_study(tmp_path)
    for frame, z in enumerate(order):
        slope, intercept = rescales[frame]
        np.testing.assert_array_equal(study.hu[z], np.rint(stored[z] * slope + intercept))


def test_signed_frames_and_oblique_normal(tmp_path):
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # normal = +y
    stored = stored_values(4, 8, 10, low=-1024, high=1500, dtype=np.int16)
    positions = [(0.0, 3.0 * z, 0.0) for z in (3, 1, 0, 2)]
    save(enhanced_ct(stored[[3, 1, 0, 2]], positions, iop=coronal, rescales=[(1.0, 0.0)] * 4),
         tmp_path / "cor.dcm")
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored)
    np.testing.assert_allclose(study.affine[:3, 0], (0, 3, 0), atol=1e-9)


def test_series_split_over_two_multiframe_files(tmp_path):
    stored = stored_values(6, 8, 10)
    uid = "1.2.826.0.1.3680043.8.498.77"
    for part, zs in enumerate(([4, 5, 3], [1, 0, 2])):
        save(enhanced_ct(stored[zs], [ORIGIN + (0, 0, 2.5 * z) for z in zs], series_uid=uid,
                         instance_number=part + 1), tmp_path / f"part{part}.dcm")
    study = load_study(tmp_path)
    np.testing.assert_array_equal(study.hu, stored.astype(np.int32) - 1024)
    assert [s.instance_number for s in study.sources] == [2, 2, 2, 1, 1, 1]
    assert [s.frame for s in study.sources] == [2, 1, 3, 3, 1, 2]
    [entry] = scan_studies(tmp_path)
    assert entry.n_slices == 6 and entry.series_uid == uid


def test_progress_counts_frames(tmp_path):
    stored, order, positions = shuffled_frames(n=3)
    save(enhanced_ct(stored[order], positions), tmp_path / "mf.dcm")
    calls = []
    load_study(tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_two_stacks_in_one_file_are_refused(tmp_path):
    stored = stored_values(4, 8, 10)
    positions = [ORIGIN + (0, 0, 2.5 * (z % 2)) for z in range(4)]  # two time points
    save(enhanced_ct(stored, positions), tmp_path / "4d.dcm")
    with pytest.raises(DuplicateSliceError, match=r"4d\.dcm \(frame 1\) and .*4d\.dcm \(frame "
                                                   r"3\) lie at the same position"):
        load_study(tmp_path)


def test_multiframe_without_geometry_is_skipped(tmp_path):
    _, stored = write_ct_series(tmp_path, n=3)
    ds = enhanced_ct(stored, [ORIGIN] * 3, series_uid="1.2.3.99")
    del ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence
    save(ds, tmp_path / "broken_mf.dcm")
    study = load_study(tmp_path)
    assert study.n_slices == 3
    assert any("multi-frame image without position" in w and "broken_mf.dcm" in w
               for w in study.warnings)


def test_legacy_multiframe_without_functional_groups_is_skipped(tmp_path):
    paths, stored = write_ct_series(tmp_path, n=3)
    ds = pydicom.dcmread(paths[0])
    ds.NumberOfFrames, ds.PixelData = 2, stored[:2].tobytes()
    ds.SeriesInstanceUID = "1.2.3.98"
    ds.save_as(tmp_path / "legacy_mf.dcm")
    study = load_study(tmp_path)
    assert study.n_slices == 3
    assert any("without per-frame functional groups" in w and "legacy_mf" in w
               for w in study.warnings)
