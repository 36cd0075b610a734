"""The demo's files, and that an interrupted demo leaves the previous results intact."""

from __future__ import annotations

from pathlib import Path

import pytest

import aekit
from aekit import demo


def test_demo_writes_report_pictures_and_runs(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "demo"
    report = demo.run_demo(out, epochs=1, progress=False)
    text = report.read_text()
    assert "| 1 |" in text and "denoised" in text and "SSIM" in text
    for name in (
        "reconstructions.png",
        "denoising.png",
        "plain/model.safetensors",
        "denoising/loss.png",
    ):
        assert (out / name).is_file(), name
    assert not (out / ".demo-staging").exists()
    store = aekit.Embeddings.load(out / "embeddings")  # finds its run where it was moved to
    assert store.manifest["run"] == str((out / "plain").resolve())
    assert aekit.runs.load_config(out / "denoising").train.noise == demo.NOISE

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "train", broken)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(out, epochs=1, progress=False)
    assert report.read_text() == text
    assert (out / "plain" / "model.safetensors").is_file()
