"""The original tool's per-slice pickles: export order and format, safe import, bad files."""

from __future__ import annotations

import os
import pickle
import pickletools
import warnings

import numpy as np
import pytest
from synthetic import blob_labels, synthetic_study

from radipop_widgets.errors import MaskFileError
from radipop_widgets.export import export_legacy, import_legacy_masks, legacy_order

SHAPE = (5, 12, 10)


def _trusted_load(path):
    """Plain pickle.load (our own files only); numpy 2 warns about the numpy 1.x name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with open(path, "rb") as f:
            return pickle.load(f)


def _write(path, obj, protocol=4):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def test_export_writes_every_slice_ranked_by_ascending_instance_number(tmp_path):
    # Instance numbers decrease as the volume index increases (the Siemens case).
    study = synthetic_study(shape=SHAPE, instance_numbers=[286, 285, 284, 283, 282])
    labels = blob_labels(SHAPE)
    labels[0] = 0  # an empty slice is still written
    paths = export_legacy(tmp_path, labels, study)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.p" for i in range(5)]
    assert [p.name for p in paths] == [f"{i}.p" for i in range(5)]
    for i in range(5):
        mask = _trusted_load(tmp_path / f"{i}.p")
        assert isinstance(mask, np.ndarray) and mask.ndim == 2
        assert mask.dtype.kind in "iu" and mask.shape == SHAPE[1:]
        np.testing.assert_array_equal(mask, labels[4 - i])  # 0.p = InstanceNumber 282
    assert not _trusted_load(tmp_path / "4.p").any()


def test_legacy_order_ties_and_missing_instance_numbers():
    assert list(legacy_order(synthetic_study(shape=SHAPE, instance_numbers=[3, 1, 2, 1, 5]))) \
        == [1, 3, 2, 0, 4]
    assert list(legacy_order(synthetic_study(shape=SHAPE, instance_numbers=[3, None, 2, 1, 5]))) \
        == [0, 1, 2, 3, 4]
    study = synthetic_study(shape=SHAPE)
    study.sources = []
    assert list(legacy_order(study)) == [0, 1, 2, 3, 4]


def test_exported_pickles_name_the_numpy1_reconstructor(tmp_path):
    study = synthetic_study(shape=SHAPE)
    export_legacy(tmp_path, blob_labels(SHAPE), study)
    ops = [arg for op, arg, _ in pickletools.genops((tmp_path / "0.p").read_bytes())
           if op.name == "GLOBAL"]
    assert ops[0] == "numpy.core.multiarray _reconstruct"  # readable by numpy 1.x
    assert not any("_core" in op for op in ops)


@pytest.mark.parametrize("keep_other", [False, True])
def test_round_trip(tmp_path, keep_other):
    study = synthetic_study(shape=SHAPE, instance_numbers=[10, 30, 20, 50, 40])
    labels = blob_labels(SHAPE)
    assert (labels == 3).any()
    export_legacy(tmp_path, labels, study)
    back = import_legacy_masks(tmp_path, study, keep_other=keep_other)
    assert back.dtype == np.uint8 and back.shape == SHAPE
    expected = labels if keep_other else np.where(labels <= 2, labels, 0)
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_import_original_tool_masks(tmp_path, protocol):
    # The original tool pickled skimage label images (int64): 1 liver, 2 spleen,
    # 3.. unlabelled candidate regions, any pickle protocol.
    study = synthetic_study(shape=SHAPE)
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 400, SHAPE).astype(np.int64)
    for i in range(SHAPE[0]):
        _write(tmp_path / f"{i}.p", masks[i], protocol=protocol)
    (tmp_path / "notes.txt").write_text("other files are ignored")
    back = import_legacy_masks(tmp_path, study)
    np.testing.assert_array_equal(back, np.where(masks <= 2, masks, 0))
    with pytest.raises(MaskFileError, match="above 255"):
        import_legacy_masks(tmp_path, study, keep_other=True)


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


class _EvalExploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return eval, (f"open({str(self.target)!r}, 'w').close()",)


@pytest.mark.parametrize("exploit", [_Exploit, _EvalExploit])
def test_malicious_pickle_raises_and_runs_no_code(tmp_path, exploit):
    study = synthetic_study(shape=SHAPE)
    folder = tmp_path / "masks"
    export_legacy(folder, blob_labels(SHAPE), study)
    target = tmp_path / "pwned"

    # The payload is real: a plain pickle.load would run it.
    pickle.loads(pickle.dumps(exploit(target)))
    assert target.exists()
    target.unlink()

    _write(folder / "2.p", exploit(target), protocol=2)
    with pytest.raises(MaskFileError, match="only numpy arrays"):
        import_legacy_masks(folder, study)
    assert not target.exists()


def test_payload_hidden_inside_an_object_array_runs_no_code(tmp_path):
    study = synthetic_study(shape=SHAPE)
    export_legacy(tmp_path, blob_labels(SHAPE), study)
    target = tmp_path / "pwned"
    arr = np.empty(SHAPE[1:], dtype=object)
    arr[:] = 0
    arr[0, 0] = _Exploit(target)
    _write(tmp_path / "1.p", arr)
    with pytest.raises(MaskFileError):
        import_legacy_masks(tmp_path, study)
    assert not target.exists()


@pytest.mark.parametrize("damage, message", [
    ("wrong_shape", "shape"),
    ("truncated", "not a pickled numpy array"),
    ("not_pickle", "not a pickled numpy array"),
    ("a_list", "not a numpy array"),
    ("float", "float64"),
    ("negative", "negative"),
    ("three_d", "shape"),
])
def test_malformed_mask_files(tmp_path, damage, message):
    study = synthetic_study(shape=SHAPE)
    export_legacy(tmp_path, blob_labels(SHAPE), study)
    bad = tmp_path / "3.p"
    if damage == "wrong_shape":
        _write(bad, np.zeros((SHAPE[1] + 1, SHAPE[2]), np.uint8))
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:50])
    elif damage == "not_pickle":
        bad.write_text("liver,spleen\n1,2\n")
    elif damage == "a_list":
        _write(bad, [[0, 1], [2, 0]])
    elif damage == "float":
        _write(bad, np.zeros(SHAPE[1:], np.float64))
    elif damage == "negative":
        _write(bad, np.full(SHAPE[1:], -1, np.int64))
    else:
        _write(bad, np.zeros((1,) + SHAPE[1:], np.uint8))
    with pytest.raises(MaskFileError, match=message) as info:
        import_legacy_masks(tmp_path, study)
    assert "3.p" in str(info.value)


def test_file_count_must_match_the_study(tmp_path):
    study = synthetic_study(shape=SHAPE)
    export_legacy(tmp_path, blob_labels(SHAPE), study)
    (tmp_path / "4.p").unlink()
    with pytest.raises(MaskFileError, match="missing: 4.p"):
        import_legacy_masks(tmp_path, study)
    export_legacy(tmp_path, blob_labels(SHAPE), study)
    _write(tmp_path / "5.p", np.zeros(SHAPE[1:], np.uint8))
    with pytest.raises(MaskFileError, match="unexpected: 5.p"):
        import_legacy_masks(tmp_path, study)
    with pytest.raises(MaskFileError, match="not a folder"):
        import_legacy_masks(tmp_path / "absent", study)


def test_oversized_file_is_rejected_before_unpickling(tmp_path):
    study = synthetic_study(shape=SHAPE)
    export_legacy(tmp_path, blob_labels(SHAPE), study)
    (tmp_path / "0.p").write_bytes(b"\x80\x04" + b"\0" * (SHAPE[1] * SHAPE[2] * 16 + 5000))
    with pytest.raises(MaskFileError, match="too large"):
        import_legacy_masks(tmp_path, study)
