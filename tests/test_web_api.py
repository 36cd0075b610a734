"""The web app's REST API through FastAPI's TestClient: values, limits and every bad input."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.metrics import psnr_per_image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from aekit.web.server import create_app

MAX_BYTES = 200_000  # small limits so that the over-limit uploads are cheap to make
MAX_PIXELS = 1_000_000
GALLERY = 200


@pytest.fixture(scope="module")
def store(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> aekit.Embeddings:
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, GALLERY))
    emb = tmp_path_factory.mktemp("web") / "emb"
    aekit.embed(aekit.load(tiny_run), ds, run=tiny_run).save(emb)
    return aekit.Embeddings.load(emb)


@pytest.fixture(scope="module")
def client(tiny_run: Path, store: aekit.Embeddings) -> TestClient:
    app = create_app(tiny_run, store.path, max_upload_bytes=MAX_BYTES, max_pixels=MAX_PIXELS,
                     device="cpu")  # fmt: skip
    return TestClient(app)


def png(array: np.ndarray | torch.Tensor, mode: str | None = None) -> bytes:
    """uint8 (C, H, W) or (H, W) -> PNG bytes."""
    a = np.asarray(array)
    a = a[0] if a.ndim == 3 and a.shape[0] == 1 else a
    a = a.transpose(1, 2, 0) if a.ndim == 3 else a
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a), mode).save(buf, format="PNG")
    return buf.getvalue()


def decode(url: str) -> np.ndarray:
    import base64

    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :]))) as img:
        assert img.format == "PNG"
        return np.asarray(img)


def upload(data: bytes, name: str = "x.png") -> dict[str, Any]:
    return {"image": (name, data, "image/png")}


def assert_serving(client: TestClient, store: aekit.Embeddings) -> None:
    """A good request still gets a good answer (after a bad one)."""
    r = client.post("/api/reconstruct", files=upload(png(store.images([0])[0])))
    assert r.status_code == 200, r.text
    assert client.get("/api/info").json()["gallery_size"] == GALLERY


def test_info_and_page(client: TestClient, tiny_run: Path) -> None:
    info = client.get("/api/info").json()
    cfg = aekit.training.runs.load_config(tiny_run)
    assert info["config"]["model"]["latent_dim"] == cfg.model.latent_dim == 16
    assert info["gallery_size"] == GALLERY
    assert info["device"] == "cpu" and info["value_range"] == [-1.0, 1.0]
    assert info["limits"] == {"max_upload_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS,
                              "max_page": 200}  # fmt: skip
    page = client.get("/")
    assert page.status_code == 200 and 'href="/docs"' in page.text
    assert 'src="/static/app.js"' in page.text
    for name, kind in [
        ("app.js", "javascript"),
        ("map.js", "javascript"),
        ("style.css", "text/css"),
    ]:
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]


def test_openapi_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/info", "/api/reconstruct", "/api/denoise", "/api/search", "/api/gallery",
            "/api/gallery/{index}/image", "/api/generate",
            "/api/interpolate", "/api/map"} <= set(paths)  # fmt: skip
    assert "post" in paths["/api/search"] and "get" in paths["/api/gallery"]


def test_reconstruct_matches_the_library(client: TestClient, tiny_run: Path,
                                         store: aekit.Embeddings) -> None:  # fmt: skip
    u8 = store.images([3])
    r = client.post("/api/reconstruct", files=upload(png(u8[0])))
    assert r.status_code == 200, r.text
    body = r.json()
    size = aekit.load(tiny_run).config.image_size
    assert decode(body["original"]).shape[:2] == (size, size)
    assert np.array_equal(decode(body["original"]), png_array(u8[0]))
    assert decode(body["reconstruction"]).shape[:2] == (size, size)
    rec = aekit.reconstruct(aekit.load(tiny_run), u8)
    assert body["psnr"] == pytest.approx(float(psnr_per_image(rec, u8.float() / 255)[0]), abs=1e-4)


def png_array(u8: torch.Tensor) -> np.ndarray:
    """What a PNG of uint8 (C, H, W) decodes to: (H, W) gray or (H, W, 3)."""
    a = u8.numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def test_denoise_reports_both_psnrs(client: TestClient, store: aekit.Embeddings) -> None:
    data = png(store.images([5])[0])
    body = client.post("/api/denoise", files=upload(data)).json()
    assert set(body) >= {"original", "noisy", "denoised", "psnr_noisy", "psnr_denoised"}
    assert 5 < body["psnr_noisy"] < 30  # gaussian 0.2 in the [-1, 1] scale: visibly noisy
    harder = client.post("/api/denoise", files=upload(data),
                         data={"noise": "gaussian", "level": "76.5"}).json()  # fmt: skip
    assert harder["psnr_noisy"] < body["psnr_noisy"]
    masked = client.post("/api/denoise", files=upload(data), data={"noise": "mask", "level": "0"})
    assert masked.json()["psnr_noisy"] >= 99  # no pixel masked: identical to the original


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("farthest", [False, True])
def test_search_by_index_equals_the_store(
    client: TestClient, store: aekit.Embeddings, metric: str, farthest: bool
) -> None:
    form = {"index": "12", "k": "5", "metric": metric, "farthest": str(farthest).lower()}
    results = client.post("/api/search", data=form).json()["results"]
    dist, idx = store.search(store.vectors[12:13], 5, farthest=farthest, metric=metric,
                             exclude=np.array([12]))  # fmt: skip
    assert [r["index"] for r in results] == idx[0].tolist()
    assert [r["distance"] for r in results] == pytest.approx(dist[0].tolist(), abs=1e-5)
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert 12 not in [r["index"] for r in results]
    first = results[0]
    assert first["label"] == store.items[first["index"]]["label"]
    assert first["class"] == store.items[first["index"]]["class"]
    assert first["image_url"] == f"/api/gallery/{first['index']}/image"


def test_search_by_uploaded_stored_image_finds_itself(
    client: TestClient, store: aekit.Embeddings
) -> None:
    r = client.post("/api/search", files=upload(png(store.images([40])[0])))
    results = r.json()["results"]
    assert len(results) == 7
    assert results[0]["index"] == 40 and results[0]["distance"] == pytest.approx(0, abs=1e-4)


def test_gallery_pages_and_images(client: TestClient, store: aekit.Embeddings) -> None:
    page = client.get("/api/gallery", params={"offset": 190, "limit": 20}).json()
    assert page["total"] == GALLERY
    assert [it["index"] for it in page["items"]] == list(range(190, 200))
    assert page["items"][0]["class"] == store.items[190]["class"]
    assert client.get("/api/gallery", params={"offset": 500}).json()["items"] == []
    r = client.get("/api/gallery/7/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as img:
        assert np.array_equal(np.asarray(img), png_array(store.images([7])[0]))


def _bomb() -> bytes:
    # 20000 x 20000 black-and-white pixels: 50 MB to decode, a few KB of zeros on the wire
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    return buf.getvalue()


def _big() -> bytes:
    buf = io.BytesIO()  # 2 Mpixel: under Pillow's own bomb limit, over this server's
    Image.new("L", (2000, 1000)).save(buf, format="PNG")
    return buf.getvalue()


def _truncated() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    whole = png(noise)
    return whole[: len(whole) // 2]


BAD_UPLOADS: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "bomb": (_bomb, 413, "pixels"),
    "too many pixels": (_big, 413, "2000000 pixels"),
    "truncated": (_truncated, 400, "cannot read"),
    "text": (lambda: b"hello, I am not a picture\n" * 10, 400, "cannot read"),
    "empty": (lambda: b"", 400, "empty"),
    "over the byte limit": (lambda: b"\0" * (MAX_BYTES + 1), 413, f"{MAX_BYTES} bytes"),
    "far over the byte limit": (lambda: b"\0" * (3 * MAX_BYTES), 413, f"{MAX_BYTES} bytes"),
}


# every upload endpoint shares decode_upload: the slow bomb is sent to one of them only
UPLOAD_CASES = [(e, c) for e in ("/api/reconstruct", "/api/denoise", "/api/search")
                for c in BAD_UPLOADS if e == "/api/reconstruct" or c != "bomb"]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "case"), UPLOAD_CASES)
def test_bad_uploads_get_a_4xx_and_the_server_keeps_serving(
    client: TestClient, store: aekit.Embeddings, endpoint: str, case: str
) -> None:
    make, status, words = BAD_UPLOADS[case]
    r = client.post(endpoint, files=upload(make(), "upload.png"))
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert_serving(client, store)


BAD_FORMS: list[tuple[str, dict[str, str], int, str]] = [
    ("/api/search", {"index": "3", "k": "0"}, 400, "k must be between 1 and 199"),
    ("/api/search", {"index": "3", "k": "200"}, 400, "k must be between 1 and 199"),
    ("/api/search", {"index": "3", "metric": "hamming"}, 422, "l2"),
    ("/api/search", {"index": "-1"}, 400, "out of range"),
    ("/api/search", {"index": "200"}, 400, "out of range"),
    ("/api/search", {"index": "two"}, 422, "integer"),
    ("/api/search", {}, 400, "either an image"),
    ("/api/search", {"index": "../../etc/passwd"}, 422, "integer"),
    ("/api/denoise", {"noise": "pink"}, 422, "gaussian"),
    ("/api/denoise", {"level": "-1"}, 400, "sigma must be between 0 and 1000"),
    ("/api/denoise", {"level": "1e308"}, 400, "sigma must be between 0 and 1000"),
    ("/api/denoise", {"noise": "mask", "level": "2"}, 400, "fraction"),
    ("/api/denoise", {"level": "nan"}, 400, "bad noise"),
]


@pytest.mark.parametrize(("endpoint", "form", "status", "words"), BAD_FORMS)
def test_bad_fields_get_a_4xx_and_the_server_keeps_serving(
    client: TestClient, store: aekit.Embeddings, endpoint: str, form: dict[str, str],
    status: int, words: str,
) -> None:  # fmt: skip
    files = upload(png(store.images([0])[0])) if endpoint == "/api/denoise" else None
    r = client.post(endpoint, data=form, files=files)
    assert r.status_code == status, r.text
    assert words in str(r.json()["detail"])
    assert_serving(client, store)


def test_bad_gallery_requests(client: TestClient, store: aekit.Embeddings) -> None:
    both = client.post("/api/search", data={"index": "1"}, files=upload(png(store.images([0])[0])))
    assert both.status_code == 400 and "either" in both.json()["detail"]
    assert client.get("/api/gallery/200/image").status_code == 404
    assert "holds 200" in client.get("/api/gallery/-1/image").json()["detail"]
    assert client.get("/api/gallery", params={"limit": 201}).status_code == 422
    assert client.get("/api/gallery", params={"offset": -1}).status_code == 422
    assert client.get("/api/gallery/x/image").status_code == 422
    assert_serving(client, store)


def test_without_a_gallery_search_says_how_to_get_one(
    tiny_run: Path, store: aekit.Embeddings
) -> None:
    bare = TestClient(create_app(tiny_run, device="cpu"))
    assert bare.get("/api/info").json()["gallery_size"] == 0
    r = bare.post("/api/search", data={"index": "0"})
    assert r.status_code == 409 and "--gallery" in r.json()["detail"]
    assert bare.get("/api/gallery").status_code == 409
    assert bare.get("/api/map").status_code == 409
    assert bare.post("/api/reconstruct", files=upload(png(store.images([0])[0]))).status_code == 200


def test_serve_is_a_command(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    code, _, err = cli("serve", tmp_path / "missing")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("serve", "--help")
    assert code == 0


def test_a_chunked_upload_is_cut_off_at_the_limit(
    client: TestClient, store: aekit.Embeddings
) -> None:
    # no Content-Length to refuse up front: the body is counted as it streams
    def body() -> Any:
        yield (b'--B\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")  # fmt: skip
        for _ in range(3 * MAX_BYTES // 10_000):
            yield b"\0" * 10_000
        yield b"\r\n--B--\r\n"

    r = client.post("/api/reconstruct", content=body(),
                    headers={"content-type": "multipart/form-data; boundary=B"})  # fmt: skip
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413 and f"{MAX_BYTES} bytes" in r.json()["detail"]
    assert_serving(client, store)


@pytest.mark.parametrize("size,want", [(6, 5), (2, 1)])
def test_a_small_gallery_answers_a_search_without_k(tiny_run: Path, tmp_path: Path, size: int,
                                                     want: int) -> None:  # fmt: skip
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, size))
    aekit.embed(aekit.load(tiny_run), ds, run=tiny_run).save(tmp_path / "emb")
    client = TestClient(create_app(tiny_run, tmp_path / "emb", device="cpu"))
    body = client.post("/api/search", data={"index": "0"}).json()
    assert body["k"] == want and len(body["results"]) == want
    assert 0 not in [r["index"] for r in body["results"]]
    assert client.post("/api/search", data={"index": "0", "k": "9"}).status_code == 400


@pytest.fixture(scope="module")
def vae_client(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, Path]:
    folder = tmp_path_factory.mktemp("vae-web")
    run = aekit.train(folder / "run", "shapes", arch="vae", epochs=1, limit=128, base_channels=8,
                      latent_dim=8, progress=False)  # fmt: skip
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, 20))
    aekit.embed(aekit.load(run), ds, run=run).save(folder / "emb")
    return TestClient(create_app(run, folder / "emb", device="cpu")), run


def test_generate_is_the_library_s_seeded_samples(vae_client) -> None:
    client, run = vae_client
    info = client.get("/api/info").json()
    assert info["generative"] is True and info["decodable"] is True
    r = client.post("/api/generate", data={"n": 5, "seed": 7, "temperature": 0.8})
    assert r.status_code == 200, r.text
    got = np.stack([decode(u) for u in r.json()["images"]])
    want = aekit.generate(aekit.load(run), n=5, seed=7, temperature=0.8)
    # to 8 bits as the page's PNGs are: rounded half to even (a value of exactly 136.5 occurs)
    want = (want.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(got, want)
    for bad in ({"n": 0}, {"n": 65}, {"temperature": 0}, {"temperature": "warm"}, {"seed": -1}):
        assert client.post("/api/generate", data=bad).status_code == 422, bad


def test_generate_takes_its_parameters_from_the_query_a_form_or_json(vae_client) -> None:
    client, _ = vae_client
    want = client.post("/api/generate", data={"n": 4, "seed": 1, "temperature": 0.5}).json()
    assert (want["n"], want["seed"], want["temperature"]) == (4, 1, 0.5)
    by_query = client.post("/api/generate?n=4&seed=1&temperature=0.5")
    by_json = client.post("/api/generate", json={"n": 4, "seed": 1, "temperature": 0.5})
    mixed = client.post("/api/generate?seed=1", data={"n": "4", "temperature": "0.5"})
    for r in (by_query, by_json, mixed):
        assert r.status_code == 200 and r.json() == want, r.text
    default = client.post("/api/generate").json()  # nothing given: the defaults
    assert (default["n"], default["seed"], default["temperature"]) == (8, 0, 1.0)
    assert "n" in {p["name"] for p in client.get("/openapi.json").json()["paths"][
        "/api/generate"]["post"]["parameters"]}  # fmt: skip


@pytest.mark.parametrize(("query", "body", "words"), [
    ("n=0", None, "n: input should be greater than or equal to 1, got '0'"),
    ("n=100000", None, "n: input should be less than or equal to 64, got '100000'"),
    ("temperature=nan", None, "temperature: input should be a finite number, got 'nan'"),
    ("temperature=inf", None, "temperature: input should be a finite number"),
    ("seed=-1", None, "seed: input should be greater than or equal to 0"),
    ("n=four", None, "n: input should be a valid integer"),
    ("count=4", None, "unknown parameter 'count': /api/generate takes n, seed and temperature"),
    ("", {"n": 0}, "n: input should be greater than or equal to 1, got 0"),
    ("", {"temperature": "warm"}, "temperature: input should be a valid number"),
    ("n=2", {"n": 3}, "n is given in the query string and in the body: give it once"),
])  # fmt: skip
def test_bad_generate_parameters_are_refused_in_one_line(vae_client, query, body, words) -> None:
    client, _ = vae_client
    r = client.post(f"/api/generate?{query}", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail.startswith(words), detail


def test_a_generate_body_that_is_not_a_json_object_is_refused(vae_client) -> None:
    client, _ = vae_client
    for content, words in [(b"{not json", "is not JSON"), (b"[4]", "is not a JSON object")]:
        r = client.post("/api/generate", content=content,
                        headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 400 and words in r.json()["detail"], r.text


def test_interpolate_runs_from_a_query_to_a_gallery_item(vae_client) -> None:
    client, run = vae_client
    model = aekit.load(run)
    r = client.post("/api/interpolate", data={"index": 2, "to": 5, "steps": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    ds = aekit.load_dataset("shapes", "test")
    want = aekit.interpolate(model, ds.images[2], ds.images[5], steps=4)
    # to 8 bits as the page's PNGs are: rounded half to even (a value of exactly 136.5 occurs)
    want = (want.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.stack([decode(u) for u in body["images"]]), want)
    assert np.array_equal(decode(body["to"]), ds.images[5].permute(1, 2, 0).numpy())
    up = client.post("/api/interpolate", data={"to": 5, "steps": 4},
                     files=upload(png(ds.images[2])))  # fmt: skip
    assert up.json()["images"] == body["images"]  # an upload of item 2 takes the same path
    for bad, code in [({"to": 20}, 400), ({"index": 1}, 422), ({"index": -1, "to": 1}, 400),
                      ({"index": 1, "to": 2, "steps": 1}, 422), ({"to": 1}, 400)]:  # fmt: skip
        r = client.post("/api/interpolate", data=bad)
        assert r.status_code == code, (bad, r.text)


def test_a_run_without_a_prior_says_so(client: TestClient, store: aekit.Embeddings) -> None:
    assert client.get("/api/info").json()["generative"] is False
    r = client.post("/api/generate", data={"n": 2})
    assert r.status_code == 400 and "no prior to sample" in r.json()["detail"]
    r = client.post("/api/interpolate", data={"index": 0, "to": 1, "steps": 3})
    assert r.status_code == 200 and len(r.json()["images"]) == 3  # conv codes decode
    assert_serving(client, store)


@pytest.fixture(scope="module")
def anomaly_client(tiny_run: Path, store: aekit.Embeddings, tmp_path_factory) -> TestClient:
    import shutil

    # a copy: scoring keeps the run's held-out scores in it (tiny_run is read-only)
    run = shutil.copytree(tiny_run, tmp_path_factory.mktemp("anomaly-web") / "run")
    return TestClient(create_app(run, store.path, device="cpu"))


def test_anomaly_scores_an_upload_or_a_gallery_item(
    anomaly_client: TestClient, store: aekit.Embeddings
) -> None:
    client = anomaly_client
    assert client.get("/api/info").json()["anomaly"] is True
    image = store.images([5])[0]
    run = Path(client.get("/api/info").json()["run"])
    for method in ("combined", "recon", "latent-knn"):
        by_upload = client.post("/api/anomaly", files=upload(png(image)), data={"method": method})
        assert by_upload.status_code == 200, by_upload.text
        body = by_upload.json()
        expected = aekit.score(run, images=image[None], method=method, device="cpu")
        assert body["score"] == pytest.approx(expected["items"][0]["score"], rel=1e-4, abs=1e-6)
        assert body["threshold"] == pytest.approx(expected["verdict_threshold"])
        assert body["verdict"] == ("anomalous" if body["score"] > body["threshold"] else "normal")
        assert body["fpr"] == 0.05 and body["method"] == method
        heat = decode(body["heatmap"])
        assert heat.shape == (32, 32, 3)
        assert (decode(body["original"]) == image.permute(1, 2, 0).numpy()).all()
        by_index = client.post("/api/anomaly", data={"index": "5", "method": method}).json()
        assert by_index["score"] == pytest.approx(body["score"], rel=1e-4, abs=1e-6)
    assert body["map"] == "squared error"


def test_anomaly_runs_the_model_once_per_request(
    anomaly_client: TestClient, store: aekit.Embeddings
) -> None:
    from aekit.anomaly.detector import load_detector
    from aekit.anomaly.methods import anomaly_maps
    from aekit.anomaly.plots import overlay
    from aekit.web.uploads import data_url

    client, image = anomaly_client, store.images([3])[0]
    assert client.post("/api/anomaly", files=upload(png(image))).status_code == 200  # made
    det = load_detector(client.get("/api/info").json()["run"], device="cpu", progress=False)
    calls: list[str] = []

    def count(module: torch.nn.Module, args: object) -> None:
        if isinstance(module, aekit.Autoencoder):
            calls.append(type(module).__name__)

    hook = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        for method in ("combined", "recon", "ssim", "latent-knn"):
            calls.clear()
            r = client.post("/api/anomaly", files=upload(png(image)), data={"method": method})
            assert r.status_code == 200 and len(calls) == 1, (method, calls)
            # the picture of the two passes it took before, from the one
            kind = "ssim" if method in ("combined", "ssim") else "recon"
            recon, maps = anomaly_maps(det.model, image[None], kind)
            heat = (maps[0] / det.map_scale[kind]).clamp(0, 1).numpy()
            shown = overlay(image.permute(1, 2, 0).float().numpy() / 255.0, heat)
            assert r.json()["reconstruction"] == data_url(recon[0])
            assert r.json()["heatmap"] == data_url(torch.from_numpy(shown).permute(2, 0, 1))
    finally:
        hook.remove()


def test_bad_anomaly_requests(anomaly_client: TestClient, store: aekit.Embeddings) -> None:
    client = anomaly_client
    image = png(store.images([0])[0])
    assert client.post("/api/anomaly").status_code == 400
    both = client.post("/api/anomaly", files=upload(image), data={"index": "1"})
    assert both.status_code == 400 and "either" in both.json()["detail"]
    far = client.post("/api/anomaly", data={"index": str(GALLERY)})
    assert far.status_code == 400 and "out of range" in far.json()["detail"]
    bad = client.post("/api/anomaly", files=upload(image), data={"method": "psychic"})
    assert bad.status_code == 422
    good = client.post("/api/anomaly", files=upload(image))
    assert good.status_code == 200


def test_the_map_is_pca_computed_once_when_the_store_has_none(
    client: TestClient, store: aekit.Embeddings
) -> None:
    body = client.get("/api/map").json()
    want = aekit.map_embeddings(store, "pca", save=False).points
    assert body["source"] == "computed" and body["method"] == "pca"
    assert body["count"] == body["shown"] == GALLERY and body["index"] is None
    got = np.stack([body["x"], body["y"]], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert body["labels"] == store.labels().tolist()
    assert body["classes"] == {str(k): v for k, v in store.label_names().items()}
    shapes = aekit.load_dataset("shapes", "test").classes
    assert body["classes"] == {str(k): shapes[k] for k in np.unique(store.labels())}
    assert not (store.path / "map.npy").exists()  # the page does not write into the store
    assert client.get("/api/map").json() == body


def test_the_map_is_the_one_aekit_map_saved_and_follows_a_new_one(
    tiny_run: Path, store: aekit.Embeddings, tmp_path: Path
) -> None:
    import shutil

    emb = shutil.copytree(store.path, tmp_path / "emb")
    saved = aekit.map_embeddings(emb, "tsne", seed=1).points
    client = TestClient(create_app(tiny_run, emb, device="cpu"))
    body = client.get("/api/map").json()
    assert (body["source"], body["method"], body["fitted_on"]) == ("saved", "tsne", GALLERY)
    np.testing.assert_allclose(body["x"], saved[:, 0], atol=1e-5 * np.abs(saved).max())
    np.testing.assert_allclose(body["y"], saved[:, 1], atol=1e-5 * np.abs(saved).max())
    # aekit map run again while the page is served: the next request gets the new map
    aekit.map_embeddings(emb, "pca")
    assert client.get("/api/map").json()["method"] == "pca"
    # a damaged map (cut short, or not numbers) is no map: PCA is computed, the page works
    for damage in (None, b"\x93NUMPY cut"):
        if damage is None:
            bad = np.load(emb / "map.npy")
            bad[3] = np.nan
            np.save(emb / "map.npy", bad)
        else:
            (emb / "map.npy").write_bytes(damage)
        (emb / "map.json").touch()  # a new stamp: read again
        body = client.get("/api/map").json()
        assert body["source"] == "computed" and np.isfinite(body["x"]).all()


def test_a_large_gallery_maps_a_seeded_sample(
    tiny_run: Path, store: aekit.Embeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aekit.web import gallery

    monkeypatch.setattr(gallery, "MAX_MAP_POINTS", 50)
    client = TestClient(create_app(tiny_run, store.path, device="cpu"))
    body = client.get("/api/map").json()
    assert body["count"] == GALLERY and body["shown"] == len(body["x"]) == 50
    rows = np.asarray(body["index"])
    assert len(set(rows.tolist())) == 50 and (np.diff(rows) > 0).all() and rows[-1] < GALLERY
    assert body["labels"] == store.labels()[rows].tolist()
    full = aekit.map_embeddings(store, "pca", save=False).points
    np.testing.assert_allclose(body["x"], full[rows, 0], atol=1e-5 * np.abs(full).max())


def test_a_gallery_too_small_to_map_says_so(tiny_run: Path, tmp_path: Path) -> None:
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, 2))
    aekit.embed(aekit.load(tiny_run), ds, run=tiny_run).save(tmp_path / "emb")
    r = TestClient(create_app(tiny_run, tmp_path / "emb", device="cpu")).get("/api/map")
    assert r.status_code == 400 and r.json()["detail"] == (
        "the store holds 2 vectors: a map needs at least 3"
    )


@pytest.fixture(scope="module")
def unet_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    folder = tmp_path_factory.mktemp("unet-web")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run = aekit.train(folder / "run", f"folder:{folder}", arch="unet", base_channels=4,
                      patch_size=16, epochs=1, progress=False)  # fmt: skip
    return TestClient(create_app(run, device="cpu"))


def test_info_says_what_size_the_model_takes(client: TestClient, unet_client: TestClient) -> None:
    assert client.get("/api/info").json()["input"] == "32×32 RGB"
    # a unet takes any size: its 16-pixel patches are what it was trained on, not a limit
    unet = unet_client.get("/api/info").json()["input"]
    assert unet == "any size, RGB (trained on 16×16 patches)"
    assert unet_client.get("/api/info").json()["anomaly"] is False  # a photo denoiser
    assert "info.input" in client.get("/static/app.js").text  # the header shows it


@pytest.mark.parametrize("endpoint", ["/api/denoise", "/api/reconstruct"])
@pytest.mark.parametrize(("w", "h"), [(1, 1), (7, 30)])
def test_an_upload_below_the_unets_stride_is_refused_as_the_cli_does(
    unet_client: TestClient, endpoint: str, w: int, h: int
) -> None:
    small = png(np.zeros((3, h, w), np.uint8))
    r = unet_client.post(endpoint, files=upload(small))
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == (f"the upload is {w}x{h} pixels: this model needs images of "
                                  "at least 8x8")  # fmt: skip
    ok = unet_client.post(endpoint, files=upload(png(np.zeros((3, 8, 9), np.uint8))))
    assert ok.status_code == 200, ok.text
