"""Data-parallel training and embedding under torchrun: 2 real CPU processes talking gloo.

The runs use float32 (``--no-amp``) so they compare the same on CPUs with and without bf16.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.training.distributed import Group
from aekit.training.runs import load_checkpoint, read_metrics
from aekit.training.training_data import TrainingData
from formats import write_npz
from test_docs_examples import commands, shrink

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
SMALL = ["--data", "shapes", "--limit", "400", "--base-channels", "8", "--latent-dim", "16",
         "--no-amp", "--device", "cpu"]  # fmt: skip


def torchrun(args: list[str], procs: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AEKIT_DIST_TIMEOUT": "60"}
    return subprocess.run(
        [*TORCHRUN, "--nproc_per_node", str(procs), "-m", "aekit", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def aekit_cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "aekit", *args], capture_output=True, text=True,
                          timeout=240, env=env)  # fmt: skip


# a traceback through aekit's code (torchrun prints one of its own when a process fails)
OUR_TRACEBACK = re.compile(r'File ".*/aekit/')


def aekit_lines(stderr: str) -> list[str]:
    """Our own lines on stderr (torchrun adds its log lines and failure report)."""
    return [line for line in stderr.splitlines() if re.match(r"aekit [a-z-]+: ", line)]


# --- how each rank takes its part (no processes needed) ----------------------------------


@pytest.mark.parametrize(("n", "world", "bs"), [(25, 3, 4), (24, 2, 4), (7, 2, 8), (5, 4, 1)])
def test_ranks_share_each_epoch_without_overlap(n: int, world: int, bs: int) -> None:
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 2, 2)
    data = TrainingData(held=None, images=images.contiguous())  # type: ignore[arg-type]
    parts = []
    for rank in range(world):
        group = Group(rank, world)
        gen = torch.Generator().manual_seed(5)  # every rank draws the same order
        batches = list(data.batches(bs, gen, group))
        assert len(batches) == data.steps(bs, group)  # the same number of steps on every rank
        assert all(1 <= len(b) <= bs for b in batches)
        parts.append([b[:, 0, 0, 0].tolist() for b in batches])
    steps = len(parts[0])
    assert all(len(p) == steps for p in parts)
    seen = [i for p in parts for batch in p for i in batch]
    assert len(seen) == len(set(seen))  # no image twice in an epoch
    per_step = bs * world
    assert len(seen) == n - (n % per_step if n % per_step < world else 0)
    # one process with the global batch sees the same images in the same steps
    whole = list(TrainingData(held=None, images=images.contiguous())  # type: ignore[arg-type]
                 .batches(per_step, torch.Generator().manual_seed(5)))  # fmt: skip
    for s in range(steps):
        together = sorted(i for p in parts for i in p[s])
        assert together == sorted(whole[s][:, 0, 0, 0].tolist())


def test_shard_covers_everything_once() -> None:
    for n in (0, 1, 5, 10, 11):
        for world in (1, 2, 3):
            got = [i for r in range(world) for i in range(n)[Group(r, world).shard(n)]]
            assert got == list(range(n))


# --- real processes -----------------------------------------------------------------------


def test_two_ranks_train_like_one_process_with_the_same_total_batch(tmp_path: Path) -> None:
    two = torchrun(["train", *SMALL, "--epochs", "2", "--batch-size", "16", "--out",
                    str(tmp_path / "two")])  # fmt: skip
    assert two.returncode == 0, two.stderr
    # the summary once, from rank 0
    assert two.stdout.count("trained ") == 1, two.stdout
    one = aekit_cli(["train", *SMALL, "--epochs", "2", "--batch-size", "32", "--out",
                     str(tmp_path / "one")])  # fmt: skip
    assert one.returncode == 0, one.stderr
    rows2, rows1 = read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one")
    assert [r["ranks"] for r in rows2] == [2, 2]
    assert "ranks" not in rows1[0]
    for a, b in zip(rows2, rows1, strict=True):
        # the same images in the same steps and averaged gradients: equal up to float sums
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["test_mse"] == pytest.approx(b["test_mse"], rel=1e-3)
    # a run trained by two processes is a run like any other
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg["train"]["batch_size"] == 16
    model = aekit.load(tmp_path / "two")
    assert model.config.latent_dim == 16
    # --no-amp: in float32 like the training (bf16 is the default where it is native)
    ev = aekit_cli(["eval", str(tmp_path / "two"), "--limit", "400", "--json", "--no-amp"])
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["mse"] == pytest.approx(rows2[-1]["test_mse"], rel=1e-3)


def test_same_seed_same_result_and_exact_resume_under_torchrun(tmp_path: Path) -> None:
    noisy = [*SMALL, "--noise", "gaussian:25", "--batch-size", "16"]
    straight = torchrun(["train", *noisy, "--epochs", "2", "--out", str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr
    first = torchrun(["train", *noisy, "--epochs", "1", "--out", str(tmp_path / "b")])
    assert first.returncode == 0, first.stderr
    ckpt = load_checkpoint(tmp_path / "b")
    assert ckpt["world_size"] == 2 and len(ckpt["device_rngs"]) == 2
    assert not torch.equal(ckpt["device_rngs"][0], ckpt["device_rngs"][1])  # noise per rank
    again = torchrun(["train", "--resume", "--epochs", "2", "--out", str(tmp_path / "b")])
    assert again.returncode == 0, again.stderr
    # interrupted and resumed = unbroken, bit for bit (weights, optimizer, order and noise)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
    assert [r["test_mse"] for r in read_metrics(tmp_path / "a")] == [
        r["test_mse"] for r in read_metrics(tmp_path / "b")
    ]
    # resumed by one process: it goes on, and says what changes
    alone = aekit_cli(["train", "--resume", "--epochs", "3", "--out", str(tmp_path / "b")])
    assert alone.returncode == 0, alone.stderr
    assert "trained by 2 process(es) and now resumes with 1" in alone.stderr
    assert "each step now averages 16 images instead of 32" in alone.stderr
    assert [r["epoch"] for r in read_metrics(tmp_path / "b")] == [1, 2, 3]


def test_embed_under_torchrun_writes_one_store_equal_to_one_process(tmp_path: Path) -> None:
    run = aekit.train(tmp_path / "run", data="shapes", epochs=1, limit=300, base_channels=8,
                      latent_dim=16, batch_size=64, amp=False)  # fmt: skip
    two = torchrun(["embed", str(run), "--split", "test", "--out", str(tmp_path / "e2")])
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("embedded 1000 images") == 1
    one = aekit_cli(["embed", str(run), "--split", "test", "--out", str(tmp_path / "e1")])
    assert one.returncode == 0, one.stderr
    a, b = aekit.Embeddings.load(tmp_path / "e2"), aekit.Embeddings.load(tmp_path / "e1")
    assert len(a) == 1000
    np.testing.assert_allclose(np.asarray(a.vectors), np.asarray(b.vectors), atol=1e-5)
    assert a.items == b.items


def test_more_processes_than_images_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = torchrun(["train", *SMALL[:2], "--limit", "1", "--epochs", "1", "--out", str(out)])
    assert res.returncode != 0
    lines = aekit_lines(res.stderr)
    assert lines == [
        "aekit train: error: 2 processes share 1 training images of shapes: every process "
        "needs at least one; start at most 1 (torchrun --nproc_per_node), or use more data"
    ], res.stderr
    assert not OUR_TRACEBACK.search(res.stderr), res.stderr
    assert not out.exists() or not any(out.iterdir())


def test_an_existing_run_is_refused_by_rank_0_for_all(tmp_path: Path) -> None:
    out = tmp_path / "run"
    ok = torchrun(["train", *SMALL, "--epochs", "1", "--out", str(out)])
    assert ok.returncode == 0, ok.stderr
    before = (out / "model.safetensors").read_bytes()
    res = torchrun(["train", *SMALL, "--epochs", "1", "--out", str(out)])
    assert res.returncode != 0
    lines = aekit_lines(res.stderr)
    assert len(lines) == 1 and "already holds a run" in lines[0], res.stderr
    assert (out / "model.safetensors").read_bytes() == before


@pytest.mark.slow
def test_a_rank_killed_mid_run_stops_the_others_and_the_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AEKIT_DIST_TIMEOUT": "60"}
    cmd = [*TORCHRUN, "--nproc_per_node", "2", "-m", "aekit", "train", *SMALL,
           "--epochs", "200", "--batch-size", "8", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "checkpoint.pt").is_file(), "no epoch finished"
        workers = subprocess.run(["pgrep", "-f", "--", f"-u -m aekit train .*--out {out}$"],
                                 capture_output=True, text=True).stdout.split()  # fmt: skip
        workers = [int(w) for w in workers if int(w) != proc.pid]
        assert len(workers) == 2, workers
        os.kill(max(workers), signal.SIGKILL)  # the later one: rank 1
        _, stderr = proc.communicate(timeout=90)  # no hang
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    lines = aekit_lines(stderr)
    # the survivor says why it stops: it lost its peer, or torchrun stopped it
    assert lines, stderr
    assert all(
        "another process of this torchrun group stopped" in line
        or "stopped by torchrun because another process of the group failed" in line
        for line in lines
    ), stderr
    assert not OUR_TRACEBACK.search(stderr), stderr
    done = load_checkpoint(out)["epoch"]
    assert done >= 1
    res = torchrun(["train", "--resume", "--epochs", str(done + 1), "--out", str(out)])
    assert res.returncode == 0, res.stderr
    assert [r["epoch"] for r in read_metrics(out)] == list(range(1, done + 2))


# --- the torchrun commands of the README and the guides ------------------------------------


def documented_torchrun_lines() -> list[list[str]]:
    return [["torchrun", *args] for args in commands("torchrun ")]


def test_documented_torchrun_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each torchrun line of the README and the guides, with 2 CPU processes instead of 8 GPUs,
    1 epoch and 300 images; the two-machine line as two torchrun launches on this machine.
    CIFAR-10 is an npz of CIFAR-sized images (the processes cannot take the tests' patched
    MD5s)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    write_npz(Path("cifar.npz"), x_train=rng.integers(0, 256, (200, 32, 32, 3), np.uint8),
              x_test=rng.integers(0, 256, (60, 32, 32, 3), np.uint8))  # fmt: skip
    lines = documented_torchrun_lines()
    assert len(lines) == 4
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AEKIT_DIST_TIMEOUT": "60"}
    for line in lines:
        args = line[1:]
        module = args.index("-m")
        launch, cmd = args[:module], args[module + 2 :]
        cmd = ["npz:cifar.npz" if a == "cifar10" else a for a in cmd]
        launch[launch.index("--nproc_per_node") + 1] = "2" if "--standalone" in launch else "1"
        if cmd[0] == "train":
            cmd = shrink(cmd)
            if "--resume" in cmd:
                cmd[cmd.index("--epochs") + 1] = "2"
        full = [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "aekit", *cmd]
        if "--standalone" in launch:
            res = subprocess.run(full, capture_output=True, text=True, timeout=240, env=env)
            assert res.returncode == 0, res.stderr
            continue
        with socket.socket() as s:  # two "machines" meeting at a rendezvous on this one
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        endpoint = launch.index("--rdzv-endpoint") + 1
        launch[endpoint] = f"127.0.0.1:{port}"
        full = [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "aekit", *cmd]
        nodes = [subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(2)]  # fmt: skip
        outs = [node.communicate(timeout=240) for node in nodes]
        for node, (_, err) in zip(nodes, outs, strict=True):
            assert node.returncode == 0, err
    assert [r["epoch"] for r in read_metrics(Path("runs/cifar10-ddp"))] == [1, 2]
    assert read_metrics(Path("runs/cifar10-ddp"))[0]["ranks"] == 2
    assert len(aekit.Embeddings.load("emb/cifar10-ddp")) == 60  # the test split
    two_nodes = read_metrics(Path("runs/cifar10-2x8"))
    assert [r["ranks"] for r in two_nodes] == [2]


def test_two_ranks_stream_shards_and_refuse_too_few(tmp_path: Path) -> None:
    packed = aekit_cli(["data", "pack", "shapes", "--split", "train", "--split", "test",
                        "--out", str(tmp_path / "w"), "--shard-size", "300KB"])  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    res = torchrun(["train", *SMALL[2:], "--data", f"wds:{tmp_path / 'w'}", "--epochs", "1",
                    "--batch-size", "16", "--out", str(tmp_path / "run")])  # fmt: skip
    assert res.returncode == 0, res.stderr
    row = read_metrics(tmp_path / "run")[0]
    assert row["ranks"] == 2 and row["test_psnr"] > 0
    # --limit 400 of a stream: each rank its share
    assert 300 <= row["images_per_s"] * row["seconds"] <= 400 + 32
    one = aekit_cli(["data", "pack", "shapes", "--split", "test", "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    res = torchrun(["train", *SMALL[2:], "--data", f"wds:{tmp_path}/one/test-*.tar",
                    "--epochs", "1", "--out", str(tmp_path / "few")])  # fmt: skip
    assert res.returncode != 0
    lines = aekit_lines(res.stderr)
    assert len(lines) == 1 and "has 1 shard(s) for 2 processes" in lines[0], res.stderr


def test_a_mistake_found_before_joining_is_said_once(tmp_path: Path) -> None:
    res = torchrun(["train", "--resume", "--out", str(tmp_path / "nothing")])
    assert res.returncode != 0
    lines = aekit_lines(res.stderr)
    assert len(lines) == 1 and "rank 1" not in lines[0], res.stderr


def test_timeout_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from aekit.errors import AekitError
    from aekit.training.distributed import timeout_s

    for bad in ("abc", "0", "-5", "nan", "inf", "1e400", "1e14"):
        monkeypatch.setenv("AEKIT_DIST_TIMEOUT", bad)
        with pytest.raises(AekitError, match="AEKIT_DIST_TIMEOUT="):
            timeout_s()
    monkeypatch.setenv("AEKIT_DIST_TIMEOUT", "90")
    assert timeout_s() == 90


def test_an_unwritable_run_folder_is_refused_before_training(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    code, _, err = cli("train", *SMALL, "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2
    assert "cannot write in" in err and "Read-only file system" in err and "--out" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_self_supervised_training_runs_under_torchrun(tmp_path: Path) -> None:
    args = ["train", "--data", "shapes", "--limit", "400", "--arch", "unet", "--base-channels",
            "8", "--no-amp", "--device", "cpu", "--self-supervised", "nb2nb", "--epochs", "1",
            "--out", str(tmp_path / "ss")]  # fmt: skip
    two = torchrun(args)
    assert two.returncode == 0, two.stderr
    (row,) = read_metrics(tmp_path / "ss")
    assert row["ranks"] == 2 and row["self_supervised_loss"] == row["test_loss"] > 0
    assert aekit.load(tmp_path / "ss").config.arch == "unet"
