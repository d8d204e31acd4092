"""Cohort benchmark: listing a folder of many studies (headers only) cold and warm, and the
cohort export of done studies.

Goals (issue 11): 500 studies listed in <= 10 s cold (no scan cache) and <= 1 s warm;
100 done studies exported (masks + cohort.csv) in <= 60 s.

    .venv/bin/python benchmarks/bench_cohort.py [--list 500] [--export 100]

The studies are the phantom, generated into a temporary folder: tiny DICOM series
(4 slices of 32 x 32) for the listing, small ones (10 slices of 96 x 96) with a saved
session of their reference labels, marked done, for the export. "Cold" means a new
workspace (no scan cache); the files themselves are in the OS's page cache, as they were
just written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radipop_widgets.cohort import Worklist, export_cohort
from radipop_widgets.io import load_study
from radipop_widgets.io.phantom import write_phantom_series
from radipop_widgets.session import Session


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_listing(root: Path, n: int) -> list[tuple[str, float, str]]:
    data = root / "list"
    _, made = timed(lambda: [write_phantom_series(data / f"study{i:04d}", shape=(4, 32, 32),
                                                  pixel_mm=10.0, slice_mm=40.0, seed=i)
                             for i in range(n)])
    print(f"  generated {n} DICOM series (4 files each) in {made:.1f} s", file=sys.stderr)
    worklist = Worklist(data, root / "ws-list")
    rows, cold = timed(worklist.scan)
    assert len(rows) == n, len(rows)
    _, warm = timed(worklist.scan)
    _, warm_new = timed(lambda: Worklist(data, root / "ws-list").scan())
    write_phantom_series(data / "study_new", shape=(4, 32, 32), pixel_mm=10.0, slice_mm=40.0,
                         seed=n + 1)
    rows, one_new = timed(worklist.scan)
    assert len(rows) == n + 1
    return [(f"list {n} studies, cold (no scan cache)", cold, "<= 10 s"),
            (f"list {n} studies, warm (same Worklist)", warm, "<= 1 s"),
            (f"list {n} studies, warm (new process' Worklist)", warm_new, "<= 1 s"),
            (f"list {n} + 1 new study (incremental)", one_new, "<= 1 s")]


def bench_export(root: Path, n: int) -> list[tuple[str, float, str]]:
    data, ws = root / "export", root / "ws-export"
    start = time.perf_counter()
    for i in range(n):
        folder = write_phantom_series(data / f"case{i:03d}", shape=(10, 96, 96), pixel_mm=4.0,
                                      slice_mm=15.0, seed=i)
        study = load_study(folder / "dicom")
        session = Session(study, workspace=ws)
        session.set_labels(np.load(folder / "reference_labels.npz")["labels"])
        session.save()
    worklist = Worklist(data, ws)
    for row in worklist.scan():
        worklist.mark_done(row.key, user="bench")
    print(f"  made {n} done studies in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    _, listed = timed(worklist.scan)
    report, took = timed(lambda: export_cohort(Worklist(data, ws), root / "out"))
    assert len(report.rows) == n and not report.failed, report.failed
    return [(f"list {n} done studies with sessions, warm", listed, "<= 1 s"),
            (f"export {n} done studies (10 x 96 x 96)", took, "<= 60 s"),
            ("  per study", took / n, "")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", type=int, default=500, help="studies to list")
    parser.add_argument("--export", type=int, default=100, help="done studies to export")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cohort-") as tmp:
        root = Path(tmp)
        results = bench_listing(root, args.list) + bench_export(root, args.export)
    print(f"\n| {'what':<48} | {'seconds':>8} | goal     |")
    print(f"|{'-' * 50}|{'-' * 10}|----------|")
    for what, seconds, goal in results:
        print(f"| {what:<48} | {seconds:8.2f} | {goal:<8} |")


if __name__ == "__main__":
    main()
