"""The built-in shapes set: deterministic, balanced, and each class draws what its name says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit.data import load_dataset
from aekit.data.shapes import CLASSES, COUNTS, _draw_params, _render, generate_shapes


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_sizes_and_balance(split: str) -> None:
    ds = load_dataset("shapes", split)
    assert len(ds) == COUNTS[split] and ds.shape == (3, 32, 32)
    assert ds.images.dtype == torch.uint8 and ds.classes == CLASSES and len(CLASSES) >= 6
    assert torch.bincount(ds.labels).tolist() == [COUNTS[split] // len(CLASSES)] * len(CLASSES)


def test_same_bytes_every_call_and_splits_differ() -> None:
    a_images, a_labels = generate_shapes("val")
    b_images, b_labels = generate_shapes("val")
    assert np.array_equal(a_images, b_images) and np.array_equal(a_labels, b_labels)
    test_images, _ = generate_shapes("test")
    assert not np.array_equal(a_images, test_images)


def _one(kind: str, half: float = 9.0) -> np.ndarray:
    """Render one shape centred at (16, 16): white on a flat black background."""
    p = _draw_params(np.random.default_rng(0), 1)
    p.update(
        label=np.array([CLASSES.index(kind)]),
        half=np.array([half]),
        cx=np.array([16.0]),
        cy=np.array([16.0]),
        fg=np.array([[255.0, 255.0, 255.0]]),
        bg0=np.zeros((1, 3)),
        shift=np.zeros((1, 3)),
    )
    return _render(p)[0, 0]  # red channel, (32, 32)


def test_each_class_draws_its_shape() -> None:
    on = {k: _one(k) > 127 for k in CLASSES}
    for kind, mask in on.items():
        assert mask[16, 16] == (kind != "ring"), kind  # every shape but the ring covers its centre
        assert not mask[0].any() and not mask[:, 0].any(), kind  # nothing leaks to the border
    assert on["circle"][16, 24] and not on["circle"][24, 24]  # round: edge in, corner out
    assert on["square"][23, 23] and not on["diamond"][23, 23]
    assert on["diamond"][16, 24] and not on["square"][16, 24]  # diamond tips reach further
    assert on["ring"][16, 23] and not on["ring"][16, 18]
    assert on["cross"][16, 24] and not on["cross"][23, 23]
    assert on["horizontal bar"][16, 24] and not on["horizontal bar"][24, 16]
    assert on["vertical bar"][24, 16] and not on["vertical bar"][16, 24]
    tri = on["triangle"]
    assert tri[22, 16] and tri[22, 10] and not tri[10, 10]  # wide base, narrow apex
    widths = tri.sum(axis=1)
    assert widths[22] > widths[13] > 0  # widens downwards


def test_edges_are_antialiased_and_colours_contrast() -> None:
    circle = _one("circle")
    assert ((circle > 0) & (circle < 255)).any()  # partial coverage on the outline
    images, _ = generate_shapes("val")
    flat = images.reshape(len(images), 3, -1).astype(int)
    spread = flat.max(axis=2) - flat.min(axis=2)
    assert (spread.max(axis=1) > 80).all()  # every image shows a visible shape
