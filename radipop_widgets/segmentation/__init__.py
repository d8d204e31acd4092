"""Pure segmentation functions: thresholds, partition, edit rasterisation, propagation,
partial-volume rim."""

from .edit import line_mask, line_pixels, stroke_mask
from .partition import DEFAULT_PARAMS, PartitionParams, partition
from .propagate import (DEFAULT_EXTEND, ExtendParams, ExtendReport, ExtendRow, ExtendStatus, carry,
                        extend_label)
from .rim import DEFAULT_RIM, RimParams, partial_volume_rim
from .thresholds import DEFAULT_THRESHOLDS, Thresholds, suggest_thresholds

__all__ = [
    "DEFAULT_EXTEND", "DEFAULT_PARAMS", "DEFAULT_RIM", "DEFAULT_THRESHOLDS", "ExtendParams",
    "ExtendReport", "ExtendRow", "ExtendStatus", "PartitionParams", "RimParams", "Thresholds", "carry",
    "extend_label", "line_mask", "line_pixels", "partial_volume_rim", "partition",
    "stroke_mask", "suggest_thresholds",
]
