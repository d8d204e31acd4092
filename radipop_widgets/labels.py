"""Label values shared by the engine, the exports and the app."""

BACKGROUND = 0
LIVER = 1
SPLEEN = 2
OTHER = 3

ORGAN_NAMES = {LIVER: "liver", SPLEEN: "spleen"}


def label_name(label: int) -> str:
    """Human name of a label value: ``liver``, ``spleen`` or ``organ_<n>``."""
    return ORGAN_NAMES.get(int(label), f"organ_{int(label)}")
