"""Study variants for robustness benchmarks: contrast phase, noise, slice thickness, pixel
size, orientation, padding, field of view, and combinations that mimic an unseen scanner.

Every variant is a deterministic function ``f(study, ref, seed=0) -> (study, ref)`` of a
:class:`~radipop_widgets.study.Study` and its reference labels (uint8, 1 = liver,
2 = spleen); it returns a new in-memory Study (``hu`` int16 in HU, ``spacing`` and
``affine`` consistent with the new grid) and the reference on the new grid. Nothing is
written to disk.

Run ``.venv/bin/python benchmarks/variants.py [--cases ...] [--variants ...] [--png DIR]``
for a table of the variants (organ mean HU, spacing, shape, generation time).

The engine imported is the one under ``$RADIPOP_ENGINE_ROOT`` (default: this repository),
so the suite can be run against another checkout (e.g. a baseline worktree).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
ENGINE_ROOT = Path(os.environ.get("RADIPOP_ENGINE_ROOT", ROOT)).resolve()
if str(ENGINE_ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ENGINE_ROOT))

SHARED_DATA = Path(os.environ.get("RADIPOP_SHARED_DATA", ROOT.parent / "shared" / "data"))

LIVER, SPLEEN = 1, 2
HU_MIN, HU_MAX = -1024, 3071

# ----------------------------------------------------------------------------- cases


def _load_shared(name):
    from radipop_widgets.io import load_study
    folder = SHARED_DATA / name
    if name == "ct-abdomen-3mm":
        import nibabel as nib
        study = load_study(folder / "ct.nii.gz")
        ref = np.asarray(nib.load(str(folder / "reference_labels.nii.gz")).dataobj)
        ref = np.stack([ref[::-1, ::-1, k].T for k in range(ref.shape[2])]).astype(np.uint8)
    else:
        study = load_study(folder / "dicom")
        ref = np.load(folder / "reference_labels.npz")["labels"].astype(np.uint8)
    if ref.shape != study.shape:
        raise ValueError(f"{name}: reference {ref.shape} does not match the study {study.shape}")
    return study, ref


def _load_phantom(phase):
    from radipop_widgets.io.phantom import phantom_study
    return phantom_study(phase=phase)


#: case name -> (what it needs, loader). The loader returns (Study, reference labels).
CASES = {
    "ct-siemens-20slices": lambda: _load_shared("ct-siemens-20slices"),
    "ct-abdomen-3mm": lambda: _load_shared("ct-abdomen-3mm"),
    "ge-ct-3slices": lambda: _load_shared("ge-ct-3slices"),
    "phantom": lambda: _load_phantom("portal"),
    "phantom-native": lambda: _load_phantom("native"),
    "phantom-arterial": lambda: _load_phantom("arterial"),
}
#: files each shared case needs (absent -> the case is skipped with a reason)
CASE_FILES = {
    "ct-siemens-20slices": ("dicom", "reference_labels.npz"),
    "ct-abdomen-3mm": ("ct.nii.gz", "reference_labels.nii.gz"),
    "ge-ct-3slices": ("dicom", "reference_labels.npz"),
}


def missing_reason(name):
    """Why case ``name`` cannot be loaded, or None when it can."""
    if name not in CASES:
        return f"unknown case (known: {', '.join(CASES)})"
    for rel in CASE_FILES.get(name, ()):
        if not (SHARED_DATA / name / rel).exists():
            return f"{SHARED_DATA / name / rel} not found"
    return None


def load_case(name):
    """(Study, reference) of case ``name``, or None (with the reason printed) if absent."""
    reason = missing_reason(name)
    if reason is not None:
        print(f"{name}: skipped: {reason}", flush=True)
        return None
    return CASES[name]()


# ----------------------------------------------------------------------------- helpers


def _new_study(study, hu, spacing=None, affine=None, sources=None, what=""):
    """A copy of ``study`` with new voxels (int16, clipped) and geometry."""
    hu = np.asarray(hu)
    if hu.dtype != np.int16:
        hu = np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
    if sources is None:
        sources = list(study.sources) if len(study.sources) == hu.shape[0] else []
    return dataclasses.replace(
        study, hu=np.ascontiguousarray(hu),
        spacing=tuple(float(s) for s in (study.spacing if spacing is None else spacing)),
        affine=np.array(study.affine if affine is None else affine, float),
        sources=sources, warnings=list(study.warnings),
        series_description=(study.series_description + f" [{what}]").strip(),
        series_uid=None)


def _rng(seed, name):
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _index_affine(affine, scale=(1, 1, 1), offset=(0, 0, 0)):
    """Affine of a grid whose index i maps to old index ``offset + scale * i``."""
    m = np.eye(4)
    m[:3, :3] = np.diag(np.asarray(scale, float))
    m[:3, 3] = np.asarray(offset, float)
    return np.asarray(affine, float) @ m


def _smooth_field(shape, sigma_px, rng):
    """A zero-mean, unit-SD smooth random field (Gaussian-filtered white noise)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px)
    return field / max(float(field.std()), 1e-6)


