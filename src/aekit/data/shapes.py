"""``shapes``: the built-in offline demo set, 32×32 RGB images of one coloured shape each.

Generated, not downloaded: every call gives the same bytes (a fixed seed per split) and the whole
set renders in well under a second, because each shape is a signed-distance function evaluated on
all images of a chunk at once. Edges are antialiased by turning the distance into coverage.
"""

from __future__ import annotations

import numpy as np
import torch

from .imageset import ImageSet

CLASSES = [
    "circle",
    "square",
    "triangle",
    "diamond",
    "ring",
    "cross",
    "horizontal bar",
    "vertical bar",
]
SIZE = 32
COUNTS = {"train": 8000, "val": 1000, "test": 1000}
SEEDS = {"train": 20240, "val": 20241, "test": 20242}
CHUNK = 1000  # images rendered at once: bounds the float32 temporaries to ~50 MB


def _distance(kind: int, dx: np.ndarray, dy: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Signed distance in pixels (negative inside) to shape ``kind`` of half-size ``h``.

    dx, dy: (n, H, W) offsets from the shape's centre (y grows downwards); h: (n, 1, 1).
    """
    ax, ay = np.abs(dx), np.abs(dy)
    name = CLASSES[kind]
    if name == "circle":
        return np.hypot(dx, dy) - h
    if name == "square":
        return np.maximum(ax, ay) - 0.85 * h
    if name == "triangle":  # equilateral, apex up, its bounding box centred on (0, 0)
        r = 1.15 * h
        y = dy - 0.25 * r
        edges = (y - r / 2, 0.866 * dx - y / 2 - r / 2, -0.866 * dx - y / 2 - r / 2)
        return np.maximum.reduce(edges)
    if name == "diamond":
        return (ax + ay - h) / np.sqrt(2)
    if name == "ring":
        return np.abs(np.hypot(dx, dy) - 0.7 * h) - 0.3 * h
    if name == "cross":
        arm = 0.3 * h
        return np.minimum(np.maximum(ax - h, ay - arm), np.maximum(ax - arm, ay - h))
    if name == "horizontal bar":
        return np.maximum(ax - h, ay - 0.35 * h)
    return np.maximum(ax - 0.35 * h, ay - h)  # vertical bar


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n,) hue, saturation, value in [0, 1] -> (n, 3) RGB in [0, 255]."""
    sector = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)])
    return 255.0 * table[sector, :, np.arange(len(h))]  # (6, 3, n) -> (n, 3)


def _draw_params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Every random choice for ``n`` images, drawn up front so rendering order cannot matter."""
    half = rng.uniform(6.0, 10.5, n)
    dark = rng.random(n) < 0.5  # dark background with a bright shape, or the reverse
    hue = rng.random(n)
    return {
        "label": rng.permutation(np.arange(n) % len(CLASSES)),
        "half": half,
        "cx": rng.uniform(half + 1, SIZE - 1 - half),
        "cy": rng.uniform(half + 1, SIZE - 1 - half),
        "fg": _hsv_to_rgb(
            hue,
            rng.uniform(0.55, 1.0, n),
            np.where(dark, rng.uniform(0.8, 1.0, n), rng.uniform(0.25, 0.55, n)),
        ),
        # low-saturation backgrounds, hue opposite-ish to the shape, as a two-colour gradient
        "bg0": _hsv_to_rgb(
            (hue + rng.uniform(0.3, 0.7, n)) % 1.0,
            rng.uniform(0.0, 0.4, n),
            np.where(dark, rng.uniform(0.05, 0.3, n), rng.uniform(0.8, 0.97, n)),
        ),
        "shift": rng.uniform(-40.0, 40.0, (n, 3)),
        "angle": rng.uniform(0.0, 2 * np.pi, n),
    }


def _render(p: dict[str, np.ndarray]) -> np.ndarray:
    """Parameters of n images -> uint8 (n, 3, SIZE, SIZE)."""
    p = {k: v if k == "label" else v.astype(np.float32) for k, v in p.items()}
    n = len(p["label"])
    grid = np.arange(SIZE, dtype=np.float32) + 0.5  # pixel centres
    dx = np.broadcast_to(grid[None, None, :] - p["cx"][:, None, None], (n, SIZE, SIZE))
    dy = np.broadcast_to(grid[None, :, None] - p["cy"][:, None, None], (n, SIZE, SIZE))
    half = p["half"][:, None, None]
    dist = np.empty((n, SIZE, SIZE), dtype=np.float32)
    for kind in range(len(CLASSES)):
        m = p["label"] == kind
        dist[m] = _distance(kind, dx[m], dy[m], half[m])
    alpha = np.clip(0.5 - dist, 0.0, 1.0)[:, None]  # (n, 1, H, W) pixel coverage
    # background gradient along a random direction: t in [0, 1] across the image
    cos, sin = np.cos(p["angle"])[:, None, None], np.sin(p["angle"])[:, None, None]
    centred = grid - SIZE / 2
    t = (centred[None, None, :] * cos + centred[None, :, None] * sin) / SIZE + 0.5
    bg0 = p["bg0"][:, :, None, None]
    bg1 = np.clip(bg0 + p["shift"][:, :, None, None], 0, 255)
    bg = bg0 + (bg1 - bg0) * t[:, None]
    image = bg * (1 - alpha) + p["fg"][:, :, None, None] * alpha
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def generate_shapes(
    split: str, count: int | None = None, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) for a split; identical on every call.

    ``count``/``seed`` draw another number of images (benchmarks use 100k) from another seed.
    """
    n = COUNTS[split] if count is None else count
    params = _draw_params(np.random.default_rng(SEEDS[split] if seed is None else seed), n)
    images = np.empty((n, 3, SIZE, SIZE), dtype=np.uint8)
    for start in range(0, n, CHUNK):
        part = {k: v[start : start + CHUNK] for k, v in params.items()}
        images[start : start + CHUNK] = _render(part)
    return images, params["label"].astype(np.int64)


def load_shapes(split: str, source: str) -> ImageSet:
    """The ``shapes`` split as an ImageSet (train 8000, val 1000, test 1000 images)."""
    images, labels = generate_shapes(split)
    return ImageSet(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        classes=list(CLASSES),
        source=source,
        split=split,
    )
