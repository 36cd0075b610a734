"""Reading image files with Pillow and bringing them to a model's shape (shared by ``folder:``
sources, user-given images and web uploads), plus the tensor resize used for fixed-size array
sources.

Every file is opened by :func:`open_image`: raster formats only (an EPS or PDF would make Pillow
start Ghostscript), and no more pixels than the one limit (:func:`pixel_limit`, ``--max-pixels``),
checked from the header before anything is decoded.

Resampling is bicubic everywhere: Pillow's BICUBIC resize (antialiased: its filter widens when
shrinking) for files, and torch's bicubic with ``antialias=True`` (built to match Pillow) for
tensors.
"""

from __future__ import annotations

import argparse
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import AekitError

RASTER_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")  # Pillow's names
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm"}  # fmt: skip
KINDS = "png, jpg, bmp, gif, tiff, webp, ppm or pgm"
# One limit for every image read. 64 MP lets through a 24-MP camera photo and today's largest
# common sensors (45-61 MP full frame, 48/50-MP phones), at most ~200 MB once decoded as RGB;
# it refuses 100-170 MP PNGs that compress to kilobytes, which Pillow's own check (a warning
# over 89 MP, an error over 179 MP) would decode.
DEFAULT_MAX_PIXELS = 64_000_000
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
_MODE_NAMES = {"L": "grayscale", "1": "black-and-white", "P": "palette", "LA": "grayscale+alpha",
               "I;16": "16-bit grayscale", "I;16B": "16-bit grayscale",
               "I;16L": "16-bit grayscale", "I": "32-bit grayscale",
               "F": "float grayscale"}  # fmt: skip
_max_pixels = DEFAULT_MAX_PIXELS


class TooManyPixels(AekitError):
    """An image whose header declares more pixels than the limit: refused before decoding."""

    def __init__(self, name: str, pixels: int, limit: int, size: tuple[int, int] | None) -> None:
        self.name, self.pixels, self.limit, self.size = name, pixels, limit, size
        super().__init__(
            f"{name} {self.extent} pixels, over the limit of {limit} (a guard against "
            f"decompression bombs): pass --max-pixels {pixels} or more to read it"
        )

    @property
    def extent(self) -> str:
        """'is 640x480 = 307200' or, when Pillow refused it first, 'has 400000000'."""
        if self.size is None:
            return f"has {self.pixels}"
        return f"is {self.size[0]}x{self.size[1]} = {self.pixels}"


def max_pixels() -> int:
    """The pixel limit in effect: DEFAULT_MAX_PIXELS unless :func:`pixel_limit` set another."""
    return _max_pixels


@contextmanager
def pixel_limit(limit: int | None = None) -> Iterator[int]:
    """Within the block, refuse image files over ``limit`` pixels (None: keep the limit) and
    let this check replace Pillow's process-wide one (``Image.MAX_IMAGE_PIXELS``), which would
    warn about images the check refuses anyway and refuse ones the user allowed. Like Pillow's
    setting it holds for the whole process: enter it once, as ``aekit``'s main does."""
    global _max_pixels
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise AekitError(f"the pixel limit must be a whole number of at least 1, got {limit!r}")
    before, pillow = _max_pixels, Image.MAX_IMAGE_PIXELS
    _max_pixels = before if limit is None else limit
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield _max_pixels
    finally:
        _max_pixels, Image.MAX_IMAGE_PIXELS = before, pillow


def _pixel_count(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def add_max_pixels_flag(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels N`` for a command that reads image files (``aekit``'s main applies it)."""
    parser.add_argument(
        "--max-pixels",
        type=_pixel_count,
        default=None,
        metavar="N",
        help=f"refuse images over N pixels, read from their header before decoding "
        f"(default {DEFAULT_MAX_PIXELS})",
    )


def open_image(source: str | Path | IO[bytes], name: str, limit: int | None = None) -> Image.Image:
    """Open an image file up to its header: one of RASTER_FORMATS (no other format is tried,
    so no external interpreter ever runs) of at most ``limit`` pixels (default: the limit in
    effect). Raises TooManyPixels, naming the file as ``name``, or one of UNREADABLE."""
    limit = max_pixels() if limit is None else limit
    try:
        img = Image.open(source, formats=RASTER_FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own check, when it is active
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise TooManyPixels(name, pixels, limit, None) from exc
    w, h = img.size
    if w * h > limit:
        img.close()
        raise TooManyPixels(name, w * h, limit, (w, h))
    return img


def unreadable_reason(exc: BaseException) -> str:
    """Why Pillow could not read a file, without its repr of a file object."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image in a format aekit reads"
    return re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the file", str(exc)) or type(exc).__name__


def is_image_file(path: Path) -> bool:
    """True for a file whose extension is one of IMAGE_EXTENSIONS (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def peek(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height) as displayed) of an image file; raises TooManyPixels (from the
    header) or one of UNREADABLE."""
    with open_image(path, str(path)) as img:
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


def load(path: Path, gray: bool, size_wh: tuple[int, int] | None) -> np.ndarray:
    """Decode a file fully and return it as uint8 (C, H, W), converted to grayscale (C=1) or RGB
    (C=3) and resized to ``size_wh`` (width, height; None keeps its own size); raises
    TooManyPixels or one of UNREADABLE."""
    with open_image(path, str(path)) as img:
        img = convert(upright(img), gray)
        return to_chw(img if size_wh is None else fit(img, size_wh))


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
    from RGB to grayscale". A missing or unreadable file, or one over the pixel limit, is an
    AekitError naming it.
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


def read_image_file(path: str | Path, channels: int) -> tuple[torch.Tensor, list[str]]:
    """One user-given image file at its own size: uint8 (C, H, W) with ``channels`` channels
    (1 or 3), and a note when it was converted (see ``read_image_files``)."""
    notes: list[str] = []
    return torch.from_numpy(_read_one(Path(path), channels, None, notes).copy()), notes


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a user-given image file, from its header: a missing or unreadable
    file, or one over the pixel limit, is an AekitError naming it."""
    _check_file(path)
    try:
        with open_image(path, str(path)) as img:
            return img.size
    except UNREADABLE as exc:
        raise AekitError(
            f"cannot read {path} as an image ({unreadable_reason(exc)}); give a {KINDS} file"
        ) from exc


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AekitError(f"image {path} does not exist: check the path")
    if not path.is_file():
        raise AekitError(f"{path} is not a file: give image files (png, jpg, ...)")


def _read_one(
    path: Path, channels: int, size_wh: tuple[int, int] | None, notes: list[str]
) -> np.ndarray:
    _check_file(path)
    try:
        with open_image(path, str(path)) as raw:
            turned = raw.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)
            img = upright(raw)
            mode, orig = img.mode, img.size
            has_alpha = "A" in mode or "transparency" in img.info
            img = convert(img, channels == 1)
            array = to_chw(img if size_wh is None else fit(img, size_wh))
    except UNREADABLE as exc:
        raise AekitError(
            f"cannot read {path} as an image ({unreadable_reason(exc)}); give a {KINDS} file"
        ) from exc
    if turned:
        notes.append(f"turned {path} upright, as its EXIF orientation says")
    target = "L" if channels == 1 else "RGB"
    if mode != target:
        alpha = " (transparency dropped)" if has_alpha else ""
        notes.append(f"converted {path} from {mode_name(mode)} to {mode_name(target)}{alpha}")
    if size_wh is not None and orig != size_wh:
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
