"""Synthetic studies for the tests: the one place that builds them.

- In memory, no files: :func:`synthetic_study`, :func:`blob_labels`,
  :func:`oblique_affine`, :func:`study_like_nifti_loader`.
- DICOM files (pydicom): :func:`ct_slice` and :func:`write_ct_series` (single-frame CT),
  :func:`enhanced_ct` and :func:`shuffled_frames` (multi-frame), :func:`save`,
  :func:`save_raw`, :func:`encode_jpeg_lossless`; :func:`dicom_study` writes a series with
  fresh (or empty) UIDs and returns its Study, read back by :func:`study_from_files`.
- NIfTI files (nibabel): :func:`write_nifti`, :func:`ras_volume`.

Studies are built here directly, not through ``load_study``, so that the export and
persist tests check against DICOM geometry computed independently of the loader. Where
anatomy matters, use the package's phantom (``radipop_widgets.io.phantom``) instead.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEGLosslessSV1,
    MRImageStorage,
    generate_uid,
)

from radipop_widgets.study import SliceSource, Study, affine_from_geometry

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
ORIGIN = np.array([-100.0, -120.0, -50.0])  # LPS mm of voxel (0, 0, 0) unless told otherwise
PATIENT = {"PatientID": "P-007", "PatientName": "Doe^Jane", "PatientBirthDate": "19700101",
           "PatientAge": "053Y", "PatientSex": "F", "StudyID": "42", "ContentDate": "20240102"}


# ---------------------------------------------------------------- in memory

def synthetic_study(shape=(6, 20, 24), spacing=(2.5, 0.8, 0.7), affine=None, series_uid="1.2.3.4",
                    instance_numbers=None, seed=0, metadata=None) -> Study:
    """An in-memory Study (no files) with random HU and an axial or given affine.

    ``metadata`` updates the patient keys (all None by default).
    """
    rng = np.random.default_rng(seed)
    hu = rng.integers(-200, 300, shape).astype(np.int16)
    if affine is None:
        affine = affine_from_geometry(ORIGIN, (1, 0, 0), (0, 1, 0), (0, 0, 1), spacing)
    if instance_numbers is None:
        instance_numbers = list(range(1, shape[0] + 1))
    sources = [SliceSource(None, None, n) for n in instance_numbers]
    study = Study(hu=hu, spacing=tuple(spacing), affine=np.asarray(affine, float),
                  series_uid=series_uid, study_uid="1.2.3", frame_of_reference_uid="1.2.3.5",
                  sources=sources)
    study.metadata.update(metadata or {})
    return study


def blob_labels(shape, seed=0) -> np.ndarray:
    """uint8 labels with a liver (1) and spleen (2) blob, a few other-organ (3) voxels."""
    n, rows, cols = shape
    z, y, x = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    labels = np.zeros(shape, np.uint8)
    labels[((y - rows * 0.5) / (rows * 0.3)) ** 2 + ((x - cols * 0.3) / (cols * 0.25)) ** 2
           + ((z - n * 0.5) / (n * 0.45)) ** 2 < 1] = 1
    labels[((y - rows * 0.5) / (rows * 0.15)) ** 2 + ((x - cols * 0.78) / (cols * 0.12)) ** 2
           + ((z - n * 0.6) / (n * 0.3)) ** 2 < 1] = 2
    rng = np.random.default_rng(seed)
    labels[rng.random(shape) < 0.002] = 3
    return labels


def oblique_affine(spacing, seed=1) -> np.ndarray:
    """A (slice, row, col) -> LPS affine with a random rotation (orthonormal directions)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    row_dir, col_dir = q[:, 0], q[:, 1]
    return affine_from_geometry((12.0, -30.0, 80.0), row_dir, col_dir,
                                np.cross(row_dir, col_dir), spacing)


