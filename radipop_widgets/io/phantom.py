"""A deterministic synthetic abdominal CT with its exact liver and spleen labels.

The phantom is the dashboard's default study and the test suite's own data: it needs
no download. Geometry is in mm, so the anatomy keeps its size at any resolution.
Axes follow a standard axial DICOM slice: row 0 anterior, column 0 patient right,
slice 0 caudal.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from ..labels import LIVER, SPLEEN
from ..study import METADATA_KEYS, Study, affine_from_geometry

PHANTOM_VERSION = 2
DEFAULT_SHAPE = (60, 512, 512)
DEFAULT_PIXEL_MM = 0.8
DEFAULT_SLICE_MM = 2.5
RESCALE_INTERCEPT = -1024
ORIGIN_Z_MM = -200.0

PHANTOM_METADATA = {
    "PatientID": "PHANTOM-001",
    "PatientName": "Phantom^Abdomen",
    "PatientBirthDate": "19700101",
    "PatientAge": "056Y",
    "PatientSex": "O",
    "SliceThickness": str(DEFAULT_SLICE_MM),
    "StudyID": "1",
    "ContentDate": "20260101",
}

# Hounsfield units of the tissues in the portal-venous phase ...
HU = {
    "air": -1000, "fat": -100, "muscle": 50, "liver": 105, "spleen": 115,
    "portal_vein": 185, "kidney": 160, "aorta": 210, "ivc": 165, "bone": 700,
    "marrow": 250, "stomach_wall": 45, "stomach_fluid": 12, "bowel": 30,
}
# ... and what changes in the other contrast phases.
PHASES = {
    "portal": HU,
    "native": {**HU, "liver": 58, "spleen": 47, "portal_vein": 40, "kidney": 32, "aorta": 42,
               "ivc": 40, "stomach_wall": 38},
    "arterial": {**HU, "liver": 72, "spleen": 125, "portal_vein": 130, "kidney": 210,
                 "aorta": 320, "ivc": 70, "stomach_wall": 60},
}


def _ellipsoid(x, y, z, centre, radii):
    """Normalised squared distance to an axis-aligned ellipsoid (< 1 inside)."""
    return (((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((z - centre[2]) / radii[2]) ** 2)


def _tube(x, y, z, start, end, radius):
    """Boolean mask of a straight tube between two 3-D points (mm)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    axis = end - start
    t = ((x - start[0]) * axis[0] + (y - start[1]) * axis[1] + (z - start[2]) * axis[2])
    t = np.clip(t / float(axis @ axis), 0.0, 1.0)
    distance2 = ((x - start[0] - t * axis[0]) ** 2 + (y - start[1] - t * axis[1]) ** 2
                 + (z - start[2] - t * axis[2]) ** 2)
    return distance2 < radius ** 2


