"""npz:<file> sources: Keras and MedMNIST key styles, layouts, optional labels, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.data import available_splits, load_dataset
from aekit.errors import AekitError
from formats import mapped_files, rand_uint8, write_npz


def test_keras_style_gray(tmp_path: Path) -> None:
    x_train, x_test = rand_uint8((6, 8, 9), 1), rand_uint8((3, 8, 9), 2)
    y_train, y_test = np.array([0, 4, 1, 2, 3, 4]), np.array([1, 0, 2])
    path = write_npz(
        tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
    )
    assert available_splits(f"npz:{path}") == ["train", "test"]
    ds = load_dataset(f"npz:{path}", "test")
    assert ds.shape == (1, 8, 9) and np.array_equal(ds.images[:, 0].numpy(), x_test)
    assert ds.labels.tolist() == [1, 0, 2]
    assert ds.classes == ["0", "1", "2", "3", "4"]  # from the largest label over all splits
    with pytest.raises(AekitError, match="has no 'val' split: use one of train, test"):
        load_dataset(f"npz:{path}", "val")


def test_medmnist_style_rgb_last(tmp_path: Path) -> None:
    images = rand_uint8((4, 5, 6, 3))
    path = write_npz(tmp_path / "m.npz", val_images=images, val_labels=np.arange(4).reshape(4, 1))
    ds = load_dataset(f"npz:{path}", "val")
    assert ds.shape == (3, 5, 6)
    assert np.array_equal(ds.images.numpy(), images.transpose(0, 3, 1, 2))
    assert ds.labels.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((2, 3, 7, 9), (3, 7, 9)),  # N×C×H×W: C=3 on axis 1, last axis not 1/3
        ((2, 1, 7, 9), (1, 7, 9)),
        ((2, 7, 9, 1), (1, 7, 9)),  # N×H×W×1
        ((2, 3, 9, 3), (3, 3, 9)),  # ambiguous: the last axis wins (N×H×W×C)
    ],
)
def test_layouts(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    x = rand_uint8(shape)
    path = write_npz(tmp_path / "l.npz", x_train=x)
    ds = load_dataset(f"npz:{path}")
    assert ds.shape == expected
    chw = x if expected[0] == shape[1] and shape[-1] not in (1, 3) else x.transpose(0, 3, 1, 2)
    assert np.array_equal(ds.images.numpy(), chw)


def test_unlabelled(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "u.npz", x_train=rand_uint8((3, 4, 4)))
    ds = load_dataset(f"npz:{path}", limit=2)
    assert ds.labels is None and ds.classes == [] and len(ds) == 2


def test_wrong_keys_lists_found_and_expected(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "w.npz", images=rand_uint8((2, 4, 4)), targets=np.zeros(2))
    with pytest.raises(AekitError) as err:
        load_dataset(f"npz:{path}")
    msg = str(err.value)
    assert "has keys images, targets" in msg and "x_train/y_train" in msg and "train_images" in msg


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((2, 4, 4), np.float32)}, "images are float32, expected uint8"),
        ({"x_train": rand_uint8((2, 4, 4, 5))}, r"images of shape \(2, 4, 4, 5\)"),
        ({"x_train": rand_uint8((2, 4))}, "not N×H×W"),
        ({"x_train": rand_uint8((3, 4, 4)), "y_train": np.zeros(2, int)}, "do not match 3 images"),
        ({"x_train": rand_uint8((2, 4, 4)), "y_train": np.array([0.5, 1])}, "expected integers"),
        ({"x_train": rand_uint8((2, 4, 4)), "y_train": np.array([0, -1])}, "negative label"),
        ({"x_train": rand_uint8((2, 4, 4)), "y_train": np.array([[0, 2], [1, 0]])}, "0/1 flags"),
    ],
)
def test_bad_contents(tmp_path: Path, arrays: dict, message: str) -> None:
    path = write_npz(tmp_path / "b.npz", **arrays)
    with pytest.raises(AekitError, match=message):
        load_dataset(f"npz:{path}")


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    labels = np.array([{"evil": 1}, 2], dtype=object)
    path = write_npz(tmp_path / "o.npz", x_train=rand_uint8((2, 4, 4)), y_train=labels)
    with pytest.raises(AekitError, match="without pickle"):
        load_dataset(f"npz:{path}")
    path = write_npz(tmp_path / "p.npz", x_train=np.array([None, 1], dtype=object))
    with pytest.raises(AekitError, match="expected uint8"):
        load_dataset(f"npz:{path}")


def test_not_a_zip_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(AekitError, match=f"cannot read {bad} as an .npz"):
        load_dataset(f"npz:{bad}")
    with pytest.raises(AekitError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'none.npz'}")


def test_multilabel_npz(tmp_path: Path) -> None:
    y = np.array([[1, 0, 1], [0, 0, 1]])
    path = write_npz(tmp_path / "ml.npz", train_images=rand_uint8((2, 4, 4)), train_labels=y)
    ds = load_dataset(f"npz:{path}")
    assert ds.labels.tolist() == y.tolist() and ds.classes == ["0", "1", "2"]


def test_big_npz_is_memory_mapped_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", "10")
    x = rand_uint8((5, 3, 6, 7))  # N×C×H×W stays as is
    path = write_npz(tmp_path / "big.npz", compressed=True, x_train=x)
    ds = load_dataset(f"npz:{path}")
    assert np.array_equal(ds.images.numpy(), x)
    assert (tmp_path / ".cache" / "big.x_train.npy").is_file()


def test_a_memmap_cache_follows_a_replaced_npz_even_an_older_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import shutil

    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", "10")
    old, new = rand_uint8((5, 3, 6, 7), seed=1), rand_uint8((5, 3, 6, 7), seed=2)
    older = write_npz(tmp_path / "older.npz", compressed=True, x_train=new)
    os.utime(older, ns=(0, 10**18))  # a file from long ago (moved, or copied with -p)
    path = write_npz(tmp_path / "big.npz", compressed=True, x_train=old)
    assert np.array_equal(load_dataset(f"npz:{path}").images.numpy(), old)  # builds the cache
    cache = tmp_path / ".cache" / "big.x_train.npy"
    assert cache.stat().st_mode & 0o777 == 0o666 & ~_umask()  # readable as any file aekit writes
    shutil.move(older, path)
    assert np.array_equal(load_dataset(f"npz:{path}").images.numpy(), new)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _maps(path: Path, t: torch.Tensor) -> bool:
    ptr = t.data_ptr()
    return any(a <= ptr < b for a, b in mapped_files().get(str(path.resolve()), []))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (6, 5, 4), (6, 3, 5, 4)])
def test_an_uncompressed_npz_is_mapped_in_place_at_any_size(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    x = rand_uint8(shape)
    path = write_npz(tmp_path / "plain.npz", x_train=x, y_train=np.arange(6) % 2)
    ds = load_dataset(f"npz:{path}")
    want = x if len(shape) == 4 and shape[1] == 3 else (
        x[:, None] if len(shape) == 3 else x.transpose(0, 3, 1, 2))  # fmt: skip
    assert np.array_equal(ds.images.numpy(), want)
    assert _maps(path, ds.images)  # the npz's own pages: no copy, no cache
    assert not (tmp_path / ".cache").exists()
    ds.images[0] += 1  # copy-on-write: the file never changes
    assert np.array_equal(np.load(path)["x_train"], x)
    # a file replaced in place is read anew
    y = rand_uint8(shape, seed=9)
    write_npz(tmp_path / "next.npz", x_train=y).replace(path)
    assert not np.array_equal(load_dataset(f"npz:{path}").images.numpy(), want)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_training_rows_of_a_mapped_split_are_not_copied(tmp_path: Path) -> None:
    from aekit.data.config import DataConfig
    from aekit.training.splits import holdout_indices, load_splits, training_split

    x = rand_uint8((200, 8, 8, 3))
    labels = np.arange(200) % 4
    path = write_npz(tmp_path / "plain.npz", x_train=x, y_train=labels)
    cfg = DataConfig(source=f"npz:{path}", classes="1,2", limit=50)  # no test split: carved
    full, rows, held = training_split(cfg)
    assert _maps(path, full.images) and len(full) == 200  # the split stays mapped
    assert len(rows) == 50 and set(labels[rows.numpy()]) == {1, 2}
    train, held2 = load_splits(cfg)  # the copy the other commands get: the same images
    assert torch.equal(train.images, full.images[rows]) and torch.equal(held.images, held2.images)
    keep, _ = holdout_indices(200)
    assert set(rows.tolist()) <= set(keep)  # never a held-out image


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_memmap_bytes_keeps_small_uncompressed_arrays_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_npz(tmp_path / "plain.npz", x_train=rand_uint8((6, 5, 4, 3)))
    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", "1000")  # 360 bytes: read into memory
    assert not _maps(path, load_dataset(f"npz:{path}").images)
    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", "100")
    assert _maps(path, load_dataset(f"npz:{path}").images)
