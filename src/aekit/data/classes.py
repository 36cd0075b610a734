"""``--classes``: keep the images of some classes only (the normal classes of an anomaly run)."""

from __future__ import annotations

import torch

from ..errors import AekitError
from .imageset import ImageSet


def parse_classes(spec: str | None, flag: str = "--classes") -> list[str] | None:
    """``"3,5"`` -> ``["3", "5"]``: class names or indices, comma-separated, none repeated."""
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise AekitError(f"{flag} takes class names or numbers separated by commas, got {spec!r}")
    names = [part.strip() for part in spec.split(",")]
    if not spec.strip() or any(not name for name in names):
        raise AekitError(
            f"{flag} takes class names or numbers separated by commas (e.g. 3 or 3,5), got {spec!r}"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AekitError(f"{flag} names {repeated[0]!r} twice: name each class once")
    return names


def class_names(ds: ImageSet, spec: str, flag: str = "--classes") -> list[str]:
    """The class names ``spec`` names in ``ds``: each part is a class name of the source, else
    a label number. Refuses an unlabelled or multi-label set and a class the source lacks.
    Names, not numbers, carry over between splits (a folder's splits number their class
    subfolders each on its own)."""
    names = parse_classes(spec, flag) or []
    if ds.labels is None:
        raise AekitError(
            f"{flag} picks images by their labels, but {ds.source} [{ds.split}] has none: "
            "use a labelled source (e.g. a folder with one subfolder per class), or drop "
            f"{flag} to use every image"
        )
    if ds.multi_label:
        raise AekitError(
            f"{flag} picks images of single-label classes; {ds.source} gives each image "
            "several labels: choose another source"
        )
    shown = ", ".join(f"{i} ({c})" if c != str(i) else c for i, c in enumerate(ds.classes))
    found = []
    for name in names:
        if name in ds.classes:
            found.append(ds.classes.index(name))
        elif name.isdigit() and int(name) < len(ds.classes):
            found.append(int(name))
        else:
            raise AekitError(
                f"{ds.source} has no class {name!r}: its classes are {shown}; name them "
                f"by number or name in {flag}"
            )
    if len(set(found)) < len(found):
        raise AekitError(f"{flag} {spec!r} names one class twice (by number and by name)")
    return [ds.classes[i] for i in sorted(found)]


def in_classes(ds: ImageSet, names: list[str]) -> torch.Tensor:
    """(N,) bool: which images of ``ds`` have one of the classes ``names``."""
    if ds.labels is None or ds.multi_label:
        raise ValueError("in_classes needs single labels")  # callers check with class_names
    indices = [i for i, c in enumerate(ds.classes) if c in names]
    return torch.isin(ds.labels, torch.tensor(indices, dtype=ds.labels.dtype))


def class_mask(ds: ImageSet, names: list[str], flag: str = "--classes") -> torch.Tensor:
    """(N,) bool: the images of ``ds`` of the classes ``names``; refuses a split with none."""
    if ds.labels is None:
        raise AekitError(f"the {ds.split} split of {ds.source} has no labels to pick {flag} by")
    mask = in_classes(ds, names)
    if not mask.any():
        raise AekitError(
            f"the {ds.split} split of {ds.source} has no images of class "
            f"{', '.join(names)}: choose classes it has in {flag}"
        )
    return mask


def keep_classes(ds: ImageSet, names: list[str], flag: str = "--classes") -> ImageSet:
    """The images of ``ds`` of the classes ``names``; refuses a split left with none."""
    return ds.subset(class_mask(ds, names, flag))
