"""Self-supervised denoising objectives, as small pure functions of a batch of noisy images:
no clean image anywhere, the noisy images are input and target at once.

- ``n2v``, a blind spot (Krull et al., Noise2Void, CVPR 2019): one pixel of every 4x4 cell is
  replaced by a random other pixel of its 5x5 neighbourhood, and the loss is the error at those
  pixels only, so the network never sees the value it must predict and cannot learn the
  identity; it learns what the neighbourhood says, in which independent noise has no part.
  (The tutorial's masking corruption, pushed to single pixels.)
- ``nb2nb``, two neighbouring sub-images (Huang et al., Neighbor2Neighbor, CVPR 2021): from each
  2x2 cell two adjacent pixels are drawn, one for each of two half-size images; the network
  maps one to the other (their noise is independent, their content nearly the same) and a
  regulariser ties that to the network's output on the whole image.

Pixels are on the model's scale throughout; one draw per pixel position serves every channel.
"""

from __future__ import annotations

import torch

METHODS = ("n2v", "nb2nb")
CELL = 4  # n2v: one blind-spot pixel per CELL x CELL cell (1/16 of the pixels, as Noise2Self)
RADIUS = 2  # n2v: the replacing pixel is drawn from the (2R+1)^2 neighbourhood, less the pixel
GAMMA = 1.0  # nb2nb: the regulariser's weight (the authors' code: 1 at the start of training)
# nb2nb: the two pixels of a 2x2 cell (numbered row by row) that share an edge with each
ADJACENT = ((1, 2), (0, 3), (0, 3), (1, 2))


def _randint(high: int, shape: tuple[int, ...], gen: torch.Generator | None,
             device: torch.device) -> torch.Tensor:  # fmt: skip
    return torch.randint(high, shape, generator=gen, device=device)


def blind_spots(x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, mask) for the (B, C, H, W) batch ``x``: a copy in which one random pixel of
    each CELL x CELL cell holds the value of a random other pixel within RADIUS, and the
    (B, 1, H, W) bool mask of those pixels. H and W of at least CELL."""
    b, _, h, w = x.shape
    hc, wc, dev = h // CELL, w // CELL, x.device
    rows = torch.arange(hc, device=dev)[None, :, None] * CELL + _randint(
        CELL, (b, hc, wc), gen, dev
    )
    cols = torch.arange(wc, device=dev)[None, None, :] * CELL + _randint(
        CELL, (b, hc, wc), gen, dev
    )
    side = 2 * RADIUS + 1
    k = _randint(side * side - 1, (b, hc, wc), gen, dev)
    k = k + (k >= side * side // 2).long()  # skip the centre: the offset is never (0, 0)
    dy, dx = k // side - RADIUS, k % side - RADIUS
    src_r, src_c = (rows + dy).clamp(0, h - 1), (cols + dx).clamp(0, w - 1)
    # at an edge the clamp can land on the pixel itself: then take the opposite neighbour
    itself = (src_r == rows) & (src_c == cols)
    src_r = torch.where(itself, (rows - dy).clamp(0, h - 1), src_r)
    src_c = torch.where(itself, (cols - dx).clamp(0, w - 1), src_c)
    batch = torch.arange(b, device=dev)[:, None, None].expand(b, hc, wc)
    inputs = x.clone()
    inputs[batch, :, rows, cols] = x[batch, :, src_r, src_c]
    mask = torch.zeros((b, 1, h, w), dtype=torch.bool, device=dev)
    mask[batch, 0, rows, cols] = True
    return inputs, mask


def masked_mse(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean squared error over the pixels of ``mask`` (B, 1, H, W), in float32."""
    err = (output.float() - target.float()).square() * mask
    return err.sum() / (mask.sum() * output.shape[1]).clamp_min(1)


def pair_picks(x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Which two adjacent pixels of each 2x2 cell of ``x`` (B, C, H, W) make the two
    sub-images: (first, second), int64 (B, 1, H // 2, W // 2) each, numbered 0-3 row by row."""
    b, _, h, w = x.shape
    shape = (b, 1, h // 2, w // 2)
    first = _randint(4, shape, gen, x.device)
    table = torch.tensor(ADJACENT, device=x.device)
    second = table[first, _randint(2, shape, gen, x.device)]
    return first, second


def sub_image(x: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """(B, C, H // 2, W // 2): from each 2x2 cell of ``x`` the pixel ``pick`` names."""
    b, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    cells = x[:, :, : 2 * h2, : 2 * w2].reshape(b, c, h2, 2, w2, 2)
    cells = cells.permute(0, 1, 2, 4, 3, 5).reshape(b, c, h2, w2, 4)
    return cells.gather(4, pick.expand(b, c, h2, w2)[..., None])[..., 0]


def neighbour_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    whole_first: torch.Tensor,
    whole_second: torch.Tensor,
    gamma: float = GAMMA,
) -> torch.Tensor:
    """Neighbor2Neighbor's loss: the network's output for the first sub-image against the
    second, plus ``gamma`` times how far that difference is from the same two sub-images of the
    network's output for the whole image (``whole_*``, computed without gradient)."""
    diff = output.float() - target.float()
    exact = whole_first.float() - whole_second.float()
    return diff.square().mean() + gamma * (diff - exact).square().mean()


def noise_sigma(images: torch.Tensor) -> torch.Tensor:
    """(N,) each uint8 (N, C, H, W) image's noise sigma on the 0-255 scale, estimated from its
    finest diagonal Haar wavelet details by their median absolute value (Donoho's estimator),
    which the image's edges barely move. Clean photos give about 1-3, sigma-25 noise about 25.
    (scikit-image's ``estimate_sigma`` does the same with Daubechies wavelets; a dependency
    for these four lines is not worth it.)"""
    x = images.float()
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.flatten(1).abs().median(dim=1).values / 0.6745
