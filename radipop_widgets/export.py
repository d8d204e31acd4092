"""Label volume exports: NIfTI, per-organ masks, the original tool's pickles, DICOM SEG.

The NIfTI codec (geometry, writing, reading) is :mod:`radipop_widgets.labelmap`; its
public functions are importable from here too, where the README and the Session have
always found them. Every file is written atomically (:mod:`radipop_widgets.atomic`); the
exports of several files (legacy per-slice masks, organ masks) are written into a
temporary folder that then replaces the export folder whole, so that a crash leaves the
previous export or the new one, never a mix of the two. The DICOM SEG export is
:mod:`.dicom_seg` (its functions are importable from here).
"""

from __future__ import annotations

import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
from numpy._core import multiarray, numeric

from .atomic import atomic_folder, is_temporary
from .dicom_seg import dicom_seg_problem, export_dicom_seg
from .errors import MaskFileError, SessionError
from .labelmap import (check_labels, nifti_affine, read_nifti_labels, write_nifti_labels,
                       write_nifti_stream)
from .labels import MEASURED, label_name
from .study import Study

__all__ = ["dicom_seg_problem", "export_dicom_seg", "export_legacy", "export_organ_masks",
           "import_legacy_masks", "legacy_order", "nifti_affine", "read_nifti_labels",
           "write_nifti_labels", "write_nifti_stream"]


def export_organ_masks(folder, labels: np.ndarray, study: Study) -> dict[str, Path]:
    """Write ``liver.nii.gz`` and ``spleen.nii.gz`` (0/1 uint8) into ``folder``.

    Returns
    -------
    dict organ name -> path. Both files are written even when an organ is empty.
    """
    labels = check_labels(labels, study)
    folder = Path(folder)
    names = {o.value: f"{o.name}.nii.gz" for o in MEASURED}
    _check_export_folder(folder, lambda name: name in names.values(), "organ masks")
    with atomic_folder(folder) as staging:
        for label, name in names.items():
            write_nifti_labels(staging / name, (labels == label).view(np.uint8), study)
    return {label_name(label): folder / name for label, name in names.items()}


def _check_export_folder(folder: Path, ours, what: str) -> None:
    """Refuse to replace ``folder`` when it holds files that ``ours`` does not claim: an
    export of several files replaces its folder whole."""
    if not os.path.lexists(folder):
        return
    if not folder.is_dir() or folder.is_symlink():
        raise SessionError(f"{folder} is not a folder; choose a folder for the {what}.")
    others = sorted(name for name in os.listdir(folder)
                    if not ours(name) and not is_temporary(name))
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise SessionError(
            f"{folder} holds other files ({shown}); the {what} replace their folder as a "
            "whole, so export them into an empty or new folder (or one that holds only a "
            f"previous export of the {what}).")


# ---------------------------------------------------------------- legacy pickles

def legacy_order(study: Study) -> np.ndarray:
    """Volume slice index of legacy file ``<i>.p`` for each i.

    ``i`` is the 0-based rank by ascending InstanceNumber (ties and the order of
    equal numbers by volume order); volume order when any InstanceNumber is missing.

    Examples
    --------
    Instance numbers 30, 10, 20 on volume slices 0, 1, 2: ``0.p`` is slice 1.

    >>> from radipop_widgets.study import SliceSource
    >>> study = Study(hu=np.zeros((3, 2, 2), np.int16), spacing=(1, 1, 1), affine=np.eye(4),
    ...               sources=[SliceSource(instance_number=n) for n in (30, 10, 20)])
    >>> legacy_order(study)
    array([1, 2, 0])
    """
    numbers = [s.instance_number for s in study.sources]
    if len(numbers) != study.n_slices or any(n is None for n in numbers):
        return np.arange(study.n_slices)
    return np.argsort(np.asarray(numbers), kind="stable")


_NUMPY2_RECONSTRUCT = b"cnumpy._core.multiarray\n_reconstruct\n"
_NUMPY1_RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\n"


