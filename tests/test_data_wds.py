"""``wds:`` sources (WebDataset tar shards) and ``aekit data pack``."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.data import load_dataset
from aekit.data.wds import held_out, open_shards
from aekit.data.wds_stream import Stream
from aekit.errors import AekitError
from aekit.training.runs import read_metrics


def write_shard(path: Path, members: dict[str, bytes]) -> Path:
    """A tar shard with the given members, as any WebDataset writer makes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def numbered(n: int, side: int = 8) -> list[np.ndarray]:
    """Gray images whose every pixel is their index (so a batch tells which images it holds)."""
    return [np.full((side, side), i, dtype=np.uint8) for i in range(n)]


def numbered_shards(folder: Path, n: int, per_shard: int, name: str = "part") -> list[Path]:
    images = numbered(n)
    paths = []
    for s in range(0, n, per_shard):
        members = {}
        for i in range(s, min(n, s + per_shard)):
            members[f"{i:06d}.png"] = png(images[i])
            members[f"{i:06d}.cls"] = str(i % 3).encode()
        paths.append(write_shard(folder / f"{name}-{s // per_shard:06d}.tar", members))
    return paths


def test_pack_round_trips_every_split(cli, tmp_path: Path) -> None:
    code, out, err = cli("data", "pack", "shapes", "--out", tmp_path / "w", "--shard-size", "300KB")
    assert code == 0, err
    assert "train: 8000 images in" in out and f"--data wds:{tmp_path / 'w'}" in out
    info = json.loads((tmp_path / "w" / "info.json").read_text())
    assert info["shape"] == [3, 32, 32] and info["classes"][0] == "circle"
    assert set(info["splits"]) == {"train", "val", "test"}
    assert sum(info["splits"]["train"]["counts"]) == 8000
    assert len(info["splits"]["train"]["shards"]) > 1  # cut by --shard-size
    for split in ("val", "test"):
        a = load_dataset(f"wds:{tmp_path / 'w'}", split)
        b = load_dataset("shapes", split)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert a.classes == b.classes
    assert not list(tmp_path.glob(".w.*"))  # the temporary folder is gone


def test_pack_of_a_folder_copies_the_files(cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), np.uint8)).save(
                tmp_path / "pics" / cls / f"{i}.png"
            )
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), np.uint8)).save(
        tmp_path / "pics" / "dogs" / "small.jpg"
    )
    code, _, err = cli("data", "pack", f"folder:{tmp_path / 'pics'}", "--out", tmp_path / "w")
    assert code == 0, err
    with tarfile.open(tmp_path / "w" / "train-000000.tar") as tar:
        names = sorted(tar.getnames())
        jpg = next(n for n in names if n.endswith(".jpg"))
        assert tar.extractfile(jpg).read() == (tmp_path / "pics/dogs/small.jpg").read_bytes()
    assert len([n for n in names if n.endswith(".cls")]) == 7
    info = json.loads((tmp_path / "w" / "info.json").read_text())
    assert info["shape"] == [3, 20, 24] and info["classes"] == ["cats", "dogs"]
    a = load_dataset(f"wds:{tmp_path / 'w'}")
    b = load_dataset(f"folder:{tmp_path / 'pics'}")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_pattern_sources_and_their_mistakes(tmp_path: Path) -> None:
    numbered_shards(tmp_path / "s", 10, 4)
    ds = load_dataset(f"wds:{tmp_path}/s/part-{{000000..000002}}.tar")
    assert len(ds) == 10 and ds.shape == (1, 8, 8) and ds.labels.tolist()[:4] == [0, 1, 2, 0]
    assert ds.images[:, 0, 0, 0].tolist() == list(range(10))
    assert len(load_dataset(f"wds:{tmp_path}/s/*.tar")) == 10
    assert aekit.data.available_splits(f"wds:{tmp_path}/s/*.tar") == ["train"]
    with pytest.raises(AekitError, match="matches no file: check the pattern"):
        load_dataset(f"wds:{tmp_path}/s/none-*.tar")
    gone = r"shards .*part-000003.tar and 3 more are missing \(3 of 7 found\)"
    with pytest.raises(AekitError, match=gone):
        load_dataset(f"wds:{tmp_path}/s/part-{{000000..000006}}.tar")
    with pytest.raises(AekitError, match=r"shard .*part-000003.tar is missing"):
        load_dataset(f"wds:{tmp_path}/s/part-{{000000..000003}}.tar")
    with pytest.raises(AekitError, match="no shards in"):
        load_dataset(f"wds:{tmp_path}")


