"""Images to latent vectors, and the fingerprint a store keeps of the split it embedded: shared
by the in-memory path (:mod:`aekit.search.embed`) and the streamed one
(:mod:`aekit.search.embed_stream`)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from tqdm import tqdm

from ..errors import AekitError
from ..models import Autoencoder, to_model_scale

FINGERPRINT_IMAGES = 64


def fingerprint(images: torch.Tensor, count: int) -> str:
    """sha256 of up to 64 images spread evenly over the first ``count`` (and of their shape):
    how a store notices that the dataset it shows pictures from is no longer the one it
    embedded, at the cost of 64 images, whatever the dataset's size."""
    if len(images) < count:
        return "fewer images"
    return fingerprint_of(images[fingerprint_rows(count)], count)


def fingerprint_rows(count: int) -> torch.Tensor:
    """The positions of the images a fingerprint of ``count`` images hashes."""
    return torch.linspace(0, count - 1, min(count, FINGERPRINT_IMAGES)).round().long()


def fingerprint_of(sample: torch.Tensor, count: int) -> str:
    """The fingerprint of a split of ``count`` images whose images at
    :func:`fingerprint_rows` are ``sample`` (n, C, H, W)."""
    h = hashlib.sha256(str((count, *sample.shape[1:])).encode())
    h.update(sample.contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def encode(
    model: Autoencoder,
    images: torch.Tensor,
    batch_size: int = 256,
    progress: bool | None = None,
    first: int = 0,
) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 (N, D) latent vectors (eval mode, batched, no grad; the
    model runs in the dtype of its weights). ``first``: the split's position of ``images[0]``
    (what an error names)."""
    model.eval()
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    out = np.empty((len(images), model.config.latent_dim), dtype=np.float32)
    bar = tqdm(total=len(images), unit="img", desc="embedding", leave=False,
               disable=None if progress is None else not progress)  # fmt: skip
    for s in range(0, len(images), batch_size):
        batch = images[s : s + batch_size].to(device, non_blocking=True)
        codes = model.encode(to_model_scale(batch, model.config.arch, dtype))
        if not torch.isfinite(codes).all():
            bar.close()
            raise AekitError(
                f"the model gives NaN or infinite codes (images {first + s} to "
                f"{first + s + len(batch) - 1}): "
                "its weights are broken; train it again"
            )
        out[s : s + len(batch)] = codes.cpu()
        bar.update(len(batch))
    bar.close()
    return out