def _bbox(mask, margin, shape):
    """Slices of the bounding box of ``mask`` grown by ``margin`` voxels per axis."""
    idx = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - m, 0), min(int(i.max()) + m + 1, n))
                 for i, m, n in zip(idx, margin, shape))


def _body_mask(hu):
    """Voxels of the body: > -500 HU, largest 2-D component per slice."""
    body = hu > -500
    out = np.zeros_like(body)
    for z in range(body.shape[0]):
        lab, n = ndimage.label(body[z])
        if n:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            out[z] = lab == int(np.argmax(sizes))
    return out


# ----------------------------------------------------------------------------- phases

#: organ and vessel HU targets of the phase remaps (portal-venous originals)
PHASE_TARGETS = {
    "arterial": {"liver": 73, "spleen": 175, "vessel": 385, "vessel_in_liver": 130,
                 "kidney_cortex": 260, "kidney_medulla": 110},
    "native": {"liver": 55, "spleen": 45, "vessel": 40, "vessel_in_liver": 40,
               "kidney_cortex": 32, "kidney_medulla": 32},
    "delayed": {"liver": 85, "spleen": 80, "vessel": 110, "vessel_in_liver": 105,
                "kidney_cortex": 150, "kidney_medulla": 150},
}
BLOOD_HU = 40         # unenhanced blood
VESSEL_HU = 140       # unlabelled voxels brighter than this (and below bone) are vessels
BONE_HU = 500


def _zebra(shape, spacing, seed, wavelength_mm=14.0):
    """An arciform / zebra pattern in [-1, 1]: bands curved by a smooth random field."""
    rng = _rng(seed, "zebra")
    z, r, c = np.meshgrid(*(np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing)),
                          indexing="ij")
    angle = rng.uniform(0, np.pi)
    u = r * np.cos(angle) + c * np.sin(angle) + 0.3 * z
    # arcs: add a radial term around an off-centre point, and warp with a smooth field
    cr, cc = rng.uniform(0, shape[1] * spacing[1]), rng.uniform(0, shape[2] * spacing[2])
    u = 0.6 * u + 0.8 * np.hypot(r - cr, c - cc)
    warp_sigma = [max(0.5, 8.0 / s) for s in spacing]
    warp = _smooth_field(shape, warp_sigma, rng)
    amp = 0.75 + 0.25 * _smooth_field(shape, warp_sigma, rng)
    return np.clip(np.sin(2 * np.pi * u / wavelength_mm + 1.6 * warp) * amp, -1.0, 1.0)


#: 4-connectivity inside a slice only, as a 3-D structure
_PLANE = np.zeros((3, 3, 3), bool)
_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def _disk(radius):
    return np.hypot(*np.mgrid[-radius:radius + 1, -radius:radius + 1]) <= radius


def _grow(mask, radius):
    """In-plane dilation by a (2 radius + 1)-pixel square (separable: fast)."""
    size = 2 * int(radius) + 1
    return ndimage.maximum_filter(mask.view(np.uint8), size=(1, size, size)).view(bool)


