"""Loading benchmark: ms per slice and peak memory of load_study on a 512 x 512 series.

Writes (to a temporary folder) an uncompressed and a JPEG 2000 lossless CT series made
of phantom slices, and gzipped NIfTI volumes (uint16 with scl_inter -1024, as dcm2niix
writes, and float32 with fractional values), loads each, and prints the time per slice and the peak memory
allocated while loading against the int16 volume: Python/numpy allocations (tracemalloc) and the
process's peak resident memory above its level before loading (VmHWM, reset through
/proc/self/clear_refs, in a fresh child process; this also counts the codecs' C buffers;
``ru_maxrss`` is not used because Linux carries it over from the parent across exec).
Goals (issue 2): at most 10 ms per uncompressed slice, peak at most 1.5 x the volume.
The files are freshly written, so they are read from the page cache (warm).

Usage: python benchmarks/bench_load.py [--slices 300] [--j2k-slices 300]
       [--nifti-slices 300]   (--slices also sets the Enhanced CT frame count)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radipop_widgets.io import load_study  # noqa: E402
from radipop_widgets.io.phantom import make_phantom  # noqa: E402

DISTINCT = 12  # distinct phantom slices, repeated with fresh noise


def write_series(folder: Path, n: int, syntax) -> None:
    """Write an n-slice 512 x 512 CT series of phantom slices in transfer syntax ``syntax``."""
    folder.mkdir(parents=True)
    hu, _ = make_phantom(shape=(DISTINCT, 512, 512))
    rng = np.random.default_rng(0)
    series_uid, study_uid = generate_uid(), generate_uid()
    for k in range(n):
        stored = hu[k % DISTINCT].astype(np.int32) + 1024 + rng.integers(-3, 4, (512, 512))
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.Modality = CTImageStorage, "CT"
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.InstanceNumber = n - k
        ds.ImagePositionPatient = [-200.0, -200.0, k * 1.0]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.8, 0.8]
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.clip(stored, 0, 4095).astype(np.uint16).tobytes()
        if syntax != ExplicitVRLittleEndian:
            ds.compress(syntax)
        ds.save_as(folder / f"f{(k * 7919) % n:05d}.dcm", enforce_file_format=True)


def write_enhanced(path: Path, n: int) -> None:
    """Write one uncompressed Enhanced CT file with n 512 x 512 frames (shared groups)."""
    hu, _ = make_phantom(shape=(DISTINCT, 512, 512))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = EnhancedCTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", generate_uid(), generate_uid()
    ds.NumberOfFrames, ds.Rows, ds.Columns = n, 512, 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1.0, 0, 0, 0, 1.0, 0]
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.8, 0.8]
    shared.PixelValueTransformationSequence = [Dataset()]
    shared.PixelValueTransformationSequence[0].RescaleSlope = 1
    shared.PixelValueTransformationSequence[0].RescaleIntercept = -1024
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(n):
        frame = Dataset()
        frame.PlanePositionSequence = [Dataset()]
        frame.PlanePositionSequence[0].ImagePositionPatient = [-200.0, -200.0, float(n - k)]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = (hu[np.arange(n) % DISTINCT] + 1024).astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)


def write_nifti(path: Path, n: int, kind: str) -> None:
    """Write an n-slice 512 x 512 gzipped NIfTI of phantom slices: "uint16" scaled or "float32"."""
    hu, _ = make_phantom(shape=(DISTINCT, 512, 512))
    volume = hu[np.arange(n) % DISTINCT].transpose(2, 1, 0)[::-1, ::-1]  # RAS (i, j, k)
    affine = np.diag([-0.8, -0.8, 1.0, 1.0])
    if kind == "uint16":
        img = nib.Nifti1Image((volume + 1024).astype(np.uint16), affine)
        img.header.set_slope_inter(1.0, -1024.0)
    else:
        img = nib.Nifti1Image(volume.astype(np.float32) + np.float32(0.25), affine)
    nib.save(img, path)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def child(folder: str) -> None:
    """Load in this fresh process; print times (first, second load), RSS growth, traced peak."""
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    study = load_study(folder)
    seconds = time.perf_counter() - start
    rss_peak = peak_rss_bytes() - before
    volume, n = study.hu.nbytes, study.n_slices
    del study
    start = time.perf_counter()
    load_study(folder)
    warm = time.perf_counter() - start
    tracemalloc.start()
    load_study(folder)
    traced = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"n": n, "seconds": seconds, "warm": warm, "volume": volume, "rss": rss_peak,
                      "traced": traced}))


def measure(folder: Path, label: str) -> None:
    out = subprocess.run([sys.executable, __file__, "--child", str(folder)], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.splitlines()[-1])
    mib = 2**20
    print(f"{label:<20} {r['n']:4d} slices {r['seconds'] * 1000 / r['n']:6.2f} ms/slice "
          f"({r['seconds']:5.2f} s; {r['warm'] * 1000 / r['n']:.2f} ms/slice on a second "
          f"load); volume {r['volume'] / mib:.1f} MiB; peak RSS growth "
          f"{r['rss'] / mib:.1f} MiB = {r['rss'] / r['volume']:.2f} x; tracemalloc peak "
          f"{r['traced'] / mib:.1f} MiB = {r['traced'] / r['volume']:.2f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--j2k-slices", type=int, default=300)
    parser.add_argument("--nifti-slices", type=int, default=300)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    with tempfile.TemporaryDirectory() as tmp:
        for n, syntax, label in [(args.slices, ExplicitVRLittleEndian, "uncompressed"),
                                 (args.j2k_slices, JPEG2000Lossless, "JPEG 2000 lossless")]:
            if n <= 0:
                continue
            folder = Path(tmp) / label.replace(" ", "_")
            start = time.perf_counter()
            write_series(folder, n, syntax)
            print(f"(wrote {n} {label} slices in {time.perf_counter() - start:.1f} s)")
            measure(folder, label)
        if args.slices > 0:
            path = Path(tmp) / "enhanced" / "ct.dcm"
            write_enhanced(path, args.slices)
            measure(path.parent, "Enhanced CT (1 file)")
        for kind in ("uint16", "float32") if args.nifti_slices > 0 else ():
            path = Path(tmp) / f"ct_{kind}.nii.gz"
            start = time.perf_counter()
            write_nifti(path, args.nifti_slices, kind)
            print(f"(wrote {args.nifti_slices} slices of {kind} NIfTI in "
                  f"{time.perf_counter() - start:.1f} s)")
            measure(path, f"NIfTI.gz {kind}")
    print("goals: <= 10 ms per uncompressed slice, peak <= 1.5 x the int16 volume")


if __name__ == "__main__":
    main()