def test_a_corrupt_member_is_skipped_with_a_warning(tmp_path: Path, capsys) -> None:
    good = numbered(3)
    write_shard(tmp_path / "train-000000.tar", {
        "a.png": png(good[0]), "b.png": b"not a png at all", "c.png": png(good[2]),
    })  # fmt: skip
    ds = load_dataset(f"wds:{tmp_path}")
    assert ds.images[:, 0, 0, 0].tolist() == [0, 2]
    err = capsys.readouterr().err
    assert "skipped b of wds:" in err and "(1 so far)" in err and "Traceback" not in err


def test_stream_reads_each_training_image_once_per_epoch(tmp_path: Path) -> None:
    numbered_shards(tmp_path, 60, 7)  # 9 shards
    shards = open_shards(str(tmp_path / "part-*.tar"), "train", "wds:x")
    for workers in (0, 2):
        stream = Stream(shards, (1, 8, 8), workers=workers, buffer=16)
        gen = torch.Generator().manual_seed(3)
        epochs = []
        for _ in range(2):
            seen = torch.cat(list(stream.batches(8, gen)))[:, 0, 0, 0].tolist()
            assert sorted(seen) == list(range(60))
            epochs.append(seen)
        assert epochs[0] != epochs[1]  # a new order each epoch
    # ranks read disjoint shards; a carved split never streams its held-out images
    carved = Stream(open_shards(str(tmp_path / "part-*.tar"), "train", "wds:x", carve=True),
                    (1, 8, 8), workers=0)  # fmt: skip
    parts = [torch.cat(list(carved.batches(4, torch.Generator().manual_seed(0), r, 2)))
             for r in range(2)]  # fmt: skip
    got = [int(v) for p in parts for v in p[:, 0, 0, 0]]
    assert sorted(got) == [i for i in range(60) if not held_out(f"{i:06d}")]
    assert [carved.count(r, 2) for r in range(2)] == [len(p) for p in parts]


def test_training_on_shards(cli, tmp_path: Path) -> None:
    code, _, err = cli("data", "pack", "shapes", "--out", tmp_path / "w", "--shard-size", "300KB")
    assert code == 0, err
    code, out, err = cli("train", "--data", f"wds:{tmp_path / 'w'}", "--epochs", "2",
                         "--limit", "400", "--base-channels", "8", "--latent-dim", "16",
                         "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    rows = read_metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["train_loss"] < rows[0]["train_loss"]
    assert rows[0]["test_mse"] > 0
    code, out, err = cli("eval", tmp_path / "run", "--limit", "100", "--json")
    assert code == 0, err
    assert json.loads(out)["count"] == 100
    # one split only (a pattern): 1 in 10 images, by key, is held out
    code, _, err = cli("train", "--data", f"wds:{tmp_path}/w/train-*.tar", "--epochs", "1",
                       "--base-channels", "8", "--latent-dim", "16", "--classes", "circle",
                       "--out", tmp_path / "carved")  # fmt: skip
    assert code == 0, err
    cfg = aekit.training.runs.load_config(tmp_path / "carved")
    assert cfg.data.classes == "circle"
    assert read_metrics(tmp_path / "carved")[0]["images_per_s"] > 0


def test_pack_refusals(cli, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    code, _, err = cli("data", "pack", "shapes", "--out", tmp_path / "full")
    assert code == 2 and "already exists and is not empty" in err
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    code, _, err = cli("data", "pack", "shapes", "--out", tmp_path / "a", "--shard-size", "lots")
    assert code == 2 and "--shard-size 'lots' is not a size" in err
    code, _, err = cli("data", "pack", "shapes", "--out", tmp_path / "a", "--split", "dev")
    assert code == 2 and "has no 'dev' split" in err
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.*"))


@pytest.mark.parametrize(
    "change",
    [
        {"shape": [3, "x"]},
        {"shape": "abc"},
        {"shape": [3, -1, 32]},
        {"classes": 5},
        {"splits": {"train": ["train-000000.tar"]}},
        {"splits": {"train": {"shards": ["../../etc/passwd"], "counts": [1]}}},
        {"splits": {"train": {"shards": ["train-000000.tar"], "counts": []}}},
    ],
)
def test_a_damaged_info_json_is_one_line(cli, tmp_path: Path, change: dict) -> None:
    numbered_shards(tmp_path / "w", 4, 4, name="train")
    info = {"classes": ["0", "1", "2"], "shape": [1, 8, 8],
            "splits": {"train": {"shards": ["train-000000.tar"], "counts": [4]}}}  # fmt: skip
    (tmp_path / "w" / "info.json").write_text(json.dumps({**info, **change}))
    code, _, err = cli("data", "describe", f"wds:{tmp_path / 'w'}")
    assert code == 2
    assert err.startswith("aekit data describe: error: ") and err.count("\n") == 1, err
    assert "is damaged" in err and "pack the data again" in err


def test_cut_short_and_empty_shards_and_a_missing_folder(cli, tmp_path: Path) -> None:
    shard = numbered_shards(tmp_path / "w", 40, 40, name="train")[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])
    again = ("data", "pack", f"wds:{tmp_path / 'w'}", "--out", tmp_path / "again")
    for args in (("data", "describe", f"wds:{tmp_path / 'w'}"), again):
        code, _, err = cli(*args)
        assert code == 2 and "is not a readable tar shard" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "again").exists()  # nothing packed from damaged data
    shard.write_bytes(b"")
    code, _, err = cli("data", "describe", f"wds:{tmp_path / 'w'}")
    assert code == 2 and "(empty file)" in err
    code, _, err = cli("data", "describe", f"wds:{tmp_path / 'nowhere'}")
    assert code == 2 and "the folder" in err and "does not exist" in err


