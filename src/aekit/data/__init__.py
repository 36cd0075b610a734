"""Datasets: every ``--data SOURCE`` loads into an :class:`ImageSet` of uint8 (N, C, H, W) images.

Sources: mnist, fashion-mnist, cifar10, shapes (built in), medmnist/<flag>[@64|@128|@224],
folder:<dir>, npz:<file>. Downloads are MD5-checked; see :mod:`aekit.data.registry`. Image
files over the pixel limit are refused from their header (``with pixel_limit(n):`` raises it).
"""

from .images import pixel_limit, read_image_files
from .imageset import ImageSet, describe
from .sources import available_splits, default_data_dir, load_dataset, same_source

__all__ = [
    "ImageSet",
    "available_splits",
    "default_data_dir",
    "describe",
    "load_dataset",
    "pixel_limit",
    "read_image_files",
    "same_source",
]
