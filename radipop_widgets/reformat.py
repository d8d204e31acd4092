"""Coronal and sagittal reformats of a (slice, row, column) volume, their display grids
with the correct aspect, and the orientation letters of every view.

A reformat plane holds the slices vertically (the head at the top when the geometry says
where the head is) and the axial columns (coronal) or rows (sagittal) horizontally, as a
radiologist reads them. :class:`PlaneGrid` gives the display size of a plane in a box with
the voxel spacing respected (2.5 mm slices are not squashed) and maps canvas positions to
voxels, so that a click in a reformat names the voxel under it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The views; a reformat's horizontal axis is the study's column axis (coronal) or row axis
#: (sagittal), its vertical axis the slice axis.
VIEWS = ("axial", "coronal", "sagittal")

_POSITIVE, _NEGATIVE = "LPS", "RAI"   # DICOM patient axes: +x left, +y posterior, +z head


def direction_letters(vector, oblique: float = 0.3) -> str:
    """Patient direction(s) a vector in DICOM patient coordinates (LPS) points to.

    The dominant axis first, then any other whose share of the direction is at least
    ``oblique`` (as 3D Slicer and OHIF label oblique views).

    Examples
    --------
    >>> direction_letters((1, 0, 0)), direction_letters((0, -1, 0)), direction_letters((0, 0, -2))
    ('L', 'A', 'I')
    >>> direction_letters((0.8, 0.6, 0))
    'LP'
    """
    v = np.asarray(vector, float)
    norm = float(np.linalg.norm(v))
    if v.shape != (3,) or not norm > 0 or not math.isfinite(norm):
        raise ValueError(f"a direction needs three finite components, not all zero: {vector!r}")
    v = v / norm
    order = np.argsort(-np.abs(v), kind="stable")
    return "".join((_POSITIVE if v[i] > 0 else _NEGATIVE)[i]
                   for n, i in enumerate(order) if n == 0 or abs(v[i]) >= oblique)


def head_up(affine) -> bool:
    """Whether the slice index grows towards the head (then a reformat shows the last slice
    at the top); for a volume without a head-foot component (a sagittal or coronal
    acquisition) the slice index grows upwards too."""
    return float(np.asarray(affine, float)[2, 0]) >= 0


@dataclass(frozen=True)
class PlaneGrid:
    """A plane of ``n_vertical`` x ``n_horizontal`` voxels of ``mm_vertical`` x
    ``mm_horizontal`` mm, drawn on a canvas of one canvas pixel per voxel and displayed
    ``height`` x ``width`` screen pixels (its physical aspect: the browser scales the canvas).

    ``flip`` draws voxel row 0 at the bottom (a reformat whose slices grow towards the
    head). Every voxel keeps its canvas pixel, so a downsampled display never hides a
    one-slice edit (the browser blends it in), and :meth:`to_voxel` names the voxel under a
    canvas position exactly.

    Examples
    --------
    Twenty 5 mm slices of 100 columns of 1 mm, in a 200 x 200 box: 100 mm wide and tall,
    shown 200 x 200 screen pixels.

    >>> grid = PlaneGrid.fit(20, 100, 5.0, 1.0, (200, 200), flip=True)
    >>> grid.height, grid.width
    (200, 200)
    >>> grid.to_voxel(0.5, 99.5), grid.to_canvas(19, 0)
    ((19, 99), (0.5, 0.5))
    """

    n_vertical: int
    n_horizontal: int
    mm_vertical: float
    mm_horizontal: float
    height: int
    width: int
    flip: bool = False

    @classmethod
    def fit(cls, n_vertical, n_horizontal, mm_vertical, mm_horizontal, box,
            flip: bool = False) -> "PlaneGrid":
        """The largest display of the plane's physical aspect inside ``box`` (height, width)."""
        if min(n_vertical, n_horizontal) < 1 or not min(mm_vertical, mm_horizontal) > 0:
            raise ValueError("a plane needs at least one voxel and a positive spacing")
        tall, wide = n_vertical * mm_vertical, n_horizontal * mm_horizontal
        scale = min(box[0] / tall, box[1] / wide)
        return cls(int(n_vertical), int(n_horizontal), float(mm_vertical), float(mm_horizontal),
                   max(1, round(tall * scale)), max(1, round(wide * scale)), bool(flip))

    def orient(self, plane: np.ndarray) -> np.ndarray:
        """The plane (n_vertical, n_horizontal) as drawn on the canvas (flipped if need be)."""
        plane = np.asarray(plane)
        if plane.shape[:2] != (self.n_vertical, self.n_horizontal):
            raise ValueError(f"a plane of {plane.shape} on a grid of "
                             f"{(self.n_vertical, self.n_horizontal)}")
        return plane[::-1] if self.flip else plane

    def to_voxel(self, y: float, x: float) -> tuple[int, int] | None:
        """Canvas position (y down, x right) -> (vertical, horizontal) voxel, or None outside."""
        if not (0 <= y < self.n_vertical and 0 <= x < self.n_horizontal):
            return None
        v, h = int(y), int(x)
        return (self.n_vertical - 1 - v if self.flip else v), h

    def to_canvas(self, vertical: int, horizontal: int) -> tuple[float, float]:
        """Canvas position (y, x) of the centre of a voxel."""
        v = self.n_vertical - 1 - vertical if self.flip else vertical
        return v + 0.5, horizontal + 0.5


