"""Robot-user accuracy benchmark (../shared/bench/PROTOCOL.md v2, parts A and B).

Run from the repository root:

    .venv/bin/python benchmarks/bench_robot.py [--k 1 3 5] [--cases ...]
        part A on the unmodified cases: ``study organ K actions dice vol_err_% seconds``
    .venv/bin/python benchmarks/bench_robot.py --suite [--part A|B|AB] [--plain-tools]
        parts A (K = 3 unless --k) and B on every case x study variant of ``variants.py``
        (about 9 minutes on 2 cores), then summaries per organ, variant group and variant
    .venv/bin/python benchmarks/bench_robot.py --variants arterial native --part AB

Part B rows: ``study variant organ dice@0 dice@5 dice@10 dice@20 vol@0 vol@10 vol@20
actions_to_0.95 actions_to_0.97 seconds`` after part A with K = 3 (actions include part A's
six; "-" = not reached within the budget; seconds = the corrective tool calls only).

The engine imported is the one under ``$RADIPOP_ENGINE_ROOT`` (default: this repository),
e.g. ``RADIPOP_ENGINE_ROOT=/tmp/baseline`` for a worktree of an older commit.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENGINE_ROOT = Path(os.environ.get("RADIPOP_ENGINE_ROOT", ROOT)).resolve()
sys.path.insert(0, str(ENGINE_ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import variants  # after the engine root is on sys.path

SHARED_DATA = variants.SHARED_DATA

CASES = tuple(variants.CASES)
ORGANS = {1: "liver", 2: "spleen"}
#: part B scores are reported after this many corrective actions
CHECKPOINTS = (0, 5, 10, 20)
#: a selection / grow is "mostly organ" at >= this fraction inside the reference ...
MOSTLY_ORGAN = 0.80
#: ... and "mostly not organ" at <= this fraction
MOSTLY_NOT = 0.20
#: goals (benchmarks/README.md)
GOAL_A = (0.93, 5.0)       # K = 3: Dice >=, |volume error| <= (%)
GOAL_B = (0.95, 3.0)       # after <= 10 corrective actions


def load_case(name):
    """(Study, reference labels) of a shared case, or None when it is absent."""
    if variants.missing_reason(name) is not None:
        return None
    return variants.CASES[name]()


def load_any(name):
    """(Study, reference) of a shared case or of the synthetic phantom; None if absent."""
    if name not in variants.CASES:
        return None
    return load_case(name)


# ----------------------------------------------------------------------------- part A


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


# ----------------------------------------------------------------------------- part B


class Tools:
    """Which one-action tools of the Session the corrective robot uses."""

    def __init__(self, session_cls, plain=False):
        self.grow = (not plain) and hasattr(session_cls, "grow")
        try:
            params = inspect.signature(session_cls.draw).parameters
        except (TypeError, ValueError):
            params = {}
        self.edge_aware = (not plain) and "edge_aware" in params

    def describe(self):
        used = ["select + assign", "brush stroke (draw)"]
        if self.grow:
            used.append("grow from a click for a missing piece whose region is not mostly "
                        "organ (a grow that adds < 80 % organ is undone and counted as one "
                        "more action before the stroke)")
        if self.edge_aware:
            used.append("edge-aware brush for painting (draw(..., edge_aware=True))")
        return "; ".join(used) + ("" if self.grow or self.edge_aware else " (plain tools)")


def medial_stroke(piece, pixel_mm):
    """(points, width_mm) of one brush stroke along the medial line of ``piece``.

    The medial line is the skeleton's longest path (two breadth-first searches over its
    8-connected pixels); the width is 2 x the median distance-transform value on it.
    """
    from scipy import ndimage
    rows, cols = np.nonzero(piece)
    r0, c0 = max(rows.min() - 1, 0), max(cols.min() - 1, 0)
    sub = piece[r0:rows.max() + 2, c0:cols.max() + 2]
    dist = ndimage.distance_transform_edt(np.pad(sub, 1))[1:-1, 1:-1]
    try:
        from skimage.morphology import skeletonize
        skel = skeletonize(sub)
    except ImportError:         # no scikit-image: a stroke through the deepest pixel
        skel = np.zeros_like(sub)
    if not skel.any():
        skel = dist == dist.max()
    pts = np.argwhere(skel)
    path = _longest_path(pts)
    width_px = 2.0 * float(np.median(dist[path[:, 0], path[:, 1]]))
    points = (path + [r0, c0]).astype(float)
    if len(points) > 2:
        points = np.vstack([points[:-1:2], points[-1:]])      # every 2nd vertex + the end
    return points.tolist(), max(width_px, 1.0) * pixel_mm


def _longest_path(pts):
    """The pixels (n, 2) of the longest shortest path over 8-connected ``pts``."""
    if len(pts) <= 2:
        return pts
    index = {(int(r), int(c)): i for i, (r, c) in enumerate(pts)}
    nbrs = [[index[(r + dr, c + dc)] for dr in (-1, 0, 1) for dc in (-1, 0, 1)
             if (dr or dc) and (r + dr, c + dc) in index] for r, c in map(tuple, pts)]

    def bfs(start):
        parent = {start: -1}
        frontier, last = [start], start
        while frontier:
            nxt = []
            for i in frontier:
                for j in nbrs[i]:
                    if j not in parent:
                        parent[j] = i
                        nxt.append(j)
            if nxt:
                last = nxt[-1]
            frontier = nxt
        return last, parent

    a, _ = bfs(0)
    b, parent = bfs(a)
    path = [b]
    while parent[path[-1]] != -1:
        path.append(parent[path[-1]])
    return pts[np.asarray(path)]


def _largest_piece(wrong2d):
    """(mask, size) of the largest 8-connected piece of ``wrong2d``."""
    from scipy import ndimage
    lab, n = ndimage.label(wrong2d, structure=np.ones((3, 3), bool))
    if n == 0:
        return None, 0
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    i = int(np.argmax(sizes))
    return lab == i, int(sizes[i])


class Corrector:
    """The reviewing user of part B: bookkeeping per slice, one action per call."""

    def __init__(self, session, ref, organ, tools, trace=False):
        self.session, self.organ, self.tools = session, organ, tools
        self.trace = trace
        self.ref = ref == organ
        self.ref_sum = int(self.ref.sum())
        n = self.ref.shape[0]
        self.wrong = np.zeros(n, np.int64)
        self.inter = np.zeros(n, np.int64)
        self.nlab = np.zeros(n, np.int64)
        self.refresh(range(n))
        self.seconds = 0.0
        self.actions = 0
        self.stuck = set()          # (z, r, c) of pieces an action could not change
        self.pixel_mm = float(math.sqrt(session.study.spacing[1] * session.study.spacing[2]))

    def refresh(self, zs):
        labels = self.session.labels
        for z in zs:
            lab = labels[z] == self.organ
            ref = self.ref[z]
            self.inter[z] = np.count_nonzero(lab & ref)
            self.nlab[z] = np.count_nonzero(lab)
            self.wrong[z] = self.nlab[z] + np.count_nonzero(ref) - 2 * self.inter[z]

    def scores(self):
        dice = 2.0 * self.inter.sum() / max(self.nlab.sum() + self.ref_sum, 1)
        vol = 100.0 * (self.nlab.sum() - self.ref_sum) / max(self.ref_sum, 1)
        return float(dice), float(vol)

    def _timed(self, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0

    def _pick(self):
        """(z, piece mask, missing?, deepest (r, c)) of the next piece, or None."""
        for z in np.argsort(-self.wrong, kind="stable"):
            if self.wrong[z] == 0:
                return None
            lab = self.session.labels[z] == self.organ
            missing, n_missing = _largest_piece(self.ref[z] & ~lab)
            extra, n_extra = _largest_piece(lab & ~self.ref[z])
            order = [(n_missing, missing, True), (n_extra, extra, False)]
            order.sort(key=lambda t: -t[0])
            for n, piece, is_missing in order:
                if n == 0:
                    continue
                r, c = (int(v) for v in deepest_pixel(piece))
                if (int(z), r, c) not in self.stuck:
                    return int(z), piece, is_missing, (r, c)
        return None

    def step(self):
        """One corrective action; False when nothing is (fixably) wrong."""
        picked = self._pick()
        if picked is None:
            return False
        z, piece, is_missing, (r, c) = picked
        s = self.session
        before = s.labels[z].copy()
        target = self.organ if is_missing else 0
        self.actions += 1
        self._timed(s.select, z, r, c)
        sel = s.selected_mask(z)
        frac = float((sel & self.ref[z]).sum()) / max(int(sel.sum()), 1) if sel is not None \
            else None
        how = "assign"
        if is_missing and frac is not None and frac >= MOSTLY_ORGAN:
            self._timed(s.assign, z, self.organ)
        elif not is_missing and frac is not None and frac <= MOSTLY_NOT:
            self._timed(s.assign, z, 0)
        else:
            how = "stroke"
            done = False
            if is_missing and self.tools.grow:
                if hasattr(s, "clear_selection"):
                    s.clear_selection()
                added_before = s.labels[z] == self.organ
                changed = self._timed(s.grow, z, r, c, self.organ)
                if changed:
                    added = (s.labels[z] == self.organ) & ~added_before
                    ok = float((added & self.ref[z]).sum()) / max(int(added.sum()), 1)
                    if ok >= MOSTLY_ORGAN:
                        done = True
                        how = "grow"
                    else:           # the user sees a bad grow, undoes it and paints
                        self._timed(s.undo)
                        self.actions += 1
                        how = "grow undone + stroke"
            if not done:
                points, width_mm = medial_stroke(piece, self.pixel_mm)
                kwargs = {"edge_aware": True} if self.tools.edge_aware and target else {}
                self._timed(s.draw, z, points, target, width_mm=width_mm, **kwargs)
        if np.array_equal(before, s.labels[z]):
            self.stuck.add((z, r, c))
        self.refresh([z])
        if self.trace:
            changed = int((before != s.labels[z]).sum())
            sel_txt = "none" if frac is None else f"{int(sel.sum())} px {frac:.0%} organ"
            print(f"    action {self.actions}: slice {z} {'missing' if is_missing else 'extra'} "
                  f"piece {int(piece.sum())} px at ({r}, {c}); selection {sel_txt}; {how}; "
                  f"{changed} px changed; dice {self.scores()[0]:.4f}")
        return True

    def resync(self):
        """Recompute every slice (a tool may have changed more than the clicked slice)."""
        self.refresh(range(self.ref.shape[0]))


def correct(session, ref, organ, budget, tools, a_actions, trace=False):
    """Part B on a session after part A; returns the row's numbers."""
    cor = Corrector(session, ref, organ, tools, trace)
    at = {}
    first = {}
    dice, vol = cor.scores()
    at[0] = (dice, vol)
    for goal in (0.95, 0.97):
        if dice >= goal:
            first[goal] = a_actions
    done = 0
    while done < budget:
        if not cor.step():
            break
        done += 1
        if done in CHECKPOINTS:
            cor.resync()
        dice, vol = cor.scores()
        for goal in (0.95, 0.97):
            if goal not in first and dice >= goal:
                first[goal] = a_actions + cor.actions
        if done in CHECKPOINTS:
            at[done] = (dice, vol)
    cor.resync()
    final = cor.scores()
    for cp in CHECKPOINTS:      # stopped early (nothing wrong): the final scores
        at.setdefault(cp, final)
    return {"at": at, "first": first, "seconds": cor.seconds, "actions": cor.actions,
            "steps": done}


