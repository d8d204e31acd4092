"""Robot-user accuracy (PROTOCOL.md, K = 3) on the phantom and the real cases.

Floors sit a little below what the engine achieves (see benchmarks/bench_robot.py):
a regression in partition, threshold suggestion or extend fails here.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_robot import load_any, robot, score  # noqa: E402

from radipop_widgets.session import Session  # noqa: E402

# (case, organ, minimum Dice, maximum |volume error| %); achieved: see the final report
FLOORS = [
    ("phantom", 1, 0.95, 4.5),
    # the phantom's spleen touches the left kidney (160 HU) and takes part of it
    ("phantom", 2, 0.91, 7.5),
    ("phantom-arterial", 1, 0.95, 4.5), ("phantom-arterial", 2, 0.98, 3),
    # native phase: the suggestion's valley rule puts the organ threshold (36 HU) below
    # the spleen (47 HU); before it the threshold (46) sat on the spleen (Dice 0.77).
    # The spleen's partial-volume rim is still missed (-11 %).
    ("phantom-native", 1, 0.95, 3.5), ("phantom-native", 2, 0.93, 12),
    ("ct-siemens-20slices", 1, 0.95, 1.5), ("ct-siemens-20slices", 2, 0.93, 2.5),
    # the left lobe joining between key slices is completed; hilum tissue comes with it
    ("ct-abdomen-3mm", 1, 0.91, 6.5),
    # non-contrast 3 mm spleen: the outline lies about half a pixel inside (partial volume)
    ("ct-abdomen-3mm", 2, 0.92, 11.5),
    ("ge-ct-3slices", 1, 0.92, 14),
]


@pytest.mark.parametrize("case, organ, min_dice, max_err", FLOORS)
def test_robot_k3(case, organ, min_dice, max_err):
    loaded = load_any(case)
    if loaded is None:
        pytest.skip(f"real CT case {case!r} not found (set RADIPOP_SHARED_DATA)")
    study, ref = loaded
    session = Session(study)
    robot(session, ref, organ, 3)
    dice, vol_err = score(session.labels, ref, organ, study.spacing)
    assert dice >= min_dice, session.last_report.text()
    assert abs(vol_err) <= max_err
