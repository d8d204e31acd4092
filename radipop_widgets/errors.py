"""Exception types. Every message says what is wrong and what to do about it."""


class RadipopError(Exception):
    """Base class of every error raised on purpose by radipop_widgets."""


class StudyError(RadipopError):
    """A study cannot be loaded as a CT volume."""


class NoImagesError(StudyError):
    """The path holds no readable image slices."""


class NotCTError(StudyError):
    """The images are not CT (MR, PT, ...)."""


class NotHUError(NotCTError):
    """The values do not look like Hounsfield units (a label map, or a missing rescale)."""


class MultipleSeriesError(StudyError):
    """The folder holds several series and none was chosen."""

    def __init__(self, message, series=()):
        super().__init__(message)
        self.series = list(series)


class SeriesNotFoundError(StudyError):
    """The requested series is not in the folder."""


class InconsistentSlicesError(StudyError):
    """Slices differ in size, orientation or pixel spacing."""


class MissingSliceError(StudyError):
    """The slice positions have a gap: a slice is missing."""


class DuplicateSliceError(StudyError):
    """Two slices share one position."""


class UnreadableFileError(StudyError):
    """A file is truncated or is not valid DICOM / NIfTI."""


class DecodeError(StudyError):
    """Pixel data is compressed with a codec that cannot be decoded here."""


class HURangeError(StudyError):
    """Pixel values give Hounsfield units outside the int16 range (or non-finite values)."""


class StudyTooLargeError(StudyError):
    """The volume would not fit in the available memory."""


class PathNotAllowedError(RadipopError):
    """A path lies outside the configured data root."""


class SessionError(RadipopError):
    """A session folder or an edit request is not valid."""


class MaskFileError(SessionError):
    """A mask file is malformed, of the wrong shape, or not safe to read."""