def _phase_shift(hu, ref, spacing, t, phase, seed):
    """HU shift (float32, same shape as ``hu``) that remaps a volume to the targets ``t``.

    - Organs (reference labels): + (target - organ median) x the organ mask blurred by
      0.8 px (a smooth blend at the partial-volume edge; texture kept); their bright inner
      vessels (> median + 30..60 HU, soft weight) go to the inner-vessel target instead.
      Arterial spleen: + 40 HU x an arciform / zebra pattern in [-1, 1].
    - Bone zone, never changed: >= 500 HU grown by 2 mm with the holes it encloses, and
      marrow (bright blobs with bone >= 300 HU within 30 mm in >= 3 of 4 directions).
    - Vessels: unlabelled voxels > 140 HU (1 px blur) outside the bone zone; their
      enhancement over unenhanced blood (40 HU) is scaled so the median reaches the
      vessel target, with a partial-volume weight (0 at 100 HU, 1 at 140 HU).
    - Kidneys (bright blobs surviving a 3 mm opening, 9..60 cm2 on some slice): a cortex
      (outer 3..6 mm) / medulla target instead.
    A study without enhanced vessels (a native scan) gets only the organ shifts.
    """
    px = float(np.sqrt(spacing[1] * spacing[2]))
    shift = np.zeros(hu.shape, np.float32)
    # everything happens inside the body's bounding box
    body = (hu > -300).any(axis=0)
    if not body.any():
        return shift
    rows, cols = np.nonzero(body)
    m = 4
    box = (slice(None), slice(max(rows.min() - m, 0), rows.max() + m + 1),
           slice(max(cols.min() - m, 0), cols.max() + m + 1))
    h, r = hu[box], ref[box]
    smooth = ndimage.gaussian_filter(h.astype(np.float32), (0, 1.0, 1.0))
    sh = shift[box]
    organ_any = np.zeros(h.shape, np.float32)
    for organ, name in ((LIVER, "liver"), (SPLEEN, "spleen")):
        mask = r == organ
        if not mask.any():
            continue
        ob = _bbox(mask, (0, 4, 4), mask.shape)
        med = float(np.median(h[mask]))
        soft = ndimage.gaussian_filter(mask[ob].astype(np.float32), (0, 0.8, 0.8))
        sm = smooth[ob]
        vin_vox = mask[ob] & (sm > med + 45.0)
        delta = t[name] - med
        if vin_vox.sum() > 20:
            vin = np.clip((sm - (med + 30.0)) / 30.0, 0.0, 1.0) * soft
            target = t["vessel_in_liver"] if organ == LIVER else t["vessel"]
            dvin = target - float(np.median(h[ob][vin_vox]))
            sh[ob] += soft * delta * (1.0 - vin) + dvin * vin
        else:
            sh[ob] += soft * delta
        if phase == "arterial" and organ == SPLEEN:
            pattern = _zebra(soft.shape, spacing, seed)
            sh[ob] += 40.0 * pattern * soft
        organ_any[ob] = np.maximum(organ_any[ob], soft)
    # bone zone
    bone = h >= BONE_HU
    zone = _grow(bone, max(1, round(2.0 / px)))
    if zone.any():
        zb = _bbox(zone, (0, 1, 1), zone.shape)
        zone[zb] = ndimage.binary_fill_holes(zone[zb],
                                             _PLANE)
    # marrow whose cortex is not a closed ring (osteoporotic vertebrae, ribs): bright
    # pixels with bone (>= 300 HU) within 30 mm in at least 3 of the 4 in-plane
    # directions, decided by majority per blob (blobs split by a 2 px erosion, so an
    # aorta touching a vertebra stays a vessel)
    cand = (smooth > VESSEL_HU) & (smooth < BONE_HU) & (r == 0) & ~zone
    if cand.any():
        hard = (h >= 300).view(np.uint8)
        reach = max(2, round(30.0 / px))
        count = np.zeros(h.shape, np.uint8)
        for axis in (1, 2):
            for sign in (-1, 1):
                count += ndimage.maximum_filter1d(hard, reach, axis=axis,
                                                  origin=sign * (reach // 2 - 1))
        enclosed = cand & (count >= 3)
        core = cand & ~_grow(~cand, 2)
        blobs, n = ndimage.label(core, _PLANE)
        blobs = np.where(cand & (blobs == 0), ndimage.maximum_filter(blobs, size=(1, 7, 7)),
                         blobs)
        if n:
            ids = blobs[cand]
            frac = (np.bincount(ids, weights=enclosed[cand], minlength=n + 1)
                    / np.maximum(np.bincount(ids, minlength=n + 1), 1))
            vote = frac > 0.5
            vote[0] = False
            enclosed = np.where(blobs > 0, vote[blobs], enclosed) & cand
        zone |= _grow(enclosed, 1)
    free = ~zone & (r == 0)
    bright = (smooth > VESSEL_HU) & (smooth < BONE_HU) & free & (organ_any < 0.5)
    if bright.sum() <= 20:
        return shift
    near = _grow(bright, 2) & free
    weight = np.clip((smooth - 100.0) / 40.0, 0.0, 1.0) * (1.0 - organ_any)
    weight[~near] = 0.0
    # kidneys, found on a coarse grid (~2 mm pixels): bright 3-D components that survive
    # a 3 mm opening and are 9..60 cm2 wide on some slice (wider than the aorta,
    # narrower than the heart)
    f = max(1, int(2.0 / px))
    coarse = bright[:, ::f, ::f]
    opened = ndimage.binary_opening(coarse, _disk(max(1, round(3.0 / (px * f))))[None])
    lab, n = ndimage.label(opened)
    kidney_c = np.zeros_like(coarse)
    pix_cm2 = spacing[1] * spacing[2] * f * f / 100.0
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        comp = lab[sl] == i
        if 9.0 <= comp.sum(axis=(1, 2)).max() * pix_cm2 <= 60.0:
            kidney_c[sl] |= comp
    kidney = np.zeros_like(bright)
    if kidney_c.any():
        up = np.repeat(np.repeat(kidney_c, f, axis=1), f, axis=2)[:, :h.shape[1], :h.shape[2]]
        kidney = _grow(np.ascontiguousarray(up), max(1, round(3.0 / px))) & near
    vessel_vox = bright & ~kidney
    if vessel_vox.sum() > 20:
        # enhancement (HU above unenhanced blood) scaled so that the median goes to the
        # target; the noise (hu - smooth) is kept
        vmed = float(np.median(h[vessel_vox]))
        gain = (t["vessel"] - BLOOD_HU) / max(vmed - BLOOD_HU, 20.0)
        remapped = BLOOD_HU + (smooth - BLOOD_HU) * gain
        sh += np.where(kidney, 0.0, weight * (remapped - smooth))
    k_vox = kidney & bright
    if k_vox.sum() > 20:
        kb = _bbox(kidney, (0, 1, 1), kidney.shape)
        kk = kidney[kb]
        cortex = np.zeros(kk.shape, np.float32)
        for z in np.flatnonzero(kk.any(axis=(1, 2))):
            dist = ndimage.distance_transform_edt(kk[z], sampling=spacing[1:])
            cortex[z] = np.clip(1.0 - (dist - 3.0) / 3.0, 0.0, 1.0)
        target = cortex * t["kidney_cortex"] + (1.0 - cortex) * t["kidney_medulla"]
        sh[kb] += np.where(kk, weight[kb] * (target - smooth[kb]), 0.0)
    return shift


def phase_remap(study, ref, phase, seed=0):
    """Remap the (portal-venous) contrast of ``study`` to ``phase`` ("arterial", "native",
    "delayed"): each organ shifted to its target median with its texture (blended at the
    boundary by a blurred mask), its bright inner vessels and the unlabelled vessels
    (> 140 HU, below bone) remapped with a partial-volume weight, kidneys with a cortex /
    medulla pattern; in the arterial phase the spleen gets a +-40 HU arciform pattern."""
    shift = _phase_shift(study.hu, ref, study.spacing, PHASE_TARGETS[phase], phase, seed)
    out = np.clip(np.rint(study.hu + shift), HU_MIN, HU_MAX).astype(np.int16)
    keep = study.hu < HU_MIN          # padding stays padding
    out[keep] = study.hu[keep]
    return _new_study(study, out, what=phase), ref


def arterial(study, ref, seed=0):
    return phase_remap(study, ref, "arterial", seed)


def native(study, ref, seed=0):
    return phase_remap(study, ref, "native", seed)


def delayed(study, ref, seed=0):
    return phase_remap(study, ref, "delayed", seed)


# ----------------------------------------------------------------------------- noise


def add_noise(study, ref, sd, seed=0):
    """Gaussian noise of SD ``sd`` HU, slightly correlated (white noise smoothed in-plane
    with sigma 0.6 px, rescaled to ``sd``); padding below -1024 HU is left alone."""
    rng = _rng(seed, f"noise{sd}")
    out = np.empty(study.hu.shape, np.int16)
    for z in range(study.n_slices):
        n = ndimage.gaussian_filter(rng.standard_normal(study.hu.shape[1:], np.float32), 0.6)
        n *= sd / n.std()
        sl = study.hu[z]
        v = np.clip(np.rint(sl + n), HU_MIN, HU_MAX)
        out[z] = np.where(sl < HU_MIN, sl, v)
    return _new_study(study, out, what=f"noise {sd} HU"), ref


def noise10(study, ref, seed=0):
    return add_noise(study, ref, 10, seed)


def noise20(study, ref, seed=0):
    return add_noise(study, ref, 20, seed)


def noise30(study, ref, seed=0):
    return add_noise(study, ref, 30, seed)


# ----------------------------------------------------------------------------- geometry


def thicken(study, ref, thickness_mm=5.0, seed=0):
    """Thicker slices: mean of n = max(2, round(thickness / step)) consecutive slices
    (non-overlapping slabs, the remainder dropped); the reference by per-pixel majority
    vote, ties broken by the in-plane neighbourhood (blurred vote fractions)."""
    n = max(2, round(thickness_mm / study.spacing[0]))
    m = study.n_slices // n
    if m < 2:
        raise ValueError(f"{study.n_slices} slices are too few to average {n} at a time")
    hu = study.hu[:m * n].reshape(m, n, *study.shape[1:]).mean(axis=1, dtype=np.float32)
    r = ref[:m * n].reshape(m, n, *ref.shape[1:])
    counts = np.stack([(r == v).sum(axis=1, dtype=np.uint8) for v in (0, LIVER, SPLEEN)])
    new_ref = np.argmax(counts, axis=0).astype(np.uint8)
    top = np.sort(counts, axis=0)
    tie = top[-1] == top[-2]
    if tie.any():
        # a tie goes to the label with the larger vote in the 3 x 3 neighbourhood
        tb = _bbox(tie, (0, 2, 2), tie.shape)
        near = np.stack([ndimage.uniform_filter(c[tb].astype(np.float32), (1, 3, 3))
                         for c in counts])
        best = np.argmax(counts[(slice(None),) + tb] + 0.01 * near, axis=0).astype(np.uint8)
        new_ref[tb] = np.where(tie[tb], best, new_ref[tb])
    spacing = (study.spacing[0] * n, *study.spacing[1:])
    affine = _index_affine(study.affine, (n, 1, 1), ((n - 1) / 2.0, 0, 0))
    sources = []
    return _new_study(study, hu, spacing, affine, sources,
                      what=f"{n} slices averaged, {spacing[0]:g} mm"), new_ref


def thick5(study, ref, seed=0):
    return thicken(study, ref, 5.0, seed)


def _linear_weights(n_out, step, n_in):
    """Left index and weight of linear interpolation at positions ``i * step``."""
    x = np.clip(np.arange(n_out) * step, 0, n_in - 1)
    i = np.minimum(np.floor(x).astype(np.intp), max(n_in - 2, 0))
    return i, (x - i).astype(np.float32)


def zoom_to(study, ref, pixel_mm, seed=0):
    """In-plane resampling to ``pixel_mm`` pixels (linear for HU, nearest for labels);
    index 0 keeps its position, the grid covers the same field of view."""
    rows, cols = study.shape[1:]
    sr, sc = study.spacing[1:]
    new_rows = int(np.floor((rows - 1) * sr / pixel_mm)) + 1
    new_cols = int(np.floor((cols - 1) * sc / pixel_mm)) + 1
    scale = (1.0, pixel_mm / sr, pixel_mm / sc)
    (ri, rw), (ci, cw) = _linear_weights(new_rows, scale[1], rows), \
        _linear_weights(new_cols, scale[2], cols)
    rn = np.rint(np.arange(new_rows) * scale[1]).astype(np.intp).clip(0, rows - 1)
    cn = np.rint(np.arange(new_cols) * scale[2]).astype(np.intp).clip(0, cols - 1)
    hu = np.empty((study.n_slices, new_rows, new_cols), np.int16)
    for z in range(study.n_slices):   # separable linear interpolation, per slice
        a = study.hu[z].astype(np.float32)
        a = a[ri] * (1 - rw)[:, None] + a[ri + 1] * rw[:, None]
        a = a[:, ci] * (1 - cw) + a[:, ci + 1] * cw
        hu[z] = np.clip(np.rint(a), -32768, 32767)
    lab = np.ascontiguousarray(ref[:, rn][:, :, cn])
    spacing = (study.spacing[0], pixel_mm, pixel_mm)
    affine = _index_affine(study.affine, scale)
    return _new_study(study, hu, spacing, affine, what=f"{pixel_mm:g} mm pixels"), lab


def zoom06(study, ref, seed=0):
    return zoom_to(study, ref, 0.6, seed)


def zoom10(study, ref, seed=0):
    return zoom_to(study, ref, 1.0, seed)


def prone(study, ref, seed=0):
    """Image rotated 180 degrees in plane (hu[:, ::-1, ::-1]); the affine keeps every
    voxel's patient coordinates (the row and column direction cosines flip)."""
    rows, cols = study.shape[1:]
    affine = _index_affine(study.affine, (1, -1, -1), (0, rows - 1, cols - 1))
    return (_new_study(study, study.hu[:, ::-1, ::-1], affine=affine, what="prone"),
            np.ascontiguousarray(ref[:, ::-1, ::-1]))


def feet_first(study, ref, seed=0):
    """Columns mirrored (hu[:, :, ::-1]) with the matching affine (column direction
    cosine flipped), as a feet-first supine scan shows the patient."""
    cols = study.shape[2]
    affine = _index_affine(study.affine, (1, 1, -1), (0, 0, cols - 1))
    return (_new_study(study, study.hu[:, :, ::-1], affine=affine, what="feet first"),
            np.ascontiguousarray(ref[:, :, ::-1]))


def pad_circle(study, ref, value, seed=0):
    """Pixels outside the scan circle (radius 0.95 x half the image width, centred)
    set to ``value``; the reference is cleared there too."""
    rows, cols = study.shape[1:]
    rr, cc = np.ogrid[:rows, :cols]
    radius = 0.95 * cols / 2.0
    outside = np.hypot(rr - (rows - 1) / 2.0, (cc - (cols - 1) / 2.0)) > radius
    hu = study.hu.copy()
    hu[:, outside] = value
    new_ref = ref.copy()
    new_ref[:, outside] = 0
    return _new_study(study, hu, what=f"padding {value}"), new_ref


def pad2048(study, ref, seed=0):
    return pad_circle(study, ref, -2048, seed)


def pad3024(study, ref, seed=0):
    return pad_circle(study, ref, -3024, seed)


def pad1000(study, ref, seed=0):
    return pad_circle(study, ref, -1000, seed)


def crop_fov(study, ref, fraction=0.7, seed=0):
    """In-plane crop to ``fraction`` of the rows and columns around the body centre
    (the centroid of the body on all slices), clamped to the image."""
    step = max(1, study.n_slices // 8)
    body = _body_mask(study.hu[::step, ::2, ::2])
    rows, cols = study.shape[1:]
    if body.any():
        _, cr, cc = (2.0 * float(v) for v in np.mean(np.nonzero(body), axis=1))
    else:
        cr, cc = (rows - 1) / 2.0, (cols - 1) / 2.0
    h, w = round(fraction * rows), round(fraction * cols)
    r0 = int(np.clip(round(cr - h / 2.0), 0, rows - h))
    c0 = int(np.clip(round(cc - w / 2.0), 0, cols - w))
    affine = _index_affine(study.affine, offset=(0, r0, c0))
    return (_new_study(study, study.hu[:, r0:r0 + h, c0:c0 + w], affine=affine,
                       what=f"field of view {fraction:.0%}"),
            np.ascontiguousarray(ref[:, r0:r0 + h, c0:c0 + w]))


def crop70(study, ref, seed=0):
    return crop_fov(study, ref, 0.7, seed)


def chest(study, ref, fraction=0.45, seed=0):
    """A chest CT reaching the upper abdomen: only the upper ``fraction`` of the liver's
    slice extent and everything above it (slices ascend towards the head)."""
    zs = np.flatnonzero((ref == LIVER).any(axis=(1, 2)))
    if zs.size < 4:
        raise ValueError("the liver spans too few slices for a chest crop")
    lo, hi = int(zs[0]), int(zs[-1])
    z0 = hi - round(fraction * (hi - lo))
    affine = _index_affine(study.affine, offset=(z0, 0, 0))
    sources = list(study.sources[z0:]) if len(study.sources) == study.n_slices else []
    return (_new_study(study, study.hu[z0:], affine=affine, sources=sources,
                       what=f"chest: upper {fraction:.0%} of the liver"),
            np.ascontiguousarray(ref[z0:]))


# ----------------------------------------------------------------------------- registry

BASE_VARIANTS = {
    "arterial": arterial, "native": native, "delayed": delayed,
    "noise10": noise10, "noise20": noise20, "noise30": noise30,
    "thick5": thick5, "zoom0.6": zoom06, "zoom1.0": zoom10,
    "prone": prone, "feet_first": feet_first,
    "pad2048": pad2048, "pad3024": pad3024, "pad1000": pad1000,
    "crop70": crop70, "chest": chest,
}
#: group of each base variant (summaries per group)
GROUPS = {
    "arterial": "phase", "native": "phase", "delayed": "phase",
    "noise10": "noise", "noise20": "noise", "noise30": "noise",
    "thick5": "thickness", "zoom0.6": "zoom", "zoom1.0": "zoom",
    "prone": "orientation", "feet_first": "orientation",
    "pad2048": "padding", "pad3024": "padding", "pad1000": "padding",
    "crop70": "crop", "chest": "crop",
}
COMBINATIONS = ("arterial+noise20+pad2048", "native+thick5", "delayed+zoom0.6+prone",
                "arterial+thick5+crop70", "native+noise30+feet_first")


def _parts(name):
    parts = name.split("+")
    unknown = [p for p in parts if p not in BASE_VARIANTS]
    if unknown:
        raise KeyError(f"unknown variant(s) {unknown}; known: original, "
                       f"{', '.join(BASE_VARIANTS)} and '+'-joined combinations")
    return parts


def apply_variant(name, study, ref, seed=0, memo=None):
    """Apply variant ``name`` (a base variant, '+'-joined base variants applied left to
    right, or "original"). The step ``a+b`` uses the seed ``seed + crc32("a+b") % 1000``,
    so a combination starts from exactly the variant of its prefix; ``memo`` (a dict)
    keeps prefixes already computed for the same input."""
    if name == "original":
        return study, ref
    parts = _parts(name)
    for i in range(len(parts), 0, -1):
        prefix = "+".join(parts[:i])
        if memo is not None and prefix in memo:
            study, ref = memo[prefix]
            break
    else:
        i = 0
    for j in range(i, len(parts)):
        prefix = "+".join(parts[:j + 1])
        study, ref = BASE_VARIANTS[parts[j]](study, ref,
                                             seed=seed + zlib.crc32(prefix.encode()) % 1000)
    return study, ref


def compose(name):
    """The variant function ``f(study, ref, seed=0)`` of a name (see :func:`apply_variant`)."""
    if name != "original":
        _parts(name)

    def variant(study, ref, seed=0):
        return apply_variant(name, study, ref, seed)
    variant.__name__ = name.replace("+", "_").replace(".", "")
    variant.__doc__ = f"Variant {name}: " + " then ".join(name.split("+"))
    return variant


#: name -> f(study, ref, seed=0) -> (study, ref); combinations may also be given by name
#: to :func:`iter_suite` / :func:`apply_variant` without being listed here
VARIANTS = {name: compose(name) for name in ("original", *BASE_VARIANTS, *COMBINATIONS)}


def group_of(variant):
    if variant == "original":
        return "original"
    if "+" in variant:
        return "combination"
    return GROUPS.get(variant, "other")


def applicable(case, variant, study=None):
    """Whether ``variant`` makes sense for ``case`` (None) or the reason it does not."""
    parts = variant.split("+")
    n = study.n_slices if study is not None else None
    if n is not None and n < 6 and ("thick5" in parts or "chest" in parts):
        return f"{n} slices: no slice averaging or chest crop"
    return None


def iter_suite(cases=None, variants=None, seed=0, verbose=True):
    """Yield ``(case_name, variant_name, study, ref)`` over cases x variants.

    ``variants`` names may be '+'-joined combinations of the base variants; the
    unmodified study is ``original``. Absent cases and variants that do not apply to a
    case (the 3-slice GE case gets no slice averaging or chest crop) are skipped with a
    printed reason (``verbose``).
    """
    cases = list(CASES) if cases is None else list(cases)
    variants = list(VARIANTS) if variants is None else list(variants)
    for v in variants:
        if v != "original":
            _parts(v)
    # prefixes (of one step) that later combinations start from: kept in memory per case
    wanted = {v.split("+")[0] for v in variants if "+" in v}
    for case in cases:
        loaded = load_case(case)
        if loaded is None:
            continue
        study, ref = loaded
        case_seed = seed + zlib.crc32(case.encode()) % 1000
        memo = {}
        for v in variants:
            why = applicable(case, v, study)
            if why is not None:
                if verbose:
                    print(f"{case} {v}: skipped: {why}", flush=True)
                continue
            first = v.split("+")[0]
            if first in wanted and first not in memo and v != "original":
                memo[first] = apply_variant(first, study, ref, case_seed)
            s, r = apply_variant(v, study, ref, case_seed, memo)
            yield case, v, s, r
        memo.clear()


# ----------------------------------------------------------------------------- CLI


def describe(study, ref):
    """Organ mean HU, voxel count and volume (mL) of a variant."""
    out = {}
    for organ, name in ((LIVER, "liver"), (SPLEEN, "spleen")):
        m = ref == organ
        out[name] = (float(study.hu[m].mean()) if m.any() else float("nan"),
                     int(m.sum()), float(m.sum()) * study.voxel_volume_ml)
    return out


def write_png(path, study, ref, z=None, window=(40, 400)):
    """A PNG of slice ``z`` (default: the slice with the most organ) with the reference
    outlines (liver red, spleen green), soft-tissue window."""
    from PIL import Image
    if z is None:
        z = int(np.argmax((ref > 0).sum(axis=(1, 2))))
    lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
    g = (np.clip((study.hu[z].astype(np.float32) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([g, g, g], axis=-1)
    rgb[study.hu[z] < HU_MIN] = (0, 0, 110)          # padding: dark blue
    for organ, colour in ((LIVER, (255, 40, 40)), (SPLEEN, (40, 255, 40))):
        m = ref[z] == organ
        edge = m & ~ndimage.binary_erosion(m)
        rgb[edge] = colour
    Image.fromarray(rgb).save(path)
    return z


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=None)
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--png", default=None, help="write a PNG of the main slice of each "
                        "variant with the reference outline into this folder")
    args = parser.parse_args(argv)
    if args.png:
        Path(args.png).mkdir(parents=True, exist_ok=True)
    print(f"engine: {ENGINE_ROOT}")
    print(f"{'study':20s} {'variant':26s} {'shape':>16s} {'spacing mm':>18s} "
          f"{'liver HU':>8s} {'spleen HU':>9s} {'liver mL':>8s} {'spleen mL':>9s} {'s':>5s}")
    t0 = time.perf_counter()
    t = time.perf_counter()
    for case, v, study, ref in iter_suite(args.cases, args.variants):
        d = describe(study, ref)
        shape = "x".join(str(n) for n in study.shape)
        spacing = "/".join(f"{s:.3g}" for s in study.spacing)
        print(f"{case:20s} {v:26s} {shape:>16s} {spacing:>18s} {d['liver'][0]:8.1f} "
              f"{d['spleen'][0]:9.1f} {d['liver'][2]:8.1f} {d['spleen'][2]:9.1f} "
              f"{time.perf_counter() - t:5.2f}", flush=True)
        if args.png:
            write_png(Path(args.png) / f"{case}__{v.replace('+', '_')}.png", study, ref)
        t = time.perf_counter()
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
