"""Load check of ``aekit serve`` (a benchmark, not a test).

Starts ``aekit serve RUN --gallery EMB`` on 127.0.0.1 in a subprocess, then N client threads
POST ``/api/search`` (by a random gallery index, k=7) for a fixed time. Reports requests/s,
p50/p99 latency and the error count, and writes bench/results/web_load.json.

    python bench/web_load.py --run RUN --gallery EMB [--clients 8] [--seconds 30]

Without --run/--gallery it first trains a small shapes run and embeds its test split.
Only loopback traffic; the request loop is bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch

import aekit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_fixture(folder: Path) -> tuple[Path, Path]:
    """A small shapes run and the embedding store of its test split."""
    run = aekit.train(folder / "run", data="shapes", epochs=1, limit=2000, base_channels=16,
                      latent_dim=64, progress=False)  # fmt: skip
    store = aekit.embed(aekit.load(run), aekit.load_dataset("shapes", "test"), run=run)
    return run, store.save(folder / "emb")


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/api/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    sys.exit("the server did not come up in time")


def client(
    base: str, size: int, until: float, latencies: list[float], errors: list[str], seed: int
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=30) as http:
        while time.time() < until:
            t0 = time.perf_counter()
            try:
                r = http.post("/api/search", data={"index": rng.randrange(size), "k": 7})
                ok = r.status_code == 200 and len(r.json()["results"]) == 7
            except httpx.HTTPError as e:
                ok, r = False, e
            latencies.append(time.perf_counter() - t0)
            if not ok:
                errors.append(str(getattr(r, "status_code", r)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run")
    ap.add_argument("--gallery")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", default="bench/results/web_load.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aekit-load-"))
    run, gallery = ((Path(args.run), Path(args.gallery)) if args.run and args.gallery
                    else make_fixture(tmp))  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aekit",
            "serve",
            str(run),
            "--gallery",
            str(gallery),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_ready(base, proc)
        size = httpx.get(f"{base}/api/info").json()["gallery_size"]
        latencies: list[float] = []
        errors: list[str] = []
        until = time.time() + args.seconds
        threads = [threading.Thread(target=client, args=(base, size, until, latencies, errors, i))
                   for i in range(args.clients)]  # fmt: skip
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat = np.array(latencies) * 1000
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "cores": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "clients": args.clients, "seconds": round(elapsed, 1),
        "gallery_size": size, "requests": len(latencies), "errors": len(errors),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "command": " ".join(["python", *sys.argv]),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if errors:
        sys.exit(f"{len(errors)} errors, e.g. {errors[:3]}")


if __name__ == "__main__":
    main()
