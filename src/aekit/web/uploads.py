"""Uploaded bytes -> the model's uint8 (C, H, W), and uint8 images -> PNG data URLs.

The conversion is the one ``aekit reconstruct`` applies to files (``data.images``): EXIF
orientation, grayscale or RGB, antialiased bicubic resize. Uploads are hostile by default, so
the byte count is checked before Pillow sees anything, and ``open_image`` (the one opener of
every image file aekit reads) allows raster formats only and checks the pixel count from the
header before anything is decoded.
"""

from __future__ import annotations

import base64
import io
import os
import threading

import numpy as np
import torch
from PIL import Image

from ..data.images import (
    DEFAULT_MAX_PIXELS,
    KINDS,
    UNREADABLE,
    TooManyPixels,
    convert,
    fit,
    open_image,
    to_chw,
    unreadable_reason,
    upright,
)

MAX_UPLOAD_BYTES = 5_000_000  # default of aekit serve: a phone photo's JPEG fits
MAX_PIXELS = DEFAULT_MAX_PIXELS  # the one limit of every image read (--max-pixels)
# Decoding is CPU-bound, so more decodes at once than cores gain nothing; bounding them bounds
# the memory that concurrent uploads near the pixel limit can take (~200 MB each).
_DECODING = threading.BoundedSemaphore(os.cpu_count() or 1)


class UploadError(Exception):
    """A bad upload: ``status`` is the HTTP code to answer with, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_upload(
    data: bytes, channels: int, size: int | None, max_bytes: int, max_pixels: int
) -> torch.Tensor:
    """Image file bytes -> uint8 (C, size, size) for a model with ``channels`` (1 or 3);
    ``size`` None keeps the image's own size."""
    if len(data) > max_bytes:
        raise UploadError(413, f"the upload is over the limit of {max_bytes} bytes")
    if not data:
        raise UploadError(400, f"the upload is empty: send a {KINDS} file")
    try:
        with _DECODING, open_image(io.BytesIO(data), "the upload", max_pixels) as raw:
            img = convert(upright(raw), channels == 1)
            array = to_chw(img if size is None else fit(img, (size, size)))
            return torch.from_numpy(array.copy())  # np.asarray of a Pillow image is read-only
    except TooManyPixels as exc:
        raise UploadError(
            413, f"the upload {exc.extent} pixels, over the limit of {exc.limit}"
        ) from exc
    except UNREADABLE as exc:  # not an image, truncated, or a corrupt header
        raise UploadError(
            400,
            f"cannot read the upload as an image ({unreadable_reason(exc)}); send a {KINDS} file",
        ) from exc


def png_bytes(image: torch.Tensor) -> bytes:
    """uint8 (C, H, W) or [0, 1] float (C, H, W) -> PNG file bytes."""
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = image.cpu().numpy()
    array = array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def data_url(image: torch.Tensor) -> str:
    """An image as ``data:image/png;base64,...``, which a page can show without another request."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")
