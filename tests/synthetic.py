"""Synthetic studies for the tests: the one place that builds them.

- In memory, no files: :func:`synthetic_study`, :func:`blob_labels`,
  :func:`oblique_affine`, :func:`study_like_nifti_loader`.
- DICOM files (pydicom): :func:`ct_slice` and :func:`write_ct_series` (single-frame CT),
  :func:`enhanced_ct` and :func:`shuffled_frames` (multi-frame), :func:`save`,
  :func:`save_raw`, :func:`encode_jpeg_lossless`; :func:`dicom_study` writes a series with
  fresh (or empty) UIDs and returns its Study, read back by :func:`study_from_files`.
- NIfTI files (nibabel): :func:`write_nifti`, :func:`ras_volume`, :func:`patch_nifti_header`,
  :func:`orientation_affine` (the 48 axis permutations and flips of a voxel grid).
- Hostile files: :func:`set_raw` (a DICOM attribute holding any text), :func:`zeros_gzip`
  and :func:`gzip_bomb_nifti` (a small .nii.gz that inflates to a huge volume),
  :func:`deflated_bomb_dicom`, :func:`array_pickle_bomb` (a pickle whose array is huge).

Studies are built here directly, not through ``load_study``, so that the export and
persist tests check against DICOM geometry computed independently of the loader. Where
anatomy matters, use the package's phantom (``radipop_widgets.io.phantom``) instead.
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
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


def patch_nifti_header(path, out=None, **fields) -> Path:
    """Rewrite header fields of a NIfTI-1 or NIfTI-2 file (``.nii`` or ``.nii.gz``) without
    nibabel's checks, so that impossible values (NaN, zero or negative dimensions) land on
    disk; ``out`` defaults to ``path``."""
    path = Path(path)
    out = path if out is None else Path(out)
    raw = path.read_bytes()
    zipped = raw[:2] == b"\x1f\x8b"
    if zipped:
        raw = gzip.decompress(raw)
    klass = nib.Nifti2Header if int.from_bytes(raw[:4], "little") == 540 else nib.Nifti1Header
    size = klass.sizeof_hdr
    header = klass(binaryblock=raw[:size], check=False)
    for key, value in fields.items():
        header[key] = value
    raw = header.binaryblock + raw[size:]
    out.write_bytes(gzip.compress(raw, 1) if zipped else raw)
    return out


def orientation_affine(code, shape, zooms=(3.0, 3.0, 3.0), origin=(-100.0, 80.0, -300.0)):
    """A RAS affine whose voxel axes point along ``code`` (three letters, e.g. "RAS", "LPS",
    "SPL", "AIR"), with ``zooms`` mm and voxel (0, 0, 0) at ``origin``."""
    ornt = nib.orientations.axcodes2ornt(tuple(code))
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for axis, (target, sign) in enumerate(ornt):
        affine[int(target), axis] = sign * zooms[axis]
    affine[:3, 3] = origin
    return affine


#: The 48 axis codes of a voxel grid: every permutation of the three axes, each either way.
ORIENTATION_CODES = ["".join(pair[s] for pair, s in zip(axes, signs))
                     for axes in itertools.permutations((("R", "L"), ("A", "P"), ("S", "I")))
                     for signs in itertools.product((0, 1), repeat=3)]


def set_raw(ds, tag, vr, text):
    """Put ``text`` into ``ds`` as the raw value of ``tag`` (VR ``vr``), unchecked: pydicom
    converts it only when the attribute is read, as for a file written by a faulty tool."""
    value = text.encode("latin1") if isinstance(text, str) else bytes(text)
    if len(value) % 2:
        value += b" "
    tag = pydicom.tag.Tag(tag)
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    return ds


def zeros_gzip(n_bytes, head=b"", chunk=1 << 24) -> bytes:
    """A gzip stream of ``head`` followed by ``n_bytes`` zero bytes, built from repeated gzip
    members (a reader inflates them as one stream): ~1 KB per 1 MiB of zeros, in no time."""
    parts = [gzip.compress(head, 1)] if head else []
    member = gzip.compress(bytes(chunk), 9)
    full, rest = divmod(int(n_bytes), chunk)
    parts += [member] * full
    if rest:
        parts.append(gzip.compress(bytes(rest), 9))
    return b"".join(parts)


def gzip_bomb_nifti(path, shape, dtype=np.uint8, affine=None) -> Path:
    """A ``.nii.gz`` whose header declares ``shape`` (i, j, k) of ``dtype`` zeros: a few KB
    on disk per GB inflated."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(np.eye(4) if affine is None else affine, code=1)
    head = header.binaryblock + b"\x00" * 4  # no extensions; data at offset 352
    n_bytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    Path(path).write_bytes(zeros_gzip(n_bytes, head))
    return Path(path)


def deflated_bomb_dicom(path, inflated_bytes, rows=8, cols=10) -> Path:
    """A Deflated Explicit VR Little Endian CT slice whose deflated dataset inflates to
    ``inflated_bytes`` (a private element full of zeros before the pixels) while its
    header declares an ``rows`` x ``cols`` image."""
    ds = ct_slice(np.zeros((rows, cols), np.uint16), ORIGIN)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    # An OB element of the given length, streamed as zeros: (0009,1000) OB, 4-byte length.
    length = int(inflated_bytes) & ~1
    element = (b"\x09\x00\x00\x10" + b"OB\x00\x00" + length.to_bytes(4, "little"))
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = [compressor.compress(element)]
    zeros = bytes(1 << 24)
    left = length
    while left:
        n = min(left, len(zeros))
        deflated.append(compressor.compress(zeros[:n]))
        left -= n
    deflated.append(compressor.compress(body.getvalue()))
    deflated.append(compressor.flush())
    Path(path).write_bytes(b"\x00" * 128 + b"DICM" + meta.getvalue() + b"".join(deflated))
    return Path(path)


def array_pickle_bomb(shape=(30000, 30000), dtype="O", protocol=2) -> bytes:
    """A tiny pickle that makes numpy's ``_reconstruct`` allocate an array of ``shape``
    (30000 x 30000 objects: ~7 GB) the moment it is unpickled."""
    dims = b"".join(b"J" + int(n).to_bytes(4, "little", signed=True) for n in shape)
    tuple_op = {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(shape)]
    code = dtype.encode()
    return (b"\x80" + bytes([protocol]) + b"cnumpy.core.multiarray\n_reconstruct\n"
            + b"cnumpy\nndarray\n" + dims + tuple_op + b"X" + len(code).to_bytes(4, "little")
            + code + b"\x87R.")
