"""Session API on a small synthetic study: select, assign, draw, cut, extend, thresholds."""

import numpy as np
import pytest

from radipop_widgets import LIVER, SPLEEN, SessionError
from radipop_widgets.segmentation import Thresholds
from radipop_widgets.session import Session
from radipop_widgets.study import Study

T = Thresholds(bone=300, vessel=150, organ=50)


def make_study(n=6, size=64):
    hu = np.full((n, size, size), -1000, np.int16)   # air
    hu[:, 8:56, 8:56] = -20                  # body: fat-like for the rim (-200..0 HU), above
                                             # the wall rule's subcutaneous fat (< -30 HU)
    hu[1:5, 12:40, 12:30] = 100              # "liver" on slices 1..4
    hu[1:5, 20:34, 36:50] = 80               # "spleen", 6 px apart from the liver
    return Study(hu=hu, spacing=(2.0, 1.0, 1.0), affine=np.eye(4))


@pytest.fixture
def s():
    return Session(make_study(), thresholds=T)


def test_select_and_assign(s):
    region = s.select(2, 20, 20)
    assert region > 0 and s.selection == (2, region)
    # the region (smoothed outline: rounded corners) plus its partial-volume rim: the
    # corner pixels of the 100 HU block, so the label is exactly the block
    assert s.assign(2, LIVER) == (s.labels[2] == LIVER).sum() > (s.regions(2) == region).sum()
    assert ((s.labels[2] == LIVER) == (s.study.hu[2] == 100)).all()
    assert (s.labels[2, 20:34, 36:50] == 0).all()
    assert not s.labels[[0, 1, 3, 4, 5]].any()


def test_select_background_and_outside_select_nothing(s):
    s.select(2, 20, 20)
    assert s.select(2, 2, 2) == 0 and s.selection is None
    assert "background" in s.last_message
    for row, col in ((-1, 5), (5, 64), (1e300, 3), (float("nan"), 2), ("x", 1), (10**400, 1)):
        assert s.select(2, row, col) == 0
        assert s.last_message.startswith("nothing selected")
    with pytest.raises(SessionError, match="does not exist"):
        s.select(99, 1, 1)


def test_selection_belongs_to_its_slice(s):
    s.select(2, 20, 20)
    assert s.assign(3, LIVER) == 0
    assert "belongs to slice 2" in s.last_message
    assert not s.labels.any() and not s.can_undo


def test_threshold_change_keeps_labels(s):
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    before = s.labels.copy()
    s.set_thresholds(organ=120)
    assert s.regions(2).max() == 0          # no candidates any more
    assert (s.labels == before).all()       # the label stays
    assert s.thresholds(2).organ == 120
    s.set_thresholds(organ=50, slices=[2])
    assert s.thresholds(2).organ == 50 and s.thresholds(3).organ == 120
    with pytest.raises(SessionError, match="threshold organ"):
        s.set_thresholds(organ=float("nan"))
    with pytest.raises(SessionError, match="threshold organ"):
        s.set_thresholds(organ=10**400)                # an int too large for a float


def test_draw_and_erase_width_in_mm(s):
    assert s.draw(0, [(30, 10), (30, 50)], SPLEEN, width_mm=4) > 0
    assert (s.labels[0, 29:32, 10:51] == SPLEEN).all() and s.labels[0, 34, 30] == 0
    s.draw(0, [(30, 20), (30, 30)], 0, width_mm=10)
    assert (s.labels[0, 30, 20:31] == 0).all() and s.labels[0, 30, 40] == SPLEEN
    with pytest.raises(SessionError):
        s.draw(0, [(1, 1)], 1, width_mm=float("inf"))
    with pytest.raises(SessionError, match="width_mm must be a number"):
        s.draw(0, [(1, 1)], 1, width_mm=10**400)      # too large for a float
    assert s.draw(0, [(-50, -50), (-60, -40)], 1) == 0


def test_cut_separates_and_keeps_labels(s):
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    before = s.labels.copy()
    assert s.cut(2, [(11, 11), (41, 31)])      # diagonal through the liver block
    assert (s.labels == before).all()
    r = s.regions(2)
    assert r[30, 14] > 0 and r[15, 27] > 0 and r[30, 14] != r[15, 27]
    assert s.cut(2, [(25, 5), (25, 60)])       # a second, separate cut
    r = s.regions(2)
    assert len({r[14, 27], r[20, 13], r[37, 14]}) == 3 and 0 not in {r[14, 27], r[20, 13]}
    assert len(s.cuts(2)) == 2
    s.set_thresholds(organ=49)                  # cuts survive threshold changes
    r = s.regions(2)
    assert r[30, 14] != r[15, 27]


