"""Clean references for noisy images (``--clean DIR`` of a self-supervised run): a clean file
pairs with a noisy one when their names agree up to the extension (``kodim01.png`` with
``kodim01.jpg``), so a noisy set saved in another format still finds its originals."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import AekitError
from .images import IMAGE_EXTENSIONS, read_image_file


def clean_index(folder: str | Path) -> dict[str, Path]:
    """{file stem: path} of the images directly in ``folder``; one line when it has none."""
    root = Path(folder)
    if not root.is_dir():
        raise AekitError(f"--clean {root} is not a folder: name the folder of clean references")
    index: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            index.setdefault(path.stem, path)
    if not index:
        raise AekitError(f"--clean {root} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return index


def paired(paths: list[str], index: dict[str, Path]) -> list[int]:
    """Which of the noisy ``paths`` have a clean reference in ``index``."""
    return [i for i, p in enumerate(paths) if Path(p).stem in index]


def no_pairs(paths: list[str], folder: str | Path) -> AekitError:
    """The error for noisy images none of which has a reference."""
    example = Path(paths[0]).name if paths else "?"
    return AekitError(f"no clean reference in {folder} pairs with the noisy images by file name "
                      f"(e.g. {example} would pair with {Path(example).stem}.png or .jpg): name "
                      "each reference as its noisy image")  # fmt: skip


def read_references(
    paths: list[str], index: dict[str, Path], channels: int, sizes: list[tuple[int, int]]
) -> list[torch.Tensor]:
    """The clean reference of each noisy image ``paths[i]``, uint8 (C, H, W) at ``sizes[i]``
    ((height, width), the noisy image's own): a reference of another size is one line."""
    refs = []
    for path, size in zip(paths, sizes, strict=True):
        ref_path = index.get(Path(path).stem)
        if ref_path is None:
            raise AekitError(f"{path} has no clean reference of the same name in "
                             f"{next(iter(index.values())).parent}")  # fmt: skip
        ref, _ = read_image_file(ref_path, channels)
        if tuple(ref.shape[1:]) != tuple(size):
            raise AekitError(f"the clean {ref_path.name} is {ref.shape[2]}x{ref.shape[1]}, the "
                             f"noisy {Path(path).name} {size[1]}x{size[0]}: a reference is the "
                             "same photo at the same size")  # fmt: skip
        refs.append(ref)
    return refs
