"""eval, embed and score of a split too large to decode into memory (AEKIT_MEMMAP_BYTES lowered
on a small folder and shard set): read in chunks, in the split's order, never whole, with the
numbers, vectors, items and scores of the in-memory path."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
import aekit.data.sources
import aekit.data.streamed
import aekit.data.wds
from aekit.data.pack import pack
from aekit.errors import AekitError
from aekit.search.embed import Embeddings

SMALL = "1000"  # bytes of pixels: every split here is "too large" (60 x 3,072 bytes)


def one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


def write_folder(root: Path, per_class: int = 30) -> Path:
    """train/ and test/ of two classes of 32x32 colour pictures (blocky, so a model learns)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(("a", "b")):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                cells = rng.integers(0, 128, (4, 4, 3), np.uint8) + 100 * c
                pic = np.repeat(np.repeat(cells, 8, 0), 8, 1).astype(np.uint8)
                Image.fromarray(pic).save(root / split / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("streamed")
    folder = f"folder:{write_folder(root / 'pics')}"
    pack(folder, root / "shards", shard_size=40_000)  # several shards a split
    return {"folder": folder, "wds": f"wds:{root / 'shards'}", "root": str(root)}


@pytest.fixture(scope="module")
def run(data: dict[str, str]) -> Path:
    out = Path(data["root"]) / "run"
    aekit.train(out, data=data["folder"], classes="a", epochs=1, base_channels=8, latent_dim=16,
                batch_size=16, amp=False, progress=False)  # fmt: skip
    return out


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch):
    """Lower the line, and make reading a folder or shards whole an error: what follows must
    stream."""

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("the split was read whole")

    def on() -> None:
        monkeypatch.setenv("AEKIT_MEMMAP_BYTES", SMALL)
        monkeypatch.setattr(aekit.data.sources, "load_folder", whole)
        monkeypatch.setattr(aekit.data.sources, "load_wds", whole)

    return on


@pytest.mark.parametrize("kind", ["folder", "wds"])
def test_embed_streams_the_same_vectors_and_items(
    cli, data, run, streamed, tmp_path: Path, kind: str
) -> None:
    args = ["embed", run, "--data", data[kind], "--split", "test", "--batch-size", "16"]
    code, _, err = cli(*args, "--out", tmp_path / "memory")
    assert code == 0, err
    streamed()
    code, out, err = cli(*args, "--out", tmp_path / "streamed")
    assert code == 0, err
    assert "embedded 60 images" in out
    a, b = Embeddings.load(tmp_path / "memory"), Embeddings.load(tmp_path / "streamed")
    np.testing.assert_array_equal(np.asarray(a.vectors), np.asarray(b.vectors))
    assert a.items == b.items  # labels, classes, positions, paths
    assert [it["class"] for it in b.items[:2]] == ["a", "a"] and b.items[-1]["class"] == "b"
    assert a.manifest["parts"] == b.manifest["parts"]  # the fingerprint too
    assert b.manifest["parts"][0]["shape"] == [3, 32, 32]


def test_a_streamed_store_shows_its_folder_items_file_by_file(
    cli, data, run, streamed, tmp_path: Path
) -> None:
    shutil.copytree(Path(data["root"]) / "pics", tmp_path / "pics")  # its files change below
    code, _, err = cli("embed", run, "--data", f"folder:{tmp_path / 'pics'}", "--out",
                       tmp_path / "memory")  # fmt: skip
    assert code == 0, err
    memory = Embeddings.load(tmp_path / "memory")
    streamed()  # the store reads its items' pictures from their files alone
    store = Embeddings.load(tmp_path / "memory")
    assert torch.equal(store.images([0, 31, 59]), memory.images([0, 31, 59]))
    code, out, err = cli("search", tmp_path / "memory", "--index", "3", "--k", "3", "--out",
                         tmp_path / "n.png")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "n.png").is_file()
    # an image replaced by another is noticed from the fingerprint (the first is one of its 64)
    first = Path(store.items[0]["path"])
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(first)
    code, out, err = cli("search", tmp_path / "memory", "--index", "3", "--out", tmp_path / "x.png")
    one_line_error(code, err, "no longer the ones embedded", "embed it again")
    assert out == "" and not (tmp_path / "x.png").exists()
    first.unlink()
    with pytest.raises(AekitError, match=f"{first} is missing"):
        Embeddings.load(tmp_path / "memory").image(0)


