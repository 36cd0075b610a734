"""Anomaly scores of images under an autoencoder trained on normal ones, and how well they
separate normal from anomalous: pure functions of tensors and arrays.

Methods (higher = more anomalous):

- ``recon``: the mean squared reconstruction error of the image ([0, 1] pixels);
- ``ssim``: 1 - the SSIM of the image and its reconstruction (structure, not brightness);
- ``latent-knn``: the mean distance of the image's code to its ``KNN_K`` nearest codes of the
  training images (through :func:`aekit.search.knn.exact_search`);
- ``combined``: ``ssim`` + ``latent-knn``, each standardised by the mean and spread of its
  scores on held-out normal images: what an image looks like and where its code lies. (Adding
  ``recon`` as well scored lower on both one-class benchmarks: BENCHMARKS.md.)
- ``draem`` (runs of ``--arch draem``): the largest mean of the segmentation map the model
  gives (the part ``segment``) over a window as wide as the smallest synthetic anomaly it was
  trained on (:func:`segment_window`); the map is the heatmap. DRAEM's 21x21 window at 256x256
  averages a small defect away: on the magnetic tiles, scored at their own sizes, 68.3 image
  AUROC with a twelfth of the image's side, 76.8 with this (BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.synthetic import smallest_anomaly
from ..errors import AekitError
from ..models import Autoencoder, get_family, to_model_scale, to_unit_scale, value_range
from ..models.tiles import outputs
from ..search.knn import exact_search

METHODS = ("recon", "ssim", "latent-knn", "combined", "draem")
PARTS = ("recon", "ssim", "latent-knn")  # the scores computed for every image
SEGMENT = "segment"  # the part (and map kind) of a model that segments (--arch draem)
COMBINED = ("ssim", "latent-knn")  # what ``combined`` adds up
MAP_NAMES = {"recon": "squared error", "ssim": "1 - SSIM", SEGMENT: "segmentation"}
MAP_KINDS = ("recon", "ssim")  # the per-pixel maps of every model (error_map)
DEFAULT_METHOD = "combined"
KNN_K = 5

# SSIM constants of Wang et al. (2004) for a data range of 1, with its 11x11 Gaussian window
_C1, _C2 = 0.01**2, 0.03**2
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def segments(model: Autoencoder) -> bool:
    """Whether the model maps where an image is anomalous itself (``--arch draem``)."""
    return get_family(model.config.arch).segments


def model_parts(model: Autoencoder) -> tuple[str, ...]:
    """The parts scored for every image under ``model``."""
    return (*PARTS, SEGMENT) if segments(model) else PARTS


def model_map_kinds(model: Autoencoder) -> tuple[str, ...]:
    """The heatmap kinds ``model`` draws."""
    return (*MAP_KINDS, SEGMENT) if segments(model) else MAP_KINDS


def arch_methods(arch: str) -> tuple[str, ...]:
    """The methods that score images under a model of family ``arch``: ``draem`` only where
    it segments."""
    if get_family(arch).segments:
        return METHODS
    return tuple(m for m in METHODS if m != "draem")


def model_methods(model: Autoencoder) -> tuple[str, ...]:
    return arch_methods(model.config.arch)


def default_method(model: Autoencoder) -> str:
    """``draem`` for a model that segments, else ``combined``."""
    return "draem" if segments(model) else DEFAULT_METHOD


def check_arch_method(arch: str, method: str) -> None:
    """Refuse a method that a model of family ``arch`` cannot score with."""
    if method not in arch_methods(arch):
        raise AekitError(f"--method {method} needs a run of --arch draem (it scores with the "
                         f"segmentation it learned); choose one of "
                         f"{', '.join(arch_methods(arch))}")  # fmt: skip


def segment_window(model: Autoencoder) -> int:
    """The side of the window :func:`segment_score` averages over for ``model``: the smallest
    synthetic anomaly pasted at its training size (odd, so the window has a centre)."""
    return smallest_anomaly(model.config.image_size or 1) | 1


def segment_score(maps: torch.Tensor, k: int) -> torch.Tensor:
    """(B, H, W) segmentation maps -> (B,) image scores: the largest mean over a k x k window
    (odd ``k``)."""
    pooled = F.avg_pool2d(maps[:, None], k, stride=1, padding=k // 2, count_include_pad=False)
    return pooled.flatten(1).amax(1)


def score_dtype(model: Autoencoder) -> torch.dtype:
    """What images are scored in under ``model``: float32, or float64 when its weights are
    (float32 kernels round differently with the batch size, at about 1e-6 of a score; float64
    shows what the scoring itself does)."""
    dtype = next(model.parameters()).dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


def _real(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or float64 when it is (see :func:`score_dtype`)."""
    return x if x.dtype == torch.float64 else x.float()


def check_method(method: str) -> str:
    if method not in METHODS:
        raise AekitError(f"unknown --method {method!r}: choose one of {', '.join(METHODS)}")
    return method