def test_many_bad_members_warn_a_few_lines(tmp_path: Path, capsys) -> None:
    members = {f"{i:04d}.png": b"garbage" for i in range(150)}
    members["good.png"] = png(numbered(1)[0])
    write_shard(tmp_path / "train-000000.tar", members)
    assert len(load_dataset(f"wds:{tmp_path}")) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split("(")[1].split(" so far")[0] for ln in lines] == ["1", "2", "3", "4", "5",
                                                                     "10", "100"]  # fmt: skip


def test_pack_into_an_empty_file_says_it_is_a_file(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    code, _, err = cli("data", "pack", "shapes", "--out", tmp_path / "empty")
    assert code == 2 and "is a file, not a folder" in err and err.count("\n") == 1, err
    with pytest.raises(AekitError, match="is a file, not a folder"):
        aekit.data.pack.pack("shapes", tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == b""
    assert sorted(tmp_path.iterdir()) == [tmp_path / "empty"]  # nothing else written


# the child packs with os.replace hooked: it is killed (SIGKILL, nothing cleaned up) just before
# its finished folder is moved into place, leaving its .NAME.*.part folder of shards
KILLED_PACK = """
import os, sys
sys.path.insert(0, sys.argv[1])
real = os.replace

def replace(src, dst, *args, **kwargs):
    if os.path.basename(dst) == "w":
        os.kill(os.getpid(), 9)
    real(src, dst, *args, **kwargs)

os.replace = replace
from aekit.cli import main
main(sys.argv[2:])
"""


def test_the_next_pack_removes_what_a_killed_one_left(cli, tmp_path: Path) -> None:
    import subprocess
    import sys

    from aekit.files import writing

    args = ["data", "pack", "shapes", "--split", "test", "--out", str(tmp_path / "w")]
    src = Path(__file__).resolve().parents[1] / "src"
    child = subprocess.run([sys.executable, "-c", KILLED_PACK, str(src), *args],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == -9, child.stderr
    (left,) = tmp_path.glob(".w.*.part")
    assert any(left.glob("test-*.tar"))
    live = tmp_path / ".w.live.part"  # another pack into w, still writing: not touched
    live.mkdir()
    with writing(live):
        code, _, err = cli(*args)
        assert code == 0, err
        assert sorted(p.name for p in tmp_path.glob(".w.*")) == [live.name]
    info = json.loads((tmp_path / "w" / "info.json").read_text())
    assert sum(info["splits"]["test"]["counts"]) == 1000
