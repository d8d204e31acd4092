"""Display rendering: HU to grey levels (windowing is for display only), the label overlay,
and the preview of an edit not applied yet."""

from __future__ import annotations

import numpy as np

from .labels import ORGANS, organ

#: Window presets as (level, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "abdomen": (40.0, 400.0),
    "liver": (90.0, 150.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
    # The original RadiPOP window: stored values 850..1250 with intercept -1024,
    # i.e. HU -174..226.
    "legacy": (26.0, 400.0),
}


def window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map Hounsfield units to uint8 grey levels for display.

    Parameters
    ----------
    hu : ndarray
        Intensities in HU, any shape.
    level, width : float
        Window centre and width in HU; ``width`` must be positive.

    Returns
    -------
    ndarray of uint8
        0 at ``level - width / 2`` and below, 255 at ``level + width / 2`` and above.

    Examples
    --------
    >>> window(np.array([-1000, 40, 1000]), 40, 400)
    array([  0, 128, 255], dtype=uint8)
    """
    if not width > 0:
        raise ValueError(f"window width must be positive, got {width!r}")
    low = level - width / 2.0
    scaled = (np.asarray(hu, dtype=np.float32) - np.float32(low)) * np.float32(255.0 / width)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# Overlay classes, in palette order: one per organ of ``labels.ORGANS``, then the
# unlabelled candidate regions. Each has a plain and a selected (brighter) colour, and an
# interior and an edge variant (edges are more opaque).
_OVERLAY_COLOURS = np.array([o.colour for o in ORGANS] + [(40, 200, 70)], dtype=np.float32)
_CANDIDATE = len(ORGANS)
# Label value -> overlay class (-1 background), as ``labels.organ`` names the value.
_CLASS_OF_LABEL = np.array([-1] + [ORGANS.index(organ(v)) for v in range(1, 256)],
                           dtype=np.int16)
_PALETTE_SIZE = 1 + 4 * len(_OVERLAY_COLOURS)


def overlay_palette(opacity: float = 0.5) -> np.ndarray:
    """RGBA palette of the overlay, shape (1 + 4 * classes, 4) uint8 ((17, 4) for the
    three organs).

    Index 0 is transparent; index ``1 + 4 * class + 2 * selected + edge`` is the
    colour of an overlay class (each organ of ``labels.ORGANS``, then candidate) in its
    plain or selected variant, interior or edge. The selected variant is lighter and
    more opaque, with an opaque white outline.

    >>> p = overlay_palette(0.5)
    >>> p[1 + 4 * 3].tolist(), p[1 + 4 * 3 + 2].tolist(), p[1 + 4 * 3 + 3].tolist()
    ([40, 200, 70, 64], [158, 230, 172, 153], [255, 255, 255, 255])
    """
    opacity = float(np.clip(opacity, 0.0, 1.0)) if np.isfinite(opacity) else 0.5
    palette = np.zeros((_PALETTE_SIZE, 4), dtype=np.uint8)
    for cls, rgb in enumerate(_OVERLAY_COLOURS):
        base_alpha = opacity * (0.5 if cls == _CANDIDATE else 1.0)
        for selected in (0, 1):
            colour = rgb + (255.0 - rgb) * 0.55 if selected else rgb
            alpha = min(1.0, base_alpha + 0.35) if selected else base_alpha
            for edge in (0, 1):
                a = min(1.0, alpha + 0.4) if edge else alpha
                # the selected region's outline is white and opaque: it stands out from
                # every candidate and label around it
                rgba = (255, 255, 255, 255) if selected and edge else (*np.rint(colour),
                                                                         round(a * 255))
                palette[1 + 4 * cls + 2 * selected + edge] = rgba
    return palette


def overlay_indexed(labels2d: np.ndarray, regions2d: np.ndarray,
                    selected: np.ndarray | int | None = None, outline: bool = False) -> np.ndarray:
    """Palette indices of the label overlay of one slice (see ``overlay_palette``).

    Parameters
    ----------
    labels2d : ndarray of uint8, shape (rows, cols)
        Organ labels (0 none, 1 liver, 2 spleen, 3.. other).
    regions2d : ndarray of int, shape (rows, cols)
        Candidate regions (0 background).
    selected : ndarray of bool, shape (rows, cols), int or None
        The selected pixels, drawn brighter: a mask (``Session.selected_mask``, which
        need not be one of ``regions2d``: a click finds its region with the intensity
        range under it) or the id of a region of ``regions2d``.
    outline : bool
        Draw only the edges of labels and regions instead of filling them.

    Returns
    -------
    ndarray of uint8, shape (rows, cols)
    """
    labels2d = np.asarray(labels2d)
    regions2d = np.asarray(regions2d)
    if labels2d.shape != regions2d.shape or labels2d.ndim != 2:
        raise ValueError(f"labels {labels2d.shape} and regions {regions2d.shape} must be the same 2-D shape")
    if selected is None or np.ndim(selected) == 0:
        selected = regions2d == int(selected) if selected else np.zeros(labels2d.shape, bool)
    selected = np.asarray(selected, bool)
    if selected.shape != labels2d.shape:
        raise ValueError(f"the selection {selected.shape} must have the labels' shape "
                         f"{labels2d.shape}")
    cls = _CLASS_OF_LABEL[labels2d.astype(np.uint8, copy=False)]
    cls[(cls < 0) & ((regions2d > 0) | selected)] = _CANDIDATE
    index = (1 + 4 * cls).astype(np.int16)
    index[selected] += 2
    # An edge pixel touches a 4-neighbour with another label, region or selection: one
    # integer key per pixel (32 bits when the region ids leave room, half the memory traffic)
    small = regions2d.size == 0 or int(regions2d.max()) < 1 << 22
    wide = np.int32 if small else np.int64
    key = labels2d.astype(wide) << (23 if small else 33)
    key |= regions2d.astype(wide) << 1
    key |= selected
    edge = np.zeros(key.shape, dtype=bool)
    diff = key[1:, :] != key[:-1, :]
    edge[1:, :] = diff
    edge[:-1, :] |= diff
    diff = key[:, 1:] != key[:, :-1]
    edge[:, 1:] |= diff
    edge[:, :-1] |= diff
    index += edge
    index[cls < 0] = 0
    if outline:
        index[~edge] = 0
    return index.astype(np.uint8)


def overlay_rgba(labels2d: np.ndarray, regions2d: np.ndarray,
                 selected: np.ndarray | int | None = None, opacity: float = 0.5,
                 outline: bool = False) -> np.ndarray:
    """RGBA image of the label overlay of one slice.

    Each organ in its colour of ``labels.ORGANS`` (liver red, spleen blue, other labels
    yellow), unlabelled candidate regions green (at half the opacity), the selected
    region brighter and more opaque; edges are more opaque than interiors. Transparent where there is nothing.

    Parameters
    ----------
    labels2d, regions2d, selected, outline
        As in ``overlay_indexed``.
    opacity : float
        Alpha of filled labels, 0..1.

    Returns
    -------
    ndarray of uint8, shape (rows, cols, 4)

    Examples
    --------
    >>> rgba = overlay_rgba(np.array([[1, 0]]), np.array([[5, 6]]), opacity=1.0)
    >>> rgba[0, 0].tolist(), rgba[0, 1, :3].tolist()
    ([230, 30, 30, 255], [40, 200, 70])
    """
    return overlay_palette(opacity)[overlay_indexed(labels2d, regions2d, selected, outline)]


def preview_indexed(mask: np.ndarray, dash: int = 6, stripe: int = 5,
                    edge_px: int = 2) -> np.ndarray:
    """Palette indices of an edit shown before it is applied (see ``preview_palette``): a
    dashed outline (1) and thin diagonal stripes inside (2), the rest transparent (0), so
    the CT and the overlay under it stay visible.

    Parameters
    ----------
    mask : ndarray of bool, shape (rows, cols)
        What the edit would add.
    dash : int
        Length of the outline's dashes and gaps, in pixels.
    stripe : int
        Distance between the stripes, in pixels.
    edge_px : int
        Width of the outline, in pixels.

    Examples
    --------
    >>> preview_indexed(np.ones((3, 4), bool), dash=2, stripe=3, edge_px=1).tolist()
    [[1, 1, 0, 0], [1, 0, 2, 0], [0, 0, 1, 1]]
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"the preview mask must be 2-D, got shape {mask.shape}")
    inner = mask
    for _ in range(edge_px):
        padded = np.pad(inner, 1)
        inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    rows, cols = np.indices(mask.shape)
    index = np.zeros(mask.shape, np.uint8)
    index[inner & ((rows + cols) % stripe == 0)] = 2
    index[mask & ~inner & ((rows // dash + cols // dash) % 2 == 0)] = 1
    return index


def preview_palette(rgb) -> np.ndarray:
    """RGBA palette (3, 4) of ``preview_indexed``: transparent, the outline in ``rgb``,
    the stripes in ``rgb`` lightened.

    >>> preview_palette((230, 30, 30)).tolist()
    [[0, 0, 0, 0], [230, 30, 30, 255], [242, 142, 142, 220]]
    """
    rgb = np.asarray(rgb, np.float32)
    light = np.rint(rgb + (255.0 - rgb) * 0.5)
    return np.array([(0, 0, 0, 0), (*rgb, 255), (*light, 220)], np.uint8)