# ----------------------------------------------------------------------------- running


def _fmt_first(v):
    return f"{v:d}" if v is not None else "-"


def run(cases=CASES, ks=(1, 3, 5), verbose=False, variant_names=None, part="A",
        corrections=20, plain=False, legacy=None):
    """Run part A (and B) over cases x variants; returns (rows A, rows B)."""
    import radipop_widgets
    from radipop_widgets.session import Session
    variant_names = ["original"] if variant_names is None else list(variant_names)
    legacy = (variant_names == ["original"] and part == "A") if legacy is None else legacy
    do_a, do_b = "A" in part, "B" in part
    tools = Tools(Session, plain)
    rows_a, rows_b, errors = [], [], []
    if not legacy:
        print(f"engine: {Path(radipop_widgets.__file__).resolve().parent}")
        if do_b:
            print(f"part B tools: {tools.describe()}")
    head_a = (f"{'study':22s} {'organ':6s} {'K':>2s} {'actions':>7s} {'dice':>6s} "
              f"{'vol_err_%':>9s} {'seconds':>7s}")
    if legacy:
        print(head_a)
    else:
        if do_a:
            print(f"A {'study':20s} {'variant':26s} {'organ':6s} {'K':>2s} {'actions':>7s} "
                  f"{'dice':>6s} {'vol_err_%':>9s} {'seconds':>7s}")
        if do_b:
            print(f"B {'study':20s} {'variant':26s} {'organ':6s} "
                  + " ".join(f"{'dice@' + str(c):>7s}" for c in CHECKPOINTS) + " "
                  + " ".join(f"{'vol@' + str(c):>6s}" for c in (0, 10, 20))
                  + f" {'act_0.95':>8s} {'act_0.97':>8s} {'seconds':>7s}")
    ks_run = sorted(set(ks) | ({3} if do_b else set())) if do_a else [3]
    for name, vname, study, ref in variants.iter_suite(cases, variant_names,
                                                       verbose=not legacy):
        for organ, organ_name in ORGANS.items():
            if not (ref == organ).any():
                continue
            for k in ks_run:
                try:
                    session = Session(study)
                    actions, seconds = robot(session, ref, organ, k)
                    dice, vol_err = score(session.labels, ref, organ, study.spacing)
                except Exception as exc:  # noqa: BLE001  (a variant the engine cannot handle)
                    errors.append((name, vname, organ_name, k, f"{type(exc).__name__}: {exc}"))
                    print(f"{name} {vname} {organ_name} K={k}: ERROR {errors[-1][-1]}",
                          flush=True)
                    continue
                if do_a and k in ks:
                    rows_a.append((name, vname, organ_name, k, actions, dice, vol_err, seconds))
                    if legacy:
                        print(f"{name:22s} {organ_name:6s} {k:2d} {actions:7d} {dice:6.3f} "
                              f"{vol_err:9.1f} {seconds:7.2f}", flush=True)
                    else:
                        print(f"A {name:20s} {vname:26s} {organ_name:6s} {k:2d} {actions:7d} "
                              f"{dice:6.3f} {vol_err:9.1f} {seconds:7.2f}", flush=True)
                    if verbose and session.last_report is not None:
                        print(session.last_report.text())
                if do_b and k == 3:
                    try:
                        res = correct(session, ref, organ, corrections, tools, actions, verbose)
                    except Exception as exc:  # noqa: BLE001
                        errors.append((name, vname, organ_name, "B",
                                       f"{type(exc).__name__}: {exc}"))
                        print(f"{name} {vname} {organ_name} part B: ERROR {errors[-1][-1]}",
                              flush=True)
                        continue
                    at, first = res["at"], res["first"]
                    row = (name, vname, organ_name, *(at[c][0] for c in CHECKPOINTS),
                           *(at[c][1] for c in (0, 10, 20)), first.get(0.95),
                           first.get(0.97), res["seconds"])
                    rows_b.append(row)
                    print(f"B {name:20s} {vname:26s} {organ_name:6s} "
                          + " ".join(f"{at[c][0]:7.3f}" for c in CHECKPOINTS) + " "
                          + " ".join(f"{at[c][1]:6.1f}" for c in (0, 10, 20))
                          + f" {_fmt_first(first.get(0.95)):>8s} "
                            f"{_fmt_first(first.get(0.97)):>8s} {row[-1]:7.2f}", flush=True)
    if errors:
        print(f"\n{len(errors)} error(s):")
        for e in errors:
            print("  " + " ".join(str(v) for v in e))
    return rows_a, rows_b, errors


