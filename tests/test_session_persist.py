"""Session save / open / autosave / measurements through persist, export and measure."""

import numpy as np
import pytest

from radipop_widgets import LIVER, SessionError
from radipop_widgets.session import Session

from test_session_edits import T, make_study


def edited(tmp_path, **kw):
    s = Session(make_study(), thresholds=T, **kw)
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    s.cut(3, [(0, 20), (63, 25)])
    s.set_thresholds(organ=60, slices=[4])
    return s


def test_save_and_open_round_trip(tmp_path):
    s = edited(tmp_path)
    folder = s.save(tmp_path / "session")
    r = Session.open(folder, study=s.study)
    assert (r.labels == s.labels).all()
    assert r.thresholds(4).organ == 60 and r.thresholds(2).organ == T.organ
    assert len(r.cuts(3)) == 1
    assert (r.regions(3) == s.regions(3)).all()


def test_open_refuses_another_study(tmp_path):
    s = edited(tmp_path)
    folder = s.save(tmp_path / "session")
    other = make_study(n=7)
    with pytest.raises(SessionError):
        Session.open(folder, study=other)


def test_autosave_after_each_edit(tmp_path):
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    seen = []
    s.add_listener(lambda event: seen.append(event.source))
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    saved = list(tmp_path.rglob("labels.nii.gz"))
    assert len(saved) == 1 and saved[0].parent.name == "autosave"
    reopened = Session.open(saved[0].parent, study=s.study)
    assert (reopened.labels == s.labels).all()
    s.undo()
    assert not Session.open(saved[0].parent, study=s.study).labels.any()
    assert seen == ["select", "assign", "undo"]


def test_autosave_never_overwrites_the_saved_session(tmp_path):
    s = Session(make_study(), thresholds=T, workspace=tmp_path, autosave=True)
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    saved = s.save()
    s.draw(3, [(5, 5), (30, 30)], LIVER, width_mm=4)
    assert Session.open(saved, study=s.study).labels[3].sum() == 0
    autosaved = saved / "autosave"
    assert (Session.open(autosaved, study=s.study).labels == s.labels).all()


def test_volumes_and_measurements(tmp_path):
    s = edited(tmp_path)
    n = int((s.labels == LIVER).sum())
    assert s.volumes_ml()["liver"] == pytest.approx(n * 2.0 / 1000)
    m = s.measurements()
    assert m["liver"]["volume_ml"] == pytest.approx(n * 2.0 / 1000)
    assert np.isclose(m["liver"]["mean_hu"], s.study.hu[s.labels == LIVER].mean())
