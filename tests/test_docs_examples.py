"""Every example of the README and of the documentation's guides runs: each ``aekit`` command of
their bash blocks, in the order of the site's navigation (README first), and their Python blocks.

Commands on downloadable datasets run against small files written in the official formats (their
MD5s patched in, as no network is reachable); epochs are cut to 1 and images to a few hundred. A
command that two pages show (the README's short example, then its guide) runs once.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.data import registry as reg
from formats import md5, medmnist_arrays, write_cifar_tar, write_mnist_split, write_npz

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def pages() -> list[Path]:
    """README.md, then every page of the site in the order of mkdocs.yml's nav."""
    nav = re.findall(r"^\s+- [^:]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    return [README, *(DOCS / page for page in nav)]


def blocks(lang: str, page: Path | None = None) -> list[str]:
    """The ``lang`` code blocks of one page, or of every page in order."""
    texts = [page.read_text()] if page else [p.read_text() for p in pages()]
    return [b for text in texts for b in re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)]


def commands(prefix: str = "aekit ") -> list[list[str]]:
    """Each distinct command line starting with ``prefix`` of every page's bash blocks, in order
    (its arguments after the program name)."""
    out: list[list[str]] = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            args = shlex.split(line)[1:] if line.startswith(prefix) else None
            if args is not None and args not in out:
                out.append(args)
    return out


@pytest.fixture
def fake_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mnist, cifar10 and pathmnist files in the real formats, accepted as the official ones."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("test", 2100)):  # search-eval samples 2000 queries
        imgs, labels = rng.integers(0, 256, (n, 28, 28), np.uint8), np.arange(n) % 10
        for path in write_mnist_split(root / "mnist", split, imgs, labels.astype(np.uint8)):
            monkeypatch.setitem(reg.MNIST.md5, path.name, md5(path))
    batches = {
        f"data_batch_{i}": (rng.integers(0, 256, (60, 3, 32, 32), np.uint8), np.arange(60) % 10)
        for i in range(1, 6)
    }
    batches["test_batch"] = (rng.integers(0, 256, (60, 3, 32, 32), np.uint8), np.arange(60) % 10)
    tar = write_cifar_tar(root / "cifar10" / "cifar-10-binary.tar.gz", batches)
    monkeypatch.setattr(reg.CIFAR10, "md5", md5(tar))
    monkeypatch.setattr(reg.CIFAR10, "records", 60)  # official batches hold 10,000
    npz = write_npz(
        root / "medmnist" / "pathmnist.npz",
        **medmnist_arrays({"train": 200, "val": 50, "test": 50}, 28, 3),
    )
    monkeypatch.setitem(reg.MEDMNIST_MD5["pathmnist"], 28, md5(npz))
    monkeypatch.setenv("AEKIT_DATA", str(root))
    return root


def shrink(args: list[str]) -> list[str]:
    """The same command with 1 epoch and at most 300 images, so the suite stays fast."""
    args = list(args)
    if "--epochs" in args:
        args[args.index("--epochs") + 1] = "1"
    if "--time-limit" in args:  # the photo recipe's 30 minutes: a second here
        args[args.index("--time-limit") + 1] = "0.02"
    if "folder:PARTS" in args and "--patch-size" in args:  # PARTS/ holds 32x32 parts
        args[args.index("--patch-size") + 1] = "32"
    if args[0] == "train":
        args += ["--limit", "300"]
    return args


def photo_folders() -> None:
    """PHOTOS/ and KODAK/ (photos of mixed sizes), NOISY/ (PHOTOS with sigma-25 noise, saved
    once, as a camera would) and my-photo.jpg in the current folder, for the photo-denoising
    commands."""
    rng = np.random.default_rng(0)
    for folder, sizes in (("PHOTOS", [(120, 80), (80, 120), (96, 96), (100, 70)]),
                          ("KODAK", [(128, 96), (96, 128)])):  # fmt: skip
        Path(folder).mkdir()
        for i, (w, h) in enumerate(sizes):
            small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize((w, h), Image.BICUBIC).save(f"{folder}/{i}.png")
    Path("NOISY").mkdir()
    for path in sorted(Path("PHOTOS").iterdir()):
        clean = np.asarray(Image.open(path), dtype=np.float64)
        noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(noisy).save(Path("NOISY", path.name))
    small = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    Image.fromarray(small).resize((300, 200), Image.BICUBIC).save("my-photo.jpg")


