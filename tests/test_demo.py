"""The demo's files, and that an interrupted demo leaves the previous results intact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import aekit
from aekit.cli import demo


def test_demo_writes_report_pictures_and_runs(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "demo"
    report = demo.run_demo(out, epochs=1, progress=False, unet_epochs=1)
    text = report.read_text()
    assert "| 1 |" in text and "denoised" in text and "SSIM" in text
    # the two denoisers side by side, each with its PSNR on the test split; aekit's ahead
    psnrs = {}
    for name in ("denoising", "unet"):
        last = aekit.training.runs.read_metrics(out / name)[-1]
        assert last["noisy_psnr"] < last["denoised_psnr"]
        psnrs[name] = last["denoised_psnr"]
        # the report's number: the test split scored again after training, in float32 (the
        # epoch's may be bf16, within 1e-3 of it: fastpath)
        shown = re.search(rf"\| {re.escape(demo.DENOISERS[name])} \| ([0-9.]+) dB \|", text)
        assert shown and float(shown[1]) == pytest.approx(last["denoised_psnr"], abs=0.05)
    assert psnrs["unet"] > psnrs["denoising"] + 3
    assert "--arch unet" in text and "## Denoising, side by side" in text
    for name in (
        "reconstructions.png",
        "denoising.png",
        "plain/model.safetensors",
        "denoising/loss.png",
        "unet/model.safetensors",
    ):
        assert (out / name).is_file(), name
    assert not (out / ".demo-staging").exists()
    store = aekit.Embeddings.load(out / "embeddings")  # finds its run where it was moved to
    assert store.manifest["run"] == str((out / "plain").resolve())
    assert aekit.training.runs.load_config(out / "denoising").train.noise == demo.NOISE

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "train", broken)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(out, epochs=1, progress=False, unet_epochs=1)
    assert report.read_text() == text
    assert (out / "plain" / "model.safetensors").is_file()
