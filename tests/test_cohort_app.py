"""The worklist in the dashboard: the table, open a row, next / previous, done and undo,
sort and filter, read-only while another kernel edits the study, the cohort export job."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time

import numpy as np
import pytest
from test_cohort_data import loaded_labels
from test_cohort_pacs import download, pacs  # noqa: F401  (the fixture)

from radipop_widgets import persist
from radipop_widgets.app import App
from radipop_widgets.app.app import TABS
from radipop_widgets.cohort import PacsSeriesStore, new_salt_file, pacs_record
from radipop_widgets.errors import RadipopError
from radipop_widgets.io.phantom import write_phantom_series
from radipop_widgets.locks import LOCK_FILE, SessionLock, read_lock
from radipop_widgets.session import Session

GEOMETRY = {"shape": (8, 64, 64), "pixel_mm": 5.0, "slice_mm": 20.0}


@pytest.fixture
def app(tmp_path):
    data = tmp_path / "data"
    for i, name in enumerate(("s1", "s2", "s3")):
        write_phantom_series(data / name, **GEOMETRY, seed=i + 1)
    app = App(data_root=data, workspace=tmp_path / "ws", output_root=tmp_path / "exports",
              background=False)
    yield app
    if app.session is not None:
        app.session.unlock()


def shown(app):
    return [app.studies.entries[i].path for _, i in app.studies.study_list.options]


def test_open_next_previous_follow_the_tables_order(app):
    order = [i for _, i in app.studies.study_list.options]
    assert len(order) == 3 and app.studies.study_list.value == order[0]
    app.next_study()
    assert app.studies.study_list.value == order[1]
    assert app.session.study.path.parent.name == "s2"
    app.next_study()
    assert app.next_study() is None and "last study" in app.messages.messages[0][1]
    app.previous_study()
    assert app.studies.study_list.value == order[1]
    app.studies.worklist.sort.value = "folder"
    app.studies.worklist.filter_text.value = "s3"
    assert [p.split("/")[-2] for p in shown(app)] == ["s3"]
    app.studies.worklist.filter_text.value = ""


def test_mark_done_saves_and_undo_done_takes_it_back(app):
    session = app.session
    session.set_labels(loaded_labels(session.study.path))
    app.studies.worklist.done_button.click()
    row = app.studies.worklist.rows[app.studies.study_list.value]
    assert row.status == "done" and row.by and row.session.kind == "saved"
    assert "done (" in app.messages.messages[0][1]
    label = {i: t for t, i in app.studies.study_list.options}[app.studies.study_list.value]
    assert label.split(" | ")[1].startswith("done") and "saved session (20" in label
    assert row.volumes_ml["liver"] == pytest.approx(session.volumes_ml()["liver"])
    app.studies.worklist.status_filter.value = "done"
    assert len(app.studies.study_list.options) == 1
    app.studies.worklist.status_filter.value = "all"
    app.studies.worklist.undo_done_button.click()
    row = app.studies.worklist.rows[app.studies.study_list.value]
    assert row.status == "in progress"


def test_cohort_export_from_the_dashboard(app, tmp_path):
    app.session.set_labels(loaded_labels(app.session.study.path))
    app.studies.worklist.mark_done()
    panel = app.studies.worklist
    assert panel.pseudonymise.disabled and not panel.pseudonymise.value   # no salt file
    panel.export()
    table = (tmp_path / "exports" / "cohort" / "cohort.csv").read_text()
    assert "1 done studies exported" in app.messages.messages[0][1]
    assert "PHANTOM-001" in table
    panel.salt_file = str(new_salt_file(tmp_path / "salt"))   # as $RADIPOP_SALT_FILE gives it
    panel.pseudonymise.value = True
    panel.export()
    table = (tmp_path / "exports" / "cohort" / "cohort.csv").read_text()
    assert "PHANTOM-001" not in table and ",P-" in table


def test_new_studies_appear_when_the_study_tab_is_shown(app, tmp_path):
    assert len(app.studies.entries) == 3
    write_phantom_series(tmp_path / "data" / "s4", **GEOMETRY, seed=9)
    app.tabs.selected_index = 0
    app.tabs.selected_index = TABS.index("Study")
    assert len(app.studies.entries) == 4 and len(app.studies.study_list.options) == 4


def _hold(folder, user, ready, stop):
    SessionLock(folder, "other-kernel", user=user).acquire()   # user None: this login
    ready.set()
    stop.wait(60)


@contextlib.contextmanager
def held_elsewhere(app, user=None):
    """The open study's lock held by another process (``user``, else this user)."""
    folder = persist.default_session_dir(app.session.study, app.workspace)
    app.session.unlock()
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(folder, user, ready, stop))
    other.start()
    try:
        assert ready.wait(60)
        yield
    finally:
        stop.set()
        other.join(10)


