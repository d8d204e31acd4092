"""Seeded fuzz of the loader and of session folders (issue 9).

A few hundred mutations of small valid inputs: DICOM series (single-frame, deflated,
Enhanced multi-frame), NIfTI-1 / NIfTI-2 files (plain and gzipped), and session folders
(session.json and labels.nii.gz). The only outcomes allowed are a correct load or a
``StudyError`` / ``SessionError``; the mutations run in a child process under an address
space limit, which reports its peak memory.

Run it by hand with another seed or more cases:
``PYTHONPATH=tests .venv/bin/python tests/test_fuzz.py --seed 7 --cases 2000``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
SEED = 20240909
CASES = 360                      # split between DICOM, NIfTI and session folders
MEMORY_LIMIT = 256 * 2 ** 20     # RADIPOP_MEMORY_LIMIT of the child: one volume
ADDRESS_SPACE = 4 * 2 ** 30      # the child cannot map more than this
PEAK_RSS_MB = 700                # ... and may not have used more than this


# ---------------------------------------------------------------- hostile values

TEXTS = ["", " ", "abc", "0", "-1", "-0", "nan", "NaN", "inf", "-inf", "1e300", "-1e300",
         "1e-300", "3", r"1\2", r"1\2\3", r"1\0\0\0\1", r"3\0\0\0\3\0", r"0\0\0\0\0\0",
         r"1\0\0\0\1\0\0", r"0.7.1\0.8", "1,5", "\x00\x00", "99999999999999999999",
         r"1\1", "PALETTE COLOR", "RGB", "MONOCHROME1", "YBR_FULL", "CT", "SEG", "1.2.3..4"]
DICOM_ATTRIBUTES = [  # (tag, VR)
    (0x00280030, "DS"), (0x00200037, "DS"), (0x00200032, "DS"), (0x00281053, "DS"),
    (0x00281052, "DS"), (0x00201041, "DS"), (0x00180050, "DS"), (0x00200013, "IS"),
    (0x00280008, "IS"), (0x00280004, "CS"), (0x00080060, "CS"), (0x00080008, "CS"),
    (0x00200011, "IS"), (0x0020000E, "UI"), (0x00080016, "UI"), (0x00080018, "UI"),
]
BINARY_ATTRIBUTES = [0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102,
                     0x00280103, 0x00280002]
JSON_VALUES = [None, True, False, 0, -1, 1.5, 2 ** 70, 1e308, float("nan"), float("inf"),
               "", "x", "2", "\x00", "/nowhere\x00/ct.nii", [], [1, 2], [[1]] * 4, {},
               {"a": 1}, [0, 0, 0], [1, 2, 3], [2 ** 31, 2, 2], [[0] * 4] * 4]


def _deep(depth):
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------- inputs

def _dicom_inputs(root: Path, rng: random.Random):
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
    from synthetic import enhanced_ct, save, shuffled_frames, write_ct_series

    series = root / "series"
    write_ct_series(series, n=4, rows=8, cols=10)
    deflated = root / "deflated"
    write_ct_series(deflated, n=3, rows=8, cols=10, transfer_syntax=DeflatedExplicitVRLittleEndian)
    enhanced = root / "enhanced"
    stored, _, positions = shuffled_frames(n=4)
    save(enhanced_ct(stored, positions), enhanced / "mf.dcm", ExplicitVRLittleEndian)
    return [series, deflated, enhanced]


def _nifti_inputs(root: Path):
    import nibabel as nib
    from synthetic import ras_volume

    data, affine = ras_volume((6, 5, 4))
    paths = []
    for name, img in (("a.nii", nib.Nifti1Image(data, affine)),
                      ("b.nii.gz", nib.Nifti1Image(data, affine)),
                      ("c.nii", nib.Nifti2Image(data, affine))):
        nib.save(img, root / name)
        paths.append(root / name)
    return paths


def _session_input(root: Path):
    from synthetic import blob_labels, synthetic_study

    from radipop_widgets.persist import default_session_dir, save_session

    study = synthetic_study(shape=(5, 12, 14))
    folder = save_session(default_session_dir(study, root / "ws"), blob_labels(study.shape),
                          {"thresholds": [[300, 180, 60]] * 5, "cuts": {"2": [[[0, 1], [3, 4]]]}},
                          study, session_id="fuzz")
    return study, folder


# ---------------------------------------------------------------- mutations

def _flip_bytes(data: bytes, rng, start=0, end=None, count=None) -> bytes:
    data = bytearray(data)
    end = len(data) if end is None else min(end, len(data))
    if end <= start:
        return bytes(data)
    for _ in range(count or rng.randint(1, 8)):
        i = rng.randrange(start, end)
        data[i] = rng.choice([0, 0xFF, rng.randrange(256), data[i] ^ (1 << rng.randrange(8))])
    return bytes(data)


def _mutate_bytes(data: bytes, rng, header_end: int) -> bytes:
    what = rng.choice(["flip_header", "flip_any", "truncate", "insert", "zero_run"])
    if what == "flip_header":
        return _flip_bytes(data, rng, 0, header_end)
    if what == "flip_any":
        return _flip_bytes(data, rng)
    if what == "truncate":
        return data[:rng.randrange(len(data))]
    if what == "insert":
        i = rng.randrange(len(data))
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[i:]
    i = rng.randrange(len(data))
    return data[:i] + bytes(rng.randint(1, 64)) + data[i + rng.randint(1, 64):]


def _mutate_dicom(folder: Path, rng) -> str:
    import pydicom
    from synthetic import set_raw

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    path = rng.choice(files)
    kind = rng.choice(["attribute", "attribute", "binary", "bytes", "bytes", "sequence"])
    if kind == "bytes":
        path.write_bytes(_mutate_bytes(path.read_bytes(), rng, 900))
        return f"bytes {path.name}"
    if kind == "sequence":
        tag, vr = rng.choice([(0x00200037, "DS"), (0x00280030, "DS"), (0x00200032, "DS"),
                              (0x00281053, "DS"), (0x00281052, "DS")])
        where = rng.choice(["PlaneOrientationSequence", "PixelMeasuresSequence",
                            "PixelValueTransformationSequence", "PlanePositionSequence"])
    elif kind == "binary":
        tag, vr = rng.choice(BINARY_ATTRIBUTES), "US"
    else:
        tag, vr = rng.choice(DICOM_ATTRIBUTES)
    value = (bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 2, 2, 4])))
             if kind == "binary" else rng.choice(TEXTS + ["<deleted>"]))
    targets = files if rng.random() < 0.4 else [path]  # one file, or the whole series
    for target in targets:
        ds = pydicom.dcmread(target)
        item = ds
        if kind == "sequence":
            if "SharedFunctionalGroupsSequence" not in ds:
                continue
            groups = (ds.PerFrameFunctionalGroupsSequence[0] if where == "PlanePositionSequence"
                      else ds.SharedFunctionalGroupsSequence[0])
            item = groups[where][0]
        if value == "<deleted>":
            if pydicom.tag.Tag(tag) in item:
                del item[pydicom.tag.Tag(tag)]
        else:
            set_raw(item, tag, vr, value)
        ds.save_as(target, enforce_file_format=False)
    return f"{kind} {tag:08x}={value!r} in {len(targets)} file(s)"


def _mutate_nifti(path: Path, rng) -> str:
    from synthetic import patch_nifti_header

    kind = rng.choice(["field", "field", "field", "bytes", "gzip"])
    if kind == "bytes" or (kind == "gzip" and not path.name.endswith(".gz")):
        raw = path.read_bytes()
        path.write_bytes(_mutate_bytes(raw, rng, 560 if "c.nii" in path.name else 352))
        return "bytes"
    if kind == "gzip":
        raw = gzip.decompress(path.read_bytes())
        raw = _mutate_bytes(raw, rng, 352)
        path.write_bytes(gzip.compress(raw, 1)[:None if rng.random() < 0.7 else -rng.randint(1, 40)])
        return "gzip"
    field, value = rng.choice([
        ("dim", [3, rng.choice([0, -1, 1, 6, 2 ** 15 - 1, 7]), 5, 4, 1, 1, 1, 1]),
        ("dim", [rng.choice([0, 1, 2, 4, 5, 8, 9, -3]), 6, 5, 4, rng.choice([1, 2, 0]), 1, 1, 1]),
        ("pixdim", [1, rng.choice([0, -1, np.nan, np.inf, 1e30, 0.8]), 0.9, 2.5, 1, 1, 1, 1]),
        ("srow_x", [rng.choice([0, np.nan, np.inf, 1e30, -0.8, 0.8]), 0, 0, 0]),
        ("srow_y", [0, rng.choice([0, np.nan, 0.9]), rng.choice([0, 0.9]), 0]),
        ("sform_code", rng.choice([0, 1, 2, 99])), ("qform_code", rng.choice([0, 1, 5])),
        ("quatern_b", rng.choice([np.nan, 2.0, 0.5, -1.0])),
        ("datatype", rng.choice([2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536,
                                 1792, 2048, 2304, 0, 7, 255])),
        ("bitpix", rng.choice([0, 1, 8, 16, 24, 128])),
        ("vox_offset", rng.choice([0, 1, 351, 353, 10 ** 6, -5])),
        ("scl_slope", rng.choice([0, np.nan, np.inf, 1e30, -1, 2])),
        ("scl_inter", rng.choice([np.nan, np.inf, -1e30, -1024])),
    ])
    try:
        patch_nifti_header(path, **{field: value})
    except Exception:  # nibabel refuses the value itself (e.g. a float into an int field)
        return f"field {field} (not written)"
    return f"field {field}={value!r}"


def _mutate_session(folder: Path, rng) -> str:
    from synthetic import gzip_bomb_nifti

    from radipop_widgets.persist import LABELS_FILE, PREVIOUS_LABELS_FILE, STATE_FILE

    state_path, labels_path = folder / STATE_FILE, folder / LABELS_FILE
    kind = rng.choice(["json_value", "json_value", "json_delete", "json_bytes", "json_deep",
                       "labels_bytes", "labels_bomb", "labels_gone", "previous"])
    if kind.startswith("json") and kind != "json_bytes":
        info = json.loads(state_path.read_text())
        key = rng.choice(sorted(info) + ["state"])
        if kind == "json_delete":
            info.pop(key, None)
            state_path.write_text(json.dumps(info))
            return f"deleted {key}"
        if kind == "json_deep":
            text = json.dumps(dict(info, **{key: None})).replace(
                f'"{key}": null', f'"{key}": {_deep(rng.choice([100, 5000, 200000]))}')
            state_path.write_text(text)
            return f"deep {key}"
        value = rng.choice(JSON_VALUES)
        if key == "state" and rng.random() < 0.5:
            info["state"] = dict(info["state"], thresholds=value)
        else:
            info[key] = value
        state_path.write_text(json.dumps(info))
        return f"{key}={value!r}"
    if kind == "json_bytes":
        state_path.write_bytes(_mutate_bytes(state_path.read_bytes(), rng, 2000))
        return "json bytes"
    if kind == "labels_bytes":
        labels_path.write_bytes(_mutate_bytes(labels_path.read_bytes(), rng, 60))
        return "labels bytes"
    if kind == "labels_bomb":
        gzip_bomb_nifti(labels_path, rng.choice([(14, 12, 5), (2048, 2048, 64), (14, 12, 500)]))
        return "labels bomb"
    if kind == "labels_gone":
        labels_path.unlink()
        return "labels gone"
    shutil.copyfile(labels_path, folder / PREVIOUS_LABELS_FILE)
    labels_path.write_bytes(_mutate_bytes(labels_path.read_bytes(), rng, 60))
    return "previous kept, labels damaged"


# ---------------------------------------------------------------- checks

def _check_study(study) -> None:
    hu = study.hu
    assert hu.dtype == np.int16 and hu.ndim == 3 and min(hu.shape) > 0, hu.shape
    assert len(study.spacing) == 3 and all(np.isfinite(study.spacing)), study.spacing
    assert min(study.spacing) > 0, study.spacing
    assert np.all(np.isfinite(study.affine)) and study.affine.shape == (4, 4)
    assert len(study.sources) == hu.shape[0]


def _check_loaded(labels, state, info) -> None:
    assert labels.dtype == np.uint8 and labels.shape == tuple(info["shape"])
    assert isinstance(state, dict)


def run(seed: int = SEED, cases: int = CASES, workdir=None) -> dict:
    """Run the fuzz; returns counts of each outcome and the failures (repr + traceback)."""
    from radipop_widgets.errors import SessionError, StudyError
    from radipop_widgets.io import load_study, scan_studies
    from radipop_widgets.persist import (
        list_sessions,
        load_session,
        open_session,
        session_choices,
    )

    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="radipop-fuzz-", dir=workdir))
    outcomes, failures = {"loaded": 0, "refused": 0}, []
    try:
        pristine = root / "pristine"
        pristine.mkdir()
        dicoms = _dicom_inputs(pristine, rng)
        niftis = _nifti_inputs(pristine)
        study, session = _session_input(pristine)
        for i in range(cases):
            case = root / f"case{i}"
            family = ("dicom", "nifti", "session")[i % 3]
            try:
                if family == "dicom":
                    source = rng.choice(dicoms)
                    target = case / source.name
                    shutil.copytree(source, target)
                    what = _mutate_dicom(target, rng)
                    load = lambda target=target: load_study(target)
                elif family == "nifti":
                    source = rng.choice(niftis)
                    case.mkdir()
                    target = case / source.name
                    shutil.copyfile(source, target)
                    what = _mutate_nifti(target, rng)
                    load = lambda target=target: load_study(target)
                else:
                    shutil.copytree(pristine / "ws", case / "ws")
                    target = case / "ws" / session.name
                    what = _mutate_session(target, rng)
                    load = None
            except Exception:
                failures.append(f"case {i} ({family}): the mutation itself failed\n"
                                + traceback.format_exc(limit=3))
                continue
            try:
                if load is not None:
                    scan_studies(case)  # the study picker: never raises for a bad file
            except BaseException:
                failures.append(f"case {i} ({family}, {what}): scan_studies raised\n"
                                + traceback.format_exc(limit=6))
            try:
                if load is not None:
                    _check_study(load())
                else:
                    list_sessions(case / "ws")
                    session_choices(study, case / "ws", include_damaged=True)
                    loaded = open_session(target, study)
                    _check_loaded(*loaded)
                    labels, state = load_session(target)
                    _check_loaded(labels, state, loaded.info)
                outcomes["loaded"] += 1
            except (StudyError, SessionError) as exc:
                outcomes["refused"] += 1
                name = type(exc).__name__
                outcomes[name] = outcomes.get(name, 0) + 1
            except BaseException:
                failures.append(f"case {i} ({family}, {what}): "
                                + traceback.format_exc(limit=6))
            finally:
                shutil.rmtree(case, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"outcomes": outcomes, "failures": failures, "peak_rss_mb": peak}


def test_fuzz_loader_and_session_folders(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RADIPOP_MEMORY_LIMIT=str(MEMORY_LIMIT))
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(Path(__file__)), "--seed", str(SEED),
                             "--cases", str(CASES), "--workdir", str(tmp_path), "--json"],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["failures"], "\n\n".join(report["failures"][:10])
    outcomes = report["outcomes"]
    assert outcomes["loaded"] + outcomes["refused"] == CASES
    assert outcomes["loaded"] > CASES // 10 and outcomes["refused"] > CASES // 4, outcomes
    assert report["peak_rss_mb"] < PEAK_RSS_MB, report
    assert time.monotonic() - started < 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--cases", type=int, default=CASES)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON line (for the test)")
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    os.environ.setdefault("RADIPOP_MEMORY_LIMIT", str(MEMORY_LIMIT))
    import warnings
    warnings.simplefilter("ignore")
    report = run(args.seed, args.cases, args.workdir)
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report["outcomes"], indent=1), f"peak {report['peak_rss_mb']:.0f} MB")
        print("\n\n".join(report["failures"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
