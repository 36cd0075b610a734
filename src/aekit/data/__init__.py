"""Datasets: every ``--data SOURCE`` loads into an :class:`ImageSet` of uint8 (N, C, H, W) images.

Sources: mnist, fashion-mnist, cifar10, shapes (built in), medmnist/<flag>[@64|@128|@224],
folder:<dir>, npz:<file>. Downloads are MD5-checked; see :mod:`aekit.data.registry`.
"""

from .images import read_image_files
from .imageset import ImageSet, describe
from .sources import available_splits, default_data_dir, load_dataset

__all__ = [
    "ImageSet",
    "available_splits",
    "default_data_dir",
    "describe",
    "load_dataset",
    "read_image_files",
]
