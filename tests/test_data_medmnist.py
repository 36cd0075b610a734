"""MedMNIST npz files: gray, RGB, multi-label, MD5 handling, and the memmap path for big splits."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.data import load_dataset
from aekit.data import registry as reg
from aekit.data.medmnist import parse_medmnist
from aekit.errors import AekitError
from formats import mapped_files, md5, medmnist_arrays, write_npz

COUNTS = {"train": 6, "val": 4, "test": 5}


def _write(
    tmp: Path, mp: pytest.MonkeyPatch, flag: str, size: int, arrays: dict, compressed: bool = False
) -> Path:
    """Write <flag>[_<size>].npz under tmp/medmnist and make the registry trust its MD5."""
    path = write_npz(tmp / "medmnist" / reg.medmnist_file(flag, size), compressed, **arrays)
    mp.setitem(reg.MEDMNIST_MD5[flag], size, md5(path))
    return path


def test_gray_28(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = medmnist_arrays(COUNTS, 28, 1)
    _write(tmp_path, monkeypatch, "octmnist", 28, arrays)
    ds = load_dataset("medmnist/octmnist", "val", data_dir=tmp_path, download=False)
    assert ds.images.shape == (4, 1, 28, 28) and ds.split == "val"
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["val_images"])
    assert ds.labels.shape == (4,) and ds.labels.tolist() == [0, 1, 2, 0]  # N×1 squeezed
    assert ds.classes == [
        "choroidal neovascularization",
        "diabetic macular edema",
        "drusen",
        "normal",
    ]


def test_labels_beyond_official_names_fall_back_to_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, monkeypatch, "breastmnist", 28, medmnist_arrays(COUNTS, 28, 1))
    ds = load_dataset("medmnist/breastmnist", "train", data_dir=tmp_path, download=False)
    assert ds.classes == ["0", "1", "2"]  # labels reach 2; breastmnist names only 0 and 1


def test_rgb_64_transposed_to_chw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = medmnist_arrays(COUNTS, 64, 3, seed=5)
    _write(tmp_path, monkeypatch, "pathmnist", 64, arrays)
    ds = load_dataset("medmnist/pathmnist@64", "test", data_dir=tmp_path, download=False)
    assert ds.shape == (3, 64, 64) and len(ds) == 5
    assert np.array_equal(ds.images.numpy(), arrays["test_images"].transpose(0, 3, 1, 2))
    assert ds.classes == reg.MEDMNIST_CLASSES["pathmnist"] and len(ds.classes) == 9
    assert ds.source == "medmnist/pathmnist@64"


def test_chestmnist_multilabel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = medmnist_arrays(COUNTS, 28, 1, n_labels=14)
    _write(tmp_path, monkeypatch, "chestmnist", 28, arrays)
    ds = load_dataset("medmnist/chestmnist", "train", data_dir=tmp_path, download=False)
    assert ds.labels.shape == (6, 14) and ds.labels.dtype == torch.int64 and ds.multi_label
    assert np.array_equal(ds.labels.numpy(), arrays["train_labels"])
    assert ds.classes[0] == "atelectasis" and len(ds.classes) == 14


def test_md5_mismatch_is_refused(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "medmnist" / "octmnist.npz", **medmnist_arrays(COUNTS, 28, 1))
    with pytest.raises(AekitError, match="refused") as err:
        load_dataset("medmnist/octmnist", "train", data_dir=tmp_path, download=False)
    assert reg.MEDMNIST_MD5["octmnist"][28] in str(err.value) and md5(path) in str(err.value)


def test_unknown_md5_warns_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_npz(tmp_path / "medmnist" / "organcmnist_128.npz", **medmnist_arrays(COUNTS, 128, 1))
    monkeypatch.setitem(reg.MEDMNIST_MD5["organcmnist"], 128, None)
    ds = load_dataset("medmnist/organcmnist@128", "test", data_dir=tmp_path, download=False)
    assert ds.shape == (1, 128, 128)
    assert "no known MD5 for medmnist file organcmnist_128.npz" in capsys.readouterr().err


def test_missing_file_says_url_and_place(tmp_path: Path) -> None:
    with pytest.raises(AekitError) as err:
        load_dataset("medmnist/dermamnist@224", "test", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "https://zenodo.org/records/10519652/files/dermamnist_224.npz?download=1" in msg
    assert f"put it at {tmp_path.absolute() / 'medmnist' / 'dermamnist_224.npz'}" in msg


@pytest.mark.parametrize(
    ("spec", "message"),
    [("nosuchmnist", "unknown MedMNIST flag"), ("pathmnist@32", "unknown MedMNIST size @32")],
)
def test_bad_flag_or_size(spec: str, message: str) -> None:
    with pytest.raises(AekitError, match=message):
        parse_medmnist(spec)


def test_size_forms() -> None:
    assert parse_medmnist("pathmnist") == ("pathmnist", 28)
    assert parse_medmnist("pathmnist@28") == ("pathmnist", 28)
    assert parse_medmnist("BloodMNIST@224") == ("bloodmnist", 224)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("channels", [1, 3])
def test_big_split_is_memory_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channels: int
) -> None:
    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", "1000")
    monkeypatch.setattr("aekit.data.npzarrays.CHUNK_BYTES", 3 * 64 * 64)  # several chunks
    arrays = medmnist_arrays({"train": 7, "val": 3, "test": 11}, 64, channels, seed=2)
    _write(tmp_path, monkeypatch, "dermamnist", 64, arrays, compressed=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "non-writable array" warning
        ds = load_dataset("medmnist/dermamnist@64", "test", data_dir=tmp_path, download=False)
    expected = arrays["test_images"]
    expected = expected[:, None] if channels == 1 else expected.transpose(0, 3, 1, 2)
    assert np.array_equal(ds.images.numpy(), expected)
    assert ds.labels.tolist() == (np.arange(11) % 3).tolist()
    cache = tmp_path / "medmnist" / ".cache" / "dermamnist_64.test_images.npy"
    assert cache.is_file() and not list(cache.parent.glob("*.part"))
    ptr = ds.images.data_ptr()
    assert any(a <= ptr < b for a, b in mapped_files().get(str(cache.resolve()), []))
    # a slice (what --limit uses) stays on the mapping; writes never reach the file
    head = ds.subset(slice(0, 4))
    assert head.images.data_ptr() == ptr
    before = cache.read_bytes()
    ds.images[0].fill_(0)
    assert cache.read_bytes() == before
    # the cache is reused, not rebuilt
    stamp = cache.stat().st_mtime_ns
    again = load_dataset("medmnist/dermamnist@64", "test", data_dir=tmp_path, download=False)
    assert cache.stat().st_mtime_ns == stamp and np.array_equal(again.images.numpy(), expected)


def test_small_split_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, monkeypatch, "bloodmnist", 28, medmnist_arrays(COUNTS, 28, 3))
    load_dataset("medmnist/bloodmnist", "train", data_dir=tmp_path, download=False)
    assert not (tmp_path / "medmnist" / ".cache").exists()


def test_bad_memmap_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # read only for compressed files (MedMNIST's): uncompressed ones are always mapped
    _write(tmp_path, monkeypatch, "bloodmnist", 28, medmnist_arrays(COUNTS, 28, 3), True)
    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", "lots")
    with pytest.raises(AekitError, match="AEKIT_MEMMAP_BYTES='lots'"):
        load_dataset("medmnist/bloodmnist", "train", data_dir=tmp_path, download=False)
