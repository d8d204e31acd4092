"""Robot-user accuracy benchmark (../shared/bench/PROTOCOL.md v1).

Run: ``.venv/bin/python benchmarks/bench_robot.py [--k 1 3 5] [--cases ...]``.
Prints one row per (study, organ, K): ``study organ K actions dice vol_err_% seconds``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(os.environ.get("RADIPOP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_case(name):
    """(Study, reference labels) of a shared case, or None when it is absent."""
    from radipop_widgets.io import load_study
    folder = SHARED_DATA / name
    if not folder.exists():
        return None
    if name == "ct-abdomen-3mm":
        import nibabel as nib
        study = load_study(folder / "ct.nii.gz")
        ref = np.asarray(nib.load(str(folder / "reference_labels.nii.gz")).dataobj)
        ref = np.stack([ref[::-1, ::-1, k].T for k in range(ref.shape[2])]).astype(np.uint8)
    else:
        study = load_study(folder / "dicom")
        ref = np.load(folder / "reference_labels.npz")["labels"]
    return study, ref


CASES = ("ct-siemens-20slices", "ct-abdomen-3mm", "ge-ct-3slices", "phantom",
         "phantom-native", "phantom-arterial")
ORGANS = {1: "liver", 2: "spleen"}


def load_any(name):
    """(Study, reference) of a shared case or of the synthetic phantom; None if absent."""
    if name.startswith("phantom"):
        from radipop_widgets.io.phantom import phantom_study
        phase = name.partition("-")[2] or "portal"
        return phantom_study(phase=phase)
    return load_case(name)


def key_slices(ref_mask, k):
    """Key slices of the protocol: largest area for K = 1, else quantiles of the range."""
    zs = np.flatnonzero(ref_mask.any(axis=(1, 2)))
    if k == 1:
        return [int(np.argmax(ref_mask.sum(axis=(1, 2))))]
    lo, hi = zs[0], zs[-1]
    return sorted({int(round(lo + (i + 0.5) / k * (hi - lo))) for i in range(k)})


def deepest_pixel(mask2d):
    from scipy import ndimage
    dist = ndimage.distance_transform_edt(np.pad(mask2d, 1))[1:-1, 1:-1]
    return np.unravel_index(int(np.argmax(dist)), dist.shape)


def robot(session, ref, organ, k):
    """Run protocol K for one organ on a fresh session; returns (actions, seconds)."""
    mask = ref == organ
    keys = key_slices(mask, k)
    actions = 0
    seconds = 0.0
    for z in keys:
        r, c = deepest_pixel(mask[z])
        t0 = time.perf_counter()
        session.select(z, r, c)
        session.assign(z, organ)
        seconds += time.perf_counter() - t0
        actions += 1
    for i, z in enumerate(keys):
        # slices a+1..mid belong to key a, mid+1..b-1 to key b (mid = (a + b) // 2)
        below = None if i == 0 else z - (keys[i - 1] + z) // 2 - 1
        above = None if i == len(keys) - 1 else (z + keys[i + 1]) // 2 - z
        t0 = time.perf_counter()
        session.extend(z, below=below, above=above, label=organ)
        seconds += time.perf_counter() - t0
        actions += 1
    return actions, seconds


def score(labels, ref, organ, spacing):
    a, b = labels == organ, ref == organ
    dice = 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)
    vol_err = 100.0 * (a.sum() - b.sum()) / max(b.sum(), 1)
    return float(dice), float(vol_err)


def run(cases=CASES, ks=(1, 3, 5), verbose=False):
    from radipop_widgets.session import Session
    rows = []
    print(f"{'study':22s} {'organ':6s} {'K':>2s} {'actions':>7s} {'dice':>6s} "
          f"{'vol_err_%':>9s} {'seconds':>7s}")
    for name in cases:
        loaded = load_any(name)
        if loaded is None:
            print(f"{name}: not found under {SHARED_DATA}, skipped")
            continue
        study, ref = loaded
        for organ, organ_name in ORGANS.items():
            if not (ref == organ).any():
                continue
            for k in ks:
                session = Session(study)
                actions, seconds = robot(session, ref, organ, k)
                dice, vol_err = score(session.labels, ref, organ, study.spacing)
                rows.append((name, organ_name, k, actions, dice, vol_err, seconds))
                print(f"{name:22s} {organ_name:6s} {k:2d} {actions:7d} {dice:6.3f} "
                      f"{vol_err:9.1f} {seconds:7.2f}", flush=True)
                if verbose:
                    print(session.last_report.text())
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    run(args.cases, args.k, args.verbose)
