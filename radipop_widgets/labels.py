"""The organ table and the tissue HU table: the one place that names label values.

Rendering, the overview strip, the tools, the label buttons and keys, the help, the
exports and the measurements all read :data:`ORGANS`; adding an organ is one line.

>>> label_name(LIVER), label_name(7)
('liver', 'organ_7')
>>> organ(2).key
'2'
>>> TISSUE_HU["fat"]
(-200.0, -30.0)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Organ:
    """One label value and everything that names or shows it.

    value : label value in the label map (1 liver, 2 spleen, 3 other).
    name : lower-case name (file names, measurement keys, reports).
    colour : (r, g, b) of the overlay.
    key : keyboard key that labels the selected region with this organ.
    snomed : (code, meaning) of the SNOMED CT segmented property type (DICOM SEG).
    """

    value: int
    name: str
    colour: tuple[int, int, int]
    key: str
    snomed: tuple[str, str]

    @property
    def title(self) -> str:
        """Capitalised name for buttons and headings."""
        return self.name.capitalize()

    @property
    def hex(self) -> str:
        """``#rrggbb`` of :attr:`colour`."""
        return "#%02x%02x%02x" % self.colour


BACKGROUND = 0
LIVER = 1
SPLEEN = 2
OTHER = 3

#: Every organ the tool labels, in button order. ``OTHER`` stands for every value >= 3.
ORGANS = (
    Organ(LIVER, "liver", (230, 30, 30), "1", ("10200004", "Liver")),
    Organ(SPLEEN, "spleen", (30, 90, 255), "2", ("78961009", "Spleen")),
    Organ(OTHER, "other", (245, 215, 0), "3", ("113343008", "Organ")),
)
#: The organs that are measured and exported as their own masks (not "other").
MEASURED = tuple(o for o in ORGANS if o.value != OTHER)
ORGAN_NAMES = {o.value: o.name for o in MEASURED}

#: Smoothed HU ranges of tissue classes used by the segmentation rules (low, high).
TISSUE_HU = {
    "air": (-2000.0, -400.0),     # lung, bowel gas, outside the body
    "fat": (-200.0, -30.0),       # subcutaneous and visceral fat
    "fat_rim": (-200.0, 0.0),     # what lies outside an organ's partial-volume rim
    "soft": (-20.0, 250.0),       # soft tissue sampled for noise and suggestions
}


def organ(value: int) -> Organ:
    """The :class:`Organ` of a label value (values >= 3 are "other")."""
    value = int(value)
    for o in ORGANS:
        if o.value == min(value, OTHER):
            return o
    raise ValueError(f"label {value} is not an organ (0 is background)")


def label_name(label: int) -> str:
    """Human name of a label value: ``liver``, ``spleen`` or ``organ_<n>``."""
    return ORGAN_NAMES.get(int(label), f"organ_{int(label)}")
