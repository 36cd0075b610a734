"""``aekit export``: every family's ONNX graphs give aekit's numbers in onnxruntime."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit import AekitError
from aekit.models import get_family, list_models, to_model_scale, to_unit_scale

ort = pytest.importorskip("onnxruntime")  # make install installs it (the export extra)

SIZE = 28  # every family takes 28x28 (the keras model only that)


def _session(path: Path):  # -> onnxruntime.InferenceSession
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _close(got: np.ndarray, want: torch.Tensor) -> bool:
    return got.shape == tuple(want.shape) and float(np.abs(got - want.numpy()).max()) <= 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export-runs")
    return {arch: aekit.train(root / arch, "shapes", arch=arch, image_size=SIZE, base_channels=8,
                              epochs=1, limit=64, device="cpu", amp=False, progress=False)
            for arch in list_models()}  # fmt: skip


@pytest.mark.parametrize("arch", list_models())
def test_every_family_exports_graphs_that_match_aekit(
    arch: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    run, family = runs[arch], get_family(arch)
    model = aekit.load(run)
    images = aekit.load_dataset("shapes", "test", limit=5, image_size=SIZE).images
    x = (images.float() / 255).numpy()
    with torch.no_grad():
        code = model.encode(to_model_scale(images, arch))

    done = aekit.export(run, tmp_path / "full.onnx")
    assert done.max_difference <= 1e-4 and done.checked_on == "8 held-out images"
    assert done.inputs["images"][0] == "batch" and done.outputs["code"][1] == code.shape[1]
    recon, got_code = _session(done.path).run(None, {"images": x})
    assert _close(recon, aekit.reconstruct(model, images)) and _close(got_code, code)

    done = aekit.export(run, tmp_path / "encoder.onnx", part="encoder")
    assert _close(_session(done.path).run(None, {"images": x})[0], code)

    if family.decodable:
        done = aekit.export(run, tmp_path / "decoder.onnx", part="decoder")
        with torch.no_grad():
            want = to_unit_scale(model.decode(code), arch)
        assert _close(_session(done.path).run(None, {"code": code.numpy()})[0], want)
    else:
        with pytest.raises(AekitError, match="no code that decodes on its own"):
            aekit.export(run, tmp_path / "decoder.onnx", part="decoder")
        assert not (tmp_path / "decoder.onnx").exists()

    if family.any_size:  # height and width are free: another size, another batch
        assert done.inputs["images"][2:] == ["height", "width"]
        odd = torch.randint(0, 256, (3, 3, 37, 45), generator=torch.Generator().manual_seed(1),
                            dtype=torch.uint8)  # fmt: skip
        recon, _ = _session(tmp_path / "full.onnx").run(None, {"images": odd.float().numpy() / 255})
        assert _close(recon, aekit.reconstruct(model, odd))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["full.onnx", "encoder.onnx"] + (["decoder.onnx"] if family.decodable else [])
    )  # and no temporary file left behind


def test_export_mistakes_say_one_line_and_write_nothing(
    runs: dict[str, Path], tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = runs["conv"]
    out = tmp_path / "m.onnx"
    for args, words in [
        (["--format", "tflite"], "unknown --format 'tflite': aekit exports onnx"),
        (["--part", "middle"], "unknown --part 'middle': use one of full, encoder, decoder"),
    ]:
        code, _, err = cli("export", run, "--out", out, *args)
        assert code != 0 and err.strip() == f"aekit export: error: {words}"
    code, _, err = cli("export", tmp_path / "nothing", "--out", out)
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("export", run, "--out", tmp_path / "m.txt")
    assert code != 0 and "written as .onnx" in err
    assert not any(tmp_path.iterdir())

    out.write_bytes(b"mine")
    code, _, err = cli("export", run, "--out", out)
    assert code != 0 and "exists" in err and "--force" in err and out.read_bytes() == b"mine"
    code, stdout, _ = cli("export", run, "--out", out, "--force")
    assert code == 0 and stdout.startswith(f"wrote {out}: full,") and out.read_bytes() != b"mine"

    # a graph that would not match aekit is refused
    monkeypatch.setattr(importlib.import_module("aekit.exporting.onnx"), "TOLERANCE", -1.0)
    code, _, err = cli("export", run, "--out", tmp_path / "bad.onnx")
    assert code != 0 and "differs from aekit" in err and "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    code, _, err = cli("export", run, "--out", tmp_path / "x.onnx")
    assert code != 0 and err.strip() == (
        "aekit export: error: exporting to ONNX needs onnxruntime, which is not installed: "
        "pip install 'aekit[export]' (onnx, onnxruntime, onnxscript)"
    )


def test_a_run_whose_data_is_gone_is_checked_on_random_images(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(*args: object, **kwargs: object) -> None:
        raise AekitError("no such data")

    monkeypatch.setattr("aekit.training.splits.load_splits", gone)
    done = aekit.export(runs["conv"], tmp_path / "m.onnx")
    assert done.checked_on.startswith("8 random images") and done.max_difference <= 1e-4


# the child exports with os.replace hooked: it is killed (SIGKILL, nothing cleaned up) just
# before the checked graph is moved into place, leaving its full .NAME.*.tmp file
KILLED_EXPORT = """
import os, sys
sys.path.insert(0, sys.argv[1])
real = os.replace

def replace(src, dst, *args, **kwargs):
    if os.path.basename(dst) == "m.onnx":
        os.kill(os.getpid(), 9)
    real(src, dst, *args, **kwargs)

os.replace = replace
from aekit.cli import main
main(sys.argv[2:])
"""


def test_the_next_export_removes_what_a_killed_one_left(cli, tiny_run: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    import subprocess

    from aekit.files import writing

    args = ["export", str(tiny_run), "--out", str(tmp_path / "m.onnx")]
    src = Path(__file__).resolve().parents[1] / "src"
    child = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(src), *args],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == -9, child.stderr
    (left,) = tmp_path.glob(".m.onnx.*.tmp")
    assert left.stat().st_size > 10_000 and not (tmp_path / "m.onnx").exists()
    (tmp_path / ".other.onnx.x.tmp").write_bytes(b"not ours")  # another file's temp: kept
    live = tmp_path / ".m.onnx.live.tmp"  # another export into m.onnx, still writing: kept
    live.write_bytes(b"")
    with writing(live):
        code, _, err = cli(*args)
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".m.onnx.live.tmp", ".other.onnx.x.tmp", "m.onnx"]  # fmt: skip
