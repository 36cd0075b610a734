"""CIFAR-10: binary folder, binary tarball, torchvision pickles (restricted), and refusals."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from aekit.data import load_dataset
from aekit.data import registry as reg
from aekit.errors import AekitError
from formats import (
    cifar_batches,
    md5,
    write_cifar_bin_dir,
    write_cifar_py_dir,
    write_cifar_tar,
)

SMALL = 4  # records per batch here; official batches hold 10,000
TRAIN = {f"data_batch_{i}": SMALL for i in range(1, 6)}
META = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of SMALL records stand in for the official 10,000 (refused otherwise)."""
    monkeypatch.setattr(reg.CIFAR10, "records", SMALL)


def _expected(batches: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.concatenate([batches[n][0] for n in names]),
        np.concatenate([batches[n][1] for n in names]),
    )


def test_extracted_binary_folder(tmp_path: Path) -> None:
    batches = cifar_batches({**TRAIN, "test_batch": SMALL})
    write_cifar_bin_dir(tmp_path / "cifar10" / "cifar-10-batches-bin", batches, META)
    ds = load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    images, labels = _expected(batches, list(TRAIN))
    assert ds.images.shape == (5 * SMALL, 3, 32, 32) and ds.shape == (3, 32, 32)
    assert np.array_equal(ds.images.numpy(), images)
    assert ds.labels.tolist() == labels.tolist()
    assert ds.classes == META  # read from batches.meta.txt
    test = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(test.images.numpy(), batches["test_batch"][0])


def test_record_planes_are_rgb(tmp_path: Path) -> None:
    images = np.zeros((SMALL, 3, 32, 32), np.uint8)
    images[0, 0], images[0, 1], images[0, 2] = 10, 20, 30  # R, G, B planes
    batches = {"test_batch": (images, np.full(SMALL, 7))}
    write_cifar_bin_dir(tmp_path / "cifar10" / "cifar-10-batches-bin", batches)
    ds = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert ds.images[0, :, 5, 5].tolist() == [10, 20, 30] and ds.labels.tolist() == [7] * SMALL
    assert ds.classes == reg.CIFAR10.classes  # no meta file: the known list


def test_tarball_read_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batches = cifar_batches({**TRAIN, "test_batch": SMALL}, seed=3)
    tar = write_cifar_tar(tmp_path / "cifar10" / "cifar-10-binary.tar.gz", batches, META)
    monkeypatch.setattr(reg.CIFAR10, "md5", md5(tar))
    ds = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(ds.images.numpy(), batches["test_batch"][0])
    assert ds.labels.tolist() == batches["test_batch"][1].tolist() and ds.classes == META
    train = load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    assert np.array_equal(train.images.numpy(), _expected(batches, list(TRAIN))[0])


def test_tarball_with_wrong_md5_is_refused(tmp_path: Path) -> None:
    write_cifar_tar(
        tmp_path / "cifar10" / "cifar-10-binary.tar.gz", cifar_batches({"test_batch": 2})
    )
    with pytest.raises(AekitError, match=f"refused .*expected {reg.CIFAR10.md5}"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)


def test_tarball_without_binary_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tar = write_cifar_tar(tmp_path / "cifar10" / "cifar-10-binary.tar.gz", cifar_batches({"x": 1}))
    monkeypatch.setattr(reg.CIFAR10, "md5", md5(tar))
    with pytest.raises(AekitError, match=r"has no cifar-10-batches-bin/test_batch\.bin"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)


def test_bad_record_size(tmp_path: Path) -> None:
    folder = write_cifar_bin_dir(
        tmp_path / "cifar10" / "cifar-10-batches-bin", cifar_batches({"test_batch": 2})
    )
    path = folder / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(AekitError, match="3073-byte records") as err:
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("protocol", [2, 5])
def test_torchvision_pickle_folder(tmp_path: Path, protocol: int) -> None:
    batches = cifar_batches({**TRAIN, "test_batch": SMALL}, seed=7)
    write_cifar_py_dir(tmp_path / "cifar10" / "cifar-10-batches-py", batches, META, protocol)
    ds = load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    images, labels = _expected(batches, list(TRAIN))
    assert np.array_equal(ds.images.numpy(), images)
    assert ds.labels.tolist() == labels.tolist() and ds.classes == META


class _Evil:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_before_running(tmp_path: Path) -> None:
    folder = write_cifar_py_dir(
        tmp_path / "cifar10" / "cifar-10-batches-py", cifar_batches({"test_batch": 2})
    )
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}))
    with pytest.raises(AekitError, match=r"refused to unpickle .*test_batch.*(posix|os)\.system"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert not marker.exists()


def test_pickle_with_wrong_structure(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2, 3], b"labels": [0]}))
    with pytest.raises(AekitError, match="not a CIFAR-10 batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)


def test_garbage_pickle(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(AekitError, match=r"cannot read .* as a CIFAR-10 pickle batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)


def test_missing_cifar_says_where(tmp_path: Path) -> None:
    with pytest.raises(AekitError) as err:
        load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    dest = tmp_path.absolute() / "cifar10" / "cifar-10-binary.tar.gz"
    assert f"{reg.CIFAR10.urls[0]} and put it at {dest}" in str(err.value)