def test_extend_whole_organ_and_report(s):
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    report = s.extend(2)
    assert (s.labels[1:5, 13:39, 13:29] == LIVER).all()
    assert not (s.labels[[0, 5]] == LIVER).any()
    statuses = {r.slice: r.status for r in report.rows}
    assert statuses[0] == "ended" and statuses[5] == "ended"
    assert "slice 3" in report.text()


def test_extend_counts_and_fill_between(s):
    s.select(1, 20, 20)
    s.assign(1, LIVER)
    s.select(4, 20, 20)
    s.assign(4, LIVER)
    s.extend(1, below=0, above=1)
    assert (s.labels[2] == LIVER).any() and not (s.labels[3] == LIVER).any()
    report = s.extend(4, below=None, above=0)
    assert (s.labels[3] == LIVER).any()
    assert report.rows[-1].status == "already labelled"
    with pytest.raises(SessionError):
        s.extend(1, below=-1)


def test_listeners_and_messages(s):
    events = []
    s.add_listener(lambda event: events.append((event.source, event.slices)))
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    s.extend(2, below=1, above=0)
    s.undo()
    assert events == [("select", (2,)), ("assign", (2,)), ("extend", (1,)), ("undo", (1,))]


def test_listeners_get_typed_events(s):
    from radipop_widgets.events import Change
    events = []
    s.add_listener(events.append)
    s.select(2, 20, 20)
    s.set_thresholds(organ=40, slices=[3])
    s.cut(2, [(0, 0), (30, 30)])
    s.undo()
    assert [e.changes for e in events] == [frozenset({Change.SELECTION}),
                                           frozenset({Change.THRESHOLDS}),
                                           frozenset({Change.CUTS}), frozenset({Change.CUTS})]
    assert events[1].slices == (3,) and events[1].regions_changed
    assert not any(e.labels_changed for e in events)


def test_no_op_edits_add_no_step(s):
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    n = len(s._history)
    s.assign(2, LIVER)
    s.set_thresholds(organ=50)
    s.draw(2, [(20, 20)], LIVER, width_mm=2)
    assert len(s._history) == n


def test_bad_arguments_raise_clear_errors(s):
    with pytest.raises(SessionError, match="label must be"):
        s.assign(2, 300)
    with pytest.raises(SessionError, match="slice"):
        s.regions(-1)
    with pytest.raises(SessionError, match="at most"):
        s.cut(2, np.zeros((20_000, 2)))
    with pytest.raises(SessionError, match="row, col"):
        s.cut(2, [(10**400, 1), (2, 2)])


def test_cut_mask_cache_follows_undo_redo_and_clear(s):
    fresh = Session(make_study(), thresholds=T)
    lines = [[(11, 11), (41, 31)], [(25, 5), (25, 60)], [(5, 20), (50, 20)]]
    for line in lines:
        s.cut(2, line)
        s.regions(2)                       # the cached mask is updated, not redrawn
    for line in lines:
        fresh.cut(2, line)
    assert (s.regions(2) == fresh.regions(2)).all()
    s.undo()                               # the third cut is gone from the regions too
    fresh.undo()
    assert (s.regions(2) == fresh.regions(2)).all()
    assert s.regions(2)[30, 20] > 0        # on the undone third line: a region again
    s.redo()
    assert s.regions(2)[30, 20] == 0
    s.clear_cuts(2)
    plain = Session(make_study(), thresholds=T)
    assert (s.regions(2) == plain.regions(2)).all()


def test_assign_with_rim_keeps_cuts_and_other_labels_and_undoes_as_one_step(s):
    s.select(2, 27, 43)
    s.assign(2, SPLEEN)
    s.cut(2, [(10, 20), (42, 20)])                 # through the liver block
    region = s.select(2, 20, 14)
    changed = s.assign(2, LIVER)
    liver = s.labels[2] == LIVER
    assert changed == liver.sum() > (s.regions(2) == region).sum()   # a rim was added
    assert liver[:, :20].sum() == liver.sum()
    assert (s.labels[2][s.study.hu[2] == 80] == SPLEEN).all()
    s.undo()                                       # region and rim are one step
    assert not (s.labels[2] == LIVER).any()


def test_region_cache_survives_an_eviction_from_another_thread():
    """The dashboard reads regions while a worker thread extends and invalidates slices:
    an eviction that lands between the cache lookup and its bookkeeping must not fail."""
    import threading
    from collections import OrderedDict

    s = Session(make_study(), thresholds=T)
    s.regions(2)

    class EvictedDuringLookup(OrderedDict):
        def get(self, key, default=None):
            value = super().get(key, default)
            if value is not None and threading.current_thread() is threading.main_thread():
                worker = threading.Thread(target=s.candidates.invalidate, args=([key[0]],))
                worker.start()
                worker.join(0.3)           # without the cache lock the eviction lands here
            return value

    s.candidates._cache = EvictedDuringLookup(s.candidates._cache)
    assert s.regions(2).max() >= 1
    assert (s.regions(2) == s.regions(2)).all()
