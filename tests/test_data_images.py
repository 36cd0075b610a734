"""read_image_files (user-given images) and the tensor resize used for fixed-size sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aekit.data import load_dataset, read_image_files
from aekit.data.images import resize_images
from aekit.errors import AekitError
from formats import rand_uint8, solid, write_image


def test_resize_and_grayscale_notes(tmp_path: Path) -> None:
    a = write_image(tmp_path / "a.png", solid(48, 64, 90))  # 64 wide, 48 high, gray
    b = write_image(tmp_path / "b.png", solid(28, 28, (200, 100, 50)))
    images, notes = read_image_files([a, str(b)], channels=1, size=(28, 28))
    assert images.shape == (2, 1, 28, 28) and images.dtype == torch.uint8
    assert notes == [
        f"resized {a} from 64×48 to 28×28",
        f"converted {b} from RGB to grayscale",
    ]
    assert images[0].unique().tolist() == [90]
    # Pillow's ITU-R 601-2 luma: (200*299 + 100*587 + 50*114) / 1000 = 124.4
    assert images[1].unique().tolist() == [124]


def test_gray_to_rgb_and_alpha(tmp_path: Path) -> None:
    g = write_image(tmp_path / "g.png", solid(5, 7, 33))
    rgba = np.dstack([solid(5, 7, (10, 20, 30)), solid(5, 7, 128)])
    t = write_image(tmp_path / "t.png", rgba)
    images, notes = read_image_files([g, t], channels=3, size=(5, 7))
    assert images.shape == (2, 3, 5, 7)
    assert images[0, :, 2, 3].tolist() == [33, 33, 33]
    assert images[1, :, 2, 3].tolist() == [10, 20, 30]
    assert notes == [
        f"converted {g} from grayscale to RGB",
        f"converted {t} from RGBA to RGB (transparency dropped)",
    ]


def test_matching_image_is_untouched(tmp_path: Path) -> None:
    pixels = rand_uint8((6, 9, 3))
    path = write_image(tmp_path / "same.png", pixels)
    images, notes = read_image_files([path], channels=3, size=(6, 9))
    assert notes == [] and np.array_equal(images[0].numpy(), pixels.transpose(2, 0, 1))


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(path)
    images, _ = read_image_files([path], channels=1, size=(4, 4))
    assert images.unique().tolist() == [255]
    Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)).save(path)  # 128 * 257
    assert read_image_files([path], channels=1, size=(4, 4))[0].unique().tolist() == [128]


def test_missing_and_non_image_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(AekitError, match=f"image {tmp_path / 'nope.png'} does not exist"):
        read_image_files([tmp_path / "nope.png"], channels=1, size=(8, 8))
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(AekitError, match=f"cannot read {text} as an image"):
        read_image_files([text], channels=1, size=(8, 8))
    with pytest.raises(AekitError, match="is not a file"):
        read_image_files([tmp_path], channels=1, size=(8, 8))


def test_no_files_gives_an_empty_batch() -> None:
    images, notes = read_image_files([], channels=3, size=(4, 5))
    assert images.shape == (0, 3, 4, 5) and notes == []


def test_resize_images_tensor() -> None:
    flat = torch.full((3, 1, 28, 28), 77, dtype=torch.uint8)
    out = resize_images(flat, (14, 10))
    assert out.shape == (3, 1, 14, 10) and out.dtype == torch.uint8
    assert out.unique().tolist() == [77]
    assert resize_images(flat, (28, 28)) is flat
    ramp = torch.arange(0, 256, 8, dtype=torch.uint8).repeat(1, 1, 32, 1)  # (1, 1, 32, 32)
    half = resize_images(ramp, (16, 16), chunk=1)
    # on a linear ramp, output column 4 sits between input columns 8 and 9 (64 and 72)
    assert abs(int(half[0, 0, 8, 4]) - (64 + 72) // 2) <= 2


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((4, 8, 3), np.uint8)  # stored 8 wide, 4 high, left half white
    pixels[:, :4] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": shown 4 wide, 8 high
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path, exif=exif)
    images, notes = read_image_files([path], channels=1, size=(8, 4))
    assert notes == [
        f"turned {path} upright, as its EXIF orientation says",
        f"converted {path} from RGB to grayscale",
    ]  # no resize: 4×8 as displayed
    assert images[0, 0, :4].float().mean() > 200 and images[0, 0, 4:].float().mean() < 50
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.shape == (3, 8, 4) and torch.equal(ds.images[0, 0], images[0, 0])