def study_like_nifti_loader(data_ijk, nifti_ras_affine):
    """Reorient a NIfTI array to (slice, row, col) = (S, P, L)-ascending like an axial DICOM
    stack (what radipop_widgets.io.nifti does) and compute the matching Study.affine.

    Returns (study, labels): a Study of zero HU and ``data_ijk`` as uint8 labels on it.
    """
    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(nifti_ras_affine), nib.orientations.axcodes2ornt("LPS"))
    lps_data = nib.orientations.apply_orientation(data_ijk, transform)
    ras = nifti_ras_affine @ nib.orientations.inv_ornt_aff(transform, data_ijk.shape)
    swap = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras @ swap
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    labels = np.ascontiguousarray(lps_data.transpose(2, 1, 0)).astype(np.uint8)
    study = Study(hu=np.zeros(labels.shape, np.int16), spacing=tuple(zooms), affine=affine)
    return study, labels


# ---------------------------------------------------------------- DICOM files

def stored_values(n, rows, cols, seed=0, low=0, high=2000, dtype=np.uint16):
    """Random stored pixel values (n, rows, cols)."""
    return np.random.default_rng(seed).integers(low, high, (n, rows, cols)).astype(dtype)


def ct_slice(stored, position, *, iop=AXIAL, pixel_mm=(0.7, 0.8), slope=1.0,
             intercept=-1024.0, series_uid="1.2.826.0.1.3680043.8.498.1",
             study_uid="1.2.826.0.1.3680043.8.498.2", frame_uid="1.2.826.0.1.3680043.8.498.3",
             sop_uid=None, instance_number=1, modality="CT", photometric="MONOCHROME2",
             bits_stored=12, series_number=3, description="synthetic abdomen",
             image_type=("ORIGINAL", "PRIMARY", "AXIAL")) -> Dataset:
    """One single-frame CT Image Storage dataset holding ``stored`` (rows, cols)."""
    sop_uid = generate_uid() if sop_uid is None else sop_uid
    sop_class = MRImageStorage if modality == "MR" else CTImageStorage
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality, ds.ImageType = modality, list(image_type)
    ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.SeriesNumber, ds.SeriesDescription = series_number, description
    ds.InstanceNumber = instance_number
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.SliceThickness = "2.5"
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = [float(v) for v in pixel_mm]
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return ds


