"""SOURCE strings, splits, --limit, image_size, ImageSet helpers and the data folder default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aekit.data import ImageSet, available_splits, default_data_dir, describe, load_dataset
from aekit.data.sources import Source, parse_source
from aekit.errors import AekitError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mnist", Source("idx", "mnist")),
        ("Fashion-MNIST", Source("idx", "fashion-mnist")),
        ("cifar10", Source("cifar10", "cifar10")),
        ("shapes", Source("shapes", "shapes")),
        ("medmnist/pathmnist", Source("medmnist", "pathmnist", 28)),
        ("medmnist/chestmnist@224", Source("medmnist", "chestmnist", 224)),
        ("folder:/x/My Images", Source("folder", "/x/My Images")),
        ("npz:data.npz", Source("npz", "data.npz")),
    ],
)
def test_parse_source(text: str, expected: Source) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [("imagenet", ""), ("pathmnist", "did you mean medmnist/pathmnist?"), ("x.npz", "npz:x.npz")],
)
def test_unknown_source_lists_the_forms(text: str, hint: str) -> None:
    with pytest.raises(AekitError) as err:
        load_dataset(text)
    msg = str(err.value)
    assert f"unknown data source {text!r}" in msg and hint in msg
    for form in (
        "mnist",
        "fashion-mnist",
        "cifar10",
        "shapes",
        "medmnist/<flag>",
        "folder:",
        "npz:",
    ):
        assert form in msg


def test_bare_folder_path_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(AekitError, match=f"write folder:{tmp_path}"):
        parse_source(str(tmp_path))


def test_empty_path_after_prefix() -> None:
    with pytest.raises(AekitError, match="names no path"):
        parse_source("folder:")


def test_available_splits_of_builtin_sources() -> None:
    assert available_splits("mnist") == ["train", "test"]
    assert available_splits("cifar10") == ["train", "test"]
    assert available_splits("shapes") == ["train", "val", "test"]
    assert available_splits("medmnist/octmnist@64") == ["train", "val", "test"]


def test_unknown_split_lists_the_sources_splits() -> None:
    with pytest.raises(AekitError, match="mnist has no 'val' split: use one of train, test"):
        load_dataset("mnist", "val", download=False)


def test_limit_and_image_size() -> None:
    ds = load_dataset("shapes", "test", limit=10, image_size=16)
    full = load_dataset("shapes", "test")
    assert len(ds) == 10 and ds.shape == (3, 16, 16)
    assert torch.equal(ds.labels, full.labels[:10])
    assert len(load_dataset("shapes", "test", limit=5000)) == 1000  # a limit above N keeps all


@pytest.mark.parametrize(("name", "value"), [("limit", 0), ("limit", -3), ("image_size", 2.5)])
def test_bad_limit_or_size(name: str, value: object) -> None:
    with pytest.raises(AekitError, match=f"{name} must be a whole number"):
        load_dataset("shapes", **{name: value})


def _toy(paths: bool = True) -> ImageSet:
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 2, 2).clone()
    return ImageSet(
        images=images,
        labels=torch.tensor([0, 1, 0, 1, 1]),
        classes=["a", "b"],
        source="toy",
        split="val",
        paths=[f"{i}.png" for i in range(5)] if paths else None,
    )


def test_subset_by_slice_indices_and_mask() -> None:
    ds = _toy()
    assert ds.subset(slice(1, 3)).paths == ["1.png", "2.png"]
    picked = ds.subset(torch.tensor([4, 0]))
    assert picked.images[:, 0, 0, 0].tolist() == [4, 0] and picked.labels.tolist() == [1, 0]
    assert picked.paths == ["4.png", "0.png"] and picked.classes == ["a", "b"]
    masked = ds.subset(ds.labels == 1)
    assert masked.paths == ["1.png", "3.png", "4.png"] and len(masked) == 3
    assert _toy(paths=False).subset(slice(0, 2)).paths is None


def test_describe() -> None:
    assert describe(_toy()) == {
        "source": "toy",
        "split": "val",
        "count": 5,
        "shape": [1, 2, 2],
        "classes": ["a", "b"],
    }


def test_imageset_rejects_inconsistent_tensors() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), None, [], "x", "train")
    with pytest.raises(ValueError, match="1 or 3 channels"):
        ImageSet(torch.zeros(2, 2, 4, 4, dtype=torch.uint8), None, [], "x", "train")
    with pytest.raises(ValueError, match="labels"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3).long(), [], "x", "t")


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("AEKIT_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "aekit"