def _legacy_pickle(mask2d: np.ndarray) -> bytes:
    """Pickle a 2-D array so numpy 1.x (the original tool's environment) can read it.

    numpy 2 names its reconstructor ``numpy._core.multiarray``, which numpy 1.x
    cannot import; numpy 1.x wrote ``numpy.core.multiarray``, which numpy 2 still
    reads. Protocol 3 puts that name in the first opcode after the header.
    """
    data = pickle.dumps(np.ascontiguousarray(mask2d), protocol=3)
    head = data[2:2 + len(_NUMPY2_RECONSTRUCT)]
    if head == _NUMPY2_RECONSTRUCT:
        data = data[:2] + _NUMPY1_RECONSTRUCT + data[2 + len(_NUMPY2_RECONSTRUCT):]
    return data


def export_legacy(folder, labels: np.ndarray, study: Study) -> list[Path]:
    """Write the original tool's format: ``<i>.p`` for every slice, empty ones included.

    Each file is a pickled 2-D uint8 array (rows, columns) in ``pixel_array``
    orientation; ``i`` is the rank by ascending InstanceNumber (see :func:`legacy_order`).
    Values as in ``labels``: 1 liver, 2 spleen, 3.. other (the original tool showed
    values above 2 as unlabelled candidates).

    The files are written into a temporary folder that replaces ``folder`` whole: a
    crash leaves the previous export or this one, never slices of both. ``folder`` must
    therefore hold nothing but legacy masks (a previous export), or not exist.

    Raises
    ------
    SessionError
        ``folder`` holds other files.
    """
    labels = check_labels(labels, study)
    folder = Path(folder)
    _check_export_folder(folder, lambda name: re.fullmatch(r"\d+\.p", name) is not None,
                         "legacy masks")
    order = legacy_order(study)
    with atomic_folder(folder) as staging:
        for i, z in enumerate(order):
            (staging / f"{i}.p").write_bytes(_legacy_pickle(labels[z]))
    return [folder / f"{i}.p" for i in range(len(order))]


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for raw bytes: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 byte strings are accepted")
    return text.encode("latin1", errors)


_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def _check_array(shape, dtype, max_elements: int) -> None:
    """Raise UnpicklingError unless an array of ``shape`` and ``dtype`` is a small numeric one.

    Runs before numpy allocates anything: a 91-byte pickle can otherwise ask for a
    30000 x 30000 object array (~7 GB) or a huge float array.
    """
    try:
        dtype = np.dtype(dtype)
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if not all(isinstance(n, int) for n in dims):
            raise TypeError
    except Exception:
        raise pickle.UnpicklingError("the array's shape or data type cannot be read") from None
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _NUMERIC_KINDS:
        raise pickle.UnpicklingError(
            f"the array holds {dtype} values; only numeric arrays (bool, integer, float) "
            "are accepted")
    if any(n < 0 for n in dims) or math.prod(dims) > max_elements:
        raise pickle.UnpicklingError(
            f"the array has shape {dims[:8]}, more than the {max_elements} values of one "
            "mask slice")


class _CheckedArray(np.ndarray):
    """The array a pickle rebuilds: its state (shape, dtype) is checked before numpy
    fills it (``BUILD`` calls ``__setstate__``)."""

    max_elements = 0

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("the array's state cannot be read")
        shape, dtype = state[-4], state[-3]
        _check_array(shape, dtype, self.max_elements)
        super().__setstate__(state)


