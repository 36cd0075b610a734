"""``aekit map`` and the page's Map view at a million points.

Usage: ``python bench/map_scale.py EMB --out-store DIR [--count 1000000] [--methods pca,umap]
[--jitter 0.4]``

No million-image dataset is at hand, so the store of a million is made from a real one (e.g. the
10,000 MNIST test codes of "Are the neighbours any good?" in docs/guides/search.md): its vectors
tiled to ``--count`` rows, each copy moved by Gaussian noise of ``--jitter`` times each dimension's
spread, its items (labels, pictures) repeated. The default 0.4 moves a copy about as far as the
nearest other image of the source lies (MNIST conv codes: 0.4 × 19.8 = 7.9 against a median
nearest-neighbour distance of 7.8), so that copies mix with their neighbours instead of forming
10,000 tight islands of 100. Then, timed (wall clock, one run each):

- ``aekit map DIR --method M`` (the command, as a user runs it: fit on 50,000 drawn at random,
  the rest placed by the fitted model, the 10-NN agreement measured, the picture drawn) for
  each method; the pictures are kept as ``DIR/map-M.png`` to look at;
- ``GET /api/map`` of ``aekit serve`` (TestClient, the store's saved map): seconds and bytes of
  the answer (a 100,000-point sample);
- in chromium (when Playwright and ``/usr/bin/chromium`` are there): the page's first draw of the
  100,000 points and one hover hit-test, in milliseconds (median of 5).

Writes ``bench/results/map_scale.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import aekit


def tiled_store(source: Path, out: Path, count: int, jitter: float, seed: int = 0) -> None:
    """``count`` rows: ``source``'s vectors repeated, each copy jittered; items repeated."""
    emb = aekit.Embeddings.load(source)
    base = np.asarray(emb.vectors, dtype=np.float32)
    spread = base.std(axis=0, keepdims=True)
    rng = np.random.default_rng(seed)
    vectors = np.empty((count, base.shape[1]), dtype=np.float32)
    for s in range(0, count, len(base)):
        n = min(len(base), count - s)
        vectors[s : s + n] = base[:n] + jitter * spread * rng.standard_normal(
            (n, base.shape[1]), dtype=np.float32
        )
    items = [{**emb.items[i % len(base)], "index": i} for i in range(count)]
    manifest = {k: v for k, v in emb.manifest.items() if k not in ("files", "id")}
    manifest["count"] = count
    # the parts add up to the count: the source's parts once per copy (the last cut short)
    parts, left = [], count
    while left > 0:
        for part in emb.manifest["parts"]:
            parts.append({**part, "count": min(part["count"], left)})
            left -= parts[-1]["count"]
            if left == 0:
                break
    manifest["parts"] = parts
    aekit.Embeddings(vectors, items, manifest).save(out)


def timed_command(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return time.perf_counter() - t, done.stdout.strip()


def page_times(run: str, store: Path) -> dict[str, Any] | None:
    try:
        import uvicorn
        from playwright import sync_api
    except ImportError:
        return None
    if not Path("/usr/bin/chromium").exists():
        return None
    from aekit.web.server import create_app

    app = create_app(run, store, device="cpu")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8766, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    args = ["--headless", "--no-sandbox", "--disable-gpu"]
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto("http://127.0.0.1:8766")
            t = time.perf_counter()
            page.click("#show-map")
            page.wait_for_function("() => window.aekitMap")
            shown = time.perf_counter() - t
            draw = page.evaluate("""() => {
                const ms = [];
                for (let i = 0; i < 5; i++) {
                    const t = performance.now(); aekitMap.draw(); ms.push(performance.now() - t);
                }
                ms.sort((a, b) => a - b); return ms[2];
            }""")  # fmt: skip
            hit = page.evaluate("""() => {
                const ms = [];
                for (let i = 0; i < 5; i++) {
                    const t = performance.now(); aekitMap.hit(300, 200);
                    ms.push(performance.now() - t);
                }
                ms.sort((a, b) => a - b); return ms[2];
            }""")  # fmt: skip
            page.locator("#gallery-panel").screenshot(path=str(store / "page-map.png"))
            browser.close()
    finally:
        server.should_exit = True
    return {"click_to_map_s": shown, "draw_ms": draw, "hover_hit_ms": hit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--out-store", required=True)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--methods", default="pca,umap")
    ap.add_argument("--jitter", type=float, default=0.4)
    ap.add_argument("--out", default="bench/results/map_scale.json")
    args = ap.parse_args()
    out_store = Path(args.out_store)
    t = time.perf_counter()
    tiled_store(Path(args.store), out_store, args.count, args.jitter)
    result: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": sys.version},
        "source": args.store, "count": args.count, "jitter": args.jitter,
        "make_store_s": time.perf_counter() - t, "methods": {},
    }  # fmt: skip
    for method in args.methods.split(","):
        picture = out_store / f"map-{method}.png"
        seconds, printed = timed_command(
            ["aekit", "map", str(out_store), "--method", method, "--out", str(picture), "--json"]
        )
        result["methods"][method] = {"seconds": seconds, **json.loads(printed)}
        print(method, f"{seconds:.1f} s", printed, flush=True)

    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    run = aekit.Embeddings.load(out_store).manifest["run"]
    t = time.perf_counter()
    client = TestClient(create_app(run, out_store, device="cpu"))
    started = time.perf_counter() - t
    t = time.perf_counter()
    answer = client.get("/api/map")
    result["api_map"] = {"serve_start_s": started, "seconds": time.perf_counter() - t,
                         "bytes": len(answer.content), "shown": answer.json()["shown"],
                         "method": answer.json()["method"]}  # fmt: skip
    print("api/map", result["api_map"], flush=True)
    result["page"] = page_times(run, out_store)
    print("page", result["page"], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
