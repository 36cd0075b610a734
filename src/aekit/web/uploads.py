"""Uploaded bytes -> the model's uint8 (C, H, W), and uint8 images -> PNG data URLs.

The conversion is the one ``aekit reconstruct`` applies to files (``data.images``): EXIF
orientation, grayscale or RGB, antialiased bicubic resize. Uploads are hostile by default, so
the byte count is checked before Pillow sees anything and the pixel count from the header
before anything is decoded.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from ..data.images import UNREADABLE, convert, fit, to_chw, upright

MAX_UPLOAD_BYTES = 5_000_000  # defaults of aekit serve; a phone photo fits in both
MAX_PIXELS = 4_000_000


class UploadError(Exception):
    """A bad upload: ``status`` is the HTTP code to answer with, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_upload(
    data: bytes, channels: int, size: int, max_bytes: int, max_pixels: int
) -> torch.Tensor:
    """Image file bytes -> uint8 (C, size, size) for a model with ``channels`` (1 or 3)."""
    if len(data) > max_bytes:
        raise UploadError(413, f"the upload is over the limit of {max_bytes} bytes")
    if not data:
        raise UploadError(400, "the upload is empty: send a png, jpg, bmp, gif, tiff or webp file")
    try:
        with Image.open(io.BytesIO(data)) as raw:
            w, h = raw.size  # from the header: nothing is decoded yet
            if w * h > max_pixels:
                raise UploadError(
                    413, f"the image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}"
                )
            array = to_chw(fit(convert(upright(raw), channels == 1), (size, size)))
            return torch.from_numpy(array.copy())  # np.asarray of a Pillow image is read-only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(413, f"the image has too many pixels to decode safely ({exc})") from exc
    except UNREADABLE as exc:  # not an image, truncated, or a corrupt header
        raise UploadError(
            400,
            f"cannot read the upload as an image ({exc}); send a png, jpg, bmp, gif, tiff or "
            "webp file",
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