def test_a_study_another_kernel_edits_opens_read_only_until_taken_over(app):
    with held_elsewhere(app, "carol"):
        app.studies.refresh()
        row = app.studies.worklist.rows[app.studies.study_list.value]
        assert row.editor is not None and row.by == "carol"
        app.open_study(app.studies.study_list.value)              # opened again: read-only
        panel = app.studies.worklist
        assert panel.lock_row.layout.display == "flex" and "carol" in panel.lock_text.value
        assert not app.session.autosave
        assert any("being edited by carol" in text for _, text in app.messages.messages)
        labels = app.session.labels.copy()
        with pytest.raises(RadipopError, match="read-only here: being edited by carol"):
            app.assign(1)                                         # edits are refused
        app.set_tool("draw")
        with pytest.raises(RadipopError, match="Take over"):     # a stroke too
            app.mouse_down(10.5, 10.5)
        app.mouse_up(10.5, 10.5)
        assert np.array_equal(app.session.labels, labels)
        panel.take_over_button.click()
        assert panel.lock_row.layout.display == "none" and app.session.autosave
        assert app.session.editor is None


def test_the_same_users_other_page_does_not_make_the_study_read_only(app):
    """A reload (or a second tab) starts a new kernel while the old one still holds the
    lock: the study opened read-only for its own user, and every edit was refused."""
    with held_elsewhere(app):
        app.open_study(app.studies.study_list.value)
        panel = app.studies.worklist
        assert panel.lock_row.layout.display == "none" and app.session.autosave
        assert app.ctx.read_only is None and app.session.editor is None
        assert any("open in another page" in text for _, text in app.messages.messages)


def test_a_standby_kernel_shows_its_study_and_takes_its_lock_only_for_a_page(
        tmp_path, monkeypatch):
    """Voilà's standby kernel (preheat) runs the notebook before any page asks for it:
    it loads the first study, but shows it and takes its lock only once a page shows the
    image. Taking the lock at once took it from the same user's page open on that study."""
    write_phantom_series(tmp_path / "data" / "s1", **GEOMETRY, seed=1)
    loaded = threading.Event()

    class Loaded(Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            loaded.set()

    monkeypatch.setattr("radipop_widgets.app.studies.Session", Loaded)
    monkeypatch.setenv("VOILA_PREHEAT", "True")
    app = App(data_root=tmp_path / "data", workspace=tmp_path / "ws",
              output_root=tmp_path / "exports", background=True)
    assert loaded.wait(60)
    time.sleep(0.5)   # the phase estimate, then the wait for a page
    assert app.busy == "Loading" and app.session is None
    assert not list((tmp_path / "ws").rglob(LOCK_FILE))
    app._client_ready()                       # a page shows the image
    app.wait()
    assert app.session is not None and app.session.editor is None
    holder = read_lock(persist.default_session_dir(app.session.study, app.workspace))
    assert holder is not None and holder.released_at is None
    app.session.unlock()


def test_a_worklist_starting_with_a_pacs_series_downloads_nothing_at_start(pacs, tmp_path):  # noqa: F811
    """Nothing is asked of a PACS before the user asks: the first row of a worklist of
    PACS series only is opened (downloaded) from the Study tab, not when the page opens."""
    web, _, series = pacs                     # a client of a server that is not there
    PacsSeriesStore(tmp_path / "ws").add([pacs_record(web, st, s) for st, s in series])
    (tmp_path / "empty").mkdir()
    app = App(data_root=tmp_path / "empty", workspace=tmp_path / "ws",
              output_root=tmp_path / "exports", background=False)
    assert len(app.studies.entries) == 2 and app.session is None
    assert app.tabs.selected_index == TABS.index("Study")
    assert not [text for level, text in app.messages.messages if level == "error"]
    assert "open it in the Study tab" in app.messages.messages[0][1]


def test_remove_takes_a_pacs_series_off_the_worklist_and_only_that(pacs, app, tmp_path):  # noqa: F811
    web, folders, series = pacs
    PacsSeriesStore(app.studies.workspace).add([pacs_record(web, st, s) for st, s in series])
    app.studies.refresh()
    panel = app.studies.worklist
    pacs_rows = [i for i, r in enumerate(panel.rows) if r.pacs is not None]
    folder_row = next(i for i, r in enumerate(panel.rows) if r.pacs is None)
    assert len(pacs_rows) == 2
    panel.table.value = folder_row
    assert panel.remove_button.disabled                 # the data folder lists its own
    with pytest.raises(RadipopError, match="only the series added from the PACS tab"):
        panel.remove_pacs(folder_row)
    panel.table.value = pacs_rows[0]
    assert not panel.remove_button.disabled
    panel.remove_button.click()
    assert not [text for level, text in app.messages.messages if level == "error"]
    assert [r.pacs.series_uid for r in panel.rows if r.pacs] == [series[1][1].series_uid]
    assert "add it again from the PACS tab" in app.messages.messages[0][1]
    assert sum(r.pacs is None for r in panel.rows) == 3     # the folder's rows stay
    download(web, folders[1], series[1][1].series_uid)   # open the other one: not removed
    opened = next(i for i, r in enumerate(panel.rows) if r.pacs is not None)
    app.studies.open(opened).result()
    with pytest.raises(RadipopError, match="is open: open another study"):
        panel.remove_pacs(opened)
