"""Training runs end to end on small data: files, metrics, resume, divergence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit.metrics import psnr
from aekit.training import objectives
from aekit.training.runs import load_checkpoint, read_metrics

TINY = {"base_channels": 8, "latent_dim": 32, "batch_size": 64}


def test_plain_run_writes_everything(tmp_path: Path) -> None:
    run = aekit.train(tmp_path / "run", data="shapes", epochs=2, limit=512, **TINY)
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "test_loss", "test_mse", "test_psnr", "seconds", "images_per_s"):
        assert all(isinstance(r[key], float) for r in rows), key
    assert rows[-1]["test_psnr"] == pytest.approx(psnr(rows[-1]["test_mse"]))
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    for name in (
        "config.json",
        "model.safetensors",
        "checkpoint.pt",
        "loss.png",
        "samples/epoch_001.png",
        "samples/epoch_002.png",
    ):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == {
        "arch": "conv",
        "in_channels": 3,
        "image_size": 32,
        "latent_dim": 32,
        "base_channels": 8,
        "depth": 1,
        "body": None,
        "topk": None,
    }
    model = aekit.load(run)
    assert set(load_file(run / "model.safetensors")) == set(model.state_dict())
    assert load_checkpoint(run)["epoch"] == 2


def test_denoising_run_reports_noisy_and_denoised_psnr(tmp_path: Path) -> None:
    run = aekit.train(tmp_path / "dn", data="shapes", epochs=3, limit=2000, noise="gaussian:76.5",
                      base_channels=16, latent_dim=32, batch_size=32)  # fmt: skip
    last = read_metrics(run)[-1]
    # std 0.6 on [-1, 1] is 0.3 on [0, 1]: 10.5 dB unclipped; clipping to [0, 1] removes some error
    assert 10.5 < last["noisy_psnr"] < 12.5
    assert last["denoised_psnr"] > last["noisy_psnr"] + 1


@pytest.mark.parametrize(("spec", "check"), [
    ("topk:4", lambda r: r["active_fraction"] == pytest.approx(4 / 32)),
    ("l1:0.01", lambda r: 0 < r["active_fraction"] <= 1),
    ("kl:0.05:0.1", lambda r: 0 <= r["active_fraction"] <= 1),
])  # fmt: skip
def test_sparse_runs_report_activity(tmp_path: Path, spec: str, check) -> None:
    run = aekit.train(tmp_path / "sp", data="shapes", epochs=1, limit=256, sparsity=spec, **TINY)
    row = read_metrics(run)[-1]
    assert check(row)
    assert isinstance(row["dead_units"], int) and 0 <= row["dead_units"] <= 32


def test_l1_sparsity_makes_codes_sparser(tmp_path: Path) -> None:
    plain = aekit.train(
        tmp_path / "a", data="shapes", epochs=2, limit=1024, sparsity="l1:0", **TINY
    )
    sparse = aekit.train(
        tmp_path / "b", data="shapes", epochs=2, limit=1024, sparsity="l1:0.05", **TINY
    )
    assert read_metrics(sparse)[-1]["active_fraction"] < read_metrics(plain)[-1]["active_fraction"]


def test_real_mnist_beats_the_mean_image(tmp_path: Path, mnist_dir: Path) -> None:
    """A short run on real MNIST digits reconstructs held-out digits better than their mean."""
    run = aekit.train(
        tmp_path / "mnist",
        data="mnist",
        data_dir=str(mnist_dir),
        train_split="test",
        arch="keras",
        epochs=3,
        batch_size=32,
    )
    ds = aekit.load_dataset("mnist", "test", data_dir=mnist_dir)
    from aekit.training.splits import carve_holdout

    train, held = carve_holdout(ds)
    mean = train.images.float().mean(0, keepdim=True) / 255
    baseline = psnr(((held.images.float() / 255 - mean) ** 2).mean().item())
    got = read_metrics(run)[-1]
    assert got["test_psnr"] > baseline + 3.0, (got["test_psnr"], baseline)
    ev = aekit.evaluate(run, split="test", data_dir=str(mnist_dir), limit=500)
    assert ev["count"] == 500 and 0 < ev["ssim"] <= 1


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aekit",
        "train",
        "--data",
        "shapes",
        "--out",
        str(out),
        "--epochs",
        "3",
        "--limit",
        "3000",
        "--base-channels",
        "16",
        "--latent-dim",
        "32",
        "--batch-size",
        "32",
        *extra,
    ]


def test_resume_after_kill_mid_epoch_matches_uninterrupted(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(tmp_path / "full"), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.01)
    # The observable event: epoch 1's checkpoint is in place (it is written last, by an atomic
    # rename), so the process has moved on into epoch 2, which takes seconds: kill it there.
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(killed)["epoch"]
    assert done == 1
    # the metrics line of an epoch is written just before its checkpoint: a kill between the two
    # leaves one line more, which --resume drops
    assert [r["epoch"] for r in read_metrics(killed)] in (
        list(range(1, done + 1)),
        list(range(1, done + 2)),
    )
    subprocess.run(_train_cmd(killed, "--resume"), check=True, env=env, capture_output=True)
    a, b = (
        load_file(tmp_path / "full" / "model.safetensors"),
        load_file(killed / "model.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in read_metrics(killed)] == [1, 2, 3]
    full_rows, resumed_rows = read_metrics(tmp_path / "full"), read_metrics(killed)
    assert [r["test_loss"] for r in full_rows] == [r["test_loss"] for r in resumed_rows]


def test_divergence_stops_with_message_and_keeps_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = aekit.train(tmp_path / "nan", data="shapes", epochs=1, limit=128, **TINY)
    weights = (run / "model.safetensors").read_bytes()
    real = objectives.reconstruction_loss
    monkeypatch.setattr(
        sys.modules["aekit.training.step"],
        "reconstruction_loss",
        lambda *a, **k: real(*a, **k) * float("nan"),
    )
    with pytest.raises(aekit.AekitError, match=r"diverged.*epoch 2.*checkpoint \(epoch 1\)"):
        aekit.train(run, resume=True, epochs=2)
    assert load_checkpoint(run)["epoch"] == 1
    assert (run / "model.safetensors").read_bytes() == weights
    assert [r["epoch"] for r in read_metrics(run)] == [1]


def test_a_run_that_never_finished_an_epoch_can_start_over(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}")  # left by a run killed before its first epoch ended
    (run / "metrics.jsonl").write_text('{"epoch": 1, "tor')
    aekit.train(run, data="shapes", epochs=1, limit=64, **TINY)
    assert [r["epoch"] for r in read_metrics(run)] == [1]
    with pytest.raises(aekit.AekitError, match="already holds a run"):
        aekit.train(run, data="shapes", epochs=1, limit=64, **TINY)
