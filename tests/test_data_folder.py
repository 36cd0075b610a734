"""folder:<dir> sources: labels from class folders, splits, sizes, colour modes, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aekit.data import available_splits, load_dataset
from aekit.errors import AekitError
from formats import rand_uint8, solid, write_image, write_truncated_png


def test_class_subfolders_give_sorted_labels(tmp_path: Path) -> None:
    write_image(tmp_path / "zebra" / "1.png", solid(6, 6, (255, 0, 0)))
    write_image(tmp_path / "ant" / "b.png", solid(6, 6, (0, 255, 0)))
    write_image(tmp_path / "ant" / "a.jpg", solid(6, 6, (0, 0, 255)))
    (tmp_path / "ant" / "notes.txt").write_text("not an image, not a warning")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["ant", "zebra"]
    assert ds.labels.tolist() == [0, 0, 1]
    assert [Path(p).name for p in ds.paths] == ["a.jpg", "b.png", "1.png"]
    assert ds.shape == (3, 6, 6) and ds.split == "train"
    assert ds.images[2, :, 3, 3].tolist() == [255, 0, 0]  # png is lossless
    assert ds.images[1, :, 3, 3].tolist() == [0, 255, 0]


def test_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"{i}.png", solid(4, 5, 10 * i))
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.labels is None and ds.classes == []
    assert ds.shape == (1, 4, 5)  # all gray: one channel kept
    assert ds.images[:, 0, 0, 0].tolist() == [0, 10, 20]


def test_split_subfolders(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "cat" / "a.png", solid(4, 4, 1))
    write_image(tmp_path / "train" / "dog" / "b.png", solid(4, 4, 2))
    write_image(tmp_path / "test" / "dog" / "c.png", solid(4, 4, 3))
    assert available_splits(f"folder:{tmp_path}") == ["train", "test"]
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert test.classes == ["cat", "dog"] and test.labels.tolist() == [1]  # shared class list
    with pytest.raises(AekitError, match="has no 'val' split: use one of train, test"):
        load_dataset(f"folder:{tmp_path}", "val")


def test_splits_agree_in_shape(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "train" / f"{i}.png", solid(6, 6, 9))  # gray, 6×6
    write_image(tmp_path / "test" / "a.png", solid(4, 8, (1, 2, 3)))  # colour, 8×4
    train = load_dataset(f"folder:{tmp_path}", "train")
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert train.shape == test.shape == (3, 6, 6)  # most common size over all splits; RGB
    assert train.images[0, :, 0, 0].tolist() == [9, 9, 9]


def test_no_split_folders_means_train_only(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", solid(4, 4, 1))
    assert available_splits(f"folder:{tmp_path}") == ["train"]
    with pytest.raises(AekitError, match="no 'test' split: use one of train"):
        load_dataset(f"folder:{tmp_path}", "test")


def test_broken_files_are_skipped_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "good.png", rand_uint8((8, 8, 3)))
    write_truncated_png(tmp_path / "cut.png")
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a jpeg")
    (tmp_path / "readme.md").write_text("ignored: not an image extension")
    ds = load_dataset(f"folder:{tmp_path}")
    assert [Path(p).name for p in ds.paths] == ["good.png"]
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "skipped 2 unreadable image file(s)" in warnings[0]
    assert "cut.png" in warnings[0] and "garbage.jpg" in warnings[0]
    assert "readme.md" not in err


def test_truncated_colour_file_does_not_force_rgb(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", solid(5, 5, 100))
    write_truncated_png(tmp_path / "b.png")  # RGB header, unreadable pixels
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.shape == (1, 5, 5) and ds.images.unique().tolist() == [100]


def test_empty_or_unreadable_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AekitError, match="no image files in"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(AekitError, match="no readable image in"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(AekitError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


def test_most_common_size_and_resize(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"s{i}.png", solid(6, 8, 50))  # 8 wide, 6 high
    write_image(tmp_path / "z_big.png", solid(10, 10, 200))
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.shape == (1, 6, 8)
    assert ds.images[3].unique().tolist() == [200]  # a flat colour stays flat when resized
    small = load_dataset(f"folder:{tmp_path}", image_size=4)
    assert small.shape == (1, 4, 4) and small.images[0].unique().tolist() == [50]


def test_any_colour_image_makes_the_set_rgb(tmp_path: Path) -> None:
    write_image(tmp_path / "a_gray.png", solid(4, 4, 77))
    write_image(tmp_path / "b_rgba.png", np.dstack([solid(4, 4, (1, 2, 3)), solid(4, 4, 9)]))
    write_image(tmp_path / "c_pal.gif", solid(4, 4, (255, 0, 0)), mode="P")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.shape == (3, 4, 4)
    assert ds.images[0, :, 0, 0].tolist() == [77, 77, 77]
    assert ds.images[1, :, 0, 0].tolist() == [1, 2, 3]  # alpha dropped
    assert ds.images[2, :, 0, 0].tolist() == [255, 0, 0]


def test_hidden_files_and_loose_files_beside_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "a" / "x.png", solid(4, 4, 1))
    write_image(tmp_path / "a" / ".hidden.png", solid(4, 4, 2))
    write_image(tmp_path / ".thumbs" / "t.png", solid(4, 4, 3))
    write_image(tmp_path / "loose.png", solid(4, 4, 4))
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["a"] and [Path(p).name for p in ds.paths] == ["x.png"]
    assert "ignored 1 image file(s)" in capsys.readouterr().err


def test_limit_keeps_the_first_paths(tmp_path: Path) -> None:
    for i in range(5):
        write_image(tmp_path / "c" / f"{i}.png", solid(3, 3, i))
    ds = load_dataset(f"folder:{tmp_path}", limit=2)
    assert [Path(p).name for p in ds.paths] == ["0.png", "1.png"] and len(ds.labels) == 2


def test_a_folder_too_large_to_decode_is_streamed(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above AEKIT_MEMMAP_BYTES of decoded pixels a folder trains from its files, decoded per
    batch by DataLoader workers; the run is the same run as from memory."""
    import aekit
    from aekit.training import training_data as train_mod
    from aekit.training.runs import read_metrics

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(
                tmp_path / "pics" / cls / f"{i}.png"
            )
    (tmp_path / "pics" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    args = ["train", "--data", f"folder:{tmp_path / 'pics'}", "--epochs", "2", "--batch-size",
            "16", "--base-channels", "8", "--latent-dim", "16", "--classes", "b",
            "--no-amp"]  # fmt: skip
    code, _, err = cli(*args, "--out", tmp_path / "memory")
    assert code == 0, err
    seen = []
    real = train_mod.TrainingData.batches

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(self.files is not None)
        return real(self, *a, **k)

    monkeypatch.setattr(train_mod.TrainingData, "batches", spy)
    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", "1000")  # 80 x 768 bytes decoded: stream it
    code, _, err = cli(*args, "--out", tmp_path / "streamed")
    assert code == 0, err
    assert seen == [True, True]
    a, b = read_metrics(tmp_path / "memory"), read_metrics(tmp_path / "streamed")
    for x, y in zip(a, b, strict=True):  # the same images in the same order
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-5)
        assert x["test_mse"] == pytest.approx(y["test_mse"], rel=1e-5)
    assert aekit.training.runs.load_config(tmp_path / "streamed").data.classes == "b"
