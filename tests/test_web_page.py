"""The page at ``/`` end to end: the real app under uvicorn, driven by Debian's chromium.

``playwright install`` cannot download browsers here, so Playwright launches the system
chromium (``make install`` puts it there with apt-get when it is missing).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("playwright")
import uvicorn
from playwright import sync_api

from aekit.web.server import create_app

CHROMIUM = Path("/usr/bin/chromium")
# headless as root, and quiet: without the networking flags chromium keeps calling home
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip
GALLERY = 60
K = 7
# Every wait is bounded, and returns as soon as what it waits for holds, so the bound costs a
# passing run nothing: the Map view's first answer took 1.3 s here, 7 s beside two busy
# processes on the 2 cores (expect's own default of 5 s failed there).
WAIT_MS = 30_000
sync_api.expect.set_options(timeout=WAIT_MS)  # expect does not follow page.set_default_timeout

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make install)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gallery(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, GALLERY))
    emb = tmp_path_factory.mktemp("page") / "emb"
    aekit.embed(aekit.load(tiny_run), ds, run=tiny_run).save(emb)
    return emb


@pytest.fixture(scope="module")
def url(tiny_run: Path, gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # a copy: the page's anomaly panel keeps the run's scores in it (tiny_run is read-only)
    run = shutil.copytree(tiny_run, tmp_path_factory.mktemp("page-run") / "run")
    yield from serve(create_app(run, gallery, device="cpu"))


@pytest.fixture(scope="module")
def vae_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small vae run and its gallery, served."""
    folder = tmp_path_factory.mktemp("vae-page")
    run = aekit.train(folder / "run", "shapes", arch="vae", epochs=1, limit=256, base_channels=8,
                      latent_dim=16, progress=False)  # fmt: skip
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, GALLERY))
    aekit.embed(aekit.load(run), ds, run=run).save(folder / "emb")
    yield from serve(create_app(run, folder / "emb", device="cpu"))