# ----------------------------------------------------------------------------- summaries


def _worst(rows, key, low=True):
    return (min if low else max)(rows, key=key)


def summarize_a(rows, errors=()):
    if not rows:
        return
    print("\n== part A summary (per organ and K): mean / worst Dice, worst |vol err| "
          f"(goal K=3: Dice >= {GOAL_A[0]}, |vol| <= {GOAL_A[1]:g} %)")
    print(f"{'organ':6s} {'K':>2s} {'n':>4s} {'dice_mean':>9s} {'dice_worst':>10s} "
          f"{'|vol|_mean':>10s} {'|vol|_worst':>11s} {'goal_met':>8s}  worst Dice at / worst vol at")
    by = defaultdict(list)
    for r in rows:
        by[(r[2], r[3])].append(r)
    for (organ, k), rs in sorted(by.items()):
        wd = _worst(rs, lambda r: r[5])
        wv = _worst(rs, lambda r: abs(r[6]), low=False)
        met = sum(r[5] >= GOAL_A[0] and abs(r[6]) <= GOAL_A[1] for r in rs)
        print(f"{organ:6s} {k:2d} {len(rs):4d} {np.mean([r[5] for r in rs]):9.3f} "
              f"{wd[5]:10.3f} {np.mean([abs(r[6]) for r in rs]):10.1f} {abs(wv[6]):11.1f} "
              f"{met:4d}/{len(rs):<3d}  {wd[0]}/{wd[1]} ; {wv[0]}/{wv[1]}")
    _group_tables(rows, lambda r: r[5], lambda r: r[6], "part A", k_filter=3)


