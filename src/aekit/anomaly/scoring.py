"""``aekit score`` and ``aekit.score``: anomaly scores of a dataset split or of image files under
a run, with verdicts against the run's calibrated threshold, detection metrics when the images
are labelled, and (``out``) a report folder: scores.csv, ROC curve, histograms, heatmaps."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import ImageSet
from ..data.classes import class_names, in_classes
from ..data.masks import is_mvtec_layout
from ..data.streamed import Listing, SplitStream
from ..devices import pick_device
from ..errors import AekitError
from ..files import write_text
from ..models import check_input
from ..training.runs import load_config
from .detector import Detector, load_detector
from .localize import folder_root, per_kind_auroc, pixel_measures
from .methods import (
    MAP_NAMES,
    anomaly_maps,
    check_arch_method,
    check_fpr,
    check_method,
    default_method,
    detection_metrics,
    map_kind,
)
from .native import folder_images
from .overlays import DEFAULT_OVERLAYS, write_overlays

SHOWN = 8  # images in each heatmap picture
SCORE_BATCH = 256  # images a chunk of a streamed split: the model's batch (reconstruct_scores')


@dataclass
class Batch:
    """What is scored: uint8 images, their names, class names and which are anomalous."""

    # None: a split too large for memory, scored as it was read; a list: images of their own
    # sizes (a run that scores so: aekit.anomaly.native)
    images: torch.Tensor | list[torch.Tensor] | None
    items: list[str]
    labels: list[str | None]
    anomalous: np.ndarray | None  # (N,) bool, when the images are labelled
    normal: list[str] | None
    source: str | None = None
    split: str | None = None
    scores: np.ndarray | None = None  # of a split scored as it was read
    shown: dict[int, torch.Tensor] | None = None  # ... and its most and least anomalous images


@dataclass
class Split:
    """Which dataset split to score, and how it is read."""

    source: str
    split: str | None = None  # default: test, else the source's first
    data_dir: str | None = None
    image_size: int | None = None


def score(
    run: str | Path,
    images: list[str | Path] | torch.Tensor | None = None,
    data: str | None = None,
    *,
    split: str | None = None,
    method: str | None = None,
    normal: str | None = None,
    limit: int | None = None,
    fpr: float | None = None,
    out: str | Path | None = None,
    data_dir: str | None = None,
    image_size: int | None = None,
    device: str = "auto",
    overlays: int | None = DEFAULT_OVERLAYS,
) -> dict[str, Any]:
    """Anomaly scores under ``run`` (higher = more anomalous), as ``aekit score`` gives them.

    Score ``images`` (image files, or a uint8 (N, C, H, W) batch) or the ``split`` of a dataset
    ``data`` (default split: test, else the first). ``method``: recon, ssim, latent-knn,
    combined, or draem for a run of ``--arch draem`` (default: combined, draem for such a run;
    see ``aekit.anomaly.methods``). With labels, ``normal`` (class names or numbers,
    default: the run's ``--classes``) says which images are normal, and the result has
    ``auroc``, ``aupr``, ``f1`` and ``threshold`` (the best F1's). Each item gets a verdict
    against the run's threshold (``verdict_threshold``), calibrated so that a fraction ``fpr``
    of the run's held-out normal images lie above it; a given ``fpr`` is saved in the run.
    Without images or data: only calibrates. ``out``: a folder for the report, with
    ``overlays`` (None: all) pictures of the most anomalous images at their own size, heatmap
    and mask beside each, in ``out/overlays/``. ``device``: where the model runs (auto: a GPU
    when there is one).
    """
    if method is not None:
        check_method(method)
        if Path(run).is_dir():  # before the detector is made: a method the run cannot give
            check_arch_method(load_config(Path(run)).model.arch, method)
    if fpr is not None:
        check_fpr(fpr)
    if images is not None and data is not None:
        raise AekitError("score either image files or --data SOURCE, not both")
    if limit is not None and limit < 1:
        raise AekitError(f"limit must be a positive number of images, got {limit}")
    if isinstance(images, str | Path):  # one file
        images = [images]
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise AekitError(f"out {out} is a file, not a folder; choose a folder for the report")
    if images is not None and len(images) == 0:
        raise AekitError("no images to score: give image files, a batch, or --data SOURCE")
    det = load_detector(run, device=pick_device(device))
    method = method or default_method(det.model)
    check_arch_method(det.model.config.arch, method)
    batch = None
    if images is not None or data is not None:  # read (and check) before anything is saved
        where = None if data is None else Split(data, split, data_dir, image_size)
        batch = _batch(det, images, where, normal, limit, method)
    if fpr is not None:
        det.set_fpr(fpr)
    threshold = det.threshold(method)
    result: dict[str, Any] = {"method": method, "fpr": det.fpr, "verdict_threshold": threshold,
                              "heldout_above": det.heldout_above(method, threshold),
                              "calibration": det.about}  # fmt: skip
    if batch is None:
        return result
    scores = det.scores(batch.images, method) if batch.scores is None else batch.scores
    flagged = scores > threshold
    result.update(count=len(scores), flagged=int(flagged.sum()))
    if batch.source is not None:
        result.update(source=batch.source, split=batch.split)
        if (batch.source, batch.split) == (det.about["source"], det.about["split"]):
            print(f"note: {batch.source} [{batch.split}] is where {det.run} holds out its "
                  "normal images: the threshold was set on them, so its false alarms here are "
                  "fewer than on new images (train with --heldout-split train to keep them "
                  "apart)", file=sys.stderr)  # fmt: skip
    if batch.anomalous is not None:
        result.update(detection_metrics(scores, batch.anomalous), normal=batch.normal)
        kinds = per_kind_auroc(scores, batch.labels, batch.anomalous)
        if kinds:
            result["per_kind"] = kinds
    root = folder_root(batch.source)
    if root is not None and batch.images is not None:  # masks in ground_truth/: pixel measures
        result.update(pixel_measures(det.model, batch.images, batch.items, root, method) or {})
    result["items"] = [
        {"item": item, "label": label, "score": float(s), "verdict": _verdict(bad)}
        for item, label, s, bad in zip(batch.items, batch.labels, scores, flagged, strict=True)
    ]
    if out is not None:
        written = write_report(Path(out), det, batch, scores, threshold, method, result, overlays)
        result["overlays"] = sum(p.parent.name == "overlays" for p in written)
    return result


def _verdict(flagged: bool) -> str:
    return "anomalous" if flagged else "normal"


def _batch(
    det: Detector,
    images: list[str | Path] | torch.Tensor | None,
    where: Split | None,
    normal: str | None,
    limit: int | None,
    method: str,
) -> Batch:
    model = det.model
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise AekitError(f"score takes uint8 (N, C, H, W) images, got {images.dtype} "
                             f"{tuple(images.shape)}")  # fmt: skip
        check_input(model, tuple(images.shape[1:]), "the given", det.run)
        if normal is not None:
            raise AekitError("--normal says which labelled images are normal: these have none")
        images = images[:limit] if limit else images
        n = len(images)
        return Batch(images, [str(i) for i in range(n)], [None] * n, None, None)
    if images is not None:
        from ..data import read_image_files

        if normal is not None:
            raise AekitError("--normal says which images of a labelled --data source are "
                             "normal; image files have no labels")  # fmt: skip
        paths = [str(p) for p in images][:limit]
        if det.native:  # each at its own size
            from ..data.images import read_image_file

            read = [read_image_file(p, model.config.in_channels) for p in paths]
            for note in (n for _, notes in read for n in notes):
                print(f"note: {note} (as the model's training data)", file=sys.stderr)
            return Batch([u8 for u8, _ in read], paths, [None] * len(paths), None, None)
        size = model.config.image_size
        u8, notes = read_image_files(paths, model.config.in_channels, (size, size))
        for note in notes:
            print(f"note: {note} (as the model's training data)", file=sys.stderr)
        return Batch(u8, paths, [None] * len(paths), None, None)
    assert where is not None  # score() checked that images or data is given
    return _dataset_batch(det, where, normal, limit, method)


def _dataset_batch(
    det: Detector, where: Split, normal: str | None, limit: int | None, method: str
) -> Batch:
    from ..data import available_splits, load_dataset
    from ..data.streamed import open_stream

    cfg = det.config.data
    data_dir = where.data_dir or cfg.data_dir
    split = where.split
    if split is None:
        splits = available_splits(where.source, data_dir)
        split = "test" if "test" in splits else splits[0]
    if det.native:  # each image at its own size
        found, images = folder_images(where.source, split, det.model.config.in_channels, limit)
        batch = _described(found, _normal_names(det, found, normal), None)
        batch.images = images
        return batch
    size = where.image_size or cfg.image_size
    if size is None and where.source.startswith("folder:"):  # resized as the training folder was
        size = det.model.config.image_size
    stream = open_stream(where.source, split, data_dir, size)
    if stream is not None:  # too large for memory: scored as it is read
        return _streamed_batch(det, stream, normal, limit, method)
    ds = load_dataset(where.source, split, data_dir=data_dir, image_size=size, limit=limit)
    check_input(det.model, ds.shape, f"{ds.source} [{ds.split}]", det.run)
    return _described(ds, _normal_names(det, ds, normal), ds.images)


def _streamed_batch(
    det: Detector, stream: SplitStream, normal: str | None, limit: int | None, method: str
) -> Batch:
    """A split too large for memory scored chunk by chunk, in its order (the chunks are the
    model's batches, so the scores are those of the whole split at once), keeping only the
    images the report shows: the most and least anomalous."""
    check_input(det.model, stream.shape, f"{stream.source} [{stream.split}]", det.run)
    known = stream.known  # a folder's labels, from before decoding: --normal checked first
    names = None if known is None else _normal_names(det, known, normal)
    scores: list[np.ndarray] = []
    shown: dict[int, tuple[float, torch.Tensor]] = {}
    at = 0
    for chunk in stream.chunks(SCORE_BATCH, limit):
        scores.append(det.scores(chunk.images, method))
        shown = _extremes(shown, at, scores[-1], chunk.images)
        at += len(chunk.images)
    found = stream.listing()
    if known is None:
        names = _normal_names(det, found, normal)
    batch = _described(found, names, None)
    batch.scores = np.concatenate(scores)
    batch.shown = {i: image for i, (_, image) in shown.items()}
    return batch


def _extremes(
    kept: dict[int, tuple[float, torch.Tensor]], at: int, scores: np.ndarray, images: torch.Tensor
) -> dict[int, tuple[float, torch.Tensor]]:
    """The SHOWN most and least anomalous of the images kept so far and of a chunk of them
    (the first at position ``at``), ordered as :func:`write_report` orders all the scores."""
    rows = np.array(list(kept) + list(range(at, at + len(scores))), dtype=np.int64)
    values = np.array([kept[r][0] for r in kept] + scores.tolist(), dtype=np.float64)
    order = rows[np.lexsort((rows, -values))]  # argsort(-scores, stable) of these rows
    keep = set(order[:SHOWN].tolist()) | set(order[::-1][:SHOWN].tolist())
    out = {r: v for r, v in kept.items() if r in keep}
    for r in keep - set(out):
        out[r] = (float(scores[r - at]), images[r - at].clone())  # not a view of the chunk
    return out


def _normal_names(det: Detector, ds: ImageSet | Listing, normal: str | None) -> list[str] | None:
    """The normal classes of a labelled split (``--normal``, else the run's), or None (no
    metrics: a note says why)."""
    names: list[str] | None = None
    root = folder_root(ds.source)
    if normal is not None:
        names = class_names(ds, normal, "--normal")
    elif not det.normal and root is not None and is_mvtec_layout(root) and "good" in ds.classes:
        names = ["good"]  # a run trained on patches of train/good has no --classes to say so
    elif det.normal and ds.labels is not None and not ds.multi_label:
        if all(c in ds.classes for c in det.normal):
            names = det.normal
        else:
            print(f"note: {ds.source} lacks the run's normal classes ({', '.join(det.normal)}): "
                  "scores without metrics; pass --normal to name its normal ones",
                  file=sys.stderr)  # fmt: skip
    elif ds.multi_label:
        print(f"note: {ds.source} gives each image several labels: scores without metrics",
              file=sys.stderr)  # fmt: skip
    elif ds.labels is not None:
        print(f"note: {ds.source} is labelled; pass --normal CLASSES (the normal ones) for "
              "AUROC, AUPR and F1", file=sys.stderr)  # fmt: skip
    return names


def _described(
    ds: ImageSet | Listing, names: list[str] | None, images: torch.Tensor | None
) -> Batch:
    """What is scored of a split: its items, labels and (with ``names``) which are anomalous;
    a split with one kind only is refused."""
    anomalous = None
    if names is not None:
        anomalous = ~in_classes(ds, names).numpy()
        if anomalous.all() or not anomalous.any():
            kind = "anomalous" if anomalous.all() else "normal"
            raise AekitError(
                f"all {len(ds)} images of {ds.source} [{ds.split}] are {kind} (normal: "
                f"{', '.join(names)}): AUROC is undefined with one kind; score a split with "
                "both, or name other normal classes with --normal"
            )
    labels: list[str | None] = [None] * len(ds)
    if ds.labels is not None and not ds.multi_label:
        labels = [ds.classes[i] if i < len(ds.classes) else str(i) for i in ds.labels.tolist()]
    items = ds.paths or [f"{ds.split}:{i}" for i in range(len(ds))]
    return Batch(images, items, labels, anomalous, names, ds.source, ds.split)


def write_report(
    out: Path,
    det: Detector,
    batch: Batch,
    scores: np.ndarray,
    threshold: float,
    method: str,
    result: dict[str, Any],
    overlays: int | None = DEFAULT_OVERLAYS,
) -> list[Path]:
    """scores.csv, histogram.png, roc.png (labelled images), anomalous.png and normal.png, and
    ``overlays/`` (:func:`aekit.anomaly.overlays.write_overlays`)."""
    from sklearn.metrics import roc_curve

    from .plots import heatmap_grid, roc_plot, score_histogram

    out.mkdir(parents=True, exist_ok=True)
    what = f"{len(scores)} images"
    if batch.source:  # a folder or file by its name: a title, not a path
        kind, _, name = batch.source.partition(":")
        short = f"{kind}:{Path(name).name}" if kind in ("folder", "npz") else batch.source
        what = f"{short} [{batch.split}]"
    written = [out / "scores.csv"]
    write_text(written[0], _csv(result["items"]))
    title = f"{det.run.name}: {method} scores of {what}"
    written.append(score_histogram(scores, batch.anomalous, threshold, out / "histogram.png",
                                   title))  # fmt: skip
    if batch.anomalous is not None:
        fpr, tpr, _ = roc_curve(batch.anomalous, scores)
        written.append(roc_plot(fpr, tpr, result["auroc"], out / "roc.png", title))
    order = np.argsort(-scores, kind="stable")
    picks = {"anomalous": order[:SHOWN], "normal": order[::-1][:SHOWN]}
    heat = map_kind(method)
    for kind, idx in picks.items():
        if batch.images is None:  # scored as it was read: the images kept for this
            shown = torch.stack([batch.shown[int(i)] for i in idx])  # type: ignore[index]
        elif isinstance(batch.images, list):  # of their own sizes: the grid at the patch size
            shown = torch.stack([_resized(batch.images[int(i)], det.model.config.image_size)
                                 for i in idx])  # fmt: skip
        else:
            shown = batch.images[torch.as_tensor(idx.copy())]
        recons, maps = anomaly_maps(det.model, shown, heat)
        captions = [f"{scores[i]:.3g}\n{_short(batch, i)}".strip() for i in idx]
        name = f"the {len(idx)} most {kind} of {what} ({method}; heat: {MAP_NAMES[heat]})"
        written.append(heatmap_grid(shown, recons, maps, captions, out / f"{kind}.png", name,
                                    det.map_scale[heat]))  # fmt: skip
    if overlays != 0:
        written += write_overlays(out / "overlays", det, batch, scores, method, overlays)
    return written


def _resized(image: torch.Tensor, side: int | None) -> torch.Tensor:
    """A uint8 (C, H, W) image resized to side x side (bilinear): a thumbnail of the grids."""
    import torch.nn.functional as F

    out = F.interpolate(image[None].float(), size=(side, side), mode="bilinear",
                        align_corners=False)  # fmt: skip
    return out[0].round().clamp(0, 255).to(torch.uint8)


def _short(batch: Batch, i: int) -> str:
    """What a heatmap's caption names: the image's class, else its file's name (shortened)."""
    if batch.labels[i]:
        return str(batch.labels[i])
    if batch.source is None:
        name = Path(batch.items[i]).name
        return name if len(name) <= 16 else name[:7] + "…" + name[-8:]
    return ""


def _csv(items: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["item", "label", "score", "verdict"])
    for row in items:
        writer.writerow([row["item"], row["label"] or "", f"{row['score']:.6g}", row["verdict"]])
    return buf.getvalue()
