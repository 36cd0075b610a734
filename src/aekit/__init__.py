"""aekit: image autoencoders — train (plain, denoising, sparse, variational), look, denoise,
search, generate.

>>> import aekit
>>> run = aekit.train("runs/shapes", data="shapes", epochs=2)      # doctest: +SKIP
>>> model = aekit.load(run)                                          # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import denoise, evaluate, make_config, reconstruct, score, train
from .data import ImageSet, load_dataset
from .data.config import DataConfig
from .errors import AekitError
from .explore.generate import generate, interpolate
from .exporting.onnx import export
from .models import Autoencoder, create_model, list_models
from .models.config import ModelConfig
from .search.embed import Embeddings, embed
from .search.latent_map import map_embeddings
from .training.config import TrainConfig
from .training.runs import RunConfig, load

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