def serve(app: object) -> Iterator[str]:
    """The app served by uvicorn in a background thread; stopped at the end."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture()
def page(url: str) -> Iterator[sync_api.Page]:
    yield from browse(url)


@pytest.fixture()
def vae_page(vae_url: str) -> Iterator[sync_api.Page]:
    yield from browse(vae_url)


def browse(url: str) -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=WAIT_MS)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 1000})
            pg.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(url)
            yield pg
            assert errors == [], errors
        finally:
            browser.close()


def png(u8: np.ndarray) -> bytes:
    """uint8 (C, H, W) -> PNG bytes."""
    a = u8[0] if u8.shape[0] == 1 else u8.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG")
    return buf.getvalue()


def result_indices(page: sync_api.Page, list_id: str) -> list[int]:
    items = page.locator(f"#{list_id} [data-testid=result]")
    return [int(i) for i in items.evaluate_all("els => els.map(e => e.dataset.index)")]


def test_upload_search_click_and_page(page: sync_api.Page, tmp_path: Path) -> None:
    expect = sync_api.expect
    expect(page.locator("#info")).to_contain_text(f"gallery {GALLERY}")
    expect(page.locator("#gallery [data-testid=thumb]")).to_have_count(24)
    expect(page.locator("#gallery-page")).to_have_text(f"1–24 of {GALLERY}")

    # upload: reconstruction, denoising with PSNR, and k nearest and k farthest
    query = tmp_path / "query.png"
    query.write_bytes(png(aekit.load_dataset("shapes", "test").images[GALLERY + 1].numpy()))
    page.set_input_files("#file-input", str(query))
    expect(page.locator("#query-caption")).to_have_text("upload query.png")
    data_url = re.compile(r"^data:image/png;base64,")
    for view in ["#img-original", "#img-reconstruction", "#img-noisy", "#img-denoised"]:
        expect(page.locator(view)).to_have_attribute("src", data_url)
    for psnr in ["#psnr-reconstruction", "#psnr-noisy", "#psnr-denoised"]:
        expect(page.locator(psnr)).to_have_text(re.compile(r"^PSNR -?\d+\.\d\d dB$"))
    expect(page.locator("#nearest [data-testid=result]")).to_have_count(K)
    expect(page.locator("#farthest [data-testid=result]")).to_have_count(K)
    expect(page.locator("#noise-level")).to_have_value("25")  # sigma, pixel units
    expect(page.locator("#noise-value")).to_have_text("25")
    page.select_option("#noise-kind", "mask")  # a fraction of pixels: its own scale
    expect(page.locator("#noise-level")).to_have_value("0.2")
    expect(page.locator("#noise-value")).to_have_text("0.20")
    expect(page.locator("#psnr-noisy")).to_have_text(re.compile(r"^PSNR -?\d+\.\d\d dB$"))
    page.select_option("#noise-kind", "gaussian")
    expect(page.locator("#noise-level")).to_have_value("25")
    near = result_indices(page, "nearest")
    assert len(set(near)) == K and set(near).isdisjoint(result_indices(page, "farthest"))
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)

    # click a neighbour: it becomes the query, and its own neighbours leave it out
    clicked = near[0]
    page.locator(f"#nearest [data-index='{clicked}']").click()
    expect(page.locator("#query-caption")).to_have_text(f"gallery #{clicked}")
    expect(page.locator(f"#nearest [data-index='{clicked}']")).to_have_count(0)
    expect(page.locator("#nearest [data-testid=result]")).to_have_count(K)
    assert result_indices(page, "nearest") != near

    # a conv run has no prior: no Generate panel; its codes decode: interpolate to a neighbour
    expect(page.locator("#generate-panel")).to_be_hidden()
    page.locator("#nearest [data-testid=interpolate-button]").first.click()
    expect(page.locator("#interpolation [data-testid=strip-image]")).to_have_count(10)
    expect(page.locator("#interpolation-caption")).to_contain_text(f"gallery #{clicked} → ")
    expect(page.locator("#query-caption")).to_have_text(f"gallery #{clicked}")  # no new search

    # page the gallery forward and back
    page.click("#gallery-next")
    expect(page.locator("#gallery-page")).to_have_text(f"25–48 of {GALLERY}")
    expect(page.locator("#gallery [data-testid=thumb]").first).to_have_attribute("data-index", "24")
    page.click("#gallery-next")
    expect(page.locator("#gallery-page")).to_have_text(f"49–{GALLERY} of {GALLERY}")
    expect(page.locator("#gallery-next")).to_be_disabled()
    page.click("#gallery-prev")
    expect(page.locator("#gallery-page")).to_have_text(f"25–48 of {GALLERY}")

    # drag and drop a file onto the drop zone: a real drop event carrying a File
    dropped = base64.b64encode(query.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
            return dt;
        }""",
        dropped,
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.locator("#query-caption")).to_have_text("upload dropped.png")
    # the same image as the first upload: once its search answers, the same neighbours
    expect(page.locator("#nearest [data-testid=result]").first).to_have_attribute(
        "data-index", str(near[0])
    )
    assert result_indices(page, "nearest") == near

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("AEKIT_SCREENSHOT"):  # a copy to look at by eye
        shutil.copy(shot, os.environ["AEKIT_SCREENSHOT"])


def test_the_anomaly_panel_scores_the_query(page: sync_api.Page) -> None:
    expect = sync_api.expect
    expect(page.locator("#gallery [data-testid=thumb]")).to_have_count(24)
    page.locator("#gallery [data-testid=thumb]").nth(3).click()
    expect(page.locator("#anomaly-panel")).to_be_visible()
    verdict = page.locator("#anomaly-verdict")
    expect(verdict).to_have_text(re.compile(r"^(normal|anomalous)$"))
    score = page.locator("#anomaly-score")
    pattern = r"^score (-?[\d.e+-]+) · threshold (-?[\d.e+-]+) \(5\.0% of held-out normal"
    expect(score).to_have_text(re.compile(pattern + r".* · combined$"))
    expect(page.locator("#anomaly-heatmap")).to_have_attribute(
        "src", re.compile(r"^data:image/png;base64,")
    )
    value, threshold = (float(x) for x in re.match(pattern, score.inner_text()).groups())
    assert verdict.inner_text() == ("anomalous" if value > threshold else "normal")
    page.select_option("#anomaly-method", "recon")
    expect(score).to_have_text(re.compile(r" · recon$"))
    recon = float(re.match(pattern, score.inner_text()).group(1))
    assert recon >= 0 and recon != value  # a squared error, not the combined z-scores


