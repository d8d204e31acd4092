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
    # the phantom's truth is the 50 % outline: the rim recovers it; the liver takes part of
    # the stomach wall and the IVC (their HU is the liver's in the phantom)
    ("phantom", 1, 0.98, 3.5),
    # the spleen lies on the kidney (160 vs 115 HU): separated by the intensity step
    ("phantom", 2, 0.99, 1),
    # the arterial spleen (125 HU) sits 1 HU under the suggested vessel threshold: the
    # click's range lifts it to 170 HU for the spleen, which takes more of its rim
    ("phantom-arterial", 1, 0.96, 7), ("phantom-arterial", 2, 0.98, 3),
    ("phantom-native", 1, 0.97, 4.5),
    # native spleen (47 HU): its rim against fat is below 4 noise SDs on part of it
    ("phantom-native", 2, 0.97, 5),
    ("ct-siemens-20slices", 1, 0.95, 1),
    # the rim adds the spleen's outline pixels that are > 50 % spleen where it borders
    # fat (physically right, Dice unchanged) but the reference takes only about half
    # of them: +3.8 % volume
    ("ct-siemens-20slices", 2, 0.93, 4.0),
    # known weakness: hilum / porta tissue and the IVC (isodense without contrast) join
    # the liver; the muscle band inside the subcutaneous fat (the wall below the ribs)
    # is cut off, with 1-2 px of the left lobe under the thin anterior wall
    ("ct-abdomen-3mm", 1, 0.905, 3.6),
    # rim only against fat (not lung, not soft tissue); the noise-aware smoothing (which
    # lifts the noise30 variant from 0.33 to 0.88) smooths its 3 mm outline: 0.947 / -5.4 %
    ("ct-abdomen-3mm", 2, 0.94, 6),
    # the study-length-independent suggestion gives organ 24 instead of 18 HU here (-0.006)
    ("ge-ct-3slices", 1, 0.925, 13.5),
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
