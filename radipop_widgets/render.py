"""Display rendering: HU to grey levels. Windowing is for display only."""

from __future__ import annotations

import numpy as np

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
