"""Engine timings on 512 x 512 slices (median and p95 over >= 20 runs) and peak memory.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--slices 300]``. Uses the synthetic
phantom (always available) stretched to the requested number of slices.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radipop_widgets.io.phantom import make_phantom  # noqa: E402
from radipop_widgets.segmentation import partition  # noqa: E402
from radipop_widgets.session import Session  # noqa: E402
from radipop_widgets.study import Study  # noqa: E402


def stats(name, seconds, goal_ms=None):
    ms = np.asarray(seconds) * 1000
    goal = f"(goal <= {goal_ms:g} ms)" if goal_ms else ""
    print(f"{name:34s} median {np.median(ms):8.1f} ms  p95 {np.percentile(ms, 95):8.1f} ms  "
          f"n={len(ms):3d} {goal}", flush=True)


def timed(fn, n=20, setup=None):
    out = []
    for i in range(n):
        if setup is not None:
            setup(i)
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main(n_slices=300, runs=20):
    hu60, ref60 = make_phantom()
    reps = -(-n_slices // hu60.shape[0])
    hu = np.concatenate([hu60] * reps)[:n_slices]
    ref = np.concatenate([ref60] * reps)[:n_slices]
    study = Study(hu=hu, spacing=(2.5, 0.8, 0.8), affine=np.diag([2.5, 0.8, 0.8, 1.0]))
    print(f"study {hu.shape} int16 = {hu.nbytes / 1e6:.0f} MB")
    s = Session(study)
    t = s.thresholds(0)
    zs = [int(z) for z in np.flatnonzero((ref == 1).any(axis=(1, 2)))]
    z0 = zs[len(zs) // 2]

    stats("partition one slice", timed(lambda i: partition(hu[zs[i % len(zs)]], t,
                                                           pixel_mm=0.8), runs), 30)
    done = []
    t0 = time.perf_counter()
    s.set_thresholds(organ=t.organ + 1)
    s.compute_regions(progress=lambda k, n: done.append(k))
    total = time.perf_counter() - t0
    print(f"{'thresholds + regions, all slices':34s} {total:8.2f} s for {n_slices} slices "
          f"({len(done)} progress calls) (goal <= 10 s)")

    rr, cc = np.nonzero(ref[z0] == 1)
    point = (int(np.median(rr)), int(np.median(cc)))
    s.regions(z0)
    stats("select + assign", timed(lambda i: (s.select(z0, *point), s.assign(z0, 1 + i % 2)),
                                   runs), 5)
    zc = zs[len(zs) // 3]            # cuts on another slice than the extend below
    stats("cut (the edit)", timed(lambda i: s.cut(zc, [(point[0] - 40, point[1] - 30 + i),
                                                      (point[0] + 40, point[1] + 30 - i)]),
                                  runs), 20)
    stats("cut + new regions of the slice",
          timed(lambda i: (s.cut(zc, [(point[0] - 40 + i, point[1] - 60),
                                      (point[0] - 40 + i, point[1] + 60)]), s.regions(zc)),
                runs), 20)
    s.select(z0, *point)
    s.assign(z0, 1)
    ext, warm = [], []
    for i in range(runs):
        s.candidates.invalidate(range(s.study.n_slices))  # cold: every slice partitioned during the extend
        t0 = time.perf_counter()
        report = s.extend(z0, below=5, above=5, label=1)
        ext.append((time.perf_counter() - t0) / max(1, len(report.slices)))
        s.undo()
        t0 = time.perf_counter()
        report = s.extend(z0, below=5, above=5, label=1)
        warm.append((time.perf_counter() - t0) / max(1, len(report.slices)))
        assert len(report.slices) == 10, report.text()
        s.undo()
    stats("extend per slice (regions cold)", ext, 20)
    stats("extend per slice (regions cached)", warm, 20)
    s.extend(z0, label=1)
    for i in range(runs):
        s.draw(z0, [(point[0] + i, point[1]), (point[0] + i, point[1] + 40)], 2, width_mm=3)
    stats("undo (draw)", timed(lambda i: s.undo(), runs), 10)
    stats("redo (draw)", timed(lambda i: s.redo(), runs))
    with tempfile.TemporaryDirectory() as tmp:
        stats("save (all slices)", timed(lambda i: s.save(Path(tmp) / "session"), runs), 1000)

    # peak memory of a fresh session doing a typical sequence, relative to the volume
    del s
    tracemalloc.start()
    s = Session(study)
    s.select(z0, *point)
    s.assign(z0, 1)
    s.extend(z0, label=1)
    s.set_thresholds(organ=t.organ + 2)
    s.compute_regions()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{'peak memory (session work)':34s} {peak / 1e6:8.0f} MB = "
          f"{peak / hu.nbytes:.2f} x the int16 volume (goal <= 3)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    main(args.slices, args.runs)
