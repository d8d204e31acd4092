"""Undo / redo round trips for every edit type; memory proportional to the change."""

import numpy as np
import pytest

from radipop_widgets import LIVER, SPLEEN
from radipop_widgets.history import History, Step, label_patch
from radipop_widgets.session import Session

from test_session_edits import T, make_study


def snapshot(s):
    n = s.study.n_slices
    return (s.labels.copy(), np.array([s.thresholds(z) for z in range(n)]),
            {z: len(s.cuts(z)) for z in range(n) if s.cuts(z)},
            [s.regions(z).copy() for z in range(n)], s.candidates.ranges)


def same(a, b):
    return ((a[0] == b[0]).all() and (a[1] == b[1]).all() and a[2] == b[2]
            and all((x == y).all() for x, y in zip(a[3], b[3])) and a[4] == b[4])


EDITS = {
    "assign": lambda s: (s.select(2, 27, 43), s.assign(2, SPLEEN)),
    "draw": lambda s: s.draw(3, [(5, 5), (50, 50)], SPLEEN, width_mm=3),
    "erase": lambda s: s.draw(2, [(20, 10), (20, 40)], 0, width_mm=5),
    "cut": lambda s: s.cut(2, [(0, 20), (63, 25)]),
    "thresholds": lambda s: s.set_thresholds(organ=90),
    "thresholds one slice": lambda s: s.set_thresholds(vessel=95, slices=3),
    "extend": lambda s: s.extend(2),
    "range": lambda s: s.set_organ_range(LIVER, 10, 90),
    "grow": lambda s: s.grow(3, 20, 14, LIVER),
    "import": lambda s: s.set_labels(np.ones(s.labels.shape, np.uint8)),
}


@pytest.mark.parametrize("name", EDITS)
def test_undo_redo_round_trip(name):
    s = Session(make_study(), thresholds=T)
    s.select(2, 20, 20)
    s.assign(2, LIVER)            # some state to start from
    before = snapshot(s)
    EDITS[name](s)
    after = snapshot(s)
    assert not same(before, after), f"{name} changed nothing"
    assert s.undo() and same(snapshot(s), before)
    assert s.redo() and same(snapshot(s), after)
    assert not s.redo()


def test_multi_slice_extend_is_one_step():
    s = Session(make_study(), thresholds=T)
    s.select(2, 20, 20)
    s.assign(2, LIVER)
    s.extend(2)
    assert (s.labels == LIVER).any(axis=(1, 2)).sum() == 4
    s.undo()
    assert (s.labels == LIVER).any(axis=(1, 2)).sum() == 1


def test_depth_at_least_100_and_new_edit_clears_redo():
    s = Session(make_study(), thresholds=T)
    for i in range(120):
        s.draw(0, [(i % 60 + 2, 2 + 2 * (i // 60))], 1 + i % 2, width_mm=1)
    undone = 0
    while s.undo():
        undone += 1
    assert undone >= 100
    s.redo()
    s.draw(5, [(3, 3)], 1, width_mm=1)
    assert not s.can_redo


def test_patch_is_bounding_box_of_change():
    old = np.zeros((512, 512), np.uint8)
    new = old.copy()
    new[100:110, 200:205] = 1
    patch = label_patch(0, old, new)
    assert patch.old.shape == (10, 5) and patch.nbytes == 100
    assert label_patch(0, old, old.copy()) is None


def test_history_ignores_empty_steps():
    h = History(5)
    assert not h.push(Step("nothing"))
    assert not h.can_undo
