"""Defect masks of a folder in MVTec AD's layout, the layout of inspection data sets::

    ROOT/train/good/*.png                  defect-free parts: the training set
    ROOT/test/good/*.png                   defect-free parts to score
    ROOT/test/<kind>/<name>.png            parts with a defect of one kind
    ROOT/ground_truth/<kind>/<name>_mask.png   where the defect is (above 127: defect)

``ground_truth/`` is not a split or a class: it is read here. A test image of ``good`` has no
defect (an all-clear mask); a defect image without a mask is scored for the image measures
and left out of the pixel ones, with a warning. Masks are read at their own size, which must be
their image's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import AekitError
from .images import UNREADABLE, is_image_file, open_image, peek, unreadable_reason
from .warn import warn

GROUND_TRUTH = "ground_truth"
NORMAL = "good"
MASK_SUFFIX = "_mask"
DEFECT_ABOVE = 127  # MVTec AD's masks are 0 or 255; soft-edged ones are cut here


def is_mvtec_layout(root: Path) -> bool:
    """Whether ``root`` is laid out as MVTec AD: ``train/good`` and no other training class."""
    train = root / "train"
    if not (train / NORMAL).is_dir():
        return False
    return [d.name for d in train.iterdir() if d.is_dir() and not d.name.startswith(".")] == [
        NORMAL
    ]


@dataclass
class Masks:
    """The masks of a test split's images: a path per image (None: no defect, or none given)."""

    paths: list[Path | None]
    defect: list[bool]  # the image is of a defect kind (not ``good``)
    notes: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[int]:
        """The images the pixel measures use: every good one and every defect with its mask."""
        return [i for i, (p, d) in enumerate(zip(self.paths, self.defect, strict=True))
                if not d or p is not None]  # fmt: skip


def _mask_files(folder: Path) -> dict[str, Path]:
    """{image stem: mask file} of one ground_truth/<kind> folder."""
    found = {}
    for path in sorted(folder.iterdir()):
        if is_image_file(path) and not path.name.startswith("."):
            stem = path.stem.removesuffix(MASK_SUFFIX)
            found[stem] = path
    return found


def find_masks(root: Path, files: list[Path]) -> Masks | None:
    """The masks of ``files`` (a test split of ``root``), checked against them; None when
    ``root`` has no ``ground_truth/`` folder. Refuses a mask kind with no test folder and a
    mask of another size than its image; warns of masks without an image and of defect
    images without a mask."""
    truth = root / GROUND_TRUTH
    if not truth.is_dir():
        return None
    kinds = sorted(d for d in truth.iterdir() if d.is_dir() and not d.name.startswith("."))
    for kind in kinds:
        if not (root / "test" / kind.name).is_dir():
            raise AekitError(
                f"{kind} has masks of the defect kind {kind.name!r} but {root / 'test'} has no "
                f"{kind.name}/ folder: put its images there, or remove {kind}"
            )
    by_kind = {kind.name: _mask_files(kind) for kind in kinds}
    paths: list[Path | None] = []
    defect, used, missing = [], set(), []
    for f in files:
        kind = f.parent.name
        is_defect = kind != NORMAL
        mask = by_kind.get(kind, {}).get(f.stem) if is_defect else None
        if is_defect and mask is None:
            missing.append(f)
        if mask is not None:
            _check_size(mask, f)
            used.add(mask)
        paths.append(mask)
        defect.append(is_defect)
    masks = Masks(paths, defect)
    unused = [m for found in by_kind.values() for m in found.values() if m not in used]
    if unused:
        warn(f"{len(unused)} mask(s) in {truth} have no image in {root / 'test'} and are not "
             f"used: {', '.join(str(m.relative_to(truth)) for m in unused[:5])}"
             + (" ..." if len(unused) > 5 else ""))  # fmt: skip
    if missing and by_kind:
        warn(f"{len(missing)} defect image(s) have no mask in {truth} and are left out of the "
             f"pixel measures: {', '.join(str(m.relative_to(root)) for m in missing[:5])}"
             + (" ..." if len(missing) > 5 else ""))  # fmt: skip
    return masks


def _check_size(mask: Path, image: Path) -> None:
    try:
        _, mask_wh = peek(mask)
        _, image_wh = peek(image)
    except UNREADABLE as exc:
        raise AekitError(
            f"cannot read {mask} or {image} ({unreadable_reason(exc)}): replace the damaged file"
        ) from exc
    if mask_wh != image_wh:
        raise AekitError(
            f"{mask} is {mask_wh[0]}x{mask_wh[1]} but its image {image} is "
            f"{image_wh[0]}x{image_wh[1]}: a mask must be its image's size"
        )


def read_mask(path: Path | None, size_hw: tuple[int, int]) -> np.ndarray:
    """A mask as bool (H, W): above 127 is defect (all False for None: a good image)."""
    if path is None:
        return np.zeros(size_hw, dtype=bool)
    try:
        with open_image(path, str(path)) as img:
            values = np.asarray(img.convert("L") if img.mode != "L" else img)
    except UNREADABLE as exc:
        raise AekitError(f"cannot read the mask {path} ({unreadable_reason(exc)})") from exc
    if values.shape != tuple(size_hw):
        raise AekitError(f"{path} is {values.shape[1]}x{values.shape[0]}, its image "
                         f"{size_hw[1]}x{size_hw[0]}: a mask must be its image's size")  # fmt: skip
    return values > DEFECT_ABOVE


def image_mask(image: Path) -> np.ndarray | None:
    """The mask of one test image of a folder in MVTec AD's layout, bool (H, W) at the image's
    size: all clear for ``test/good``, else ``ground_truth/<kind>/<name>_mask.*``. None for an
    image elsewhere, a defect without a mask, or a mask that cannot be used (damaged, of
    another size)."""
    kind = image.parent
    root = kind.parent.parent
    if kind.parent.name != "test" or not is_mvtec_layout(root):
        return None
    try:
        _, (w, h) = peek(image)
        if kind.name == NORMAL:
            return np.zeros((h, w), dtype=bool)
        folder = root / GROUND_TRUTH / kind.name
        found = [p for p in folder.iterdir() if p.stem == image.stem + MASK_SUFFIX
                 and is_image_file(p)] if folder.is_dir() else []  # fmt: skip
        return read_mask(found[0], (h, w)) if found else None
    except (AekitError, *UNREADABLE):
        return None


def soft_edged(paths: list[Path | None], sample: int = 20) -> bool:
    """Whether masks hold values other than 0 and 255 (looked at in up to ``sample`` files):
    worth a note, since they are cut at 127."""
    for path in [p for p in paths if p is not None][:sample]:
        with Image.open(path) as img:
            values = np.unique(np.asarray(img.convert("L")))
        if not set(values.tolist()) <= {0, 255}:
            return True
    return False
