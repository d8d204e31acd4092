"""The sizes and rules of :func:`~radipop_widgets.segmentation.partition.partition`."""

from __future__ import annotations

from dataclasses import dataclass

from ..labels import TISSUE_HU


@dataclass(frozen=True)
class PartitionParams:
    """Sizes in mm / mm^2 so that studies of any pixel size behave alike.

    smooth_mm : Gaussian smoothing sigma before thresholding.
    smooth_noise_hu : the sigma grows until the smoothed noise is about this (see
        :func:`smoothing_px`); 0 turns that off.
    bone_margin_mm : bone is removed with this margin (its partial-volume rim).
    hole_mm2 : holes up to this area are filled (vessels, lesions inside an organ).
    fat_min_hu, fat_hu, fat_hole_mm2 : holes mostly darker than ``fat_hu`` (smoothed) are fat, never
        organ parenchyma (a fissure, the porta hepatis): filled only up to
        ``fat_hole_mm2`` (noise). Fat of the body wall (below) lies above ``fat_min_hu``
        (lung and air do not).
    small_mm2 : objects up to this area are removed.
    closing_mm : radius of the closing that smooths region outlines.
    neck_ratio : two watershed basins stay separate when the narrowest passage between
        them is thinner than this fraction of the smaller basin's inner radius.
    min_peak_mm : distance maxima lower than this above their surroundings do not
        seed their own basin.
    body_hu : the body is what is above this (smoothed), holes filled.
    rib_max_mm2, rib_shell : bone pieces up to this area whose shallowest pixel lies
        within ``rib_shell`` times the body's largest depth of the outline are ribs
        (the spine is larger or deeper).
    wall_reach_mm, wall_margin_mm : the body wall is the body within ``wall_reach_mm``
        of a rib and no deeper (from the body outline) than that rib's nearest pixel plus
        ``wall_margin_mm``; its candidate pixels are regions of their own (see
        :func:`body_wall`). ``wall_reach_mm = 0`` turns the rule off.
    band_mm, skin_mm, subcut_mm : the muscle layer of the wall is the body within
        ``band_mm`` inside the subcutaneous fat (``fat_min_hu``..``fat_hu``, connected to
        the outermost ``skin_mm`` of the body, no deeper than ``subcut_mm``), away from
        ribs (see :func:`body_wall`); ``band_mm = 0`` turns the rule off.
    step_sds : two neighbouring basins whose mean (smoothed) HU differs by more than
        this many noise SDs of a pixel (and more than ``step_min_hu``) are different
        tissues and stay separate however wide the passage between them (an organ
        touching the kidney's cortex); ``step_sds = 0`` turns the rule off.
    work_mm : region finding runs on pixels of about this size (see :func:`partition`).
    thin_mm, thin_keep_mm2 : parts thinner than ``2 * thin_mm`` and larger than
        ``thin_keep_mm2`` are regions of their own (see :func:`split_regions`).
    """

    smooth_mm: float = 1.0
    smooth_noise_hu: float = 8.0
    bone_margin_mm: float = 2.0
    hole_mm2: float = 400.0
    fat_min_hu: float = TISSUE_HU["fat"][0]
    fat_hu: float = TISSUE_HU["fat"][1]
    fat_hole_mm2: float = 30.0
    small_mm2: float = 30.0
    closing_mm: float = 1.0
    neck_ratio: float = 0.5
    min_peak_mm: float = 3.0
    thin_mm: float = 4.0
    thin_keep_mm2: float = 150.0
    body_hu: float = TISSUE_HU["air"][1]
    rib_max_mm2: float = 400.0
    rib_shell: float = 0.3
    wall_reach_mm: float = 30.0
    wall_margin_mm: float = 3.0
    band_mm: float = 10.0
    skin_mm: float = 3.0
    subcut_mm: float = 40.0
    step_sds: float = 3.0
    step_min_hu: float = 20.0
    work_mm: float = 1.5


DEFAULT_PARAMS = PartitionParams()
