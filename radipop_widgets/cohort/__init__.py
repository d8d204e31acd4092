"""A cohort, not a study: the worklist of a data folder, each study's status, the
plausibility flags and the cohort export (masks and ``cohort.csv``).

- :mod:`.worklist`: :class:`Worklist` (header-only, incremental scan; rows with status,
  volumes, last edit, flags), :func:`row_key`, :func:`study_row_key`;
- :mod:`.status`: :class:`StatusStore` (not started / in progress / done, by whom;
  undoable "done"), in the workspace;
- :mod:`.flags`: the plausibility checks, each with its reason;
- :mod:`.export`: :func:`export_cohort`;
- :mod:`.pseudonym`: salted hashes of the PatientID;
- :mod:`.pacs_series`: :class:`PacsSeriesStore`, the PACS series added to the worklist.

The command line is ``python -m radipop_widgets cohort status|export|salt``.
"""

from .export import COLUMNS, ExportReport, export_cohort
from .flags import Flag, study_flags
from .pacs_series import PacsRecord, PacsSeriesStore, pacs_record
from .pseudonym import new_salt_file, pseudonym, read_salt
from .status import DONE, IN_PROGRESS, NOT_STARTED, CohortError, StatusStore
from .worklist import Worklist, WorklistRow, row_key, study_row_key

__all__ = ["COLUMNS", "DONE", "IN_PROGRESS", "NOT_STARTED", "CohortError", "ExportReport",
           "Flag", "PacsRecord", "PacsSeriesStore", "StatusStore", "Worklist", "WorklistRow",
           "export_cohort", "new_salt_file", "pacs_record", "pseudonym", "read_salt",
           "row_key", "study_flags", "study_row_key"]