@pytest.mark.parametrize("kind", ["folder", "wds"])
def test_eval_streams_the_same_numbers(data, run, streamed, kind: str) -> None:
    memory = aekit.evaluate(run, data=data[kind], split="test", limit=50)
    streamed()
    assert aekit.evaluate(run, data=data[kind], split="test", limit=50) == memory
    assert memory["count"] == 50


@pytest.mark.parametrize("kind", ["folder", "wds"])
def test_score_streams_the_same_scores_and_report(
    data, run, streamed, tmp_path: Path, kind: str
) -> None:
    memory = aekit.score(run, data=data[kind], normal="a", out=tmp_path / "m")
    streamed()
    got = aekit.score(run, data=data[kind], normal="a", out=tmp_path / "s")
    assert got["items"] == memory["items"]  # names, labels, scores, verdicts
    assert {k: got[k] for k in ("auroc", "aupr", "f1", "count")} == {
        k: memory[k] for k in ("auroc", "aupr", "f1", "count")
    }
    for name in ("scores.csv", "anomalous.png", "normal.png", "roc.png"):
        assert (tmp_path / "s" / name).read_bytes() == (tmp_path / "m" / name).read_bytes(), name


def test_score_of_a_streamed_split_refuses_a_class_it_lacks_before_reading(
    cli, data, run, streamed, monkeypatch: pytest.MonkeyPatch
) -> None:
    streamed()
    code, _, err = cli("score", run, "--data", data["wds"], "--normal", "a", "--limit", "10")
    one_line_error(code, err, "all 10 images", "are normal")  # shards: known once read

    def unread(*args: object) -> None:
        raise AssertionError("the images were read")

    monkeypatch.setattr(aekit.data.streamed.SplitStream, "chunks", unread)
    code, _, err = cli("score", run, "--data", data["folder"], "--normal", "zebra")
    one_line_error(code, err, "has no class 'zebra'")  # a folder's classes: from its files


