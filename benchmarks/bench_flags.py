"""The cohort's plausibility flags on the robustness suite: which fire on the reference labels
(false alarms), and how often ``area_jump`` catches a constructed error on one slice.

For every case x variant of ``variants.py`` (phases, noise, 5 mm slices, zoom, orientation,
padding, field of view): the flags of the reference labels, then per organ, on its middle
slice, a leak of 10 / 15 / 20 / 30 % of its largest slice area (the organ grown into
unlabelled pixels) and the slice missed. Prints the worst per-slice statistics of the
reference labels (the margins of ``AREA_STEP`` and ``AREA_SPIKE``) and the detection table.

``--thick 7.5 10`` adds every case with its slices averaged to those thicknesses.

    .venv/bin/python benchmarks/bench_flags.py [--cases phantom ...] [--variants original ...]
        [--thick 7.5 10]
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import variants
from scipy import ndimage

from radipop_widgets.cohort.flags import (
    AREA_SPIKE,
    AREA_STEP,
    area_flags,
    step_allowed,
    study_flags,
)
from radipop_widgets.labels import LIVER, SPLEEN
from radipop_widgets.measure import organ_measurements

ORGANS = {"liver": LIVER, "spleen": SPLEEN}
LEAKS = (0.10, 0.15, 0.20, 0.30)


def worst_ratios(measurement: dict) -> tuple[float, float]:
    """(largest step to the next slice, largest difference from the neighbours' mean), as
    fractions of the largest slice area."""
    area = np.array([a for _, a in measurement["area_mm2"]])
    steps = np.abs(np.diff(area)) / area.max() if len(area) > 1 else np.zeros(1)
    spikes = (np.abs(area[1:-1] - (area[:-2] + area[2:]) / 2) / area.max()
              if len(area) > 2 else np.zeros(1))
    return float(steps.max()), float(spikes.max())


def with_error(ref: np.ndarray, label: int, z: int, leak: float | None, pixel_mm2: float):
    """``ref`` with slice ``z`` of ``label`` missed (``leak`` None) or grown into unlabelled
    pixels by ``leak`` of the organ's largest slice area."""
    labels = ref.copy()
    organ = ref[z] == label
    if leak is None:
        labels[z][organ] = 0
        return labels
    target = leak * (ref == label).sum(axis=(1, 2)).max() * pixel_mm2
    grown, added = organ, np.zeros_like(organ)
    while added.sum() * pixel_mm2 < target and not grown.all():
        grown = ndimage.binary_dilation(grown)
        added = grown & (ref[z] == 0)
    labels[z][added] = label
    return labels


def suite(cases, names, thicknesses):
    """The robustness suite's studies, then every case at each of ``thicknesses``."""
    yield from variants.iter_suite(cases, names, verbose=False)
    for case in (cases or variants.CASES) if thicknesses else ():
        loaded = variants.load_case(case)
        if loaded is None or loaded[0].n_slices < 10:
            continue
        for mm in thicknesses:
            yield (case, f"thick{mm:g}", *variants.thicken(*loaded, thickness_mm=mm))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--variants", nargs="*")
    parser.add_argument("--thick", nargs="*", type=float, default=[],
                        help="also every case with slices of these thicknesses (mm)")
    args = parser.parse_args(argv)
    false_alarms, studies = collections.Counter(), 0
    worst = collections.defaultdict(lambda: [0.0, 0.0])
    caught = collections.defaultdict(list)
    for case, variant, study, ref in suite(args.cases, args.variants, args.thick):
        studies += 1
        m = organ_measurements(ref, study.hu, study.spacing)
        for flag in study_flags(ref, m, study.spacing, None):
            false_alarms[(flag.code, flag.organ)] += 1
        pixel_mm2 = study.spacing[1] * study.spacing[2]
        for organ, label in ORGANS.items():
            if organ not in m or len(m[organ]["area_mm2"]) < 5:
                continue
            step, spike = worst_ratios(m[organ])
            worst[organ] = [max(worst[organ][0], step / step_allowed(study.spacing[0])),
                            max(worst[organ][1], spike)]
            zs = [z for z, _ in m[organ]["area_mm2"]]
            z = zs[len(zs) // 2]
            for leak in (*LEAKS, None):
                labels = with_error(ref, label, z, leak, pixel_mm2)
                flags = area_flags(organ_measurements(labels, None, study.spacing),
                                   study.spacing[0])
                caught[(organ, leak)].append(any(f.code == "area_jump" and f.organ == organ
                                                 for f in flags))
    print(f"{studies} studies (cases x variants), reference labels:")
    print(f"  flags fired: {dict(sorted(false_alarms.items())) or 'none'}")
    print("  (fov_cut and volume_range are true there: the cases are cut by their field of view)")
    for organ, (step, spike) in sorted(worst.items()):
        print(f"  {organ}: largest step {step:.2f} of the step allowed at its thickness "
              f"({AREA_STEP} per 5 mm or less), largest difference from the neighbours "
              f"{spike:.3f} (AREA_SPIKE {AREA_SPIKE})")
    print(f"\n{'error on the middle slice':28s}{'liver':>10s}{'spleen':>10s}")
    for leak in (*LEAKS, None):
        what = "slice missed" if leak is None else f"leak of {leak:.0%} of the largest"
        rates = [caught[(o, leak)] for o in ORGANS]
        print(f"{what:28s}" + "".join(f"{np.mean(r):10.0%}" if r else f"{'-':>10s}"
                                      for r in rates) + f"   n = {len(rates[0])}")


if __name__ == "__main__":
    main()
