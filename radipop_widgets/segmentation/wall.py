"""The body wall of a slice: muscle between and inside the ribs, and the muscle layer
inside the subcutaneous fat, whose candidates are regions of their own."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .partition_params import DEFAULT_PARAMS, PartitionParams
from .thresholds import Thresholds


def body_wall(smooth: np.ndarray, thresholds: Thresholds, *, pixel_mm: float,
              params: PartitionParams = DEFAULT_PARAMS) -> np.ndarray:
    """Pixels of the body wall: from the body outline in to the inner side of the ribs.

    Muscle between the ribs (and the diaphragm on their inner side) has the HU of liver
    and spleen and lies flat on them, so no threshold or edge separates it. The ribs
    mark the wall: a body pixel near a rib (``wall_reach_mm``, half the widest gap
    between ribs in an axial slice) that is not deeper below the body outline than the
    rib's nearest pixel (plus ``wall_margin_mm``) is wall. Organs lie inside the rib
    cage, deeper than its ribs. Without ribs (below the rib cage, a phantom) there is
    no wall.
    """
    empty = np.zeros(smooth.shape, bool)
    if params.wall_reach_mm <= 0 and params.band_mm <= 0:
        return empty
    body = ndimage.binary_fill_holes(smooth > params.body_hu)
    if not body.any() or body.all():
        return empty
    # depth below the body outline; where the body leaves the image (a field of view
    # smaller than the patient) the image edge is not skin: the body goes on beyond it
    depth = ndimage.distance_transform_edt(np.pad(body, 1, constant_values=True))[1:-1, 1:-1]
    depth *= pixel_mm
    bone = (smooth > thresholds.bone) & body
    ribs = empty
    if params.wall_reach_mm > 0 and bone.any():
        comps, n = ndimage.label(bone)
        area = np.bincount(comps.ravel(), minlength=n + 1) * pixel_mm * pixel_mm
        shallow = np.asarray(ndimage.minimum(depth, comps, np.arange(n + 1)))
        is_rib = (area <= params.rib_max_mm2) & (shallow <= params.rib_shell * depth.max())
        is_rib[0] = False
        ribs = is_rib[comps]
    band = _muscle_band(smooth, body, depth, pixel_mm=pixel_mm, params=params)
    if not ribs.any():
        return band
    dist, (rr, cc) = ndimage.distance_transform_edt(~ribs, return_indices=True)
    near = dist * pixel_mm <= params.wall_reach_mm
    return (band & ~near) | (body & near & (depth <= depth[rr, cc] + params.wall_margin_mm))


def _muscle_band(smooth, body, depth, *, pixel_mm, params) -> np.ndarray:
    """Body pixels within ``band_mm`` inside the subcutaneous fat (none without it)."""
    if params.band_mm <= 0:
        return np.zeros(body.shape, bool)
    skin = body & (depth <= params.skin_mm)
    fat = body & (smooth > params.fat_min_hu) & (smooth < params.fat_hu) & (
        depth <= params.subcut_mm)
    comps, n = ndimage.label(skin | fat)
    reached = np.bincount(comps[skin], minlength=n + 1) > 0
    reached[0] = False
    subcut = reached[comps] & fat & ~skin    # not the partial-volume edge of the skin
    if not subcut.any():
        return subcut
    near = ndimage.distance_transform_edt(~subcut) * pixel_mm <= params.band_mm
    return near & body & ~(reached[comps])