def _group_tables(rows, dice_of, vol_of, what, k_filter=None):
    if k_filter is not None:
        rows = [r for r in rows if r[3] == k_filter]
        if not rows:
            return
    for title, key in (("variant group", lambda r: variants.group_of(r[1])),
                       ("variant", lambda r: r[1])):
        print(f"\n-- {what}{'' if k_filter is None else f' K={k_filter}'} per {title}: "
              "mean / worst Dice, worst |vol err| (over studies)")
        print(f"{title:26s} " + " ".join(
            f"{o + '_' + s:>13s}" for o in ORGANS.values() for s in ("dice", "dice_worst",
                                                                   "|vol|_worst")))
        by = defaultdict(lambda: defaultdict(list))
        order = []
        for r in rows:
            g = key(r)
            if g not in order:
                order.append(g)
            by[g][r[2]].append(r)
        for g in order:
            cells = []
            for organ in ORGANS.values():
                rs = by[g].get(organ, [])
                if rs:
                    cells += [f"{np.mean([dice_of(r) for r in rs]):13.3f}",
                              f"{min(dice_of(r) for r in rs):13.3f}",
                              f"{max(abs(vol_of(r)) for r in rs):13.1f}"]
                else:
                    cells += [f"{'-':>13s}"] * 3
            print(f"{g:26s} " + " ".join(cells))