def _slice_tissues(x, y, z, tissue_hu):
    """Tissue HU and organ labels of one axial slice at height ``z`` (mm)."""
    hu = np.full(x.shape, tissue_hu["air"], np.float32)
    labels = np.zeros(x.shape, np.uint8)

    body = (x / 165.0) ** 2 + (y / 118.0) ** 2 < 1
    hu[body] = tissue_hu["fat"]
    muscle_wall = ((x / 150.0) ** 2 + (y / 104.0) ** 2 < 1) & ~((x / 140.0) ** 2 + (y / 94.0) ** 2 < 1)
    hu[muscle_wall] = tissue_hu["muscle"]
    # Paraspinal and psoas muscles.
    for cx in (-35.0, 35.0):
        hu[((x - cx) / 24.0) ** 2 + ((y - 92.0) / 16.0) ** 2 < 1] = tissue_hu["muscle"]
        hu[((x - cx * 1.3) / 15.0) ** 2 + ((y - 62.0) / 14.0) ** 2 < 1] = tissue_hu["muscle"]

    # Liver: right lobe plus a left lobe reaching across the midline anteriorly.
    liver = (_ellipsoid(x, y, z, (-62, -8, 95), (82, 72, 70)) < 1) | (
        _ellipsoid(x, y, z, (8, -52, 110), (62, 30, 45)) < 1)
    liver &= (x / 138.0) ** 2 + (y / 92.0) ** 2 < 1
    hu[liver] = tissue_hu["liver"]
    labels[liver] = LIVER
    vessels = (_tube(x, y, z, (-20, 15, 60), (-70, -20, 140), 7.0)
               | _tube(x, y, z, (-55, -5, 105), (-105, -35, 80), 4.0)
               | _tube(x, y, z, (-45, 0, 120), (10, -55, 125), 4.0))
    hu[liver & vessels] = tissue_hu["portal_vein"]

    spleen = _ellipsoid(x, y, z, (84, 26, 100), (26, 44, 42)) < 1
    hu[spleen] = tissue_hu["spleen"]
    labels[spleen] = SPLEEN

    stomach = _ellipsoid(x, y, z, (45, -35, 105), (38, 28, 40)) < 1
    stomach_lumen = _ellipsoid(x, y, z, (45, -35, 105), (32, 22, 34)) < 1
    hu[stomach] = tissue_hu["stomach_wall"]
    hu[stomach_lumen] = np.where(y[stomach_lumen] < -38, tissue_hu["air"], tissue_hu["stomach_fluid"])
    labels[stomach] = 0

    for cx in (-62.0, 62.0):
        kidney = _ellipsoid(x, y, z, (cx, 58, 45), (24, 18, 45)) < 1
        hu[kidney] = tissue_hu["kidney"]
        labels[kidney] = 0

    for name, cx, cy, radius in (("aorta", 16.0, 52.0, 12.0), ("ivc", -24.0, 42.0, 11.0)):
        vessel = (x - cx) ** 2 + (y - cy) ** 2 < radius ** 2
        hu[vessel] = tissue_hu[name]
        labels[vessel] = 0

    bowel = body & (z < 55) & ((np.sin(x / 11.0) * np.sin(y / 9.0 + z / 17.0)) > 0.55) & (
        (x / 120.0) ** 2 + ((y + 20) / 70.0) ** 2 < 1)
    hu[bowel & (labels == 0)] = tissue_hu["bowel"]

    vertebra = (x / 21.0) ** 2 + ((y - 82.0) / 18.0) ** 2 < 1
    hu[vertebra] = tissue_hu["bone"]
    hu[(x / 16.0) ** 2 + ((y - 82.0) / 13.0) ** 2 < 1] = tissue_hu["marrow"]
    hu[(np.abs(x) < 6) & (y > 98) & (y < 118)] = tissue_hu["bone"]
    # Ribs: short arcs under the muscle wall, present on every other 20 mm band.
    if int(z // 20) % 2 == 0:
        angle = np.arctan2(y, x)
        ring = ((x / 146.0) ** 2 + (y / 100.0) ** 2 < 1) & ~((x / 138.0) ** 2 + (y / 93.0) ** 2 < 1)
        rib_angles = np.deg2rad([-150, -120, -60, -30, 20, 160])
        for rib_angle in rib_angles:
            hu[ring & (np.abs(np.angle(np.exp(1j * (angle - rib_angle)))) < 0.09)] = tissue_hu["bone"]
    return hu, labels


def make_phantom(shape=DEFAULT_SHAPE, pixel_mm=DEFAULT_PIXEL_MM, slice_mm=DEFAULT_SLICE_MM,
                 seed=0, phase="portal"):
    """Synthesise the abdominal CT phantom.

    Parameters
    ----------
    shape : tuple of int
        (slices, rows, columns).
    pixel_mm, slice_mm : float
        In-plane pixel spacing and slice step in mm.
    seed : int
        Seed of the image noise; the same seed gives the same volume.
    phase : {"portal", "native", "arterial"}
        Contrast phase: sets the HU of the organs and vessels (see ``PHASES``).

    Returns
    -------
    hu : ndarray of int16, shape ``shape``
        Hounsfield units with blur and Gaussian noise (SD 12 HU).
    labels : ndarray of uint8, shape ``shape``
        The exact organ labels: 1 liver (internal vessels included), 2 spleen.

    Examples
    --------
    >>> hu, labels = make_phantom(shape=(4, 64, 64), pixel_mm=6.4, slice_mm=25)
    >>> hu.dtype, sorted(np.unique(labels).tolist())
    (dtype('int16'), [0, 1, 2])
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {sorted(PHASES)}, got {phase!r}")
    n_slices, rows, cols = shape
    rng = np.random.default_rng(seed)
    y = (np.arange(rows, dtype=np.float32) - (rows - 1) / 2.0) * pixel_mm
    x = (np.arange(cols, dtype=np.float32) - (cols - 1) / 2.0) * pixel_mm
    y, x = np.meshgrid(y, x, indexing="ij")
    # Slices span 150 mm of the abdomen whatever their number.
    z_top = 150.0
    z_positions = z_top - (n_slices - 1 - np.arange(n_slices)) * slice_mm
    hu = np.empty(shape, np.int16)
    labels = np.empty(shape, np.uint8)
    blur = 0.5 * 0.8 / pixel_mm
    for k, z in enumerate(z_positions):
        tissue, labels[k] = _slice_tissues(x, y, float(z), PHASES[phase])
        tissue = ndimage.gaussian_filter(tissue, blur) if blur > 0.1 else tissue
        tissue += rng.normal(0.0, 12.0, tissue.shape).astype(np.float32)
        hu[k] = np.clip(np.rint(tissue), -1024, 3071)
    return hu, labels


def _phantom_geometry(shape, pixel_mm, slice_mm):
    rows, cols = shape[1:]
    origin = (-(cols - 1) / 2.0 * pixel_mm, -(rows - 1) / 2.0 * pixel_mm, ORIGIN_Z_MM)
    spacing = (float(slice_mm), float(pixel_mm), float(pixel_mm))
    affine = affine_from_geometry(origin, (1, 0, 0), (0, 1, 0), (0, 0, 1), spacing)
    return spacing, affine


def phantom_study(shape=DEFAULT_SHAPE, pixel_mm=DEFAULT_PIXEL_MM, slice_mm=DEFAULT_SLICE_MM,
                  seed=0, phase="portal"):
    """The phantom as an in-memory :class:`Study` and its labels (no files written).

    Returns
    -------
    study : Study
    labels : ndarray of uint8
    """
    hu, labels = make_phantom(shape, pixel_mm, slice_mm, seed, phase)
    spacing, affine = _phantom_geometry(shape, pixel_mm, slice_mm)
    metadata = {key: PHANTOM_METADATA.get(key) for key in METADATA_KEYS}
    study = Study(hu=hu, spacing=spacing, affine=affine, series_description=f"Abdomen phantom ({phase})",
                  modality="CT", metadata=metadata)
    return study, labels


def write_phantom_series(folder, shape=DEFAULT_SHAPE, pixel_mm=DEFAULT_PIXEL_MM,
                         slice_mm=DEFAULT_SLICE_MM, seed=0):
    """Write the phantom as a DICOM CT series plus ``reference_labels.npz``.

    The layout is that of the real cases in the shared data: ``folder/dicom/*.dcm`` and
    ``folder/reference_labels.npz`` (key ``labels``, slices by ascending z).

    Returns
    -------
    Path
        ``folder``.
    """
    folder = Path(folder)
    dicom_dir = folder / "dicom"
    dicom_dir.mkdir(parents=True, exist_ok=True)
    hu, labels = make_phantom(shape, pixel_mm, slice_mm, seed)
    _, affine = _phantom_geometry(shape, pixel_mm, slice_mm)
    key = f"radipop-phantom-v{PHANTOM_VERSION}-{shape}-{pixel_mm}-{slice_mm}-{seed}"
    study_uid = generate_uid(entropy_srcs=[key, "study"])
    series_uid = generate_uid(entropy_srcs=[key, "series"])
    frame_uid = generate_uid(entropy_srcs=[key, "frame"])
    n_slices, rows, cols = shape
    for k in range(n_slices):
        sop_uid = generate_uid(entropy_srcs=[key, "sop", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        for name, value in PHANTOM_METADATA.items():
            setattr(ds, name, value)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.Manufacturer = "radipop-widgets phantom"
        ds.SeriesDescription = "Abdomen phantom (synthetic)"
        ds.StudyDescription = "Synthetic abdominal CT"
        ds.StudyDate, ds.StudyTime = "20260101", "120000"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber = 1
        # Instance numbers run head to feet, as many scanners write them.
        ds.InstanceNumber = n_slices - k
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [float(v) for v in affine[:3, 3] + k * affine[:3, 0]]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceLocation = float(ds.ImagePositionPatient[2])
        ds.PixelSpacing = [float(pixel_mm), float(pixel_mm)]
        ds.SliceThickness = float(slice_mm)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = RESCALE_INTERCEPT
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        stored = np.clip(hu[k].astype(np.int32) - RESCALE_INTERCEPT, 0, 4095).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        ds.save_as(dicom_dir / f"IM{sop_uid[-8:]}.dcm", enforce_file_format=True)
    np.savez_compressed(folder / "reference_labels.npz", labels=labels)
    return folder


def cache_dir() -> Path:
    """Where generated data is cached: ``$RADIPOP_CACHE`` or ``~/.cache/radipop-widgets``."""
    return Path(os.environ.get("RADIPOP_CACHE", Path.home() / ".cache" / "radipop-widgets"))


def phantom_study_path() -> Path:
    """Folder of the default phantom study, generated on first use and cached.

    Returns
    -------
    Path
        A folder holding ``dicom/`` (the series) and ``reference_labels.npz``.
    """
    target = cache_dir() / f"phantom-v{PHANTOM_VERSION}"
    if (target / "reference_labels.npz").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".phantom-", dir=target.parent))
    try:
        write_phantom_series(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "reference_labels.npz").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
