"""The data's config: where the images come from and how they are prepared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import AekitError
from ..options import check_side
from ..options import option as _opt


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared."""

    source: str = _opt(
        "dataset: mnist, fashion-mnist, cifar10, medmnist/<flag>[@size], "
        "shapes, folder:<dir>, npz:<file>, wds:<dir or shard pattern>",
        flag="--data",
        default="shapes",
    )
    data_dir: str | None = _opt(
        "dataset folder (default: $AEKIT_DATA, else ~/.cache/aekit)", default=None
    )
    image_size: int | None = _opt(
        "resize folder images to this size (default: most common)", default=None
    )
    limit: int | None = _opt(
        "use only the first N images of the training and held-out splits", default=None
    )
    train_split: str = _opt("split to train on", default="train")
    heldout_split: str | None = _opt(
        "split to evaluate on each epoch (default: test, else val, "
        "else 10%% held out of the training split)",
        default=None,
    )
    augment: str | None = _opt(
        "training augmentation: crop,hflip,vflip,rot90 or none (default: the seed's crop,"
        "hflip,vflip for cifar10 and medmnist; hflip,vflip,rot90 with --patch-size; else none)",
        default=None,
    )
    classes: str | None = _opt(
        "train on these classes only, by number or name (e.g. 3 or 3,5): the normal images "
        "of an anomaly detector; held-out images are kept to them too",
        default=None,
    )
    patch_size: int | None = _opt(
        "train on random PxP patches cut from the images at their own sizes (photos of mixed "
        "sizes in a folder: no resizing)",
        default=None,
    )

    def __post_init__(self) -> None:
        # paths are stored absolute so that the run's config works from any folder
        for prefix in ("folder:", "npz:"):
            if self.source.startswith(prefix) and len(self.source) > len(prefix):
                self.source = prefix + str(Path(self.source[len(prefix) :]).expanduser().resolve())
        if self.data_dir is not None:
            self.data_dir = str(Path(self.data_dir).expanduser().resolve())
        if self.limit is not None and self.limit < 1:
            raise AekitError(f"--limit must be a positive number of images, got {self.limit}")
        check_side(self.image_size)
        check_side(self.patch_size, "--patch-size")
        if self.patch_size is not None and self.image_size is not None:
            raise AekitError(
                "--patch-size cuts patches from the images at their own sizes: drop --image-size"
            )
        if self.classes is not None:
            from .classes import parse_classes

            parse_classes(self.classes)
            if self.patch_size is not None:
                raise AekitError(
                    "--classes picks labelled images; --patch-size trains on unlabelled photos: "
                    "drop one of them"
                )
        if self.augment is not None:
            from .augment import parse_augment

            parse_augment(self.augment)

    def augment_ops(self) -> tuple[str, ...]:
        """The augmentation ops in effect: explicit, else the seed's default for the source
        (and the 8 rotations and reflections for patches)."""
        from .augment import parse_augment

        if self.augment is not None:
            return parse_augment(self.augment)
        if self.patch_size is not None:
            return ("hflip", "vflip", "rot90")
        seeded = self.source == "cifar10" or self.source.startswith("medmnist/")
        return ("crop", "hflip", "vflip") if seeded else ()
