"""The Save & export panel: save the session into the workspace, export the labels."""

from __future__ import annotations

import html
import re
from concurrent.futures import Future
from pathlib import Path

import ipywidgets as widgets

from .. import persist
from ..errors import RadipopError
from ..export import dicom_seg_problem
from ..labels import ORGANS, OTHER
from .context import Context
from .resume import ResumePanel
from .ui import button, heading, tagged

DICOM_SEG_TOOLTIP = "A DICOM Segmentation object referencing the series"
# kind -> (file or folder written, Session method)
EXPORTS = {"nifti": ("labels.nii.gz", "export_nifti"),
           "legacy": ("legacy_masks", "export_legacy"),
           "dicom_seg": ("segmentation.dcm", "export_dicom_seg")}


class SavePanel:
    """Save session (which also ends an open resume offer: the saved files are replaced)
    and the exports, each into a folder under ``output_root``."""

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
        self.export_note = widgets.HTML()
        self.widget = widgets.VBox([
            heading("Session"), self.save_button, self.saved_text,
            heading("Export into a folder"), self.output_root_text, self.output_text,
            widgets.HBox(list(self.export_buttons.values())), self.export_note])
        tagged({"save": self.save_button,
                **{f"export-{kind}": b for kind, b in self.export_buttons.items()}})
        ctx.jobs.hold(self.save_button, *self.export_buttons.values())
        ctx.jobs.on_idle(self._update_dicom_seg)
        self.save_button.on_click(ctx.callback("Saving the session")(lambda _: self.save()))
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
        self._update_dicom_seg()

    def _update_dicom_seg(self) -> None:
        """DICOM SEG stays disabled for a study it cannot be written for."""
        session = self.ctx.session
        self.export_buttons["dicom_seg"].disabled = bool(session and
                                                         dicom_seg_problem(session.study))

    def save(self) -> Path:
        """Save the session into the workspace."""
        path = self.ctx.require_session().save()
        if self.resume.pending:
            self.resume.start_new()
        self.saved_text.value = f"<small>Saved to <code>{html.escape(str(path))}</code></small>"
        self.ctx.status(f"Session saved to {path}.")
        return path

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