def test_eval_of_a_carved_shard_split_scores_what_training_held_out(
    cli, data, tmp_path: Path
) -> None:
    """A wds: split with nothing beside it holds out 1 in 10 images by key: eval's default is
    those (it took 10% of the whole split at random, images the run had trained on)."""
    shards = f"wds:{data['root']}/shards/train-*.tar"
    code, _, err = cli("train", "--data", shards, "--epochs", "1", "--base-channels", "8",
                       "--latent-dim", "16", "--no-amp", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    trained = aekit.training.runs.read_metrics(tmp_path / "run")[-1]
    code, out, err = cli("eval", tmp_path / "run", "--json", "--no-amp")
    assert code == 0, err
    got = json.loads(out)
    held = sum(aekit.data.wds.held_out(f"{i:09d}") for i in range(60))  # pack's keys
    assert got["count"] == held and got["mse"] == trained["test_mse"]


def test_a_run_trained_on_a_streamed_folder_calibrates_from_it_streamed(
    data, run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first score of a run reads its training images for their codes: a batch at a time
    (its held-out split, test/, is read whole, as training reads it), with the codes and
    held-out scores of the whole split at once."""
    for name in ("memory", "streamed"):
        shutil.copytree(run, tmp_path / name)
        for kept in ("anomaly.json", "anomaly-codes.npy"):
            (tmp_path / name / kept).unlink(missing_ok=True)
    aekit.score(tmp_path / "memory")
    real = aekit.data.sources.load_folder

    def held_only(root: Path, split: str, *args: object) -> object:
        assert split == "test", "the training split was read whole"
        return real(root, split, *args)

    monkeypatch.setenv("AEKIT_MEMMAP_BYTES", SMALL)
    monkeypatch.setattr(aekit.data.sources, "load_folder", held_only)
    aekit.score(tmp_path / "streamed")
    a, b = (json.loads((tmp_path / n / "anomaly.json").read_text()) for n in ("memory", "streamed"))
    assert a == b and a["about"]["train_count"] == 30  # class a of train/
    codes = [np.load(tmp_path / n / "anomaly-codes.npy") for n in ("memory", "streamed")]
    np.testing.assert_array_equal(*codes)


def test_a_server_of_a_streamed_folder_store_reads_its_files_per_picture(
    cli, data, run, streamed, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    code, _, err = cli("embed", run, "--data", data["folder"], "--out", tmp_path / "emb")
    assert code == 0, err
    expected = Embeddings.load(tmp_path / "emb").image(7)
    streamed()  # the gallery no longer loads the folder at start
    client = TestClient(create_app(run, tmp_path / "emb", device="cpu"))
    r = client.get("/api/gallery/7/image")
    assert r.status_code == 200
    with Image.open(io.BytesIO(r.content)) as img:
        assert np.array_equal(np.asarray(img).transpose(2, 0, 1), expected.numpy())


@pytest.mark.parametrize("kind", ["folder", "wds"])
def test_an_image_that_fails_to_decode_is_skipped_as_from_memory(
    cli, data, run, streamed, tmp_path: Path, kind: str
) -> None:
    """Its header reads, its pixels do not: skipped with a warning on both paths, the items
    and fingerprint (positions moved: made again) those of the in-memory path."""
    shutil.copytree(Path(data["root"]) / "pics" / "test", tmp_path / "pics")
    cut = tmp_path / "pics" / "a" / "003a.jpg"  # 4th of a's: a JPEG cut in half, header whole
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    Image.fromarray(noise).save(cut, quality=95)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    source = f"folder:{tmp_path / 'pics'}"
    if kind == "wds":
        pack(source, tmp_path / "shards", shard_size=40_000)
        source = f"wds:{tmp_path / 'shards'}"
    args = ["embed", run, "--data", source, "--split", "train", "--batch-size", "16"]
    code, _, err = cli(*args, "--out", tmp_path / "memory")
    assert code == 0 and "skipped" in err, err
    streamed()
    code, out, err = cli(*args, "--out", tmp_path / "streamed")
    assert code == 0 and "skipped" in err, err
    assert "embedded 60 images" in out
    a, b = Embeddings.load(tmp_path / "memory"), Embeddings.load(tmp_path / "streamed")
    assert a.items == b.items and a.manifest["parts"] == b.manifest["parts"]
    np.testing.assert_allclose(np.asarray(a.vectors), np.asarray(b.vectors), rtol=1e-5, atol=1e-6)
    with pytest.raises(AekitError, match="cannot be decoded"):  # eval counts its images first
        aekit.evaluate(run, data=source, split="train")


def test_embed_of_a_streamed_folder_under_torchrun_is_one_store(data, run, tmp_path: Path) -> None:
    """Each process reads its part of the files; rank 0 writes the store of them all."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AEKIT_DIST_TIMEOUT": "60"}
    args = ["embed", str(run), "--data", data["folder"], "--split", "test", "--batch-size", "16"]
    one = subprocess.run([sys.executable, "-m", "aekit", *args, "--out", str(tmp_path / "e1")],
                         capture_output=True, text=True, timeout=240, env=env)  # fmt: skip
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "aekit", *args, "--out",
                          str(tmp_path / "e2")], capture_output=True, text=True, timeout=240,
                         env={**env, "AEKIT_MEMMAP_BYTES": SMALL})  # fmt: skip
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("embedded 60 images") == 1
    a, b = Embeddings.load(tmp_path / "e1"), Embeddings.load(tmp_path / "e2")
    assert a.items == b.items and a.manifest["parts"] == b.manifest["parts"]
    # the processes' batches start elsewhere (file 30): float32 rounding of other batches
    np.testing.assert_allclose(np.asarray(a.vectors), np.asarray(b.vectors), rtol=1e-5, atol=1e-6)
