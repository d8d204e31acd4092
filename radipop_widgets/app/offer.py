"""How a session on disk is described to the user: local time, volumes, one line per
resume choice (no widgets; which sessions to offer is :func:`persist.session_choices`).

>>> local_time("not a time")
'?'
>>> volumes_text({"liver": 1510.4, "spleen": 250.0})
'liver 1510 mL, spleen 250 mL'
"""

from __future__ import annotations

import datetime as dt

from ..persist import SessionEntry


def local_time(iso) -> str:
    """An ISO time stamp (as saved) in local time, ``YYYY-MM-DD HH:MM``; '?' if unknown."""
    try:
        return dt.datetime.fromisoformat(str(iso)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "?"


def volumes_text(volumes_ml) -> str:
    """Organ volumes in words: whole mL from 100 mL, one decimal below."""
    if not volumes_ml:
        return "no volumes recorded"
    return ", ".join(f"{organ} {ml:.0f} mL" if ml >= 100 else f"{organ} {ml:.1f} mL"
                     for organ, ml in volumes_ml.items())


def choice_label(entry: SessionEntry) -> str:
    """One resume choice: "saved 2024-05-01 11:00 — liver 1510 mL, spleen 250 mL", or
    for a damaged one its folder and why it cannot be opened."""
    if entry.damaged:
        return f"{entry.kind} ({entry.folder.name}) — cannot be opened: {entry.problem}"
    return f"{entry.kind} {local_time(entry.saved_at)} — {volumes_text(entry.volumes_ml)}"
