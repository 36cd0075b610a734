"""``aekit train --log tensorboard``: metrics.jsonl's numbers and the sample grids, per epoch, in
TensorBoard's event files (read back with TensorBoard's own reader)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import aekit
from aekit.training.runs import read_metrics

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
TINY = {"base_channels": 8, "latent_dim": 16, "limit": 128, "device": "cpu", "amp": False}


def _events(run: Path) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    return acc


def test_each_epoch_is_logged_and_a_resume_continues_the_curves(tmp_path: Path, cli) -> None:
    run = tmp_path / "run"
    code, _, err = cli("train", "--data", "shapes", "--epochs", 2, "--base-channels", 8,
                       "--latent-dim", 16, "--limit", 128, "--log", "tensorboard",
                       "--out", run)  # fmt: skip
    assert code == 0, err
    code, _, err = cli("train", "--out", run, "--resume", "--epochs", 3)  # the run's --log holds
    assert code == 0, err
    rows, acc = read_metrics(run), _events(run)
    assert set(acc.Tags()["scalars"]) == {k for k in rows[0] if k != "epoch"}
    for key in ("train_loss", "test_psnr", "images_per_s"):
        logged = [(e.step, e.value) for e in acc.Scalars(key)]
        assert logged == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]
    images = acc.Images("samples")
    assert [e.step for e in images] == [1, 2, 3] and images[0].width > images[0].height > 100


def test_logging_is_off_by_default_and_mistakes_are_one_line(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = aekit.train(tmp_path / "plain", "shapes", epochs=1, progress=False, **TINY)
    assert not (run / "tensorboard").exists() and (run / "metrics.jsonl").is_file()
    code, _, err = cli("train", "--data", "shapes", "--log", "wandb", "--out", tmp_path / "w")
    assert code != 0 and err.strip() == (
        "aekit train: error: unknown --log 'wandb': aekit logs to tensorboard"
    )
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    code, _, err = cli("train", "--data", "shapes", "--epochs", 1, "--limit", 64,
                       "--log", "tensorboard", "--out", tmp_path / "t")  # fmt: skip
    assert code != 0 and err.strip() == (
        "aekit train: error: --log tensorboard needs tensorboard, which is not installed: "
        "pip install 'aekit[tensorboard]' (the tensorboard package)"
    )
    assert not (tmp_path / "w").exists() and not (tmp_path / "t").exists()


def test_logging_turned_on_at_resume_shows_the_whole_curve(tmp_path: Path, cli) -> None:
    run = aekit.train(tmp_path / "run", "shapes", epochs=2, **TINY)  # no --log
    assert not (run / "tensorboard").exists()
    code, _, err = cli("train", "--out", run, "--resume", "--epochs", 3, "--log", "tensorboard")
    assert code == 0, err
    code, _, err = cli("train", "--out", run, "--resume", "--epochs", 4)  # once more: no twice
    assert code == 0, err
    rows, acc = read_metrics(run), _events(run)
    for key in ("train_loss", "test_psnr"):
        logged = [(e.step, e.value) for e in acc.Scalars(key)]
        assert logged == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]
    assert [e.step for e in acc.Images("samples")] == [1, 2, 3, 4]
