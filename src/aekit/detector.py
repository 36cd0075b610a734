"""A run as an anomaly detector: its model, the codes of its training images, the scores of
its held-out normal images (which standardise ``combined`` and calibrate the verdict
threshold), all kept in the run so that scoring new images needs neither dataset again.

RUN/anomaly.json          the held-out normal images' scores, the FPR and the thresholds
RUN/anomaly-codes.npy     the codes of the training images (for latent-knn)

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

from .anomaly import (
    MAP_KINDS,
    PARTS,
    anomaly_maps,
    calibrate,
    check_method,
    knn_distance,
    map_scale,
    method_scores,
    reconstruct_scores,
    spread_stats,
)
from .data.classes import parse_classes
from .devices import pick_device
from .embed import model_hash
from .errors import AekitError
from .files import atomic_write, write_text
from .models import Autoencoder
from .runs import RunConfig, load, load_config

ANOMALY, CODES = "anomaly.json", "anomaly-codes.npy"
DEFAULT_FPR = 0.05
MAP_SAMPLE = 512  # held-out images whose maps set the heatmaps' colour scale


@dataclass
class Detector:
    """Scores images as a run's training images would not be: see :mod:`aekit.anomaly`."""

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
        return {name: spread_stats(self.heldout[name]) for name in PARTS}

    def parts(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """uint8 (N, C, H, W) -> the scores of every part, and the codes."""
        out = reconstruct_scores(self.model, images)
        out["latent-knn"] = knn_distance(out["codes"], self.train_codes)
        return out

    def scores(self, images: torch.Tensor, method: str) -> np.ndarray:
        return method_scores(check_method(method), self.parts(images), self.stats)

    def threshold(self, method: str) -> float:
        """The verdict threshold of ``method``: at most ``fpr`` of held-out normal images above."""
        return calibrate(method_scores(method, self.heldout, self.stats), self.fpr)

    def set_fpr(self, fpr: float) -> None:
        """Calibrate at another false positive rate (saved in the run)."""
        calibrate(self.heldout["recon"], fpr)  # refuses fpr outside (0, 1)
        self.fpr = fpr
        _save(self)


def load_detector(
    run: str | Path, device: str | torch.device | None = None, progress: bool = True
) -> Detector:
    """The detector of a run folder, from its saved scores when they match its weights, else
    computed (the training and held-out images are read once) and saved."""
    run = Path(run)
    cfg = load_config(run)
    if cfg.data.patch_size is not None:
        raise AekitError(
            f"{run} was trained on photo patches (--patch-size): anomaly scores need a run "
            "trained on whole images of one size"
        )
    model = load(run, device=device or pick_device("auto"))
    digest = model_hash(run)
    saved = _read(run)
    fpr = DEFAULT_FPR
    if saved is not None:
        fpr = saved.get("fpr", DEFAULT_FPR)
        codes = _read_codes(run)
        if saved.get("model_hash") == digest and codes is not None:
            heldout = {k: np.asarray(saved["heldout"][k], dtype=np.float64) for k in PARTS}
            return Detector(run, cfg, model, codes, heldout, fpr, saved["about"],
                            saved["map_scale"])  # fmt: skip
    return _build(run, cfg, model, digest, fpr, progress)


def _build(
    run: Path, cfg: RunConfig, model: Autoencoder, digest: str, fpr: float, progress: bool
) -> Detector:
    from .splits import load_splits

    if progress:
        print(f"scoring {run}'s training and held-out images (once; kept in {run / ANOMALY})",
              file=sys.stderr)  # fmt: skip
    train, held = load_splits(cfg.data)
    codes = reconstruct_scores(model, train.images)["codes"]
    parts = reconstruct_scores(model, held.images)
    parts["latent-knn"] = knn_distance(parts["codes"], codes)
    heldout = {k: parts[k].astype(np.float64) for k in PARTS}
    about = {"source": held.source, "split": held.split, "count": len(held),
             "train_count": len(train)}  # fmt: skip
    shown = held.images[:MAP_SAMPLE]
    scale = {kind: map_scale(anomaly_maps(model, shown, kind)[1]) for kind in MAP_KINDS}
    det = Detector(run, cfg, model, codes, heldout, fpr, about, scale)
    try:
        atomic_write(run / CODES, lambda tmp: _save_npy(tmp, codes))
        _save(det, digest)
    except OSError as e:  # a read-only run still scores; it computes this again next time
        print(f"note: could not keep the scores in {run} ({e.strerror or e}): they are "
              "computed again on each use", file=sys.stderr)  # fmt: skip
    return det


def _save(det: Detector, digest: str | None = None) -> None:
    body = {
        "model_hash": digest or model_hash(det.run),
        "fpr": det.fpr,
        "thresholds": {m: det.threshold(m) for m in ("recon", "ssim", "latent-knn", "combined")},
        "about": det.about,
        "map_scale": det.map_scale,
        "heldout": {k: det.heldout[k].tolist() for k in PARTS},
    }
    write_text(det.run / ANOMALY, json.dumps(body) + "\n")


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to a temp file's name
        np.save(f, array)


def _read(run: Path) -> dict[str, Any] | None:
    """The saved scores, or None when missing or damaged (then they are made again)."""
    try:
        body = json.loads((run / ANOMALY).read_text())
        ok = isinstance(body, dict) and all(k in body.get("heldout", {}) for k in PARTS)
        fpr = body.get("fpr")
        scales = body.get("map_scale")
        if not ok or not isinstance(fpr, float) or not 0 < fpr < 1 or "about" not in body:
            return None
        if not isinstance(scales, dict) or not all(
            isinstance(scales.get(k), float) and scales[k] > 0 for k in MAP_KINDS
        ):
            return None
        return body
    except (OSError, ValueError, AttributeError):
        return None


def _read_codes(run: Path) -> np.ndarray | None:
    try:
        codes = np.load(run / CODES, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return codes if codes.ndim == 2 and codes.dtype == np.float32 else None
