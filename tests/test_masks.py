"""Defect masks in MVTec AD's layout (aekit.data.masks): found beside their images, checked,
read at their own size; a real inspection set when it is at hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aekit.data.masks import find_masks, is_mvtec_layout, read_mask, soft_edged
from aekit.errors import AekitError

TILES = Path(__file__).resolve().parents[2] / "shared" / "data" / "anomaly" / "magnetic-tile"


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def layout(root: Path) -> list[Path]:
    """train/good, test/good and test/crack with masks; returns the test files, sorted."""
    rng = np.random.default_rng(0)
    for i in range(3):
        save(root / "train" / "good" / f"{i:03d}.png", rng.integers(0, 256, (20, 30), np.uint8))
    files = [save(root / "test" / "good" / "000.png", rng.integers(0, 256, (20, 30), np.uint8))]
    for i in range(2):
        files.append(save(root / "test" / "crack" / f"{i:03d}.png",
                          rng.integers(0, 256, (20, 30), np.uint8)))  # fmt: skip
        mask = np.zeros((20, 30), np.uint8)
        mask[5:8, 10 + i : 14] = 255
        mask[4, 10] = 100  # a soft edge: not defect
        save(root / "ground_truth" / "crack" / f"{i:03d}_mask.png", mask)
    return sorted(files)


def test_masks_are_found_beside_their_images_and_read(tmp_path: Path) -> None:
    files = layout(tmp_path)
    assert is_mvtec_layout(tmp_path)
    masks = find_masks(tmp_path, files)
    assert masks.defect == [True, True, False]  # crack/000, crack/001, good/000
    assert [p.name if p else None for p in masks.paths] == ["000_mask.png", "001_mask.png", None]
    assert masks.scored == [0, 1, 2]
    m = read_mask(masks.paths[1], (20, 30))
    assert m.dtype == bool and m.sum() == 3 * 3 and m[5:8, 11:14].all() and not m[4, 10]
    assert not read_mask(None, (20, 30)).any()  # a good image: no defect
    assert soft_edged(masks.paths)


def test_a_folder_without_ground_truth_has_no_masks(tmp_path: Path) -> None:
    files = layout(tmp_path)
    for mask in (tmp_path / "ground_truth" / "crack").iterdir():
        mask.unlink()
    (tmp_path / "ground_truth" / "crack").rmdir()
    (tmp_path / "ground_truth").rmdir()
    assert find_masks(tmp_path, files) is None
    save(tmp_path / "train" / "other" / "0.png", np.zeros((4, 4), np.uint8))
    assert not is_mvtec_layout(tmp_path)  # a second training class: a labelled folder


def test_a_mask_of_another_size_is_one_line(tmp_path: Path) -> None:
    files = layout(tmp_path)
    save(tmp_path / "ground_truth" / "crack" / "001_mask.png", np.zeros((21, 30), np.uint8))
    with pytest.raises(AekitError, match=r"001_mask.png is 30x21 but its image .*001.png is "
                                         r"30x20: a mask must be its image's size"):  # fmt: skip
        find_masks(tmp_path, files)


def test_a_mask_kind_without_test_images_is_one_line(tmp_path: Path) -> None:
    files = layout(tmp_path)
    save(tmp_path / "ground_truth" / "scratch" / "000_mask.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(AekitError, match=r"masks of the defect kind 'scratch' but .* has no "
                                         r"scratch/ folder"):  # fmt: skip
        find_masks(tmp_path, files)


def test_missing_and_unused_masks_are_warned_of(tmp_path: Path, capsys) -> None:
    files = layout(tmp_path)
    (tmp_path / "ground_truth" / "crack" / "001_mask.png").rename(
        tmp_path / "ground_truth" / "crack" / "777_mask.png")  # fmt: skip
    masks = find_masks(tmp_path, files)
    err = capsys.readouterr().err
    assert "1 mask(s) in" in err and "crack/777_mask.png" in err
    assert "1 defect image(s) have no mask" in err and "test/crack/001.png" in err
    assert masks.scored == [0, 2]  # the defect without a mask is left out


def test_the_magnetic_tile_set_s_masks_all_match() -> None:
    if not TILES.is_dir():
        pytest.skip("the magnetic-tile set is not at ../shared/data/anomaly/magnetic-tile")
    files = sorted(p for kind in (TILES / "test").iterdir() for p in kind.iterdir())
    assert is_mvtec_layout(TILES)
    masks = find_masks(TILES, files)
    assert sum(masks.defect) == 200 and len(masks.scored) == len(files) == 377
    first = next(p for p in masks.paths if p is not None)
    with Image.open(first.parent.parent.parent / "test" / first.parent.name /
                    (first.stem.removesuffix("_mask") + ".jpg")) as img:  # fmt: skip
        m = read_mask(first, (img.height, img.width))
    assert 0 < m.mean() < 0.2
