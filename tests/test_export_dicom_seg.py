"""DICOM SEG export through highdicom: readable, frames on the right slices, real SEG compared."""

from __future__ import annotations

import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest
from realdata import shared_case
from synthetic import blob_labels, dicom_study, study_from_files, synthetic_study

from radipop_widgets.errors import SessionError
from radipop_widgets.export import dicom_seg_problem, export_dicom_seg
from radipop_widgets.study import SliceSource

SHAPE = (4, 16, 20)
LIVER_SCT, SPLEEN_SCT = "10200004", "78961009"


@pytest.fixture
def series(tmp_path):
    return dicom_study(tmp_path / "dicom", shape=SHAPE)


def _labels():
    labels = blob_labels(SHAPE)
    labels[labels == 3] = 0
    labels[0] = 0  # one empty slice: its frame is omitted
    return labels


def _pixels(seg_path, study, segment):
    seg = hd.seg.segread(seg_path)
    uids = [s.sop_instance_uid for s in study.sources]
    return seg.get_pixels_by_source_instance(uids, segment_numbers=[segment])[..., 0]


def _assert_frames_on_slices_by_position(ds, study, labels):
    """Each BINARY frame equals its segment's mask on the slice at its ImagePositionPatient."""
    z_of_slice = np.array([(study.affine @ [z, 0, 0, 1])[2] for z in range(study.n_slices)])
    frames = ds.pixel_array.reshape(-1, *study.shape[1:])
    assert len(frames) == len(ds.PerFrameFunctionalGroupsSequence) > 0
    for frame, group in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        distance = np.abs(z_of_slice - float(group.PlanePositionSequence[0]
                                             .ImagePositionPatient[2]))
        z = int(distance.argmin())
        assert distance[z] < 1e-3
        identification = group.get("SegmentIdentificationSequence") or \
            ds.SharedFunctionalGroupsSequence[0].SegmentIdentificationSequence
        number = identification[0].ReferencedSegmentNumber
        value = {1: 1, 2: 2}[number]
        np.testing.assert_array_equal(frame, labels[z] == value)


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_seg_round_trip_and_references(tmp_path, series, segmentation_type):
    labels = _labels()
    path = export_dicom_seg(tmp_path / "seg.dcm", labels, series,
                            segmentation_type=segmentation_type)

    ds = pydicom.dcmread(path)
    assert ds.Modality == "SEG" and ds.SegmentationType == segmentation_type
    source = pydicom.dcmread(series.sources[0].path)
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    referenced = {item.ReferencedSOPInstanceUID
                  for item in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {s.sop_instance_uid for s in series.sources}
    types = [(item.SegmentLabel, item.SegmentedPropertyTypeCodeSequence[0].CodeValue,
              item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator)
             for item in ds.SegmentSequence if item.SegmentNumber > 0]  # LABELMAP: 0 = background
    assert types == [("liver", LIVER_SCT, "SCT"), ("spleen", SPLEEN_SCT, "SCT")]
    if segmentation_type == "BINARY":  # one frame per (slice, segment) holding the organ
        present = sum(int((labels[z] == v).any()) for z in range(SHAPE[0]) for v in (1, 2))
        assert ds.NumberOfFrames == present < 2 * SHAPE[0]
        _assert_frames_on_slices_by_position(ds, series, labels)

    np.testing.assert_array_equal(_pixels(path, series, 1), labels == 1)
    np.testing.assert_array_equal(_pixels(path, series, 2), labels == 2)


def test_segment_numbers_follow_the_labels_present(tmp_path, series):
    labels = np.zeros(SHAPE, np.uint8)
    labels[2, 3:9, 4:10] = 2
    labels[1, 5:7, 5:7] = 5
    path = export_dicom_seg(tmp_path / "seg.dcm", labels, series)
    ds = pydicom.dcmread(path)
    assert [(s.SegmentNumber, s.SegmentLabel) for s in ds.SegmentSequence] == \
        [(1, "spleen"), (2, "organ_5")]
    np.testing.assert_array_equal(_pixels(path, series, 1), labels == 2)
    np.testing.assert_array_equal(_pixels(path, series, 2), labels == 5)


def test_nothing_labelled(tmp_path, series):
    with pytest.raises(SessionError, match="Nothing is labelled"):
        export_dicom_seg(tmp_path / "seg.dcm", np.zeros(SHAPE, np.uint8), series)
    assert not (tmp_path / "seg.dcm").exists()


def test_nifti_or_in_memory_study_is_refused(tmp_path):
    study = synthetic_study(shape=SHAPE)
    with pytest.raises(SessionError, match="needs a study loaded from DICOM"):
        export_dicom_seg(tmp_path / "seg.dcm", _labels(), study)
    study.sources = [SliceSource(str(tmp_path / "ct.nii.gz"), None, None)] * SHAPE[0]
    with pytest.raises(SessionError, match="needs a study loaded from DICOM"):
        export_dicom_seg(tmp_path / "seg.dcm", _labels(), study)


def test_multiframe_source_is_refused_clearly(tmp_path, series):
    path = series.sources[0].path
    series.sources = [SliceSource(path, "1.2.3.9", None, frame=z + 1)
                      for z in range(SHAPE[0])]
    with pytest.raises(SessionError, match="multi-frame"):
        export_dicom_seg(tmp_path / "seg.dcm", _labels(), series)
    assert not (tmp_path / "seg.dcm").exists()


def test_missing_or_replaced_source_files(tmp_path, series):
    other = dicom_study(tmp_path / "other", shape=SHAPE, seed=1)
    series.sources[1] = SliceSource(other.sources[1].path, series.sources[1].sop_instance_uid,
                                    series.sources[1].instance_number)
    with pytest.raises(SessionError, match="no longer the file"):
        export_dicom_seg(tmp_path / "seg.dcm", _labels(), series)
    (tmp_path / "other" / other.sources[1].path.split("/")[-1]).unlink()
    with pytest.raises(SessionError, match="cannot be read"):
        export_dicom_seg(tmp_path / "seg.dcm", _labels(), series)


def test_empty_uids_raise_by_default_and_are_generated_on_request(tmp_path):
    study = dicom_study(tmp_path / "dicom", shape=SHAPE, empty_uids=True)
    assert study.series_uid is None
    with pytest.raises(SessionError, match="empty SOPInstanceUID, SeriesInstanceUID, "
                                           "StudyInstanceUID"):
        export_dicom_seg(tmp_path / "seg.dcm", _labels(), study)
    assert not (tmp_path / "seg.dcm").exists()

    with pytest.warns(UserWarning, match="made-up UIDs"):
        first = pydicom.dcmread(export_dicom_seg(tmp_path / "a.dcm", _labels(), study,
                                                 generate_missing_uids=True))
    with pytest.warns(UserWarning):
        second = pydicom.dcmread(export_dicom_seg(tmp_path / "b.dcm", _labels(), study,
                                                  generate_missing_uids=True))
    # The made-up references are deterministic, so repeated exports agree.
    assert first.StudyInstanceUID == second.StudyInstanceUID != ""
    refs = [[i.ReferencedSOPInstanceUID for i in d.ReferencedSeriesSequence[0]
             .ReferencedInstanceSequence] for d in (first, second)]
    assert refs[0] == refs[1] and len(set(refs[0])) == SHAPE[0]
    # The frames still sit on the right slices, by position.
    _assert_frames_on_slices_by_position(first, study, _labels())


def test_shared_ge_case_matches_the_real_dicom_seg(tmp_path):
    case = shared_case("ge-ct-3slices")
    study = study_from_files(sorted((case / "dicom").glob("*.dcm")))
    reference = np.load(case / "reference_labels.npz")["labels"]
    uids = [s.sop_instance_uid for s in study.sources]

    real = hd.seg.segread(case / "liver_seg.dcm")
    real_liver = real.get_pixels_by_source_instance(
        uids, segment_numbers=[1], ignore_spatial_locations=True)[..., 0]
    np.testing.assert_array_equal(real_liver, reference == 1)

    path = export_dicom_seg(tmp_path / "liver_seg.dcm", reference, study)
    ours = hd.seg.segread(path)
    np.testing.assert_array_equal(
        ours.get_pixels_by_source_instance(uids, segment_numbers=[1])[..., 0], real_liver)
    assert {u[2] for u in ours.get_source_image_uids()} == {u[2] for u in
                                                            real.get_source_image_uids()}
    ds, ref_ds = pydicom.dcmread(path), pydicom.dcmread(case / "liver_seg.dcm")
    assert ds.SegmentationType == ref_ds.SegmentationType == "BINARY"
    assert ds.NumberOfFrames == ref_ds.NumberOfFrames == 3
    assert ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == \
        ref_ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Liver"
    assert ds.StudyInstanceUID == ref_ds.StudyInstanceUID
    assert ds.FrameOfReferenceUID == ref_ds.FrameOfReferenceUID


def test_shared_siemens_case_has_empty_uids(tmp_path):
    case = shared_case("ct-siemens-20slices")
    study = study_from_files(sorted((case / "dicom").iterdir()))
    labels = np.load(case / "reference_labels.npz")["labels"]
    with pytest.raises(SessionError, match="empty SOPInstanceUID"):
        export_dicom_seg(tmp_path / "seg.dcm", labels, study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        path = export_dicom_seg(tmp_path / "seg.dcm", labels, study, generate_missing_uids=True)
    _assert_frames_on_slices_by_position(pydicom.dcmread(path), study, labels)


def test_with_the_dicom_loader(tmp_path, ge_dir):
    from radipop_widgets.io import load_study

    study = load_study(ge_dir)
    reference = np.load(ge_dir.parent / "reference_labels.npz")["labels"]
    path = export_dicom_seg(tmp_path / "seg.dcm", reference, study)
    np.testing.assert_array_equal(_pixels(path, study, 1), reference == 1)
    _assert_frames_on_slices_by_position(pydicom.dcmread(path), study, reference)


def test_problem_is_told_before_trying(series):
    assert dicom_seg_problem(series) is None
    assert "no DICOM identifiers" in dicom_seg_problem(synthetic_study(shape=SHAPE,
                                                                       series_uid=None))
    assert "none for SOPInstanceUID" in dicom_seg_problem(synthetic_study(shape=SHAPE))
    series.sources = [SliceSource(s.path, s.sop_instance_uid, None, frame=1)
                      for s in series.sources]
    assert "multi-frame" in dicom_seg_problem(series)
