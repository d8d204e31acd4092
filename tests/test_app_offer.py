"""How the resume offer describes a session on disk (local time, volumes, damage)."""

from __future__ import annotations

from pathlib import Path

from radipop_widgets.app.offer import choice_label, local_time, volumes_text
from radipop_widgets.persist import SessionEntry

EARLY = "2024-05-01T09:00:00+00:00"


def test_a_choice_in_words():
    saved = SessionEntry("saved", Path("s"), EARLY, {"liver": 1510.4, "spleen": 250.0})
    label = choice_label(saved)
    assert label.startswith(f"saved {local_time(EARLY)} — ")
    assert label.endswith("liver 1510 mL, spleen 250 mL")
    assert choice_label(SessionEntry("autosaved", Path("a"), EARLY, {"liver": 0.25})) \
        == f"autosaved {local_time(EARLY)} — liver 0.2 mL"
    assert choice_label(SessionEntry("autosaved", Path("a"))) \
        == "autosaved ? — no volumes recorded"
    damaged = SessionEntry("autosaved", Path("study/autosave-x"), problem="not JSON")
    assert choice_label(damaged) == "autosaved (autosave-x) — cannot be opened: not JSON"


def test_times_and_volumes():
    assert local_time(EARLY)[:4] == "2024" and len(local_time(EARLY)) == len("2024-05-01 09:00")
    assert local_time(None) == "?" and local_time("2024-13-01") == "?"
    assert volumes_text(None) == "no volumes recorded"
    assert volumes_text({"liver": 12.34, "spleen": 0.0}) == "liver 12.3 mL, spleen 0.0 mL"