def save(ds, path, transfer_syntax=ExplicitVRLittleEndian) -> Path:
    """Write ``ds`` as a DICOM file, compressed when ``transfer_syntax`` says so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if transfer_syntax == JPEGLosslessSV1:
        frame = encode_jpeg_lossless(ds.pixel_array.view(np.uint16), precision=16)
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    elif transfer_syntax.is_compressed:
        ds.compress(transfer_syntax)
    elif not transfer_syntax.is_little_endian:
        ds.PixelData = ds.pixel_array.byteswap().tobytes()
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    else:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ct_series(folder, n=5, rows=8, cols=10, *, step=2.5, origin=ORIGIN,
                    iop=AXIAL, stored=None, transfer_syntax=ExplicitVRLittleEndian, seed=0,
                    names=None, **slice_kw):
    """Write a CT series into ``folder``; returns (paths, stored) in ascending position.

    Files get shuffled names and InstanceNumber decreasing with position, so neither
    tells the order. ``slice_kw`` goes to ``ct_slice``.
    """
    folder = Path(folder)
    if stored is None:
        stored = stored_values(n, rows, cols, seed=seed)
    n = len(stored)
    normal = np.cross(iop[:3], iop[3:])
    shuffled = np.random.default_rng(seed).permutation(n)
    paths = []
    for z in range(n):
        ds = ct_slice(stored[z], np.asarray(origin) + z * step * normal,
                      iop=iop, instance_number=n - z, **slice_kw)
        name = names[z] if names else f"img_{shuffled[z]:03d}_{seed}"
        paths.append(save(ds, folder / name, transfer_syntax))
    return paths, stored


def enhanced_ct(stored, positions, *, iop=AXIAL, pixel_mm=(0.7, 0.8), thickness=2.5,
                rescales=None, per_frame=(), series_uid="1.2.826.0.1.3680043.8.498.11",
                sop_uid=None, instance_number=1, bits_stored=12) -> Dataset:
    """One Enhanced CT Image Storage dataset: frame ``i`` holds ``stored[i]`` at ``positions[i]``.

    Orientation, pixel measures and rescale go into the shared functional groups, or
    into every frame's group for the names listed in ``per_frame`` (``"orientation"``,
    ``"measures"``, ``"rescale"``). ``rescales`` is one (slope, intercept) per frame
    (default (1, -1024)); per-frame rescales need ``"rescale"`` in ``per_frame``.
    """
    n = len(stored)
    rescales = rescales or [(1.0, -1024.0)] * n
    sop_uid = sop_uid or generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedCTImageStorage, sop_uid
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, "1.2.826.0.1.3680043.8.498.12"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.13"
    ds.SeriesNumber, ds.SeriesDescription = 5, "enhanced abdomen"
    ds.InstanceNumber = instance_number
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.NumberOfFrames, (ds.Rows, ds.Columns) = n, stored.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0

    def item(**kw):
        d = Dataset()
        for key, value in kw.items():
            setattr(d, key, value)
        return d

    def groups(i):
        return {"orientation": ("PlaneOrientationSequence",
                                item(ImageOrientationPatient=[float(v) for v in iop])),
                "measures": ("PixelMeasuresSequence",
                             item(PixelSpacing=[float(v) for v in pixel_mm],
                                  SliceThickness=thickness)),
                "rescale": ("PixelValueTransformationSequence",
                            item(RescaleSlope=rescales[i][0], RescaleIntercept=rescales[i][1],
                                 RescaleType="HU"))}

    shared = Dataset()
    for name, (keyword, value) in groups(0).items():
        if name not in per_frame:
            setattr(shared, keyword, [value])
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for i in range(n):
        frame = item(PlanePositionSequence=[item(
            ImagePositionPatient=[float(v) for v in positions[i]])])
        for name, (keyword, value) in groups(i).items():
            if name in per_frame:
                setattr(frame, keyword, [value])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return ds


def shuffled_frames(n=6, rows=8, cols=10, step=2.5, seed=0, dtype=np.uint16, low=0, high=2000):
    """Stored values in ascending position, and a frame order that is not ascending:
    (stored, order, positions) with frame ``i`` = ``stored[order[i]]`` at ``positions[i]``."""
    stored = stored_values(n, rows, cols, seed=seed, low=low, high=high, dtype=dtype)
    order = np.random.default_rng(seed).permutation(n)
    positions = [ORIGIN + (0, 0, step * z) for z in order]
    return stored, order, positions


def save_raw(ds, path, *, implicit_vr=True) -> Path:
    """Write ``ds`` without preamble, DICM prefix and file meta (a bare little-endian dataset)."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit_vr
    write_dataset(buffer, ds)
    Path(path).write_bytes(buffer.getvalue())
    return Path(path)


