"""The FastAPI app of ``aekit serve``: reconstruct, denoise and search over a REST API.

The model and the gallery load once, in ``create_app``; handlers are plain ``def`` so that
FastAPI runs them in its thread pool and the model's work never blocks the event loop.
No filesystem path comes from a request: the run and the gallery are fixed at start, and
gallery items are addressed by index only.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..anomaly.detector import ANOMALY, Detector, load_detector
from ..anomaly.methods import (
    DEFAULT_METHOD,
    MAP_NAMES,
    arch_methods,
    default_method,
    map_kind,
)
from ..anomaly.native import is_native
from ..anomaly.plots import overlay
from ..api import reconstruct
from ..denoising.apply import denoise_photo
from ..denoising.fullsize import denoise_image, to_uint8
from ..devices import pick_device
from ..errors import AekitError
from ..explore.generate import generate, interpolate
from ..metrics import psnr_per_image
from ..models import get_family
from ..search.embed import Embeddings, encode
from ..training.runs import RunConfig, load, load_config
from .batching import MicroBatcher
from .gallery import Gallery
from .limits import BodyLimit
from .params import GENERATE_OPENAPI, GenerateParams, generate_params
from .uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, UploadError, data_url, decode_upload, png_bytes

MAX_PAGE = 200  # gallery items per page: bounds the answer's size
# noise when the request names no level: gaussian sigma in pixel units, poisson the photon count
# of white, else a fraction of pixels
DEFAULT_LEVELS = {"gaussian": 25.0, "poisson": 30.0, "saltpepper": 0.2, "mask": 0.2}
DEFAULT_K = 7  # results per search when the request names no k (fewer in a smaller gallery)
MAX_STEPS = 32  # points of an interpolation: bounds the answer's size
STATIC = Path(__file__).parent / "static"  # the page: plain HTML/JS/CSS, shipped as package data


def input_text(cfg: RunConfig) -> str:
    """What the page's header says the model takes: "32×32 RGB", or for a fully convolutional
    run "any size, RGB (trained on 64×64 patches)", its training size being no limit."""
    side, colour = cfg.model.image_size, "gray" if cfg.model.in_channels == 1 else "RGB"
    if not get_family(cfg.model.arch).any_size:
        return f"{side}×{side} {colour}"
    patch = cfg.data.patch_size
    trained = f"{patch}×{patch} patches" if patch else f"{side}×{side} images"
    return f"any size, {colour} (trained on {trained})"


def create_app(
    run: str | Path,
    gallery: str | Path | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    device: str = "auto",
) -> FastAPI:
    """The app serving ``run``'s model and, optionally, the embedding store ``gallery``."""
    if max_upload_bytes < 1 or max_pixels < 1:
        raise AekitError("--max-upload-bytes and --max-pixels must be positive")
    run = Path(run)
    cfg = load_config(run)
    dev = pick_device(device)
    model = load(run, device=dev)
    shelf = (
        None if gallery is None else Gallery(Embeddings.load(gallery), run, cfg.model.latent_dim)
    )

    family = get_family(cfg.model.arch)
    app = FastAPI(title="aekit", version="0.1.0", description="Image autoencoder over HTTP.")
    # multipart overhead and the small form fields fit in 64 KiB beside the file itself
    app.add_middleware(BodyLimit, limit=max_upload_bytes + 65536, upload_limit=max_upload_bytes)

    @app.exception_handler(UploadError)
    def _bad_upload(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(AekitError)
    def _bad_request(request: Request, exc: AekitError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    def read(upload: UploadFile, own_size: bool = False) -> torch.Tensor:
        """The upload as uint8 (C, H, W): at the model's size, or at its own (``own_size``, for
        a fully convolutional family)."""
        # read one byte past the limit: enough to know it is over without reading it all
        data = upload.file.read(max_upload_bytes + 1)
        size = None if own_size and family.any_size else model.config.image_size
        u8 = decode_upload(data, model.config.in_channels, size, max_upload_bytes, max_pixels)
        least = getattr(model, "stride", 1)  # what aekit denoise refuses, refused here too
        if min(u8.shape[1:]) < least:
            raise UploadError(400, f"the upload is {u8.shape[2]}x{u8.shape[1]} pixels: this "
                              f"model needs images of at least {least}x{least}")  # fmt: skip
        return u8

    # concurrent queries share one encoder pass and one scan of the store
    encoder: MicroBatcher[torch.Tensor, np.ndarray] = MicroBatcher(
        lambda images: list(encode(model, torch.stack(images), progress=False))
    )
    searcher = MicroBatcher(lambda queries: need_gallery().search_many(queries))
    # made on first use (it reads the run's training images once), read again when the run's
    # anomaly.json changes (e.g. aekit score --fpr from the command line)
    detector: dict[str, Any] = {}
    detector_lock = threading.Lock()
    # a run of whole images, or a draem trained on patches (scored whole); not a photo
    # denoiser, whose held-out photos would all be scored, one by one, as the page opens
    anomaly_page = cfg.data.patch_size is None or (is_native(cfg) and family.segments)

    def stamp() -> int | None:
        try:
            return (run / ANOMALY).stat().st_mtime_ns
        except OSError:
            return None

    def need_detector() -> Detector:
        with detector_lock:
            if "det" not in detector or detector["stamp"] != stamp():
                if not anomaly_page:
                    raise HTTPException(409, "this run was trained on photo patches: anomaly "
                                        "scores need a run trained on whole images, or a "
                                        "fully convolutional one")  # fmt: skip
                detector["det"] = load_detector(run, device=dev, progress=False)
                detector["stamp"] = stamp()
            return detector["det"]

    def need_gallery() -> Gallery:
        if shelf is None:
            raise HTTPException(
                409, "no gallery is served: start with aekit serve RUN --gallery EMB"
            )
        return shelf

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """The model's configuration, the gallery's size, the device and the upload limits."""
        return {
            "run": str(run),
            "config": cfg.to_dict(),
            "image_size": model.config.image_size,  # a unet's training size, not a limit
            "input": input_text(cfg),  # what the header says the model takes
            "channels": model.config.in_channels,
            "value_range": list(model.value_range),
            "device": str(dev),
            "gallery_size": 0 if shelf is None else len(shelf),
            "generative": family.generative,  # /api/generate samples its prior
            "decodable": family.decodable,  # /api/interpolate decodes between codes
            "full_size": family.any_size,  # reconstruct and denoise take photos at their size
            "anomaly": anomaly_page,  # /api/anomaly scores images
            "anomaly_methods": list(arch_methods(cfg.model.arch)),  # draem: a draem run's
            "anomaly_method": "draem" if family.segments else DEFAULT_METHOD,
            "normal_classes": cfg.data.classes,
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_pixels": max_pixels,
                "max_page": MAX_PAGE,
            },
        }

    @app.post("/api/reconstruct")
    def api_reconstruct(image: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """The upload as the model sees it, its reconstruction and their PSNR (dB)."""
        u8 = read(image, own_size=True)[None]
        if family.any_size:  # a photo at its own size: in tiles, as aekit denoise runs it
            rec = denoise_image(model, u8[0].float() / 255)[None]
        else:
            rec = reconstruct(model, u8).cpu()
        orig = u8.float() / 255
        return {"original": data_url(u8[0]), "reconstruction": data_url(rec[0]),
                "psnr": float(psnr_per_image(rec, orig)[0])}  # fmt: skip

    @app.post("/api/denoise")
    def api_denoise(
        image: Annotated[UploadFile, File()],
        noise: Annotated[
            Literal["gaussian", "poisson", "saltpepper", "mask", "none"], Form()
        ] = "gaussian",
        level: Annotated[float | None, Form()] = None,
    ) -> dict[str, Any]:
        """The upload, a noisy copy (fixed seed; ``none``: the upload is the noisy photo) and
        its denoising, with PSNR against the upload when noise was added. A fully
        convolutional run (``full_size`` in /api/info) keeps the upload's own size."""
        u8 = read(image, own_size=True)
        spec = None
        if noise != "none":
            spec = f"{noise}:{DEFAULT_LEVELS[noise] if level is None else level}"
        noisy, den = denoise_photo(model, u8, spec, seed=0)
        den8 = to_uint8(den)
        clean = u8.float()[None] / 255
        answer: dict[str, Any] = {
            "original": data_url(u8), "noisy": data_url(to_uint8(noisy)),
            "denoised": data_url(den8), "width": int(u8.shape[2]), "height": int(u8.shape[1]),
            "psnr_noisy": None, "psnr_denoised": None,
        }  # fmt: skip
        if spec is not None:
            answer["psnr_noisy"] = float(psnr_per_image(noisy[None], clean)[0])
            answer["psnr_denoised"] = float(psnr_per_image(den8[None].float() / 255, clean)[0])
        return answer

    @app.post("/api/search")
    def api_search(
        image: Annotated[UploadFile | None, File()] = None,
        index: Annotated[int | None, Form()] = None,
        k: Annotated[int | None, Form()] = None,
        farthest: Annotated[bool, Form()] = False,
        metric: Annotated[Literal["l2", "cosine"], Form()] = "l2",
    ) -> dict[str, Any]:
        """Nearest (or farthest) gallery items of an upload or of gallery item ``index``
        (itself left out); k defaults to 7, or every other item of a smaller gallery."""
        g = need_gallery()
        if (image is None) == (index is None):
            raise HTTPException(400, "send either an image file (field image) or an index")
        if index is not None and not 0 <= index < len(g):
            raise HTTPException(
                400, f"index {index} is out of range: the gallery holds {len(g)} items"
            )
        available = len(g) - (index is not None)
        if available < 1:
            raise HTTPException(400, "the gallery holds no other item to compare with")
        k = min(DEFAULT_K, available) if k is None else k  # a small gallery shows what it has
        if not 1 <= k <= available:
            raise HTTPException(400, f"k must be between 1 and {available}, got {k}")
        if index is not None:
            vector = np.asarray(g.store.vectors[index])
        else:
            vector = encoder.submit(read(image))  # type: ignore[arg-type]
        results = searcher.submit((vector, k, farthest, metric, index))
        return {"query": {"index": index}, "k": k, "farthest": farthest, "metric": metric,
                "results": results}  # fmt: skip

    @app.post("/api/generate", openapi_extra=GENERATE_OPENAPI)
    def api_generate(
        params: Annotated[GenerateParams, Depends(generate_params)],
    ) -> dict[str, Any]:
        """``n`` samples of a vae run's prior (seeded: a seed gives the same images); ``n``,
        ``seed`` and ``temperature`` in the query string, a form or a JSON object."""
        n, seed, temperature = params.n, params.seed, params.temperature
        images = generate(model, n, seed=seed, temperature=temperature)
        return {"n": n, "seed": seed, "temperature": temperature,
                "images": [data_url(x) for x in images]}  # fmt: skip

    @app.post("/api/interpolate")
    def api_interpolate(
        to: Annotated[int, Form()],
        image: Annotated[UploadFile | None, File()] = None,
        index: Annotated[int | None, Form()] = None,
        steps: Annotated[int, Form(ge=2, le=MAX_STEPS)] = 8,
    ) -> dict[str, Any]:
        """The decoded path from an upload (or gallery item ``index``) to gallery item ``to``,
        both ends included: spherical for a vae, linear for the others."""
        g = need_gallery()
        if (image is None) == (index is None):
            raise HTTPException(400, "send either an image file (field image) or an index")
        for name, i in (("index", index), ("to", to)):
            if i is not None and not 0 <= i < len(g):
                raise HTTPException(
                    400, f"{name} {i} is out of range: the gallery holds {len(g)} items"
                )
        a = g.image(index) if index is not None else read(image)  # type: ignore[arg-type]
        path = interpolate(model, a, g.image(to), steps=steps)
        return {"from": data_url(a), "to": data_url(g.image(to)), "steps": steps,
                "images": [data_url(x) for x in path]}  # fmt: skip

    @app.post("/api/anomaly")
    def api_anomaly(
        image: Annotated[UploadFile | None, File()] = None,
        index: Annotated[int | None, Form()] = None,
        method: Annotated[
            Literal["recon", "ssim", "latent-knn", "combined", "draem"] | None, Form()
        ] = None,
    ) -> dict[str, Any]:
        """The anomaly score of an upload (or gallery item ``index``) under the run, its
        verdict against the run's calibrated threshold, and a heatmap of where it is unusual
        (as ``aekit score`` computes them); for a gallery item with a defect mask (a test image
        of a folder in MVTec AD's layout), the mask."""
        if (image is None) == (index is None):
            raise HTTPException(400, "send either an image file (field image) or an index")
        if index is not None:
            g = need_gallery()
            if not 0 <= index < len(g):
                raise HTTPException(
                    400, f"index {index} is out of range: the gallery holds {len(g)} items"
                )
            u8 = g.image(index)
            mask = g.mask(index, tuple(u8.shape[-2:]))  # type: ignore[arg-type]
        else:  # a run that scores whole images at their own sizes takes the upload as it is
            u8 = read(image, own_size=is_native(cfg))  # type: ignore[arg-type]
            mask = None
        det = need_detector()
        method = method or default_method(det.model)  # draem for a run that segments
        scores, recon, maps = det.explain(u8[None], method)  # one pass of the model
        value, threshold, kind = float(scores[0]), det.threshold(method), map_kind(method)
        heat = (maps[0] / det.map_scale[kind]).clamp(0, 1).numpy()
        shown = overlay(u8.permute(1, 2, 0).float().numpy() / 255.0, heat)
        return {
            "method": method, "score": value, "threshold": threshold, "fpr": det.fpr,
            "verdict": "anomalous" if value > threshold else "normal",
            "normal_classes": det.normal, "original": data_url(u8),
            "reconstruction": data_url(recon[0]),
            "heatmap": data_url(torch.from_numpy(shown).permute(2, 0, 1).float()),
            "map": MAP_NAMES[kind],
            "mask": None if mask is None else data_url(mask),  # where the gallery has masks
        }  # fmt: skip

    @app.get("/api/gallery")
    def api_gallery(
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """One page of gallery items and the gallery's size."""
        g = need_gallery()
        items = [g.item(i) for i in range(offset, min(offset + limit, len(g)))]
        return {"total": len(g), "offset": offset, "limit": limit, "items": items}

    @app.get("/api/map")
    def api_map() -> JSONResponse:
        """The gallery in 2-D for the page's Map view: point ``i`` is item ``index[i]`` (item
        ``i`` when ``index`` is null), with its label and the class names. The map ``aekit map``
        saved into the store when there is one, else PCA computed on first use; at most
        100,000 points, a seeded sample of a larger gallery."""
        # a JSONResponse of its own: FastAPI's encoder would walk every number of the answer
        return JSONResponse(need_gallery().map_view())

    @app.get(
        "/api/gallery/{index}/image",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def api_gallery_image(index: int) -> Response:
        """Gallery item ``index`` as a PNG."""
        g = need_gallery()
        if not 0 <= index < len(g):
            raise HTTPException(404, f"no gallery item {index}: the gallery holds {len(g)} items")
        return Response(png_bytes(g.image(index)), media_type="image/png")

    app.state.model = model
    app.state.gallery = shelf
    return app
