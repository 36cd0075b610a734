"""Search speed, memory and recall: exact (ours) vs FAISS flat, IVF and HNSW, on random data.

Usage: ``python bench/search.py [--sizes 100k,1m] [--queries 1000] [--k 10] [--repeats 3]``

For each store size, random standard-normal 256-d float32 vectors are written to a temp folder
and every method runs in a fresh subprocess, which loads the store into RAM, then builds its
index (timed) and searches all queries ``--repeats`` times after one warm-up (median time ->
queries/s). Peak memory is that subprocess's peak RSS (VmHWM, which, unlike tracemalloc, sees
numpy/faiss/torch C allocations; psutil is not installed) minus its RSS just before the build,
with the peak mark reset there: index storage plus search working memory, not the store.
Recall@k is against exact search. 10M vectors run by default only when a GPU is present.
Writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aekit.search.knn import build_index, exact_search, index_search, recall_at_k

METHODS = ("exact", "flat", "ivf", "hnsw")
DIM = 256
RESULTS = Path(__file__).resolve().parent / "results" / "search.json"


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``, ``VmHWM``: the peak RSS), in MiB."""
    line = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":")
    )
    return int(line.split()[1]) / 1024


def start_peak() -> float:
    """Reset the peak-RSS mark to the current RSS, so that imports and loading the store do not
    count; returns that RSS. Without the reset, getrusage's ru_maxrss would keep the higher
    transient peak of the imports and understate what the build and search add."""
    Path("/proc/self/clear_refs").write_text("5")  # 5: reset VmHWM (Linux >= 4.0)
    return status_mb("VmRSS")


def write_data(folder: Path, count: int, queries: int, seed: int = 0) -> None:
    """base.npy (count, DIM) and queries.npy, written in slices so RAM holds one slice."""
    rng = np.random.default_rng(seed)
    base = np.lib.format.open_memmap(folder / "base.npy", "w+", np.float32, (count, DIM))
    for start in range(0, count, 262_144):
        stop = min(start + 262_144, count)
        base[start:stop] = rng.standard_normal((stop - start, DIM), dtype=np.float32)
    base.flush()
    del base
    np.save(folder / "queries.npy", rng.standard_normal((queries, DIM), dtype=np.float32))


def worker(args: argparse.Namespace) -> None:
    """One method on one store, in this fresh process; prints one JSON line per setting."""
    folder = Path(args.data)
    base, queries = np.load(folder / "base.npy"), np.load(folder / "queries.npy")
    truth = None if args.worker == "exact" else np.load(folder / "exact.npy")
    before = start_peak()
    start = time.perf_counter()
    index = None  # exact search has nothing to build
    if args.worker == "hnsw":
        m, ef = args.hnsw_m[0], args.hnsw_ef_construction[0]
        index = build_index(base, "hnsw", m=m, ef_construction=ef)
    elif args.worker != "exact":
        index = build_index(base, args.worker, nlist=args.nlist)
    build_s = None if index is None else time.perf_counter() - start

    settings: list[dict] = [{}]
    if args.worker == "ivf":
        settings = [{"nprobe": p} for p in args.nprobe]
    elif args.worker == "hnsw":
        settings = [{"ef_search": e} for e in args.ef_search]

    def search(setting: dict) -> tuple[np.ndarray, np.ndarray]:
        if index is None:
            return exact_search(queries, base, args.k)
        return index_search(index, queries, args.k, **setting)

    for setting in settings:
        _, idx = search(setting)  # warm-up; also the result recall is measured on
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            search(setting)
            times.append(time.perf_counter() - start)
        if truth is None:
            np.save(folder / "exact.npy", idx)
        params = dict(setting)
        if args.worker == "ivf":
            params.update(nprobe=min(setting["nprobe"], index.nlist), nlist=index.nlist)
        if args.worker == "hnsw":
            params.update(M=args.hnsw_m[0], efConstruction=args.hnsw_ef_construction[0])
        row = {
            "method": args.worker,
            "size": len(base),
            "params": params,
            "build_s": build_s,
            "queries_per_s": len(queries) / statistics.median(times),
            "recall": 1.0 if truth is None else recall_at_k(idx, truth),
            "peak_rss_delta_mb": status_mb("VmHWM") - before,
        }
        print(json.dumps(row), flush=True)


def run_method(method: str, folder: Path, args: argparse.Namespace, nth: int) -> list[dict]:
    """Run ``method`` on the ``nth`` store size in a fresh interpreter; returns its JSON rows."""
    cmd = [sys.executable, __file__, "--worker", method, "--data", str(folder)]
    cmd += ["--k", str(args.k), "--repeats", str(args.repeats)]
    cmd += ["--nprobe", ",".join(map(str, args.nprobe))]
    cmd += ["--ef-search", ",".join(map(str, args.ef_search))]
    m, ef = args.hnsw_m, args.hnsw_ef_construction  # one value per size; the last one repeats
    cmd += ["--hnsw-m", str(m[min(nth, len(m) - 1)])]
    cmd += ["--hnsw-ef-construction", str(ef[min(nth, len(ef) - 1)])]
    if args.nlist:
        cmd += ["--nlist", str(args.nlist)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def machine() -> dict:
    """CPU model, cores, RAM and library versions, for the report."""
    import faiss

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo if "model name" in x), "unknown")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next(int(x.split()[1]) for x in meminfo if x.startswith("MemTotal"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def table(rows: list[dict]) -> str:
    """The results as a markdown table."""
    lines = [
        "| N | method | params | build (s) | queries/s | recall@10 | peak RSS Δ (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        build = "-" if r["build_s"] is None else f"{r['build_s']:.1f}"
        lines.append(
            f"| {r['size']:,} | {r['method']} | {params} | {build} | {r['queries_per_s']:,.0f} "
            f"| {r['recall']:.3f} | {r['peak_rss_delta_mb']:,.0f} |"
        )
    return "\n".join(lines)


def count_of(size: str) -> int:
    """``100k`` -> 100000, ``1m`` -> 1000000, ``5000`` -> 5000."""
    scale = {"k": 1_000, "m": 1_000_000}.get(size[-1].lower(), 1)
    return int(float(size.rstrip("kKmM")) * scale)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_sizes = "100k,1m" + (",10m" if torch.cuda.is_available() else "")
    parser.add_argument("--sizes", default=default_sizes, help="store sizes, e.g. 100k,1m,10m")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default: ~4√N)")
    parser.add_argument("--nprobe", type=ints, default=[16, 64, 256])
    parser.add_argument("--ef-search", type=ints, default=[64, 256])
    per_size = "one value, or one per size (comma-separated)"
    parser.add_argument("--hnsw-m", type=ints, default=[32], help=per_size)
    parser.add_argument("--hnsw-ef-construction", type=ints, default=[200], help=per_size)
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    methods = [m for m in METHODS if m in args.methods.split(",")]  # exact first: the truth
    rows: list[dict] = []
    for nth, size in enumerate(args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="aekit-bench-") as tmp:
            write_data(Path(tmp), count_of(size), args.queries)
            for method in ["exact", *[m for m in methods if m != "exact"]]:
                start = time.perf_counter()
                new = run_method(method, Path(tmp), args, nth)
                if method in methods:
                    rows += new
                print(f"{size} {method}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    command = "python bench/search.py " + " ".join(sys.argv[1:])
    report = {"machine": machine(), "command": command.strip(), "rows": rows}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["machine"]))
    print(table(rows))


if __name__ == "__main__":
    main()