def gaussian_blur(x: torch.Tensor, sigma: float, size: int | None = None) -> torch.Tensor:
    """(B, C, H, W) blurred by a separable Gaussian of ``sigma`` pixels, edges replicated
    (the window: ``size`` pixels, default the odd number nearest 6 sigma + 1)."""
    size = size or 2 * round(3 * sigma) + 1
    r = torch.arange(size, dtype=torch.float32, device=x.device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.dtype)
    c = x.shape[1]
    pad = size // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, H, W) local SSIM of [0, 1] image pairs (B, C, H, W), averaged over channels.

    The same statistics as :func:`aekit.metrics.ssim_per_image` (pytorch_msssim), kept as a map
    of the image's size (edges replicated): pytorch_msssim returns only the mean.
    """
    win = min(SSIM_WINDOW, a.shape[-1], a.shape[-2])
    win -= 1 - win % 2
    a, b = _real(a), _real(b)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x, SSIM_SIGMA, win)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / (
        (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    )
    return s.mean(dim=1)


def error_map(x: torch.Tensor, recon: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, H, W) per-pixel anomaly of [0, 1] images and their reconstructions: the squared
    error averaged over channels (``recon``), or 1 - local SSIM (``ssim``)."""
    if kind == "ssim":
        return (1 - ssim_map(x, recon)).clamp_min(0)
    return (_real(x) - _real(recon)).pow(2).mean(dim=1)


def heatmap_sigma(side: int) -> float:
    """How much a heatmap is smoothed: 1 pixel at 28x28, growing with the image (4 at 128)."""
    return max(1.0, side / 32)


def map_kind(method: str) -> str:
    """The map that shows where ``method`` finds an image anomalous: SSIM's for ssim and
    combined, the squared error for recon and latent-knn (a code has no pixels of its own), the
    segmentation for draem."""
    if method == "draem":
        return SEGMENT
    return "ssim" if method in ("ssim", "combined") else "recon"


@torch.no_grad()
def reconstruct_scores(
    model: Autoencoder,
    images: torch.Tensor,
    batch_size: int = 256,
    ssim: bool = True,
    maps: str | None = None,
) -> dict[str, np.ndarray]:
    """uint8 (N, C, H, W) -> ``{"recon": (N,), "ssim": (N,), "codes": (N, D)}``: the two
    pixel scores and the latent codes, in one pass of the model (eval mode, in
    :func:`score_dtype`). ``ssim`` False leaves SSIM out (a method that does not need it);
    ``maps`` (a kind of :func:`error_map`) adds what :func:`anomaly_maps` gives from the same
    pass: ``"reconstructions"`` (N, C, H, W) and ``"maps"`` (N, H, W)."""
    model.eval()
    device = next(model.parameters()).device
    arch = model.config.arch
    dtype, (lo, hi) = score_dtype(model), value_range(arch)
    parts: dict[str, list[torch.Tensor]] = {"recon": [], "codes": []}
    seg = segments(model)
    if seg:
        parts[SEGMENT] = []
    if ssim:
        parts["ssim"] = []
    if maps is not None:
        parts["reconstructions"], parts["maps"] = [], []
    for s in range(0, len(images), batch_size):
        batch = images[s : s + batch_size].to(device)
        xm = to_model_scale(batch, arch, dtype)
        recon, code, seg_map = outputs(model, xm, seg)  # in tiles where an image is large
        x = batch.to(dtype) / 255.0
        y = ((recon.to(dtype) - lo) / (hi - lo)).clamp(0, 1)  # to_unit_scale, in dtype
        if not torch.isfinite(y).all():
            raise AekitError(
                "the model gives NaN or infinite reconstructions: its weights are broken; "
                "train it again"
            )
        parts["recon"].append((x - y).pow(2).flatten(1).mean(1).cpu())
        parts["codes"].append(code.to(dtype).flatten(1).cpu())
        if ssim:
            parts["ssim"].append(error_map(x, y, "ssim").flatten(1).mean(1).cpu())
        if seg_map is not None:
            seg_map = seg_map.to(dtype)
            parts[SEGMENT].append(segment_score(seg_map, segment_window(model)).cpu())
        if maps is not None:
            parts["reconstructions"].append(y.cpu())
            shown = seg_map if maps == SEGMENT else smoothed_map(x, y, maps)
            parts["maps"].append(shown.cpu())
    return {name: torch.cat(values).numpy() for name, values in parts.items()}


