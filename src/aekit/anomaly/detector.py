"""A run as an anomaly detector: its model, the codes of its training images, the scores of
its held-out normal images (which standardise ``combined`` and calibrate the verdict
threshold), all kept in the run so that scoring new images needs neither dataset again.

RUN/anomaly.json          the held-out normal images' scores, the FPR and the thresholds
RUN/anomaly-codes.npy     the codes of the training images (for latent-knn)
RUN/.anomaly.lock         held while they are made or changed

Both are made on first use and made again when the weights change (their sha256 differs).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.classes import parse_classes
from ..devices import pick_device
from ..errors import AekitError
from ..files import atomic_write, waiting_lock, write_text
from ..models import Autoencoder, to_model_scale
from ..models.tiles import DEFAULT_TILE, outputs
from ..search.embed import encode, model_hash
from ..training.runs import RunConfig, load, load_config
from .methods import (
    COMBINED,
    PARTS,
    SEGMENT,
    anomaly_maps,
    calibrate,
    check_arch_method,
    check_fpr,
    check_method,
    knn_distance,
    map_kind,
    map_scale,
    method_scores,
    model_map_kinds,
    model_methods,
    model_parts,
    reconstruct_scores,
    spread_stats,
)
from .native import is_native, maps_each, parts_each

ANOMALY, CODES, LOCK = "anomaly.json", "anomaly-codes.npy", ".anomaly.lock"
DEFAULT_FPR = 0.05
SCORES_VERSION = 2  # of the saved scores: those of another version are scored again
FEW_HELDOUT = 10  # fewer held-out normal images than this: the threshold is rough (a note)
MAP_SAMPLE = 512  # held-out images whose maps set the heatmaps' colour scale
ENCODE_BATCH = 256  # training images encoded at a time (encode's own batch)
# the parts each method adds up: recon needs no latent-knn, latent-knn no SSIM
NEEDS = {"recon": ("recon",), "ssim": ("ssim",), "latent-knn": ("latent-knn",),
         "combined": COMBINED, "draem": (SEGMENT,)}  # fmt: skip


@dataclass
class Detector:
    """Scores images as a run's training images would not be: see ``aekit.anomaly.methods``."""

    run: Path
    config: RunConfig
    model: Autoencoder
    train_codes: np.ndarray  # (N, D) float32
    heldout: dict[str, np.ndarray]  # part -> scores of the held-out normal images
    fpr: float
    about: dict[str, Any]  # what the held-out images were: source, split, count
    map_scale: dict[str, float]  # map kind -> the value shown at full heat

    @property
    def normal(self) -> list[str] | None:
        """The run's normal classes (``--classes``), by name; None: all its training images."""
        return parse_classes(self.config.data.classes)

    @property
    def stats(self) -> dict[str, tuple[float, float]]:
        """Each part's (mean, spread) on the held-out normal images (what ``combined`` needs)."""
        if self.about["count"] < 2:
            raise AekitError(
                f"{self.run} holds out {self.about['count']} normal image: combined needs the "
                "spread of at least 2; use --method recon, ssim or latent-knn, or hold out more"
            )
        return {name: spread_stats(self.heldout[name]) for name in PARTS}

    def parts(
        self,
        images: torch.Tensor | list[torch.Tensor],
        method: str | None = None,
        maps: str | None = None,
    ) -> dict[str, Any]:
        """uint8 (N, C, H, W), or a list of (C, H, W) of their own sizes (a run that scores at
        each image's size) -> the scores of the parts ``method`` needs (None: every part), and
        the codes; ``maps``: the reconstructions and heatmaps too (see
        :func:`reconstruct_scores`; lists for a list), from the same pass of the model."""
        need = PARTS if method is None else NEEDS[check_method(method)]
        if method is not None:
            check_arch_method(self.model.config.arch, method)
        if isinstance(images, list):
            out = parts_each(self.model, images, ssim="ssim" in need, maps=maps)
        else:
            out = reconstruct_scores(self.model, images, ssim="ssim" in need, maps=maps)
        if "latent-knn" in need:
            out["latent-knn"] = knn_distance(out["codes"], self.train_codes)
        return out

    def scores(self, images: torch.Tensor | list[torch.Tensor], method: str) -> np.ndarray:
        return self._method_scores(method, self.parts(images, method))

    def explain(
        self, images: torch.Tensor, method: str
    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """The scores of ``method`` for a uint8 (N, C, H, W) batch, the reconstructions and
        the heatmaps of its map kind (:func:`anomaly_maps`'s), all from one pass of the model
        (a run that scores at each image's size: each image alone, all of one size here)."""
        out = self.parts(list(images) if self.native else images, method, maps=map_kind(method))
        recons, heat = (torch.as_tensor(np.stack(out[k]) if self.native else out[k])
                        for k in ("reconstructions", "maps"))  # fmt: skip
        return self._method_scores(method, out), recons, heat

    @property
    def native(self) -> bool:
        """Whether images are scored at their own sizes (a fully convolutional patch run)."""
        return is_native(self.config)

    def _method_scores(self, method: str, parts: dict[str, np.ndarray]) -> np.ndarray:
        return method_scores(method, parts, self.stats if method == "combined" else None)

    def threshold(self, method: str) -> float:
        """The verdict threshold of ``method``: at most ``fpr`` of held-out normal images above."""
        stats = self.stats if method == "combined" else None
        return calibrate(method_scores(method, self.heldout, stats), self.fpr)

    def heldout_above(self, method: str, threshold: float) -> float:
        """The share of held-out normal images above ``threshold`` (at most ``fpr``)."""
        stats = self.stats if method == "combined" else None
        return float(np.mean(method_scores(method, self.heldout, stats) > threshold))

    def set_fpr(self, fpr: float) -> None:
        """Calibrate at another false positive rate (saved in the run)."""
        check_fpr(fpr)
        self.fpr = fpr
        with waiting_lock(self.run / LOCK):
            _save(self)


def load_detector(
    run: str | Path, device: str | torch.device | None = None, progress: bool = True
) -> Detector:
    """The detector of a run folder, from its saved scores when they match its weights, else
    computed (the training and held-out images are read once) and saved. Two processes
    scoring a fresh run compute it once: the second waits and reads what the first saved."""
    run = Path(run)
    cfg = load_config(run)
    if cfg.data.patch_size is not None and not is_native(cfg):
        raise AekitError(
            f"{run} was trained on photo patches (--patch-size): anomaly scores need a run "
            "trained on whole images of one size"
        )
    model = load(run, device=device or pick_device("auto"))
    digest = model_hash(run)
    det = _saved(run, cfg, model, digest)
    if det is None:
        with waiting_lock(run / LOCK):
            det = _saved(run, cfg, model, digest) or _build(run, cfg, model, digest, progress)
    if det.about["count"] < FEW_HELDOUT:
        print(f"note: {run} holds out only {det.about['count']} normal image(s): its threshold "
              "and combined's standardisation are rough (more held-out images: more data, or "
              "--heldout-split)", file=sys.stderr)  # fmt: skip
    return det


def _saved(run: Path, cfg: RunConfig, model: Autoencoder, digest: str) -> Detector | None:
    """The detector saved in the run, or None when there is none, it is of other weights, or
    any part of it is damaged (then it is made again)."""
    saved = _read(run, model_parts(model), model_map_kinds(model))
    if saved is None or saved["model_hash"] != digest:
        return None
    codes = _read_codes(run, saved["about"]["train_count"], model.config.latent_dim)
    if codes is None:
        return None
    heldout = {k: np.asarray(saved["heldout"][k], dtype=np.float64) for k in model_parts(model)}
    return Detector(run, cfg, model, codes, heldout, saved["fpr"], saved["about"],
                    saved["map_scale"])  # fmt: skip


def _build(run: Path, cfg: RunConfig, model: Autoencoder, digest: str, progress: bool) -> Detector:
    from ..training.splits import load_photo_splits, training_batches

    if progress:
        print(f"scoring {run}'s training and held-out images (once; kept in {run / ANOMALY})",
              file=sys.stderr)  # fmt: skip
    fpr = _previous_fpr(run)
    if is_native(cfg):  # whole photos at their own sizes, one at a time
        train, photos = load_photo_splits(cfg.data)
        codes = codes_each(model, [train.photo(i) for i in range(len(train))])
        held_images = [photos.photo(i) for i in range(len(photos))]
        parts = parts_each(model, held_images)
        source, split = photos.source, photos.split
    else:
        # read as training read them: a split too large for memory a batch at a time
        batches, _, held = training_batches(cfg.data, ENCODE_BATCH)
        # their codes only: no pixel scores
        found = [encode(model, b, ENCODE_BATCH, progress=False) for b in batches]
        dim = model.config.latent_dim
        codes = np.concatenate(found) if found else np.zeros((0, dim), np.float32)
        parts = reconstruct_scores(model, held.images)
        source, split = held.source, held.split
    parts["latent-knn"] = knn_distance(parts["codes"], codes)
    heldout = {k: parts[k].astype(np.float64) for k in model_parts(model)}
    count = len(heldout["recon"])
    about = {"source": source, "split": split, "count": count, "train_count": len(codes)}
    scale = {kind: map_scale(_sample_maps(model, held_images if is_native(cfg) else held.images,
                                          kind)) for kind in model_map_kinds(model)}  # fmt: skip
    det = Detector(run, cfg, model, codes, heldout, fpr, about, scale)
    try:
        atomic_write(run / CODES, lambda tmp: _save_npy(tmp, codes))
        _save(det, digest)
    except OSError as e:  # a read-only run still scores; it computes this again next time
        print(f"note: could not keep the scores in {run} ({e.strerror or e}): they are "
              "computed again on each use", file=sys.stderr)  # fmt: skip
    return det


def codes_each(model: Autoencoder, images: list[torch.Tensor]) -> np.ndarray:
    """(N, D) codes of the images, each encoded whole at its own size (in exact tiles where it
    is larger than a tile: aekit.models.tiles)."""
    if not images:
        return np.zeros((0, model.config.latent_dim), np.float32)
    return np.concatenate([encode(model, image[None], 1, progress=False)
                           if max(image.shape[-2:]) <= DEFAULT_TILE else _tiled_code(model, image)
                           for image in images])  # fmt: skip


@torch.no_grad()
def _tiled_code(model: Autoencoder, image: torch.Tensor) -> np.ndarray:
    model.eval()
    weight = next(model.parameters())
    x = to_model_scale(image[None].to(weight.device), model.config.arch, weight.dtype)
    return outputs(model, x)[1].float().cpu().numpy()


def _sample_maps(model: Autoencoder, images: torch.Tensor | list[torch.Tensor], kind: str
                 ) -> torch.Tensor:  # fmt: skip
    """The maps of ``kind`` of the first ``MAP_SAMPLE`` held-out images, their pixels flat."""
    if isinstance(images, list):
        return torch.cat([m.flatten() for m in maps_each(model, images[:MAP_SAMPLE], kind)[1]])
    return anomaly_maps(model, images[:MAP_SAMPLE], kind)[1]


def _previous_fpr(run: Path) -> float:
    """The FPR a user chose for the run's earlier weights (kept across retraining)."""
    try:
        fpr = json.loads((run / ANOMALY).read_text()).get("fpr")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_FPR
    return fpr if isinstance(fpr, float) and 0 < fpr < 1 else DEFAULT_FPR


def _save(det: Detector, digest: str | None = None) -> None:
    few = det.about["count"] < 2  # combined needs a spread
    methods = model_methods(det.model)
    thresholds = {m: det.threshold(m) for m in methods if not (few and m == "combined")}
    body = {
        "version": SCORES_VERSION,
        "model_hash": digest or model_hash(det.run),
        "fpr": det.fpr,
        "thresholds": thresholds,
        "about": det.about,
        "map_scale": det.map_scale,
        "heldout": {k: v.tolist() for k, v in det.heldout.items()},
    }
    write_text(det.run / ANOMALY, json.dumps(body) + "\n")


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to a temp file's name
        np.save(f, array)


def _read(run: Path, parts: tuple[str, ...], kinds: tuple[str, ...]) -> dict[str, Any] | None:
    """The saved scores, or None when missing or damaged in any way (then they are made
    again): every field of the type and size ``_save`` writes (the held-out scores of
    ``parts``, the colour scale of the map ``kinds``), every number finite."""
    try:
        body = json.loads((run / ANOMALY).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("model_hash"), str):
        return None
    if body.get("version") != SCORES_VERSION:  # scored as an older aekit did: score again
        return None
    fpr, about, scales = body.get("fpr"), body.get("about"), body.get("map_scale")
    if not (isinstance(fpr, float) and 0 < fpr < 1):
        return None
    if not (isinstance(about, dict) and all(isinstance(about.get(k), str)
                                            for k in ("source", "split"))):  # fmt: skip
        return None
    count, train_count = about.get("count"), about.get("train_count")
    if not (_whole(count) and count >= 1 and _whole(train_count) and train_count >= 1):
        return None
    if not isinstance(scales, dict) or not all(_number(scales.get(k)) and scales[k] > 0
                                               for k in kinds):  # fmt: skip
        return None
    heldout = body.get("heldout")
    if not isinstance(heldout, dict):
        return None
    for k in parts:
        values = heldout.get(k)
        if not (isinstance(values, list) and len(values) == count
                and all(_number(v) for v in values)):  # fmt: skip
            return None
    return body


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _read_codes(run: Path, rows: int, size: int) -> np.ndarray | None:
    """The saved training codes: (rows, size) finite float32, else None (made again)."""
    try:
        codes = np.load(run / CODES, allow_pickle=False)
    except (OSError, ValueError):
        return None
    ok = codes.dtype == np.float32 and codes.shape == (rows, size)
    return codes if ok and np.isfinite(codes).all() else None
