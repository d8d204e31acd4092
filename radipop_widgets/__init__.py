"""radipop-widgets: liver and spleen segmentation of abdominal CT.

The core (loading, segmentation, session, rendering, export) imports no widget
library; ``App`` is imported lazily so ``import radipop_widgets`` stays light.
"""

from importlib import import_module as _import_module

from ._version import __version__
from .errors import (
    ColourImageError,
    DecodeError,
    DuplicateSliceError,
    EmptyVolumeError,
    GeometryError,
    HeaderValueError,
    HURangeError,
    InconsistentSlicesError,
    MaskFileError,
    MissingSliceError,
    MultipleSeriesError,
    NoImagesError,
    NotCTError,
    NotHUError,
    OrientationError,
    PathNotAllowedError,
    PositionError,
    RadipopError,
    RescaleError,
    SeriesNotFoundError,
    SessionConflictError,
    SessionError,
    SessionFileError,
    SpacingError,
    StudyError,
    StudyTooLargeError,
    UnreadableFileError,
)
from .labels import BACKGROUND, LIVER, OTHER, SPLEEN
from .study import Study, SliceSource

_LAZY = {
    "load_study": ("radipop_widgets.io", "load_study"),
    "Session": ("radipop_widgets.session", "Session"),
    "import_legacy_masks": ("radipop_widgets.export", "import_legacy_masks"),
    "window": ("radipop_widgets.render", "window"),
    "WINDOW_PRESETS": ("radipop_widgets.render", "WINDOW_PRESETS"),
    "phantom_study_path": ("radipop_widgets.io.phantom", "phantom_study_path"),
    "App": ("radipop_widgets.app", "App"),
    "DicomWeb": ("radipop_widgets.dicomweb", "DicomWeb"),
}


def __getattr__(name):
    if name in _LAZY:  # the lazy imports: the app (widgets) and the heavier core modules
        module_name, attribute = _LAZY[name]
        return getattr(_import_module(module_name), attribute)
    raise AttributeError(f"module 'radipop_widgets' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