def test_a_vae_run_generates_and_interpolates(vae_page: sync_api.Page, tmp_path: Path) -> None:
    expect = sync_api.expect
    page = vae_page
    expect(page.locator("#info")).to_contain_text("vae")
    expect(page.locator("#generate-panel")).to_be_visible()
    page.click("#generate")
    samples = page.locator("#samples [data-testid=strip-image] img")
    expect(samples).to_have_count(8)
    first = samples.evaluate_all("els => els.map(e => e.src)")
    assert len(set(first)) == 8 and all(u.startswith("data:image/png;base64,") for u in first)
    page.fill("#gen-seed", "1")
    page.click("#generate")
    expect(samples.first).not_to_have_attribute("src", first[0])  # another seed, other images
    page.fill("#gen-seed", "0")
    page.click("#generate")
    expect(samples.first).to_have_attribute("src", first[0])  # the same seed, the same images

    page.locator("#gallery [data-testid=thumb]").nth(3).click()
    expect(page.locator("#query-caption")).to_have_text("gallery #3")
    expect(page.locator("#nearest [data-testid=result]")).to_have_count(K)
    target = result_indices(page, "nearest")[2]
    page.locator("#nearest [data-testid=interpolate-button]").nth(2).click()
    strip = page.locator("#interpolation [data-testid=strip-image]")
    expect(strip).to_have_count(10)  # the query, 8 decoded points, the neighbour
    expect(page.locator("#interpolation-caption")).to_have_text(f"gallery #3 → gallery #{target}")
    expect(strip.last).to_contain_text(f"#{target}")
    expect(strip.nth(1)).to_contain_text("0.00")
    shot = tmp_path / "vae.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("AEKIT_SCREENSHOT_VAE"):  # a copy to look at by eye
        shutil.copy(shot, os.environ["AEKIT_SCREENSHOT_VAE"])


