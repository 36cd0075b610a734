"""MNIST / Fashion-MNIST: IDX parsing, validation messages, and the real MNIST test set."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.data import describe, load_dataset
from aekit.data import registry as reg
from aekit.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from aekit.errors import AekitError
from formats import md5, rand_uint8, write_idx, write_mnist_split

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data"  # holds mnist/t10k-*


def _trust(monkeypatch: pytest.MonkeyPatch, spec: reg.IdxSet, *paths: Path) -> None:
    """Make the registry expect the MD5s of our hand-written files."""
    for path in paths:
        monkeypatch.setitem(spec.md5, path.name, md5(path))


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images = rand_uint8((5, 4, 3))
    path = write_idx(tmp_path / ("x.idx.gz" if gz else "x.idx"), images)
    assert np.array_equal(read_idx(path, IMAGES_MAGIC), images)


def test_wrong_magic_names_file_and_numbers(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rand_uint8((2, 4, 4)), magic=0x802)
    with pytest.raises(AekitError) as err:
        read_idx(path, IMAGES_MAGIC)
    msg = str(err.value)
    assert str(path) in msg and "magic number 0x00000802" in msg and "0x00000803" in msg


def test_labels_read_as_images_is_refused(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels.gz", np.arange(5, dtype=np.uint8))
    with pytest.raises(AekitError, match="not an IDX image file"):
        read_idx(path, IMAGES_MAGIC)


@pytest.mark.parametrize("cut", [1, 100])
def test_truncated_data_is_refused_with_sizes(tmp_path: Path, cut: int) -> None:
    full = gzip.decompress(write_idx(tmp_path / "a.gz", rand_uint8((3, 10, 10))).read_bytes())
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(full[:-cut])
    with pytest.raises(AekitError) as err:
        read_idx(path, IMAGES_MAGIC)
    msg = str(err.value)
    assert str(path) in msg and "3×10×10 = 300 bytes" in msg and f"holds {300 - cut}" in msg


def test_extra_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(write_idx(tmp_path / "l", np.arange(4, dtype=np.uint8)).read_bytes() + b"x")
    with pytest.raises(AekitError, match="wrong size"):
        read_idx(path, LABELS_MAGIC)


def test_too_short_for_header(tmp_path: Path) -> None:
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(AekitError, match="too short"):
        read_idx(path, LABELS_MAGIC)


def test_broken_gzip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    good = write_idx(path, np.arange(50, dtype=np.uint8)).read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(AekitError, match="not a valid gzip file") as err:
        read_idx(path, LABELS_MAGIC)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_gz_split_checks_md5_and_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    images, labels = rand_uint8((7, 28, 28)), np.array([0, 1, 2, 3, 4, 5, 9], dtype=np.uint8)
    paths = write_mnist_split(tmp_path / name, "train", images, labels)
    spec = reg.IDX_SETS[name]
    _trust(monkeypatch, spec, *paths)
    ds = load_dataset(name, "train", data_dir=tmp_path, download=False)
    assert ds.images.shape == (7, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[:, 0].numpy(), images)
    assert ds.labels.tolist() == labels.tolist()
    assert ds.classes == spec.classes and len(ds.classes) == 10
    assert describe(ds) == {
        "source": name,
        "split": "train",
        "count": 7,
        "shape": [1, 28, 28],
        "classes": spec.classes,
    }


def test_unverified_gz_is_refused(tmp_path: Path) -> None:
    write_mnist_split(tmp_path / "mnist", "test", rand_uint8((3, 28, 28)), np.zeros(3, np.uint8))
    with pytest.raises(AekitError) as err:
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "refused" in msg and reg.MNIST.md5["t10k-images-idx3-ubyte.gz"] in msg
    assert md5(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in msg
    assert (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").exists()  # left alone


def test_ungzipped_files_are_accepted(tmp_path: Path) -> None:
    images = rand_uint8((4, 28, 28))
    write_mnist_split(tmp_path / "mnist", "test", images, np.array([3, 1, 4, 1]), gz=False)
    ds = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), images)
    assert ds.labels.tolist() == [3, 1, 4, 1]


def test_label_count_mismatch(tmp_path: Path) -> None:
    write_mnist_split(tmp_path / "mnist", "test", rand_uint8((4, 28, 28)), np.zeros(3), gz=False)
    with pytest.raises(AekitError, match=r"3 labels but .* has 4 images"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)


def test_label_out_of_range(tmp_path: Path) -> None:
    write_mnist_split(tmp_path / "mnist", "test", rand_uint8((2, 28, 28)), np.array([1, 12]), False)
    with pytest.raises(AekitError, match="label 12"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)


def test_missing_split_without_download_says_where(tmp_path: Path) -> None:
    with pytest.raises(AekitError) as err:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)
    dest = tmp_path.absolute() / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    msg = str(err.value)
    assert f"put it at {dest}" in msg
    assert reg.FASHION_MNIST.base_urls[0] + "t10k-images-idx3-ubyte.gz" in msg


@pytest.mark.skipif(not (REAL_MNIST / "mnist").is_dir(), reason="real MNIST test set absent")
def test_real_mnist_test_set(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network must not be touched when the files are present")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert md5(REAL_MNIST / "mnist" / name) == reg.MNIST.md5[name]
    ds = load_dataset("mnist", "test", data_dir=REAL_MNIST)
    assert len(ds) == 10000 and ds.shape == (1, 28, 28)
    assert sorted(ds.labels.unique().tolist()) == list(range(10))
    assert ds.labels[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]  # the well-known first test digits
    assert np.bincount(ds.labels.numpy()).tolist()[:2] == [980, 1135]
    assert ds.classes == [str(d) for d in range(10)]
