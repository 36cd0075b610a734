"""``aekit export``: a run as an ONNX graph for onnxruntime, checked against aekit, then kept.

Parts: ``full`` (float32 images (B, C, H, W) in [0, 1] -> the reconstruction in [0, 1] and the
code (B, D)), ``encoder`` (images -> code) and ``decoder`` (code -> images). Scaling to and from
the model's value range is inside the graph, so a user feeds plain images. The batch axis is
dynamic, and height and width too for families that take any size (unet). A vae's code is its
posterior mean, decoded as ``aekit reconstruct`` does.

The graph comes from torch's own exporter (``torch.onnx.export``, torch.export based, which needs
``onnxscript``); the file is then run in onnxruntime on held-out images of the run (random images
where its data is not at hand) and kept only if every output is within ``TOLERANCE`` of aekit's;
it is written under a temporary name first, so a refused or interrupted export leaves nothing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AekitError
from ..files import give_normal_mode, remove_stale_temps_of, writing
from ..models import Autoencoder, get_family
from ..training import runs

FORMATS = ("onnx",)
PARTS = ("full", "encoder", "decoder")
TOLERANCE = 1e-4  # largest |onnxruntime - aekit| kept, on [0, 1] pixels and on codes
OPSET = 18
CHECK_IMAGES = 8
INSTALL = "pip install 'aekit[export]' (onnx, onnxruntime, onnxscript)"


class _Scaled(nn.Module):
    """A part of ``model`` that reads and writes [0, 1] images; ``model`` is float32, eval."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model
        self.lo, self.hi = model.value_range

    def scale_in(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.hi - self.lo) + self.lo

    def scale_out(self, y: torch.Tensor) -> torch.Tensor:
        return ((y - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)


class FullGraph(_Scaled):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(self.scale_in(images))
        return self.scale_out(out.recon), out.code


class EncoderGraph(_Scaled):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(self.scale_in(images))


class DecoderGraph(_Scaled):
    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.scale_out(self.model.decode(code))


GRAPHS = {"full": FullGraph, "encoder": EncoderGraph, "decoder": DecoderGraph}
NAMES = {  # the graph's input and output names
    "full": (["images"], ["reconstruction", "code"]),
    "encoder": (["images"], ["code"]),
    "decoder": (["code"], ["images"]),
}


@dataclass
class Exported:
    """What ``export`` wrote and how it was checked."""

    path: Path
    part: str
    inputs: dict[str, list[int | str]]  # name -> shape (axis names where dynamic)
    outputs: dict[str, list[int | str]]
    max_difference: float  # largest |onnxruntime - aekit| over the checked outputs
    checked_on: str  # "8 held-out images", or "8 random images (...)" without the data


def check_request(fmt: str, part: str) -> None:
    if fmt not in FORMATS:
        raise AekitError(f"unknown --format {fmt!r}: aekit exports {', '.join(FORMATS)}")
    if part not in PARTS:
        raise AekitError(f"unknown --part {part!r}: use one of {', '.join(PARTS)}")


def _check_libraries() -> None:
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError as e:
            raise AekitError(
                f"exporting to ONNX needs {name}, which is not installed: {INSTALL}"
            ) from e


def _check_out(out: Path, force: bool) -> None:
    if out.is_dir():
        raise AekitError(f"--out {out} is a folder; give a file path ending in .onnx")
    if out.suffix.lower() != ".onnx":
        raise AekitError(f"--out {out}: an ONNX model is written as .onnx; give such a path")
    if out.exists() and not force:
        raise AekitError(f"--out {out} exists: choose another path, or add --force to replace it")
    for p in out.parents:
        if p.exists():
            if not p.is_dir():
                raise AekitError(f"--out {out}: {p} is a file, not a folder")
            if not os.access(p, os.W_OK):
                raise AekitError(f"--out {out}: the folder {p} cannot be written")
            return


def check_images(run: Path, model: Autoencoder) -> tuple[torch.Tensor, str]:
    """uint8 (N, C, S, S) images to check the graph on: the run's held-out images where its data
    is at hand (the centres of its held-out photos for a photo run), else random ones."""
    from ..training.splits import load_photo_splits, load_splits

    cfg = runs.load_config(run)
    side = cfg.model.image_size
    try:
        if cfg.data.patch_size:
            photos = load_photo_splits(replace(cfg.data, limit=None))[1]
            crops = []
            for i in range(min(CHECK_IMAGES, len(photos))):
                photo = photos.photo(i)
                h, w = photo.shape[1:]
                top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
                crops.append(photo[:, top : top + side, left : left + side])
            if all(c.shape[1:] == (side, side) for c in crops):
                return torch.stack(crops), f"the centres of {len(crops)} held-out photos"
        else:
            held = load_splits(replace(cfg.data, limit=None))[1]
            images = held.images[:CHECK_IMAGES]
            return images.contiguous(), f"{len(images)} held-out images"
    except (AekitError, OSError):
        pass  # its data is not on this machine
    gen = torch.Generator().manual_seed(0)
    shape = (CHECK_IMAGES, cfg.model.in_channels, side, side)
    images = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    return images, f"{CHECK_IMAGES} random images (the run's data is not at hand)"


def _example(part: str, model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """The graph's input for ``images``: [0, 1] floats, or their codes for the decoder."""
    x = images.float() / 255.0
    if part != "decoder":
        return x
    with torch.no_grad():
        return EncoderGraph(model)(x)


def _dynamic(part: str, any_size: bool) -> tuple[dict[int, Any], ...]:
    batch = torch.export.Dim("batch", min=1)
    if part == "decoder" or not any_size:
        return ({0: batch},)
    height, width = torch.export.Dim("height", min=1), torch.export.Dim("width", min=1)
    return ({0: batch, 2: height, 3: width},)


def _write_onnx(
    graph: nn.Module, example: torch.Tensor, part: str, any_size: bool, tmp: str
) -> None:
    inputs, outputs = NAMES[part]
    quiet = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, (example,), tmp, input_names=inputs, output_names=outputs,
                dynamo=True, opset_version=OPSET, external_data=False, verbose=False,
                dynamic_shapes=_dynamic(part, any_size),
            )  # fmt: skip
    except Exception as e:  # the exporter's own errors: a graph it cannot express
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AekitError(f"torch.onnx could not export the {part} graph: {first}") from e
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _resized(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    y = torch.nn.functional.interpolate(images.float(), size=size, mode="bilinear")
    return y.round().clamp(0, 255).to(torch.uint8)


def _compare(path: str, graph: nn.Module, inputs: list[torch.Tensor]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        got = session.run(None, {name: x.numpy()})
        with torch.no_grad():
            want = graph(x)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want, strict=True):
            if g.shape != tuple(w.shape):
                return float("inf")
            worst = max(worst, float(np.abs(g - w.numpy()).max()))
    return worst


def _shapes(path: Path) -> tuple[dict[str, list[int | str]], dict[str, list[int | str]]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(values: Any) -> dict[str, list[int | str]]:
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in values}  # fmt: skip

    return dims(graph.input), dims(graph.output)


def export(
    run: str | Path, out: str | Path, part: str = "full", fmt: str = "onnx", force: bool = False
) -> Exported:
    """Write ``part`` of the run's model to ``out`` as ONNX and check it in onnxruntime; a file
    whose outputs differ from aekit's by more than ``TOLERANCE`` is deleted and refused."""
    check_request(fmt, part)
    run, out = Path(run), Path(out)
    _check_out(out, force)
    _check_libraries()
    model = runs.load(run, "cpu").to(memory_format=torch.contiguous_format).float().eval()
    family = get_family(model.config.arch)
    if part == "decoder" and not family.decodable:
        raise AekitError(
            f"--part decoder: --arch {family.name} has no code that decodes on its own (its "
            "skips carry the picture); export --part full or encoder"
        )
    graph = GRAPHS[part](model).eval()
    images, source = check_images(run, model)
    checks = [_example(part, model, images)]
    trace = checks[0][:2]
    if family.any_size and part != "decoder":
        # traced at a multiple of the stride (torch.export cannot solve the padding's sizes from
        # another), checked there, at the run's size and at an odd, non-square one
        stride = getattr(model, "stride", 1)
        h, w = images.shape[2:]
        trace = _example(
            part, model, _resized(images[:2], (-(-h // stride) * stride, -(-w // stride) * stride))
        )
        checks += [trace, _example(part, model, _resized(images[:1], (h + 5, w + 11)))]
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps_of(out)  # what an export killed before this one left
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with writing(tmp):
            _write_onnx(graph, trace, part, family.any_size, tmp)
            worst = _compare(tmp, graph, checks)
            if not worst <= TOLERANCE:
                raise AekitError(
                    f"the exported {part} graph differs from aekit by {worst:.2g} on {source} "
                    f"(more than {TOLERANCE:g}): nothing was written"
                )
            give_normal_mode(tmp)
            os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    inputs, outputs = _shapes(out)
    return Exported(out, part, inputs, outputs, worst, source)
