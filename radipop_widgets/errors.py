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


class EmptyVolumeError(NoImagesError):
    """The image has a dimension of size zero: there is no voxel to load."""


class UnreadableFileError(StudyError):
    """A file is truncated or is not valid DICOM / NIfTI."""


class HeaderValueError(UnreadableFileError):
    """A header attribute holds a value the standard does not allow (text where a number
    belongs, the wrong number of values, a negative size)."""


class GeometryError(StudyError):
    """The slice geometry in the headers is impossible (spacing, orientation, position or
    affine not finite, zero, negative, absurdly large, or not a rotation)."""


class SpacingError(GeometryError):
    """PixelSpacing (or the NIfTI voxel size) is missing values, zero, negative, not finite
    or implausibly large."""


class OrientationError(GeometryError):
    """ImageOrientationPatient (or the NIfTI affine) is not two orthogonal unit vectors."""


class PositionError(GeometryError):
    """ImagePositionPatient does not hold three finite coordinates."""


class ColourImageError(NotCTError, NoImagesError):
    """The series holds colour data (RGB, YBR, PALETTE COLOR), not CT Hounsfield units."""


class RescaleError(NotHUError):
    """RescaleSlope / RescaleIntercept cannot give Hounsfield units (slope 0, not a number)."""


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


class SessionFileError(SessionError):
    """A session folder's session.json is missing, damaged, or holds values of the wrong type."""


class SessionConflictError(SessionError):
    """Saving would replace work that another session saved in the same folder.

    ``folder``, ``saved_at`` (ISO time stamp or None) and ``volumes_ml`` (organ -> mL or
    None) describe the work that would have been lost.
    """

    def __init__(self, message, folder=None, saved_at=None, volumes_ml=None):
        super().__init__(message)
        self.folder = folder
        self.saved_at = saved_at
        self.volumes_ml = volumes_ml


class PacsError(RadipopError):
    """A PACS (DICOMweb server) request failed, or the connection is configured wrongly."""


class PacsConfigError(PacsError):
    """The server address, credentials or certificate settings are not usable (credentials
    in the URL, a config file others can read, plain HTTP to a remote host)."""


class PacsUnreachableError(PacsError):
    """The server cannot be reached: wrong address, server down, network, timeout, or a
    certificate that cannot be verified."""


class PacsAuthError(PacsError):
    """The server refused the request (HTTP 401 / 403): wrong or missing credentials."""


class PacsNotFoundError(PacsError, SeriesNotFoundError):
    """The study or series is not on the server."""


class PacsStoreError(PacsError):
    """The server did not store (all of) the objects sent to it."""
