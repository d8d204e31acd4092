"""Organ statistics: organ_measurements on 300 x 512 x 512, and the click path with the
Statistics tab shown (goals: measuring well under 1 s; a click + label through the App's
handlers <= 15 ms, issue 10).

    python benchmarks/bench_measure.py [--repeats 5] [--clicks 20] [--no-app]

Rows:

- ``organ_measurements`` on the ellipsoid case of ``bench_save.py`` (a 12 L liver on 240
  slices, a 0.9 L spleen: the worst case), on the phantom (300 x 512 x 512, 2.5 x 0.8 x
  0.8 mm, liver 1.75 L, spleen 0.2 L) and on the real cases when ``../shared/data`` holds
  them;
- the App's click + Liver handlers (mouse down, mouse up, assign; the served app's
  background mode) on the phantom with the Statistics tab hidden and shown; the clicks
  come every ``DELAY`` + 50 ms, so each one meets the measuring of the one before.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from bench_save import make_case

from radipop_widgets.io.phantom import phantom_study
from radipop_widgets.labels import LIVER
from radipop_widgets.measure import organ_measurements


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, max(times) * 1000


def real_cases():
    """(name, hu, labels, spacing) of the shared real cases that are present."""
    import nibabel as nib

    from radipop_widgets.io import load_study
    try:
        from realdata import SHARED_DATA
    except ImportError:
        return
    siemens = SHARED_DATA / "ct-siemens-20slices"
    if siemens.exists():
        study = load_study(siemens / "dicom")
        labels = np.load(siemens / "reference_labels.npz")["labels"]
        yield "ct-siemens-20slices", study.hu, labels, study.spacing
    abdomen = SHARED_DATA / "ct-abdomen-3mm"
    if abdomen.exists():
        study = load_study(abdomen / "ct.nii.gz")
        data = np.asarray(nib.load(abdomen / "reference_labels.nii.gz").dataobj)
        labels = np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0)).astype(np.uint8)
        yield "ct-abdomen-3mm", study.hu, labels, study.spacing


def click_times(study, reference, clicks: int, shown: bool):
    """Handler times (ms) of click + Liver on the phantom's liver slices."""
    from radipop_widgets.app import App
    from radipop_widgets.app.app import TABS
    from radipop_widgets.app.statistics import DELAY
    with tempfile.TemporaryDirectory() as tmp:
        app = App(study=study, workspace=Path(tmp) / "s", output_root=Path(tmp) / "e")
        app.wait()
        app.start_new()
        liver_slices = np.flatnonzero((reference == LIVER).any(axis=(1, 2)))
        app.session.set_labels(np.where(reference == LIVER, 0, reference).astype(np.uint8))
        if shown:
            app.tabs.selected_index = TABS.index("Statistics")
            app.statistics.flush()
        times = []
        for i in range(clicks):
            z = int(liver_slices[(i * 7) % len(liver_slices)])
            app.set_slice(z)
            inside = ndimage.distance_transform_edt(reference[z] == LIVER)
            row, col = np.unravel_index(np.argmax(inside), inside.shape)
            time.sleep(DELAY + 0.05)            # the measuring of the last click runs now
            start = time.perf_counter()
            with app.jobs.lock:                  # as the browser's callbacks hold it
                app.mouse_down(col + 0.5, row + 0.5)
                app.mouse_up(col + 0.5, row + 0.5)
                app.assign(LIVER)
            times.append((time.perf_counter() - start) * 1000)
        app.statistics.set_visible(False)
        runs = app.statistics.runs
    return times, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--no-app", action="store_true", help="skip the App click rows")
    args = parser.parse_args()
    print(f"{'operation':<52}{'median ms':>11}{'max ms':>10}")
    study, labels, _ = make_case(300)
    rows = [("organ_measurements, bench_save ellipsoids 300x512x512", study.hu, labels,
             study.spacing)]
    phantom, reference = phantom_study(shape=(300, 512, 512))
    rows.append(("organ_measurements, phantom 300x512x512", phantom.hu, reference,
                 phantom.spacing))
    rows += [(f"organ_measurements, {name} {'x'.join(map(str, hu.shape))}", hu, lab, sp)
             for name, hu, lab, sp in real_cases()]
    for name, hu, lab, spacing in rows:
        median, worst = timed(lambda lab=lab, hu=hu, spacing=spacing:
                              organ_measurements(lab, hu, spacing), args.repeats)
        print(f"{name:<52}{median:>11.1f}{worst:>10.1f}", flush=True)
    if args.no_app:
        return
    for shown in (False, True):
        times, runs = click_times(phantom, reference, args.clicks, shown)
        name = f"click + Liver handlers, Statistics {'shown' if shown else 'hidden'}"
        print(f"{name:<52}{statistics.median(times):>11.1f}{max(times):>10.1f}"
              f"   ({runs} measurings)", flush=True)


if __name__ == "__main__":
    main()