def encode_jpeg_lossless(image, precision=16) -> bytes:
    """Encode a 2-D unsigned image as JPEG lossless (process 14, selection value 1).

    A minimal encoder so the JPEG lossless decoding path can be tested: one
    component, one Huffman table with 5-bit codes for the 17 difference categories.
    """
    image = np.asarray(image, np.int64)
    rows, cols = image.shape
    modulo = 1 << 16
    predicted = np.empty_like(image)
    predicted[0, 0] = 1 << (precision - 1)
    predicted[0, 1:] = image[0, :-1]
    predicted[1:, 0] = image[:-1, 0]
    predicted[1:, 1:] = image[1:, :-1]
    diff = (image - predicted) % modulo
    diff[diff >= modulo // 2] -= modulo
    bits = []
    for d in diff.ravel().tolist():
        size = 16 if d == -32768 else abs(d).bit_length()
        bits.append(format(size, "05b"))
        if 0 < size < 16:
            bits.append(format(d if d > 0 else d - 1 + (1 << size), f"0{size}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    entropy = bytearray()
    for i in range(0, len(stream), 8):
        byte = int(stream[i:i + 8], 2)
        entropy.append(byte)
        if byte == 0xFF:
            entropy.append(0x00)

    def segment(marker, payload):
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    sof = bytes([precision]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes(
        [1, 1, 0x11, 0])
    counts = [0] * 16
    counts[4] = 17
    dht = bytes([0x00]) + bytes(counts) + bytes(range(17))
    sos = bytes([1, 1, 0x00, 1, 0, 0])
    return (b"\xff\xd8" + segment(0xC3, sof) + segment(0xC4, dht) + segment(0xDA, sos)
            + bytes(entropy) + b"\xff\xd9")


EMPTY_UIDS = {"sop_uid": "", "series_uid": "", "study_uid": ""}


def dicom_study(folder, shape=(4, 16, 20), *, empty_uids=False, seed=0) -> Study:
    """Write a small axial CT series into ``folder`` and return its Study (read back by
    :func:`study_from_files`, not by the loader).

    The series gets fresh series, study and frame-of-reference UIDs, or with
    ``empty_uids`` empty SOP, series and study UIDs (as anonymised Siemens exports have).
    """
    n, rows, cols = shape
    uids = dict(EMPTY_UIDS) if empty_uids else {"series_uid": generate_uid(),
                                                "study_uid": generate_uid()}
    paths, _ = write_ct_series(folder, n, rows, cols, seed=seed, frame_uid=generate_uid(),
                               **uids)
    return study_from_files(paths)


def study_from_files(paths) -> Study:
    """A Study from single-frame axial DICOM files, slices by ascending z (no loader)."""
    datasets = [pydicom.dcmread(p) for p in paths]
    order = np.argsort([float(ds.ImagePositionPatient[2]) for ds in datasets])
    datasets = [datasets[i] for i in order]
    paths = [paths[i] for i in order]
    hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                   for ds in datasets]).astype(np.int16)
    iop = np.asarray(datasets[0].ImageOrientationPatient, float)
    rows_mm, cols_mm = (float(v) for v in datasets[0].PixelSpacing)
    p0 = np.asarray(datasets[0].ImagePositionPatient, float)
    step_vec = np.asarray(datasets[1].ImagePositionPatient, float) - p0
    step = float(np.linalg.norm(step_vec))
    spacing = (step, rows_mm, cols_mm)
    affine = affine_from_geometry(p0, iop[:3], iop[3:], step_vec / step, spacing)
    first = datasets[0]
    return Study(
        hu=hu, spacing=spacing, affine=affine,
        series_uid=first.SeriesInstanceUID or None, study_uid=first.StudyInstanceUID or None,
        frame_of_reference_uid=first.get("FrameOfReferenceUID") or None,
        sources=[SliceSource(str(p), ds.SOPInstanceUID or None, int(ds.InstanceNumber))
                 for p, ds in zip(paths, datasets)],
        path=Path(paths[0]).parent)


# ---------------------------------------------------------------- NIfTI files

def write_nifti(path, data, affine, slope=None, inter=None) -> Path:
    """Save ``data`` as NIfTI at ``path`` (``.nii`` or ``.nii.gz``), scaled when told."""
    img = nib.Nifti1Image(data, affine)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, path)
    return Path(path)


def ras_volume(shape=(6, 5, 4), seed=0):
    """Random int16 HU on a RAS grid: i -> right, j -> anterior, k -> superior."""
    data = np.random.default_rng(seed).integers(-1000, 2000, shape).astype(np.int16)
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = (-20.0, 15.0, 100.0)
    return data, affine
