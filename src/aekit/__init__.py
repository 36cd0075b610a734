"""aekit: image autoencoders — train (plain, denoising, sparse, variational), look, denoise,
search, generate.

>>> import aekit
>>> run = aekit.train("runs/shapes", data="shapes", epochs=2)      # doctest: +SKIP
>>> model = aekit.load(run)                                          # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import denoise, evaluate, make_config, reconstruct, score, train
from .config import DataConfig, ModelConfig, TrainConfig
from .data import ImageSet, load_dataset
from .embed import Embeddings, embed
from .errors import AekitError
from .export import export
from .generate import generate, interpolate
from .latent_map import map_embeddings
from .models import Autoencoder, create_model, list_models
from .runs import RunConfig, load

__all__ = [
    "AekitError",
    "Autoencoder",
    "DataConfig",
    "Embeddings",
    "ImageSet",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "create_model",
    "denoise",
    "embed",
    "evaluate",
    "export",
    "generate",
    "interpolate",
    "list_models",
    "load",
    "load_dataset",
    "make_config",
    "map_embeddings",
    "reconstruct",
    "score",
    "train",
]