def summarize_b(rows):
    if not rows:
        return
    print("\n== part B summary (per organ): Dice after 0 / 5 / 10 / 20 corrective actions "
          f"(goal after <= 10: Dice >= {GOAL_B[0]}, |vol| <= {GOAL_B[1]:g} %)")
    print(f"{'organ':6s} {'n':>4s} " + " ".join(f"{'mean@' + str(c):>8s}" for c in CHECKPOINTS)
          + " " + " ".join(f"{'worst@' + str(c):>8s}" for c in CHECKPOINTS)
          + f" {'|vol|w@10':>9s} {'|vol|w@20':>9s} {'goal@10':>7s} {'act0.95':>7s}"
            "  worst Dice@10 at")
    by = defaultdict(list)
    for r in rows:
        by[r[2]].append(r)
    for organ, rs in by.items():
        dice = np.array([r[3:7] for r in rs])
        wv10 = max(abs(r[8]) for r in rs)
        wv20 = max(abs(r[9]) for r in rs)
        met = sum(r[5] >= GOAL_B[0] and abs(r[8]) <= GOAL_B[1] for r in rs)
        reach = [r[10] for r in rs]
        act = ("-" if any(a is None for a in reach) else str(max(reach))) + \
            f"/{sum(a is not None for a in reach)}"
        w = min(rs, key=lambda r: r[5])
        print(f"{organ:6s} {len(rs):4d} " + " ".join(f"{v:8.3f}" for v in dice.mean(axis=0))
              + " " + " ".join(f"{v:8.3f}" for v in dice.min(axis=0))
              + f" {wv10:9.1f} {wv20:9.1f} {met:3d}/{len(rs):<3d} {act:>7s}  {w[0]}/{w[1]}")
    print("  (act0.95: most actions, part A included, any study needed to reach Dice 0.95 "
          "('-' = some never did) / how many reached it)")
    _group_tables(rows, lambda r: r[5], lambda r: r[8], "part B after 10 corrections")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--k", type=int, nargs="+", default=None,
                        help="part A key slices (default 1 3 5; 3 with --suite)")
    parser.add_argument("--cases", nargs="+", default=None)
    parser.add_argument("--variants", nargs="+", default=None,
                        help="variant names of variants.py ('+' joins them); default original")
    parser.add_argument("--suite", action="store_true",
                        help="every case x every variant of variants.VARIANTS")
    parser.add_argument("--part", choices=("A", "B", "AB"), default=None,
                        help="default A, AB with --suite")
    parser.add_argument("--corrections", type=int, default=20, help="part B budget")
    parser.add_argument("--plain-tools", action="store_true",
                        help="part B with select/assign/draw only (no grow, no edge-aware brush)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    cases = args.cases or list(CASES)
    if args.variants:
        names = args.variants
    elif args.suite:
        names = list(variants.VARIANTS)
    else:
        names = ["original"]
    part = args.part or ("AB" if args.suite else "A")
    ks = args.k or ([3] if args.suite else [1, 3, 5])
    t0 = time.perf_counter()
    rows_a, rows_b, errors = run(cases, ks, args.verbose, names, part, args.corrections,
                                 args.plain_tools)
    legacy = names == ["original"] and part == "A"
    if not legacy:
        summarize_a(rows_a, errors)
        summarize_b(rows_b)
        print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
