"""PACS benchmark: a 300-slice 512 x 512 CT series from Orthanc on localhost vs from files.

Writes the series (phantom slices, as ``bench_load.py`` does) to a temporary folder,
starts Orthanc with the DICOMweb plugin (``tests/orthanc.py``: its own config and
storage, 127.0.0.1, authentication on), uploads the series, then times (median of
``--runs``):

- ``files``: ``load_study(folder)`` (warm page cache);
- ``pacs, first open``: ``DicomWeb.load(uid, refresh=True)``: QIDO lookup, WADO-RS
  download into the cache, ``load_study`` of the cache (its download part shown apart);
- ``pacs, reopen``: ``DicomWeb.load(uid)`` from the cache (no request).

Goal (issue 12): first open <= 2 x files. Orthanc is stopped at the end.

Usage: python benchmarks/bench_pacs.py [--slices 300] [--runs 3] [--j2k]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from bench_load import write_series  # noqa: E402
from orthanc import Orthanc  # noqa: E402

from radipop_widgets.dicomweb import PASSWORD_ENV, USER_ENV, DicomWeb  # noqa: E402
from radipop_widgets.io import load_study  # noqa: E402


def timed(function, runs):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--j2k", action="store_true", help="JPEG 2000 lossless files")
    args = parser.parse_args()
    syntax = JPEG2000Lossless if args.j2k else ExplicitVRLittleEndian
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "series"
        write_series(folder, args.slices, syntax)
        files_s, study = timed(lambda: load_study(folder), args.runs)
        with Orthanc(tmp / "orthanc") as server:
            start = time.perf_counter()
            server.upload(folder)
            upload_s = time.perf_counter() - start
            os.environ[USER_ENV], os.environ[PASSWORD_ENV] = server.auth
            web = DicomWeb(server.url, cache=tmp / "cache")
            marks = {}

            def progress(done, total):
                if done == total // 2:
                    marks["downloaded"] = time.perf_counter()

            def first_open():
                marks["start"] = time.perf_counter()
                loaded = web.load(study.series_uid, progress=progress, refresh=True)
                marks.setdefault("runs", []).append(marks["downloaded"] - marks["start"])
                return loaded

            first_s, loaded = timed(first_open, args.runs)
            reopen_s, _ = timed(lambda: web.load(study.series_uid), args.runs)
    assert (loaded.hu == study.hu).all() and loaded.spacing == study.spacing
    download_s = statistics.median(marks["runs"])
    mb = study.hu.nbytes / 2 ** 20
    print(f"{args.slices} slices of 512 x 512 ({mb:.0f} MiB int16), "
          f"{'JPEG 2000 lossless' if args.j2k else 'uncompressed'}; median of {args.runs}; "
          f"upload to Orthanc {upload_s:.1f} s (once)")
    print("| load | s | ms/slice | x files |")
    print("|---|---|---|---|")
    for name, seconds in (("files (load_study)", files_s),
                          ("PACS, first open (download + load)", first_s),
                          ("  of which download (QIDO + WADO-RS to cache)", download_s),
                          ("PACS, reopen (cache)", reopen_s)):
        print(f"| {name} | {seconds:.2f} | {1000 * seconds / args.slices:.1f} | "
              f"{seconds / files_s:.2f} |")
    print(f"goal first open <= 2 x files: {'met' if first_s <= 2 * files_s else 'NOT met'}")


if __name__ == "__main__":
    main()
