"""Careless and hostile values through the Session API: each gets a SessionError that says
what a valid value is, and nothing a saved state holds can break a slice for good."""

import json

import numpy as np
import pytest

from radipop_widgets import LIVER, SessionError
from radipop_widgets.session import Session

from test_session_edits import T, make_study


@pytest.fixture
def s():
    return Session(make_study(), thresholds=T)


@pytest.mark.parametrize("slices", [1.5, "2", [0, 1.5], {"a": 1}, object()])
def test_set_thresholds_with_bad_slices_raises_session_error(s, slices):
    with pytest.raises(SessionError, match="slice"):
        s.set_thresholds(organ=40, slices=slices)


@pytest.mark.parametrize("labels", ["abc", None, [[1, 2]], np.zeros((2, 2)),
                                    np.full(make_study().shape, 300)])
def test_set_labels_with_bad_arrays_raises_session_error(s, labels):
    with pytest.raises(SessionError):
        s.set_labels(labels)


def _saved(s, tmp_path, **state):
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    folder = s.save(tmp_path / "session")
    info = json.loads((folder / "session.json").read_text())
    info["state"].update(state)
    (folder / "session.json").write_text(json.dumps(info))
    return folder


@pytest.mark.parametrize("state", [
    {"thresholds": "high"}, {"cuts": {"2": [[1, 2, 3]]}}, {"cuts": ["x"]},
    {"cuts": {"x": []}}, {"organ_ranges": {"1": [10]}}, {"organ_ranges": {"1": [90, 10, 0, 0, 1]}},
    {"cuts": {"2": [[[0, 0]] * 1_000_000]}}, {"cuts": {"2": [[[0, 0], [1, 1]]] * 5000}},
])
def test_damaged_saved_state_raises_session_error(s, tmp_path, state):
    folder = _saved(s, tmp_path, **state)
    with pytest.raises(SessionError, match="damaged"):
        Session.open(folder, study=s.study)


def test_a_cut_that_opens_keeps_its_slice_usable(s, tmp_path):
    folder = _saved(s, tmp_path, cuts={"2": [[[0, 0], [63, 63]]]})
    reopened = Session.open(folder, study=s.study)
    assert reopened.regions(2).max() >= 1


def test_two_sessions_on_one_study_never_destroy_each_others_save(tmp_path):
    from radipop_widgets.errors import SessionConflictError
    study = make_study()
    a, b = Session(study, thresholds=T, workspace=tmp_path), Session(study, thresholds=T,
                                                                     workspace=tmp_path)
    a.select(2, 20, 20)
    a.assign(2, LIVER)
    a.save()
    b.draw(3, [(5, 5)], LIVER, width_mm=3)
    with pytest.raises(SessionConflictError):
        b.save()
    assert (Session.open(a.save(), study=study).labels == a.labels).all()   # a saves again
    reopened = Session.open(a.save(), study=study, workspace=tmp_path)
    reopened.draw(4, [(5, 5)], LIVER, width_mm=3)
    reopened.save()                      # a session opened from the save may replace it
    b.save(replace=True)                 # and replacing is an explicit choice
    assert (Session.open(b.save(), study=study).labels == b.labels).all()


def test_two_sessions_autosave_into_their_own_folders(tmp_path):
    study = make_study()
    a = Session(study, thresholds=T, workspace=tmp_path, autosave=True)
    b = Session(study, thresholds=T, workspace=tmp_path, autosave=True)
    a.draw(2, [(5, 5)], LIVER, width_mm=3)
    b.draw(3, [(5, 5)], LIVER, width_mm=3)
    assert a.autosave_folder() != b.autosave_folder()
    assert "autosave failed" not in a.last_message + b.last_message
