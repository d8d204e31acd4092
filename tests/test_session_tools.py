"""Intensities that follow the click, and the one-action corrections: grow, remove with
its rim, the edge-aware brush, fill between slices (synthetic arrays)."""

import numpy as np
import pytest
from scipy import ndimage

from radipop_widgets import LIVER, SPLEEN, SessionError
from radipop_widgets.segmentation import Thresholds
from radipop_widgets.session import Session
from radipop_widgets.study import Study

#: the thresholds a global histogram guessed on the unseen arterial study of the issue
ARTERIAL_GUESS = Thresholds(bone=227, vessel=127, organ=-30)


def arterial_study(n=5, size=128, seed=0):
    """Fat body, muscle wall, a 73 HU liver, a bright heterogeneous spleen (~175 HU)
    and a 400 HU aorta, with noise; 1 mm pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    hu = np.full((size, size), -1000.0)
    body = ((yy - 64) / 58) ** 2 + ((xx - 64) / 60) ** 2 < 1
    hu[body] = -100
    hu[body & ~(((yy - 64) / 52) ** 2 + ((xx - 64) / 54) ** 2 < 1)] = 55     # muscle wall
    liver = ((yy - 60) / 28) ** 2 + ((xx - 40) / 22) ** 2 < 1
    spleen = ((yy - 64) / 16) ** 2 + ((xx - 92) / 12) ** 2 < 1
    aorta = (yy - 84) ** 2 + (xx - 64) ** 2 < 8 ** 2
    hu[liver] = 73
    zebra = 35 * np.sin(xx / 3.0 + yy / 5.0)                                  # arciform pattern
    hu[spleen] = 175 + zebra[spleen]
    hu[aorta] = 400
    vol = np.repeat(hu[None], n, axis=0) + rng.normal(0, 8, (n, size, size))
    labels = np.zeros((n, size, size), np.uint8)
    labels[:, liver], labels[:, spleen] = LIVER, SPLEEN
    study = Study(hu=np.clip(vol, -1024, 3000).astype(np.int16), spacing=(2.5, 1.0, 1.0),
                  affine=np.eye(4))
    return study, labels


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_click_on_a_bright_arterial_spleen_selects_the_spleen():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    assert (s.regions(2)[ref[2] == SPLEEN] == 0).mean() > 0.5   # the guess drops the spleen
    assert s.select(2, 64, 92)
    assert dice(s.selected_mask(2), ref[2] == SPLEEN) > 0.95
    assert s.click_range.low < 140 < 210 < s.click_range.high
    s.assign(2, SPLEEN)
    assert s.organ_range(SPLEEN).centre == pytest.approx(175, abs=15)
    # and the liver click is not joined by fat and the muscle wall (organ -30 HU)
    s.select(2, 60, 40)
    assert dice(s.selected_mask(2), ref[2] == LIVER) > 0.95


def test_extend_uses_each_organs_range():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    for r, c, label in ((64, 92, SPLEEN), (60, 40, LIVER)):
        s.select(2, r, c)
        s.assign(2, label)
    s.extend(2)
    for label in (LIVER, SPLEEN):
        assert dice(s.labels == label, ref == label) > 0.95


def test_thresholds_set_by_hand_win_over_the_click():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    s.set_thresholds(organ=100, vessel=300, slices=[2])
    s.select(2, 64, 92)
    assert s.click_range is None          # the region at the slice's own thresholds
    assert (s.selected_mask(2) == (s.regions(2) == s.selection[1])).all()


def test_removed_label_leaves_no_voxel():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    s.select(2, 60, 40)
    s.assign(2, LIVER)
    added = (s.labels == LIVER).sum()
    assert added > (s.selected_mask(2)).sum()           # region + partial-volume rim
    s.assign(2, 0)
    assert not (s.labels == LIVER).any()


def test_removing_one_piece_keeps_the_rest_of_the_organ():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    s.select(2, 60, 40)
    s.assign(2, LIVER)
    s.draw(2, [(64, 92)], LIVER, width_mm=20)           # a wrong piece in the spleen
    liver_before = (s.labels[2] == LIVER) & (ref[2] == LIVER)
    s.select(2, 64, 92)
    s.assign(2, 0)
    assert ((s.labels[2] == LIVER) == liver_before).all()


def test_grow_adds_a_piece_the_thresholds_left_as_background():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    s.select(2, 64, 92)
    s.assign(2, SPLEEN)
    # slice 3: the spleen is background at these thresholds; one click grows it
    assert s.grow(3, 64, 92, SPLEEN) > 0
    assert dice(s.labels[3] == SPLEEN, ref[3] == SPLEEN) > 0.95
    assert not (s.labels[3] == SPLEEN)[ref[3] == LIVER].any()
    s.undo()
    assert not (s.labels[3] == SPLEEN).any()


def test_grow_stops_at_other_labels_and_cuts():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    s.draw(2, [(40, 30), (40, 50)], SPLEEN, width_mm=6)    # another label inside the liver
    s.cut(2, [(70, 0), (70, 127)])
    s.grow(2, 55, 40, LIVER)
    grown = s.labels[2] == LIVER
    assert grown.any() and not grown[71:].any()
    assert (s.labels[2][38:43, 30:51] == SPLEEN).all()


def test_edge_aware_brush_paints_only_the_organ():
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    stroke = [(64, 84), (64, 110)]                      # from the spleen out into fat
    s.draw(2, stroke, SPLEEN, width_mm=10, edge_aware=True)
    painted = s.labels[2] == SPLEEN
    assert painted.sum() > 100
    assert (ref[2][painted] == SPLEEN).mean() > 0.97
    s.draw(3, stroke, SPLEEN, width_mm=10)               # the plain brush does not stop
    assert (ref[3][s.labels[3] == SPLEEN] == SPLEEN).mean() < 0.8


def test_fill_between_two_disks_gives_the_intermediate_disks():
    study = Study(hu=np.zeros((6, 96, 96), np.int16), spacing=(2.0, 1.0, 1.0), affine=np.eye(4))
    s = Session(study, thresholds=Thresholds(300, 150, 50))
    yy, xx = np.mgrid[:96, :96]
    labels = np.zeros(study.shape, np.uint8)
    labels[0][(yy - 48) ** 2 + (xx - 48) ** 2 <= 10 ** 2] = LIVER
    labels[4][(yy - 48) ** 2 + (xx - 48) ** 2 <= 30 ** 2] = LIVER
    s.set_labels(labels)
    preview = s.fill_between(LIVER, apply=False)
    assert sorted(preview) == [1, 2, 3] and not s.labels[1:4].any()   # a preview only
    s.fill_between(LIVER)
    for z, radius in ((1, 15), (2, 20), (3, 25)):
        area = (s.labels[z] == LIVER).sum()
        assert abs(np.sqrt(area / np.pi) - radius) < 0.6
        assert (s.labels[z] == LIVER).sum() == ndimage.binary_fill_holes(s.labels[z]).sum()
    assert not s.labels[5].any()
    s.undo()
    assert not s.labels[1:4].any()


def test_organ_range_by_hand_is_saved_and_undoable(tmp_path):
    study, ref = arterial_study()
    s = Session(study, thresholds=ARTERIAL_GUESS)
    s.set_organ_range(SPLEEN, 120, 260)
    assert s.organ_range(SPLEEN)[:2] == (120, 260) and s.organ_range(SPLEEN).by_hand
    with pytest.raises(SessionError, match="low < high"):
        s.set_organ_range(SPLEEN, 300, 200)
    with pytest.raises(SessionError, match="no range yet"):
        s.set_organ_range(LIVER, low=10)
    s.save(tmp_path / "session")
    reopened = Session.open(tmp_path / "session", study=study)
    assert reopened.organ_range(SPLEEN) == s.organ_range(SPLEEN)
    s.undo()
    assert s.organ_range(SPLEEN) is None


def test_suggestion_does_not_depend_on_the_number_of_slices():
    from radipop_widgets.segmentation.thresholds import suggest_thresholds
    study, _ = arterial_study(n=20)
    assert suggest_thresholds(np.tile(study.hu, (15, 1, 1))) == suggest_thresholds(study.hu)


def test_phase_is_estimated_from_the_aorta():
    study, _ = arterial_study()
    assert Session(study).phase.name == "arterial"
    native = Study(hu=np.where(study.hu > 100, 45, study.hu).astype(np.int16),
                   spacing=study.spacing, affine=study.affine)
    assert Session(native).phase.name == "native"


def test_suggested_organ_threshold_is_never_inside_fat():
    from radipop_widgets.segmentation.thresholds import suggest_thresholds
    rng = np.random.default_rng(1)
    hu = rng.normal(-100, 8, (4, 64, 64))            # fat with a little soft tissue
    hu[:, 20:30, 20:30] = rng.normal(60, 8, (4, 10, 10))
    assert suggest_thresholds(hu.astype(np.int16)).organ >= -30 + 30


def test_suggestion_is_the_same_for_prone_and_feet_first_studies():
    from radipop_widgets.segmentation.thresholds import suggest_thresholds
    rng = np.random.default_rng(4)
    study, _ = arterial_study(size=512)
    hu = study.hu + rng.integers(-3, 4, study.hu.shape).astype(np.int16)
    assert suggest_thresholds(hu[:, ::-1, ::-1]) == suggest_thresholds(hu) == \
        suggest_thresholds(hu[:, :, ::-1])


def test_a_click_on_a_vessel_inside_the_liver_selects_the_liver():
    # the deepest point of a liver is often a portal vein branch: the click's tissue is then
    # a few mm^2 of 180 HU; the organ is the tissue around it
    study, ref = arterial_study()
    hu = study.hu.copy()
    yy, xx = np.mgrid[:128, :128]
    hu[:, (yy - 60) ** 2 + (xx - 40) ** 2 <= 4 ** 2] = 180
    s = Session(Study(hu=hu, spacing=study.spacing, affine=study.affine),
                thresholds=ARTERIAL_GUESS)
    s.select(2, 60, 40)
    assert s.click_range.low < 73 < s.click_range.high
    assert dice(s.selected_mask(2), ref[2] == LIVER) > 0.95