def plane(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """One plane of a (slice, row, column) volume: ``axial`` (rows, columns) at slice
    ``index``, ``coronal`` (slices, columns) at row ``index``, ``sagittal`` (slices, rows)
    at column ``index``.

    >>> v = np.arange(24).reshape(2, 3, 4)
    >>> plane(v, "coronal", 1).tolist(), plane(v, "sagittal", 3).tolist()
    ([[4, 5, 6, 7], [16, 17, 18, 19]], [[3, 7, 11], [15, 19, 23]])
    """
    axis = VIEWS.index(view) if view in VIEWS else None
    if axis is None:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if not 0 <= index < volume.shape[axis]:
        raise IndexError(f"{view} plane {index} outside 0..{volume.shape[axis] - 1}")
    return np.take(volume, index, axis=axis)


def plane_grid(shape, spacing, affine, view: str, box) -> PlaneGrid:
    """The grid of ``view`` of a volume of ``shape`` (slice, row, column) and ``spacing`` mm
    displayed inside ``box`` (height, width) screen pixels."""
    n, rows, cols = shape
    if view == "axial":
        return PlaneGrid.fit(rows, cols, spacing[1], spacing[2], box)
    across, mm = (cols, spacing[2]) if view == "coronal" else (rows, spacing[1])
    return PlaneGrid.fit(n, across, spacing[0], mm, box, flip=head_up(affine))


def view_letters(affine, view: str) -> dict[str, str]:
    """Orientation letters at the ``left``, ``right``, ``top`` and ``bottom`` edges of a
    view as :func:`plane_grid` lays it out.

    Examples
    --------
    A supine, head-first axial series (rows towards posterior, columns towards the left):

    >>> from radipop_widgets.study import affine_from_geometry
    >>> a = affine_from_geometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2.5, 0.7, 0.7))
    >>> view_letters(a, "axial")
    {'left': 'R', 'right': 'L', 'top': 'A', 'bottom': 'P'}
    >>> view_letters(a, "coronal"), view_letters(a, "sagittal")["left"]
    ({'left': 'R', 'right': 'L', 'top': 'S', 'bottom': 'I'}, 'A')
    """
    a = np.asarray(affine, float)[:3, :3]
    slice_dir, row_dir, col_dir = a[:, 0], a[:, 1], a[:, 2]   # index growth directions
    if view == "axial":
        down, right = row_dir, col_dir
    else:
        down = -slice_dir if head_up(affine) else slice_dir
        right = col_dir if view == "coronal" else row_dir
    return {"left": direction_letters(-right), "right": direction_letters(right),
            "top": direction_letters(-down), "bottom": direction_letters(down)}


def patient_position(affine, z: int, row: int, col: int) -> tuple[float, float, float]:
    """Patient coordinates (LPS, mm) of the centre of voxel (z, row, col).

    >>> from radipop_widgets.study import affine_from_geometry
    >>> a = affine_from_geometry((-100, -120, -50), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2.5, 0.8, 0.7))
    >>> patient_position(a, 2, 10, 20)
    (-86.0, -112.0, -45.0)
    """
    x, y, zz = (np.asarray(affine, float) @ [z, row, col, 1.0])[:3]
    return round(float(x), 3), round(float(y), 3), round(float(zz), 3)


def scale_bar_mm(visible_mm: float) -> int:
    """A round scale-bar length for a view showing ``visible_mm`` across: about a fifth.

    >>> scale_bar_mm(350), scale_bar_mm(44), scale_bar_mm(1000)
    (50, 10, 200)
    """
    for length in (200, 100, 50, 20, 10, 5, 2, 1):
        if length <= visible_mm / 4:
            return length
    return 1
