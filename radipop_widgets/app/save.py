"""The Save & export panel: save the session into the workspace, export the labels."""

from __future__ import annotations

import html
import re
from concurrent.futures import Future
from pathlib import Path

import ipywidgets as widgets

from .. import persist
from ..errors import RadipopError, SessionConflictError
from ..export import dicom_seg_problem
from ..labels import ORGANS, OTHER
from .context import Context
from .offer import local_time, volumes_text
from .resume import ResumePanel
from .ui import button, heading, tagged

DICOM_SEG_TOOLTIP = "A DICOM Segmentation object referencing the series"
# kind -> (file or folder written, Session method)
EXPORTS = {"nifti": ("labels.nii.gz", "export_nifti"),
           "legacy": ("legacy_masks", "export_legacy"),
           "dicom_seg": ("segmentation.dcm", "export_dicom_seg")}


class SavePanel:
    """Save session (which also ends an open resume offer: the saved files are replaced;
    work another session saved there since is replaced only when the user says so) and
    the exports, each into a folder under ``output_root``."""

    def __init__(self, ctx: Context, output_root: Path, resume: ResumePanel):
        self.ctx = ctx
        self.output_root = output_root
        self.resume = resume
        self.output_text = widgets.Text("exports", description="Folder",
                                        style={"description_width": "52px"},
                                        layout=widgets.Layout(width="360px"))
        self.output_root_text = widgets.HTML(
            f"<small>Exports go under <code>{html.escape(str(output_root))}</code></small>")
        self.save_button = button("Save session", "Save labels and thresholds to the workspace",
                                  "#c8e6c9", "160px", icon="save")
        self.export_buttons = {
            "nifti": button("NIfTI labels", "labels.nii.gz: " + ", ".join(
                f"{o.value}{'..' if o.value == OTHER else ''} {o.name}" for o in ORGANS)),
            "legacy": button("Legacy per-slice", "One <i>.p mask file per slice, as RadiPOP wrote"),
            "dicom_seg": button("DICOM SEG", DICOM_SEG_TOOLTIP),
        }
        self.saved_text = widgets.HTML()
        self.conflict_text = widgets.HTML()
        self.replace_button = button("Replace it", "Save this session over the other one",
                                     "#ffcdd2")
        self.keep_button = button("Keep it", "Do not save over the other session")
        self.conflict = widgets.VBox(
            [self.conflict_text, widgets.HBox([self.replace_button, self.keep_button])],
            layout=widgets.Layout(display="none", border="2px solid #b00020",
                                  padding="4px 8px"))
        self.export_note = widgets.HTML()
        self.widget = widgets.VBox([
            heading("Session"), self.save_button, self.conflict, self.saved_text,
            heading("Export into a folder"), self.output_root_text, self.output_text,
            widgets.HBox(list(self.export_buttons.values())), self.export_note])
        tagged({"save": self.save_button, "save-replace": self.replace_button,
                "save-keep": self.keep_button, "save-conflict": self.conflict,
                **{f"export-{kind}": b for kind, b in self.export_buttons.items()}})
        ctx.jobs.hold(self.save_button, self.replace_button, *self.export_buttons.values())
        ctx.jobs.on_idle(self._update_dicom_seg)
        self.save_button.on_click(ctx.callback("Saving the session")(lambda _: self.save()))
        self.replace_button.on_click(ctx.callback("Saving the session")(
            lambda _: self.save(replace=True)))
        self.keep_button.on_click(ctx.callback("Keeping the other session")(
            lambda _: self._keep()))
        for kind, control in self.export_buttons.items():
            control.on_click(ctx.callback("Exporting")(lambda _, kind=kind: self.export(kind)))

    def show(self, session) -> None:
        study = session.study
        self.output_text.value = re.sub(r"[^A-Za-z0-9._-]+", "_",
                                        study.series_description or study.name).strip("._") \
            or "study"
        problem = dicom_seg_problem(study)
        self.export_buttons["dicom_seg"].tooltip = problem or DICOM_SEG_TOOLTIP
        self.export_note.value = (f"<small style='color:#8a5a00'>{html.escape(problem)}</small>"
                                  if problem else "")
        self.saved_text.value = ""
        self.conflict.layout.display = "none"
        self._update_dicom_seg()

    def _update_dicom_seg(self) -> None:
        """DICOM SEG stays disabled for a study it cannot be written for."""
        session = self.ctx.session
        self.export_buttons["dicom_seg"].disabled = bool(session and
                                                         dicom_seg_problem(session.study))

    def save(self, replace: bool = False) -> Path | None:
        """Save the session into the workspace; returns the folder. Work that another
        session saved there is replaced only with ``replace`` (the Replace button), or
        when the user chose Start new on the offer of it; otherwise the panel asks and
        None is returned."""
        s = self.ctx.require_session()
        try:
            path = s.save(replace=replace or self.resume.pending or self.resume.replaces_saved)
        except SessionConflictError as exc:
            said = (f"Another session saved this study at {local_time(exc.saved_at)} "
                    f"({volumes_text(exc.volumes_ml)}) since this one started.")
            self.conflict_text.value = (f"<b>{html.escape(said)}</b><br><small>Replace it "
                                        "with these labels, or keep it (open the study again "
                                        "and Resume to continue that work).</small>")
            self.conflict.layout.display = "flex"
            self.ctx.messages.warning(f"Not saved: {said} Replace it or keep it (under Save "
                                      "session).")
            return None
        self.conflict.layout.display = "none"
        if self.resume.pending:
            self.resume.start_new()
        self.saved_text.value = f"<small>Saved to <code>{html.escape(str(path))}</code></small>"
        self.ctx.status(f"Session saved to {path}.")
        return path

    def _keep(self) -> None:
        self.conflict.layout.display = "none"
        self.ctx.status("Not saved: the other session's work stays. Export these labels, or "
                        "open the study again and Resume to continue that work.")

    def export(self, kind: str) -> Future:
        """Export the labels as ``nifti``, ``legacy`` or ``dicom_seg`` into the chosen folder
        as a job; returns a Future of the path written."""
        s = self.ctx.require_session()
        if kind not in EXPORTS:
            raise RadipopError(f"Unknown export {kind!r}: choose nifti, legacy or dicom_seg.")
        problem = dicom_seg_problem(s.study) if kind == "dicom_seg" else None
        if problem:
            raise RadipopError(problem)
        folder = persist.resolve_inside(self.output_root, self.output_text.value.strip() or ".")
        name, method = EXPORTS[kind]
        path = folder / name
        write = getattr(s, method)

        def work(progress):
            folder.mkdir(parents=True, exist_ok=True)
            write(path)
            return path
        return self.ctx.jobs.run("Exporting", work, lambda path: self.ctx.status(
            f"Exported to {path}."), "Exporting")