def smoothed_map(x: torch.Tensor, recon: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, H, W) :func:`error_map` of ``kind`` smoothed by :func:`heatmap_sigma`: the map a
    heatmap shows."""
    m = error_map(x, recon, kind)
    return gaussian_blur(m[:, None], heatmap_sigma(x.shape[-1]))[:, 0]


@torch.no_grad()
def anomaly_maps(
    model: Autoencoder, images: torch.Tensor, kind: str, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, C, H, W) -> (reconstructions in [0, 1], (B, H, W) anomaly maps of ``kind``
    smoothed by :func:`heatmap_sigma`), both on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    arch = model.config.arch
    recons, maps = [], []
    for s in range(0, len(images), batch_size):
        x = images[s : s + batch_size].to(device)
        xm = to_model_scale(x, arch)
        recon, _, seg_map = outputs(model, xm, kind == SEGMENT)  # in tiles where large
        y = to_unit_scale(recon.float(), arch).clamp(0, 1)
        recons.append(y.cpu())
        if seg_map is not None:
            maps.append(seg_map.float().cpu())
        else:
            maps.append(smoothed_map(x.float() / 255.0, y, kind).cpu())
    return torch.cat(recons), torch.cat(maps)


def map_scale(maps: torch.Tensor) -> float:
    """The map value shown at full heat: twice the 99th percentile of normal images' map
    pixels, so that normal images stay dim and what they never show glows (the same for
    every image of a run: heats compare)."""
    pixels = maps.flatten().float().numpy()
    if len(pixels) > 4_000_000:  # a quantile needs no more
        pixels = pixels[:: len(pixels) // 4_000_000]
    return max(2 * float(np.quantile(pixels, 0.99)), 1e-6)


def knn_distance(
    codes: np.ndarray, train_codes: np.ndarray, k: int = KNN_K, exclude_self: bool = False
) -> np.ndarray:
    """(N,) mean L2 distance of each code to its ``k`` nearest training codes (fewer when there
    are fewer); ``exclude_self`` leaves out row i of ``train_codes`` for query i (scoring the
    training codes themselves)."""
    k = min(k, len(train_codes) - int(exclude_self))
    if k < 1:
        raise AekitError("latent-knn needs at least 2 training images")
    exclude = np.arange(len(codes)) if exclude_self else None
    _, nearest = exact_search(codes, np.ascontiguousarray(train_codes), k, exclude=exclude)
    # the distances again, from the differences: the search's |q|^2 - 2qx + |x|^2 loses digits
    # when codes lie close together, and then an image's score would depend on its batch
    found = torch.from_numpy(np.ascontiguousarray(train_codes))[torch.from_numpy(nearest)]
    diff = found.double() - torch.from_numpy(codes).double()[:, None]
    return diff.norm(dim=2).mean(dim=1).numpy()


def standardise(scores: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    """``(scores - mean) / spread`` with a (mean, spread) measured on normal images."""
    mean, spread = stats
    return (scores - mean) / max(spread, 1e-12)


def spread_stats(scores: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of scores of normal images, for :func:`standardise`."""
    return float(np.mean(scores)), float(np.std(scores))


def combine(parts: dict[str, np.ndarray], stats: dict[str, tuple[float, float]]) -> np.ndarray:
    """The ``combined`` score: the standardised ``COMBINED`` parts added up."""
    return sum(standardise(parts[name], stats[name]) for name in COMBINED)  # type: ignore[return-value]


def method_scores(
    method: str, parts: dict[str, np.ndarray], stats: dict[str, tuple[float, float]] | None
) -> np.ndarray:
    """The scores of ``method`` from the parts (``recon``, ``ssim``, ``latent-knn``,
    ``segment``)."""
    if method == "combined":
        if stats is None:
            raise ValueError("combined scores need the normal images' stats")
        return combine(parts, stats)
    return parts[SEGMENT if method == "draem" else method]


def check_fpr(fpr: float) -> float:
    """A false positive rate strictly between 0 and 1 (NaN refused)."""
    if not 0 < fpr < 1:
        raise AekitError(f"--fpr is a false positive rate between 0 and 1 (e.g. 0.01), got {fpr}")
    return fpr


def calibrate(normal_scores: np.ndarray, fpr: float) -> float:
    """The threshold above which at most a fraction ``fpr`` of these normal images lie."""
    check_fpr(fpr)
    if len(normal_scores) == 0:
        raise AekitError("no held-out normal images to calibrate a threshold on")
    return float(np.quantile(normal_scores, 1 - fpr, method="higher"))


def detection_metrics(scores: np.ndarray, anomalous: np.ndarray) -> dict[str, Any]:
    """AUROC (0-1), average precision (AUPR) and the best F1 with its threshold, anomalous
    images being the positives (scikit-learn's definitions)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    anomalous = np.asarray(anomalous, dtype=bool)
    n_bad = int(anomalous.sum())
    if n_bad in (0, len(anomalous)):
        kind = "anomalous" if n_bad else "normal"
        raise AekitError(
            f"all {len(anomalous)} images are {kind}: AUROC and AUPR are undefined without "
            "both kinds; score a split with normal and anomalous images, or check --normal"
        )
    precision, recall, thresholds = precision_recall_curve(anomalous, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    return {
        "auroc": float(roc_auc_score(anomalous, scores)),
        "aupr": float(average_precision_score(anomalous, scores)),
        "f1": float(f1[best]),
        "threshold": float(thresholds[best]),
        "count": len(anomalous),
        "anomalous": n_bad,
    }
