"""Which saved session the app offers when a study opens (a pure rule)."""

from __future__ import annotations

import pytest

from radipop_widgets.app.offer import Candidate, local_time, newest_offer

EARLY, LATE = "2024-05-01T09:00:00+00:00", "2024-05-02T10:00:00+00:00"


@pytest.mark.parametrize("candidates, expected", [
    ([], None),
    ([Candidate("saved", "s", EARLY)], "s"),
    ([Candidate("autosaved", "a", LATE), Candidate("saved", "s", EARLY)], "a"),
    ([Candidate("autosaved", "a", EARLY), Candidate("saved", "s", LATE)], "s"),
    ([Candidate("saved", "s", EARLY), Candidate("autosaved", "a", EARLY)], "s"),   # a tie
    ([Candidate("saved", "s", ""), Candidate("autosaved", "a", EARLY)], "a"),      # no time
])
def test_the_newest_is_offered_and_a_save_wins_a_tie(candidates, expected):
    offer = newest_offer(candidates)
    assert (offer and offer.folder) == expected


def test_the_offer_in_words():
    autosaved, saved = Candidate("autosaved", "a", LATE), Candidate("saved", "s", "")
    assert autosaved.what == "work that was autosaved but not saved"
    assert saved.what == "a saved session" and saved.when == "?"
    assert autosaved.when.startswith("2024-05-02 ")
    assert local_time(None) == "?" and local_time("2024-13-01") == "?"
