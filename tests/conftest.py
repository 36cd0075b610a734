"""Shared fixtures: the real MNIST test set when present, the CLI as a function, a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

import aekit
from aekit.cli import main

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's ~/.cache/aekit from tests."""
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path_factory.mktemp("aekit-data")))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained plain run (shapes, 512 images, 1 epoch) that tests read, never change."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    aekit.train(out, data="shapes", epochs=1, limit=512, base_channels=8, latent_dim=16,
                progress=False)  # fmt: skip
    return out


@pytest.fixture
def mnist_dir() -> Path:
    """The folder holding mnist/t10k-*.gz (the official MNIST test set), or skip."""
    if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("the real MNIST test set is not at ../shared/data/mnist")
    return SHARED_DATA


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``aekit ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run
