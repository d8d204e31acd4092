"""Save / load time of a session with a 300 x 512 x 512 label volume (goal: save <= 1 s).

Usage: python benchmarks/bench_save.py [--repeats N] [--slices N]
Prints median and max over the repeats for save_session, load_session,
write_nifti_labels and volumes_ml / organ_measurements.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radipop_widgets.export import write_nifti_labels  # noqa: E402
from radipop_widgets.measure import organ_measurements, volumes_ml  # noqa: E402
from radipop_widgets.persist import load_session, save_session  # noqa: E402
from radipop_widgets.study import Study, affine_from_geometry  # noqa: E402


def make_case(n_slices: int):
    """Study with random HU and liver / spleen ellipsoids on most slices."""
    shape = (n_slices, 512, 512)
    spacing = (2.0, 0.78, 0.78)
    rng = np.random.default_rng(0)
    hu = rng.integers(-200, 300, shape, dtype=np.int16)
    z, y, x = np.ogrid[:n_slices, :512, :512]
    labels = np.zeros(shape, np.uint8)
    labels[((y - 250) / 150) ** 2 + ((x - 180) / 130) ** 2 + ((z - n_slices / 2) / (n_slices * 0.4)) ** 2 < 1] = 1
    labels[((y - 260) / 60) ** 2 + ((x - 410) / 50) ** 2 + ((z - n_slices * 0.6) / (n_slices * 0.2)) ** 2 < 1] = 2
    affine = affine_from_geometry((-200, -200, -300), (1, 0, 0), (0, 1, 0), (0, 0, 1), spacing)
    study = Study(hu=hu, spacing=spacing, affine=affine, series_uid="1.2.826.0.1.3680043.1")
    state = {"thresholds": [[300, 180, 60]] * n_slices}
    return study, labels, state


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    study, labels, state = make_case(args.slices)
    print(f"label volume {labels.shape} uint8 ({labels.nbytes / 1e6:.0f} MB), "
          f"{args.repeats} repeats")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "session"
        rows = [
            ("save_session", lambda: save_session(folder, labels, state, study)),
            ("load_session", lambda: load_session(folder, study)),
            ("write_nifti_labels", lambda: write_nifti_labels(Path(tmp) / "m.nii.gz", labels, study)),
            ("volumes_ml", lambda: volumes_ml(labels, study.spacing)),
            ("organ_measurements", lambda: organ_measurements(labels, study.hu, study.spacing)),
        ]
        print(f"{'operation':<22}{'median s':>10}{'max s':>10}")
        for name, fn in rows:
            median, worst = timed(fn, args.repeats)
            print(f"{name:<22}{median:>10.3f}{worst:>10.3f}")
        size = (folder / "labels.nii.gz").stat().st_size
        print(f"labels.nii.gz size: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