@pytest.fixture(scope="module")
def unet_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small photo denoiser (unet, trained on patches of photos of two sizes), no gallery."""
    folder = tmp_path_factory.mktemp("unet-page")
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(120, 80), (96, 96), (80, 120)]):
        small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.BICUBIC).save(folder / f"p{i}.png")
    run = aekit.train(folder / "run", f"folder:{folder}", arch="unet", base_channels=8,
                      noise="gaussian:25", patch_size=32, epochs=1, progress=False)  # fmt: skip
    yield from serve(create_app(run, device="cpu"))


def test_a_photo_is_denoised_at_full_size_with_a_before_after_slider(
    unet_url: str, tmp_path: Path
) -> None:
    expect = sync_api.expect
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    photo = tmp_path / "photo.png"
    Image.fromarray(small).resize((200, 150), Image.BICUBIC).save(photo)
    for page in browse(unet_url):
        expect(page.locator("#info")).to_contain_text("unet, any size, RGB (trained on 32×32")
        expect(page.locator("#compare-panel")).to_be_hidden()
        page.set_input_files("#file-input", str(photo))
        expect(page.locator("#compare-panel")).to_be_visible()
        expect(page.locator("#compare-size")).to_have_text("200×150")  # its own size
        expect(page.locator("#compare-psnr")).to_contain_text(
            re.compile(r"Noisy PSNR \d+\.\d\d dB")
        )
        before = page.locator("#cmp-before")
        expect(before).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
        expect(before).to_have_css("clip-path", "inset(0px 50% 0px 0px)")
        page.locator("#cmp-slider").fill("20")  # move the line: less of the noisy photo shows
        expect(before).to_have_css("clip-path", "inset(0px 80% 0px 0px)")
        # the download is the denoised photo, at the upload's size
        with page.expect_download() as info:
            page.click("#download")
        saved = tmp_path / "saved.png"
        info.value.save_as(saved)
        with Image.open(saved) as img:
            assert img.size == (200, 150)
        # the upload taken as the noisy photo: denoised as it is, no PSNR without a clean copy
        page.select_option("#noise-kind", "none")
        expect(page.locator("#compare-psnr")).to_contain_text("no PSNR")
        expect(page.locator("#noise-level")).to_be_disabled()
        expect(page.locator("#psnr-noisy")).to_have_text("")
        shot = tmp_path / "compare.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("AEKIT_SCREENSHOT_UNET"):  # a copy to look at by eye
            shutil.copy(shot, os.environ["AEKIT_SCREENSHOT_UNET"])


def test_the_map_view_hovers_zooms_pans_and_searches_from_a_point(
    page: sync_api.Page, gallery: Path, tmp_path: Path
) -> None:
    expect = sync_api.expect
    store = aekit.Embeddings.load(gallery)
    expect(page.locator("#gallery [data-testid=thumb]")).to_have_count(24)
    expect(page.locator("#map-view")).to_be_hidden()
    page.click("#show-map")
    expect(page.locator("#grid-view")).to_be_hidden()
    expect(page.locator("#map-caption")).to_have_text(
        f"{GALLERY} items, PCA computed by the page (aekit map EMB --method umap saves a map "
        "that shows clusters better)."
    )
    # the legend names the gallery's classes, in label order
    names = store.label_names()
    expect(page.locator("#map-legend [data-testid=legend-entry]")).to_have_text(
        [names[k] for k in sorted(names)]
    )
    # the canvas shows every label in its legend's colour: the pixels of dots (alpha 0.85 or
    # more) within 8 levels of a swatch, counted per swatch. Chromium's un-premultiplied pixels
    # were within 3 of their colour; tab10's colours lie 52 or more apart. (Counting bright
    # colours instead missed label 7's grey and passed on anti-aliased edges' colours.)
    counts = page.evaluate(
        """() => {
            const c = document.getElementById("map");
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            const want = [...document.querySelectorAll("#map-legend .swatch")].map(
                (s) => getComputedStyle(s).backgroundColor.match(/\\d+/g).map(Number));
            const counts = want.map(() => 0);
            for (let i = 0; i < d.length; i += 4) {
                if (d[i + 3] < 0.85 * 255 - 1) continue;
                want.forEach(([r, g, b], j) => {
                    const far = Math.max(Math.abs(d[i] - r), Math.abs(d[i + 1] - g),
                        Math.abs(d[i + 2] - b));
                    if (far <= 8) counts[j]++;
                });
            }
            return counts;
        }"""
    )
    # each label has 6 or more of the 60 points, a dot of radius 3 about 28 pixels
    assert len(counts) == len(names) and min(counts) >= 10, counts

    # the most isolated item, so that the mouse can only mean it
    screen = page.evaluate(f"() => [...Array({GALLERY}).keys()].map(i => aekitMap.screenOf(i))")
    xy = np.array([[p["x"], p["y"]] for p in screen])
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(GALLERY) * 1e9
    item = int(gaps.min(axis=1).argmax())
    assert gaps[item].min() > 12
    box = page.locator("#map").bounding_box()
    x, y = box["x"] + xy[item, 0], box["y"] + xy[item, 1]

    # hover: the item's thumbnail and class
    page.mouse.move(x + 2, y - 2)
    tip = page.locator("#map-tip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-index", str(item))
    expect(tip).to_have_text(f"#{item} · {store.items[item]['class']}")
    expect(tip.locator("img")).to_have_attribute("src", f"/api/gallery/{item}/image")
    assert tip.locator("img").evaluate("i => i.complete && i.naturalWidth") > 0

    # zoom with the wheel: what is under the mouse stays, the rest moves away from it. Chromium
    # gives a wheel event whole CSS pixels (clientX/Y truncated: a point 0.92 px right of the
    # mouse's whole pixel moved 0.76 px), so the mouse goes to a whole pixel of the page
    other = int(gaps[item].argmin())
    mx, my = round(x), round(y)
    at = np.array([mx - box["x"], my - box["y"]])  # the mouse on the canvas (box: fractions)
    page.mouse.move(mx, my)
    page.mouse.wheel(0, -300)
    page.wait_for_function("() => aekitMap.view.s > 1.5 * aekitMap.fitScale")
    zoom = page.evaluate("() => aekitMap.view.s / aekitMap.fitScale")
    assert 1.7 < zoom < 1.95  # exp(0.6) = 1.82 for a wheel of 300
    after = page.evaluate(f"() => [aekitMap.screenOf({item}), aekitMap.screenOf({other})]")
    after = np.array([[p["x"], p["y"]] for p in after])
    # float64 arithmetic on ~1000 px: 1e-13 px of rounding; 1e-6 px is far below a visible slip
    np.testing.assert_allclose(after, at + (xy[[item, other]] - at) * zoom, rtol=0, atol=1e-6)

    # drag from the point: the map pans with the mouse (whole pixels again) and nothing is
    # searched. Towards the centre: where the most isolated point lies depends on the weights
    # the CPU trained, and one 40 px from an edge was dragged off the canvas.
    dx = 60 if at[0] < box["width"] / 2 else -60
    dy = 40 if at[1] < box["height"] / 2 else -40
    page.mouse.down()
    page.mouse.move(mx + dx, my + dy, steps=6)
    page.mouse.up()
    moved = page.evaluate(f"() => aekitMap.screenOf({item})")
    np.testing.assert_allclose([moved["x"], moved["y"]], after[0] + [dx, dy], rtol=0, atol=1e-6)
    expect(page.locator("#views")).to_be_hidden()

    # click the point: it becomes the query, its nearest show in the results and on the map
    page.mouse.click(box["x"] + moved["x"], box["y"] + moved["y"])
    expect(page.locator("#query-caption")).to_have_text(f"gallery #{item}")
    expect(page.locator("#nearest [data-testid=result]")).to_have_count(K)
    want = [int(i) for i in store.search(store.vectors[item], K, exclude=np.array([item]))[1][0]]
    assert result_indices(page, "nearest") == want
    page.wait_for_function(f"() => aekitMap.nearest.length === {K}")
    assert page.evaluate("() => [aekitMap.query, aekitMap.nearest]") == [item, want]

    # Fit: back to the first view; Grid: back to the thumbnails
    page.click("#map-fit")
    back = page.evaluate(f"() => aekitMap.screenOf({item})")
    assert abs(back["x"] - xy[item, 0]) < 0.5 and abs(back["y"] - xy[item, 1]) < 0.5
    shot = tmp_path / "map.png"
    page.locator("#gallery-panel").screenshot(path=str(shot))
    if os.environ.get("AEKIT_SCREENSHOT_MAP"):  # a copy to look at by eye
        shutil.copy(shot, os.environ["AEKIT_SCREENSHOT_MAP"])
    page.click("#show-grid")
    expect(page.locator("#map-view")).to_be_hidden()
    expect(page.locator("#gallery [data-testid=thumb]")).to_have_count(24)


def test_a_gallery_of_one_label_is_mapped_in_one_colour_without_a_legend(
    tiny_run: Path, tmp_path: Path
) -> None:
    expect = sync_api.expect
    ds = aekit.load_dataset("shapes", "test")
    (tmp_path / "one" / "square").mkdir(parents=True)  # a folder of one class
    for j, i in enumerate(np.flatnonzero(ds.labels.numpy() == 1)[:12]):
        (tmp_path / "one" / "square" / f"{j}.png").write_bytes(png(ds.images[i].numpy()))
    one = aekit.load_dataset(f"folder:{tmp_path / 'one'}", "train")
    assert one.classes == ["square"] and len(one) == 12
    aekit.embed(aekit.load(tiny_run), one, run=tiny_run).save(tmp_path / "emb")
    for url in serve(create_app(tiny_run, tmp_path / "emb", device="cpu")):
        for page in browse(url):
            page.click("#show-map")
            expect(page.locator("#map-caption")).to_contain_text("12 items, PCA")
            page.wait_for_function("() => window.aekitMap")
            expect(page.locator("#map-legend")).to_be_hidden()
            hues = page.evaluate(
                """() => {
                    const c = document.getElementById("map");
                    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                    let blue = 0, other = 0;
                    for (let i = 0; i < d.length; i += 4) {
                        const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
                        if (a < 200 || Math.max(r, g, b) - Math.min(r, g, b) < 60) continue;
                        if (b > r + 60 && b > g) blue++; else other++;
                    }
                    return [blue, other];
                }"""
            )
            assert hues[0] > 12 * 10 and hues[1] == 0  # every dot in the one plain colour