def _allowed_pickle_globals(max_elements: int) -> dict:
    checked = type("_CheckedSliceArray", (_CheckedArray,), {"max_elements": max_elements})

    def reconstruct(subtype, shape, dtype):
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError("only plain numpy arrays are accepted")
        _check_array(shape, dtype, max_elements)
        return multiarray._reconstruct(checked, shape, dtype)

    def scalar(dtype, *args):
        _check_array((), dtype, 1)
        return multiarray.scalar(dtype, *args)

    def frombuffer(buffer, dtype, shape, order):
        _check_array(shape, dtype, max_elements)
        return numeric._frombuffer(buffer, dtype, shape, order)

    allowed = {("_codecs", "encode"): _latin1_encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild a small numeric array.

    Admitted: numpy's ``_reconstruct``, ``scalar`` and ``_frombuffer`` (old and new
    module names), ``numpy.ndarray``, ``numpy.dtype``, and ``_codecs.encode`` limited
    to latin-1 (how protocol 2 stores bytes). Anything else (``os.system``,
    ``builtins.eval``, ``subprocess.Popen`` ...) raises before it can be called, so a
    crafted file cannot run code. Every array's shape and data type are checked before
    numpy allocates it: at most ``max_elements`` values, and only bool, integer and
    float data (no objects, strings, records).
    """

    def __init__(self, file, max_elements: int):
        super().__init__(file)
        self._allowed = _allowed_pickle_globals(max_elements)

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"the file references {module}.{name}; only numpy arrays are accepted") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent references are not accepted")


def _load_array_pickle(path: Path, max_bytes: int, max_elements: int) -> np.ndarray:
    size = path.stat().st_size
    if size > max_bytes:
        raise MaskFileError(f"{path} is {size} bytes, too large for one mask slice")
    try:
        with open(path, "rb") as f:
            obj = _ArrayOnlyUnpickler(f, max_elements).load()
    except Exception as exc:  # any failure to unpickle is a bad file
        raise MaskFileError(f"{path} is not a pickled numpy array that is safe to read "
                            f"({type(exc).__name__}: {exc}).") from exc
    if not isinstance(obj, np.ndarray):
        raise MaskFileError(f"{path} holds a {type(obj).__name__}, not a numpy array")
    return np.asarray(obj).view(np.ndarray)


def import_legacy_masks(folder, study: Study, *, keep_other: bool = False) -> np.ndarray:
    """Read the original tool's ``<i>.p`` masks into a label volume.

    Files are read through a restricted unpickler that admits only numpy array
    reconstruction: a crafted pickle raises MaskFileError and runs no code.

    Parameters
    ----------
    folder : path
        Holds ``0.p`` .. ``<n-1>.p``, one per slice, ``i`` = rank by ascending
        InstanceNumber (see :func:`legacy_order`).
    study : Study
    keep_other : bool
        The original tool stored unlabelled candidate regions as values 3, 4, ...;
        by default they become 0. True keeps values 3..255 as other-organ labels
        (e.g. to read back :func:`export_legacy` output with other organs).

    Returns
    -------
    ndarray of uint8, shape ``study.shape``.

    Raises
    ------
    MaskFileError
        Files missing or extra, not a safe pickle, not a 2-D integer array of the
        slice size, negative values, or values above 255 with ``keep_other``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MaskFileError(f"{folder} is not a folder of legacy .p masks")
    n, rows, cols = study.shape
    found = {p.stem: p for p in folder.glob("*.p")}
    expected = {str(i) for i in range(n)}
    missing = sorted(expected - found.keys(), key=lambda s: int(s))
    extra = sorted(found.keys() - expected)
    if missing or extra:
        raise MaskFileError(
            f"{folder} must hold exactly 0.p .. {n - 1}.p for this {n}-slice study; "
            + (f"missing: {', '.join(m + '.p' for m in missing[:10])}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unexpected: {', '.join(e + '.p' for e in extra[:10])}" if extra else "")
            + ". Check that the masks belong to this series.")
    labels = np.zeros((n, rows, cols), np.uint8)
    max_bytes = rows * cols * 16 + 4096
    for i, z in enumerate(legacy_order(study)):
        path = found[str(i)]
        mask = _load_array_pickle(path, max_bytes, rows * cols)
        if mask.shape != (rows, cols):
            raise MaskFileError(f"{path} has shape {mask.shape}; the study's slices are "
                                f"{(rows, cols)}. The masks belong to another series.")
        if mask.dtype.kind not in "iub":
            raise MaskFileError(f"{path} holds {mask.dtype} values; masks are integer arrays")
        if mask.size and mask.min() < 0:
            raise MaskFileError(f"{path} holds negative values; labels are 0..255")
        if keep_other:
            if mask.size and mask.max() > 255:
                raise MaskFileError(f"{path} holds values above 255; labels are 0..255")
            labels[z] = mask
        else:
            labels[z] = np.where(np.isin(mask, [o.value for o in MEASURED]), mask, 0)
    return labels