def parts_folder() -> None:
    """PARTS/: train/good/ and test/{good,bad}/, 32x32 gray parts (dark, or with a bright flaw),
    for the anomaly commands."""
    rng = np.random.default_rng(1)
    for split, kind, n in (("train", "good", 12), ("test", "good", 4), ("test", "bad", 4)):
        Path("PARTS", split, kind).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(20, 60, (32, 32), dtype=np.uint8)
            if kind == "bad":
                a[8:16, 8:16] = 250
            Image.fromarray(a).save(f"PARTS/{split}/{kind}/{i}.png")


def serve_briefly(args: list[str]) -> None:
    """Start ``aekit ARGS`` on a free loopback port, wait for /api/info, stop it."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "aekit", *args, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline, info = time.time() + 60, None
        while time.time() < deadline and proc.poll() is None and info is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        assert info is not None, proc.stderr.read().decode() if proc.poll() is not None else ""
        assert (info["gallery_size"] > 0) == ("--gallery" in args)  # a photo denoiser has none
        assert info["full_size"] == (info["config"]["model"]["arch"] == "unet")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readme_has_the_quick_start() -> None:
    quick = blocks("bash", README)[0]
    assert [ln.split("#")[0].strip() for ln in quick.strip().splitlines()] == [
        "make demo",
        "make test",
    ]


def test_every_documented_command_runs(cli, fake_downloads, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ds = aekit.load_dataset("shapes", "test")
    for name in ("my1.png", "my2.png"):
        Image.fromarray(ds.images[len(name)].permute(1, 2, 0).numpy()).save(name)
    photo_folders()
    parts_folder()
    cmds = commands()
    assert len(cmds) >= 40  # the README's and the guides'
    for args in cmds:
        if args[0] == "train":  # the README's own commands train the full size; here, briefly
            args = shrink(args)
        if args[0] == "serve":  # a server runs until stopped: check that it comes up, then stop it
            serve_briefly(args)
            continue
        code, _, err = cli(*args)
        assert code == 0, f"aekit {' '.join(args)} failed: {err}"
    assert Path("grid.png").is_file() and Path("shapes.png").is_file()
    assert Path("cleaned/my1_denoised.png").is_file()
    assert Path("samples.png").is_file() and Path("path.png").is_file()
    vae = aekit.training.runs.load_config("runs/shapes-vae")
    assert (vae.model.arch, vae.train.beta, vae.train.kl_warmup) == ("vae", 1.0, 2)
    for run in ("mnist-keras", "cifar10", "cifar10-denoise", "pathmnist", "shapes-sparse"):
        assert Path("runs", run, "model.safetensors").is_file(), run
    cfg = aekit.training.runs.load_config("runs/cifar10")
    assert cfg.data.augment_ops() == ("crop", "hflip", "vflip")
    assert aekit.training.runs.load_config("runs/mnist-keras").model.arch == "keras"
    photo = aekit.training.runs.load_config("runs/photo-denoiser")
    assert (photo.model.arch, photo.data.patch_size, photo.train.time_limit) == ("unet", 64, 0.02)
    with Image.open("cleaned/my-photo_denoised.png") as img:
        assert img.size == (300, 200)  # the photo's own size
    noisy_only = aekit.training.runs.load_config("runs/noisy-only")
    assert (noisy_only.train.self_supervised, noisy_only.train.noise) == ("nb2nb", None)
    assert Path("cleaned/0_denoised.png").is_file()
    assert aekit.training.runs.load_config("runs/mnist-3").data.classes == "3"
    assert aekit.training.runs.load_config("runs/parts").data.classes == "good"
    assert aekit.training.runs.load_config("runs/parts-draem").model.arch == "draem"
    assert any(Path("report", "overlays").iterdir())
    for name in ("scores.csv", "roc.png", "histogram.png", "anomalous.png", "normal.png"):
        assert Path("report", name).is_file(), name
    assert json.loads(Path("runs/mnist-3/anomaly.json").read_text())["fpr"] == 0.01
    assert any(Path("runs/shapes-tb/tensorboard").glob("events.out.tfevents.*"))
    assert Path("emb/shapes-test/map.png").is_file() and Path("shapes-umap.png").is_file()
    assert Path("units.png").is_file()
    assert json.loads(Path("emb/shapes-test/map.json").read_text())["method"] == "umap"
    for name in ("shapes.onnx", "shapes-encoder.onnx", "denoiser.onnx"):  # aekit export
        assert Path(name).stat().st_size > 10_000, name


def run_python_blocks(page: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A page's Python blocks in order, in one session as a reader would type them, in a folder
    of their own; returns the session's names."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    namespace: dict = {}
    for code in blocks("python", page):
        exec(compile(code, str(page), "exec"), namespace)
    return namespace


def claimed(page: Path, call: str) -> str:
    """What a page says its ``print(CALL...)`` line prints (the comment after it)."""
    return re.search(rf"print\({re.escape(call)}.*# (.*)", page.read_text()).group(1)


def test_readme_python_example(tmp_path, monkeypatch, capsys) -> None:
    namespace = run_python_blocks(README, tmp_path / "readme", monkeypatch)
    printed = capsys.readouterr().out
    assert claimed(README, "idx.shape") in printed  # (3, 5) 200
    assert namespace["dist"].shape == (3, 5) and (namespace["dist"][:, 1:] >= 0).all()
    assert Path("runs/py-first/model.safetensors").is_file()


def test_python_guide_examples(tmp_path, monkeypatch, capsys) -> None:
    guide = DOCS / "guides" / "python.md"
    namespace = run_python_blocks(guide, tmp_path / "guide", monkeypatch)
    printed = capsys.readouterr().out
    assert "'count': 200" in printed and "'psnr'" in printed
    assert "{'item': 'test:0', 'label': 'triangle', 'score': " in printed
    assert claimed(guide, "aekit.list_models()") in printed  # what the guide says it prints
    assert Path("runs/py-shapes/model.safetensors").is_file()
    # the ONNX example: onnxruntime's outputs have the shapes the guide names, and are aekit's
    assert namespace["recon"].shape == (8, 3, 32, 32) and namespace["code"].shape == (8, 256)
    assert np.abs(namespace["code"] - namespace["codes"].detach().numpy()).max() <= 1e-4
    assert "{'images': ['batch', 3, 32, 32]} {'reconstruction': ['batch', 3, 32, 32], " in printed


def test_every_page_with_python_is_run() -> None:
    """A Python block on a page these tests do not run would go stale unseen."""
    assert [p.name for p in pages() if blocks("python", p)] == ["README.md", "python.md"]


def test_the_readme_is_a_front_page() -> None:
    """At most about 200 lines, and a link to every guide."""
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    guides = [p for p in pages() if p.parent.name == "guides"]
    assert len(guides) >= 10
    for guide in guides:
        assert f"](docs/guides/{guide.name})" in text, guide.name


def test_vae_pictures_commands(cli, mnist_dir, tmp_path, monkeypatch) -> None:
    # the prose commands that made the two vae pictures, on the real MNIST test set
    monkeypatch.chdir(tmp_path)
    text = " ".join((DOCS / "guides" / "use.md").read_text().split())
    cmds = [
        c.split()
        for c in re.findall(r"`(aekit (?:train|generate|interpolate) [^`]*mnist-vae[^`]*)`", text)
    ]
    assert [c[1] for c in cmds] == ["train", "generate", "interpolate"]
    ds = aekit.load_dataset("mnist", "test", data_dir=mnist_dir)
    from aekit.viz import save_image

    save_image(ds.images[0], "digit7.png")
    save_image(ds.images[3], "digit0.png")
    train, generate, interpolate = cmds
    code, _, err = cli(*shrink(train[1:]), "--data-dir", mnist_dir)
    assert code == 0, err
    for args, out in ((generate, "samples.png"), (interpolate, "path.png")):
        code, _, err = cli(*args[1:], "--out", out)
        assert code == 0 and Path(out).is_file(), err
