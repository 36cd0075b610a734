"""Reading image files with Pillow and bringing them to a model's shape (shared by ``folder:``
sources and user-given images), plus the tensor resize used for fixed-size array sources.

Resampling is bicubic everywhere: Pillow's BICUBIC resize (antialiased: its filter widens when
shrinking) for files, and torch's bicubic with ``antialias=True`` (built to match Pillow) for
tensors.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import AekitError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
RESAMPLE = Image.Resampling.BICUBIC
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "F"}
# What Pillow may raise on a truncated, garbage or hostile file.
UNREADABLE = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)
EXIF_ORIENTATION = 0x0112
_MODE_NAMES = {"L": "grayscale", "1": "black-and-white", "P": "palette", "LA": "grayscale+alpha"}


def is_image_file(path: Path) -> bool:
    """True for a file whose extension is one of IMAGE_EXTENSIONS (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def peek(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height) as displayed) from the file header only; raises one of UNREADABLE."""
    with Image.open(path) as img:
        w, h = img.size
        # EXIF orientations 5-8 are rotated by 90°: the displayed image is h wide
        return img.mode, (h, w) if img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (
            w,
            h,
        )


def upright(img: Image.Image) -> Image.Image:
    """Decode ``img`` and apply its EXIF orientation (phone photos), as image viewers do."""
    img.load()
    return ImageOps.exif_transpose(img) or img


def load(path: Path, gray: bool, size_wh: tuple[int, int]) -> np.ndarray:
    """Decode a file fully and return it as uint8 (C, H, W), converted to grayscale (C=1) or RGB
    (C=3) and resized to ``size_wh`` (width, height); raises one of UNREADABLE."""
    with Image.open(path) as img:
        return to_chw(fit(convert(upright(img), gray), size_wh))


def convert(img: Image.Image, gray: bool) -> Image.Image:
    """To 'L' or 'RGB'. High-bit-depth gray is scaled to 0..255 (Pillow would clip it)."""
    target = "L" if gray else "RGB"
    if img.mode == target:
        return img
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "F"):
        values = np.asarray(img, dtype=np.float64)
        top = 1.0 if img.mode == "F" and values.max(initial=0) <= 1 else 255.0
        top = 65535.0 if values.max(initial=0) > 255 else top
        img = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8))
    return img.convert(target)


def fit(img: Image.Image, size_wh: tuple[int, int]) -> Image.Image:
    """Resize to (width, height) with antialiased bicubic, unless already that size."""
    return img if img.size == size_wh else img.resize(size_wh, RESAMPLE)


def to_chw(img: Image.Image) -> np.ndarray:
    """An 'L' or 'RGB' image -> uint8 (C, H, W)."""
    array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def mode_name(mode: str) -> str:
    """Human name of a Pillow mode for notes ('L' -> 'grayscale')."""
    return _MODE_NAMES.get(mode, mode)


def read_image_files(
    paths: list[str | Path], channels: int, size: tuple[int, int]
) -> tuple[torch.Tensor, list[str]]:
    """Load user-given image files for a model expecting ``channels`` (1 or 3) and ``size``
    (height, width).

    Returns uint8 (N, C, H, W) and one note per conversion, e.g. "resized a.png from 64×48 to
    28×28" (sizes in notes are width×height, as image viewers show them) or "converted b.png
    from RGB to grayscale". A missing or unreadable file is an AekitError naming it.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    height, width = size
    arrays, notes = [], []
    for path in paths:
        arrays.append(_read_one(Path(path), channels, (width, height), notes))
    if not arrays:
        return torch.empty((0, channels, height, width), dtype=torch.uint8), notes
    return torch.from_numpy(np.stack(arrays)), notes


def _read_one(path: Path, channels: int, size_wh: tuple[int, int], notes: list[str]) -> np.ndarray:
    if not path.exists():
        raise AekitError(f"image {path} does not exist: check the path")
    if not path.is_file():
        raise AekitError(f"{path} is not a file: give image files (png, jpg, ...)")
    try:
        with Image.open(path) as raw:
            img = upright(raw)
            mode, orig = img.mode, img.size
            has_alpha = "A" in mode or "transparency" in img.info
            array = to_chw(fit(convert(img, channels == 1), size_wh))
    except UNREADABLE as exc:
        raise AekitError(
            f"cannot read {path} as an image ({exc}); give a png, jpg, bmp, gif, tiff or webp file"
        ) from exc
    target = "L" if channels == 1 else "RGB"
    if mode != target:
        alpha = " (transparency dropped)" if has_alpha else ""
        notes.append(f"converted {path} from {mode_name(mode)} to {mode_name(target)}{alpha}")
    if orig != size_wh:
        notes.append(f"resized {path} from {orig[0]}×{orig[1]} to {size_wh[0]}×{size_wh[1]}")
    return array


def resize_images(images: torch.Tensor, size: tuple[int, int], chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) to ``size`` (height, width) with antialiased bicubic, in chunks
    so a memory-mapped set is read piece by piece."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].float()
        block = F.interpolate(block, size=size, mode="bicubic", antialias=True, align_corners=False)
        out[start : start + chunk] = block.round().clamp(0, 255).to(torch.uint8)
    return out
