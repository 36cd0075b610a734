"""Hostile input to run folders, configs and command-line numbers (issue 9's hostile pass).

Each case is one that once ended in a traceback, a silent overwrite or a wrong answer; each must
now be one line on stderr with a non-zero exit, and leave the run folder as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import aekit
from aekit.training.runs import load_checkpoint, read_metrics

TINY = ["--base-channels", "4", "--latent-dim", "8", "--batch-size", "32", "--limit", "64"]
TINY_API = {"base_channels": 4, "latent_dim": 8, "batch_size": 32, "limit": 64}


def _one_line(code: int, err: str, *words: str) -> None:
    assert code != 0, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def run2(tmp_path: Path) -> Path:
    """A finished 2-epoch tiny run of its own (tests change it)."""
    return aekit.train(tmp_path / "run", data="shapes", epochs=2, progress=False, **TINY_API)


@pytest.fixture
def copy_of(tiny_run: Path, tmp_path: Path):
    def make(name: str = "copy") -> Path:
        return Path(shutil.copytree(tiny_run, tmp_path / name))

    return make


# 2. a folder that holds a trained model but no checkpoint is not overwritten
def test_train_refuses_a_folder_holding_weights_without_checkpoint(cli, copy_of) -> None:
    run = copy_of()
    (run / "checkpoint.pt").unlink()
    before = _snapshot(run)
    code, _, err = cli("train", "--data", "shapes", "--out", run, "--epochs", "1", *TINY)
    _one_line(code, err, str(run), "trained model")
    assert _snapshot(run) == before


# 3. an empty output path never means the current folder
@pytest.mark.parametrize("args", [
    ["train", "--data", "shapes", "--out", "", "--epochs", "1"],
    ["embed", "{run}", "--out", ""],
    ["reconstruct", "{run}", "{png}", "--out", ""],
    ["denoise", "{run}", "{png}", "--out", ""],
    ["data", "preview", "shapes", "--out", ""],
    ["search", "{store}", "--index", "0", "--out", ""],
    ["demo", "--out", ""],
    ["train", "--data", "shapes", "--out", "  ", "--epochs", "1"],
])  # fmt: skip
def test_an_empty_out_is_refused(cli, tiny_run, tmp_path, monkeypatch, args) -> None:
    from PIL import Image

    png = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(png)
    store = tmp_path / "store"
    assert cli("embed", tiny_run, "--data", "shapes", "--split", "test", "--out", store)[0] == 0
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = cli(*(a.format(run=tiny_run, png=png, store=store) for a in args), *(
        TINY if args[0] == "train" else []))  # fmt: skip
    _one_line(code, err, "--out")
    assert list(work.iterdir()) == []


def test_the_api_refuses_an_empty_out(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(aekit.AekitError, match="out"):
        aekit.train("", data="shapes", epochs=1, **TINY_API)
    assert list(tmp_path.iterdir()) == []


# 4. the checkpoint is the truth: metric lines beyond it are dropped and the run continues
def test_resume_after_kill_between_last_metrics_line_and_checkpoint(cli, run2: Path) -> None:
    cfg = json.loads((run2 / "config.json").read_text())
    cfg["train"]["epochs"] = 3  # as if killed in the last of 3 epochs, after its metrics line
    (run2 / "config.json").write_text(json.dumps(cfg))
    rows = read_metrics(run2)
    with open(run2 / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**rows[-1], "epoch": 3, "test_mse": 9.0}) + "\n")
    code, _, err = cli("train", "--out", run2, "--resume")
    assert code == 0, err
    assert [r["epoch"] for r in read_metrics(run2)] == [1, 2, 3]
    assert read_metrics(run2)[-1]["test_mse"] != 9.0  # the real epoch 3, not the stale line
    assert load_checkpoint(run2)["epoch"] == 3
    code, _, err = cli("train", "--out", run2, "--resume")
    _one_line(code, err, "already finished 3 epochs")


# 5. temp files a killed writer left are cleaned when the run is next opened for writing
def test_stale_temp_files_are_removed_on_resume(cli, run2: Path) -> None:
    stale = [run2 / ".checkpoint.pt.x1y2z3.tmp", run2 / "samples" / ".epoch_002.png.abc.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    keep = run2 / "notes.tmp"  # not one of ours: left alone
    keep.write_text("mine")
    code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "3")
    assert code == 0, err
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "mine"


# 11. numbers out of any sensible range are refused by the configs, before any work
@pytest.mark.parametrize("flag,value,word", [
    ("--seed", str(10**23), "--seed"),
    ("--seed", "-1", "--seed"),
    ("--latent-dim", "1000000000", "--latent-dim"),
    ("--base-channels", "100000", "--base-channels"),
    ("--image-size", "100000", "--image-size"),
    ("--batch-size", "10000000", "--batch-size"),
    ("--epochs", "1000000000", "--epochs"),
    ("--lr", "inf", "--lr"),
    ("--lr", "nan", "--lr"),
])  # fmt: skip
def test_out_of_range_numbers_are_refused(cli, tmp_path, flag, value, word) -> None:
    args = ["train", "--data", "shapes", "--out", tmp_path / "r", "--epochs", "1", *TINY]
    code, _, err = cli(*args, flag, value)
    _one_line(code, err, word)
    assert not (tmp_path / "r").exists()


def test_out_of_range_numbers_are_refused_by_the_api_too() -> None:
    with pytest.raises(aekit.AekitError, match="--latent-dim"):
        aekit.make_config("shapes", latent_dim=10**9)
    with pytest.raises(aekit.AekitError, match="--seed"):
        aekit.make_config("shapes", seed=10**23)


# 12. a damaged config.json is named as such by every command that reads it
DAMAGED_CONFIGS = {
    "random bytes": bytes(range(256)) * 4,
    "not utf-8": b'{"data": "\xff\xfe"}',
    "not an object": b"[1, 2]",
    "source is a number": None,  # built from the real config below
    "huge latent_dim": None,
    "missing part": b'{"data": {}, "model": {}}',
}


def _damage(run: Path, kind: str) -> None:
    raw = DAMAGED_CONFIGS[kind]
    if raw is None:
        cfg = json.loads((run / "config.json").read_text())
        if kind == "source is a number":
            cfg["data"]["source"] = 5
        else:
            cfg["model"]["latent_dim"] = 10**12
        raw = json.dumps(cfg).encode()
    (run / "config.json").write_bytes(raw)


@pytest.mark.parametrize("kind", list(DAMAGED_CONFIGS))
@pytest.mark.parametrize("command", ["eval", "embed", "resume", "reconstruct", "serve"])
def test_a_damaged_config_is_named(cli, copy_of, tmp_path, kind, command) -> None:
    run = copy_of()
    _damage(run, kind)
    png = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(png)
    args = {
        "eval": ["eval", run],
        "embed": ["embed", run, "--out", tmp_path / "store"],
        "resume": ["train", "--out", run, "--resume", "--epochs", "2"],
        "reconstruct": ["reconstruct", run, png, "--out", tmp_path / "r.png"],
        # an address nothing can bind: were the config read as valid, serve fails, not hangs
        "serve": ["serve", run, "--host", "256.256.256.256"],
    }[command]
    code, _, err = cli(*args)
    _one_line(code, err, f"{run / 'config.json'} is damaged")
    assert not (tmp_path / "store").exists() and not (tmp_path / "r.png").exists()


def test_a_damaged_config_is_an_aekit_error_in_the_api(copy_of) -> None:
    run = copy_of()
    _damage(run, "source is a number")
    with pytest.raises(aekit.AekitError, match="is damaged"):
        aekit.load(run)


# 13. a checkpoint that is not this run's, or not a checkpoint at all
def _checkpoint_cases(run: Path, other: Path) -> dict[str, object]:
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    return {
        "another run's": torch.load(other / "checkpoint.pt", weights_only=True),
        "keys missing": {"model": ckpt["model"]},
        "epoch a string": {**ckpt, "epoch": "2"},
        "epoch beyond the config": {**ckpt, "epoch": 7},
        "not a dict": [1, 2, 3],
        "rng state damaged": {**ckpt, "cpu_rng": torch.zeros(3, dtype=torch.uint8)},
    }


@pytest.mark.parametrize("case", [
    "another run's", "keys missing", "epoch a string", "epoch beyond the config", "not a dict",
    "rng state damaged",
])  # fmt: skip
def test_resume_refuses_a_checkpoint_that_does_not_fit(cli, run2, tmp_path, case) -> None:
    other = aekit.train(tmp_path / "other", data="shapes", epochs=1, progress=False,
                        **{**TINY_API, "latent_dim": 12})  # fmt: skip
    torch.save(_checkpoint_cases(run2, other)[case], run2 / "checkpoint.pt")
    before = _snapshot(run2)
    code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "3")
    _one_line(code, err, str(run2 / "checkpoint.pt"))
    assert _snapshot(run2) == before


# 14. damaged metrics lines
@pytest.mark.parametrize("line", [b"[1, 2]", b"\xff\xfe\xfd", b'{"a": 1}', b"5", b'{"epoch": "x"}'])
def test_resume_with_a_damaged_metrics_line(cli, run2, line) -> None:
    path = run2 / "metrics.jsonl"
    rows = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(rows[0] + line + b"\n" + rows[1])
    before = _snapshot(run2)
    code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "3")
    _one_line(code, err, str(path), "line 2")
    assert _snapshot(run2) == before


def test_a_torn_last_metrics_line_is_still_dropped(cli, run2) -> None:
    path = run2 / "metrics.jsonl"
    path.write_bytes(path.read_bytes() + b'{"epoch": 3, "train_lo')  # killed mid-write
    assert [r["epoch"] for r in read_metrics(run2)] == [1, 2]
    code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "3")
    assert code == 0, err
    assert [r["epoch"] for r in read_metrics(run2)] == [1, 2, 3]


# 21. limits below 1
@pytest.mark.parametrize("value", ["0", "-5", "-1000"])
def test_eval_limit_below_one_is_refused(cli, tiny_run, value) -> None:
    code, out, err = cli("eval", tiny_run, "--limit", value, "--json")
    _one_line(code, err, "--limit")
    assert out == ""


def test_the_api_refuses_a_limit_below_one(tiny_run) -> None:
    with pytest.raises(aekit.AekitError, match="limit"):
        aekit.evaluate(tiny_run, limit=0)


# 22. ports out of range
@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_refuses_a_port_out_of_range(cli, tiny_run, port) -> None:
    code, _, err = cli("serve", tiny_run, "--port", port)
    _one_line(code, err, "--port")


# weights that hold NaN (a damaged or hand-made file) are refused on load, not served as NaN
def test_weights_holding_nan_are_refused(cli, copy_of) -> None:
    from safetensors.torch import load_file, save_file

    run = copy_of()
    weights = load_file(run / "model.safetensors")
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.ndim == 4)
    weights[name][0] = float("nan")
    save_file(weights, run / "model.safetensors")
    code, out, err = cli("eval", run, "--json")
    _one_line(code, err, "NaN")
    assert out == ""


# the hostile re-check: every command's numbers are checked, not only train's
@pytest.mark.parametrize("args,word", [
    (["denoise", "{run}", "x.png", "--out", "{tmp}/d", "--seed", str(10**23)], "--seed"),
    (["search-eval", "{tmp}/emb", "--seed", "-1"], "--seed"),
    (["search-eval", "{tmp}/emb", "--seed", str(2**64)], "--seed"),
    (["eval", "{run}", "--image-size", "0"], "--image-size"),
    (["eval", "{run}", "--image-size", "100000"], "--image-size"),
    (["embed", "{run}", "--out", "{tmp}/e", "--image-size", "0"], "--image-size"),
    (["embed", "{run}", "--out", "{tmp}/e", "--image-size", "100000"], "--image-size"),
    (["data", "describe", "shapes", "--image-size", "100000"], "--image-size"),
    (["data", "preview", "shapes", "--out", "{tmp}/p.png", "--image-size", "5"], "--image-size"),
    (["embed", "{run}", "--out", "{tmp}/e", "--batch-size", "0"], "--batch-size"),
])  # fmt: skip
def test_every_command_checks_its_numbers(cli, tiny_run, tmp_path, args, word) -> None:
    args = [a.format(run=tiny_run, tmp=tmp_path) for a in args]
    code, out, err = cli(*args)
    _one_line(code, err, word)
    assert out == "" and list(tmp_path.iterdir()) == []


def test_the_loader_checks_the_image_size() -> None:
    for size in (0, -3, 100_000, 2.5, True):
        with pytest.raises(aekit.AekitError, match="image_size"):
            aekit.load_dataset("shapes", "test", image_size=size)


@pytest.mark.parametrize("spec,word", [
    ("gaussian:1e38", "sigma"),
    ("gaussian:1001", "sigma"),
    ("gaussian:-0.1", "sigma"),
    ("saltpepper:1.5", "fraction"),
    ("mask:-1", "fraction"),
])  # fmt: skip
def test_noise_amounts_out_of_range_are_refused(cli, tiny_run, tmp_path, spec, word) -> None:
    from PIL import Image

    Image.new("RGB", (32, 32), (90, 120, 200)).save(tmp_path / "x.png")
    code, out_, err = cli("denoise", tiny_run, tmp_path / "x.png", "--out", tmp_path / "d",
                         "--add-noise", spec)  # fmt: skip
    _one_line(code, err, "--add-noise", word)
    assert out_ == ""
    assert not (tmp_path / "d").exists()
    code, _, err = cli("train", "--data", "shapes", "--out", tmp_path / "r", "--noise", spec, *TINY)
    _one_line(code, err, "--noise", word)
    assert not (tmp_path / "r").exists()


# --- kill -9 after the last checkpoint, and between a checkpoint and its weights -------------

# The child trains 2 epochs with os.replace hooked: it kills itself (SIGKILL) just before the
# chosen file is moved into place for the N-th time.
KILL_CHILD = """
import os, sys
sys.path.insert(0, sys.argv[1])
name, nth = sys.argv[2], int(sys.argv[3])
real, seen = os.replace, []

def replace(src, dst, *args, **kwargs):
    if os.path.basename(dst) == name:
        seen.append(dst)
        if len(seen) == nth:
            os.kill(os.getpid(), 9)
    real(src, dst, *args, **kwargs)

os.replace = replace
from aekit.cli import main
main(sys.argv[4:])
"""
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize("name,nth,done", [
    ("model.safetensors", 1, 1),  # the first checkpoint is written, its weights are not
    ("model.safetensors", 2, 2),  # the last checkpoint is written, its weights are not
    ("loss.png", 1, 2),  # all is written but the loss curves
])  # fmt: skip
def test_a_run_killed_after_a_checkpoint_is_resumed_to_the_end(cli, tmp_path, name, nth,
                                                               done) -> None:  # fmt: skip
    import subprocess
    import sys

    run = tmp_path / "run"
    args = ["train", "--data", "shapes", "--out", str(run), "--epochs", "2", *TINY]
    child = subprocess.run([sys.executable, "-c", KILL_CHILD, str(SRC), name, str(nth), *args],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == -9, child.stderr
    assert load_checkpoint(run)["epoch"] == done and not (run / "loss.png").exists()
    code, _, err = cli("train", "--data", "shapes", "--out", run, "--epochs", "2", *TINY)
    _one_line(code, err, "--resume")  # never a dead end: the folder says how to go on
    code, _, err = cli("train", "--out", run, "--resume")
    assert code == 0, err
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    assert aekit.training.runs.weights_epoch(run) == 2 and (run / "loss.png").is_file()
    weights = aekit.load(run).state_dict()
    ckpt = load_checkpoint(run)["model"]
    assert all(torch.equal(weights[k], ckpt[k]) for k in ckpt)  # the weights are the checkpoint's
    code, _, err = cli("train", "--out", run, "--resume")  # now it is finished
    _one_line(code, err, "already finished 2 epochs")


# --- a run begun on a GPU machine continues on a CPU one -------------------------------------


def test_resume_may_move_a_run_to_another_device(cli, run2) -> None:
    config = json.loads((run2 / "config.json").read_text())
    config["train"]["device"] = "cuda"  # as a run started with --device cuda
    (run2 / "config.json").write_text(json.dumps(config))
    ckpt = load_checkpoint(run2)
    ckpt["device_rng"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA (Philox) generator state
    torch.save(ckpt, run2 / "checkpoint.pt")
    if not torch.cuda.is_available():
        code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "3")
        _one_line(code, err, "--device cuda", "cpu")
    code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "3", "--device", "cpu")
    assert code == 0, err
    assert load_checkpoint(run2)["epoch"] == 3
    assert json.loads((run2 / "config.json").read_text())["train"]["device"] == "cpu"
    code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "4", "--lr", "0.5")
    _one_line(code, err, "only --epochs, --time-limit and how it runs")


# --- one writer per run folder and per store ----------------------------------------------------

HOLD_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from aekit.files import folder_lock
with folder_lock(Path(sys.argv[2]), "a test"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held():
    """``held(folder)``: another aekit process holds ``folder`` as its writer until the test
    ends."""
    import subprocess
    import sys

    children = []

    def hold(folder: Path) -> None:
        args = [sys.executable, "-c", HOLD_CHILD, str(SRC), str(folder)]
        child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline().strip() == "held"

    yield hold
    for child in children:
        child.communicate("", timeout=30)


def test_a_second_writer_of_a_run_is_refused(cli, run2, held) -> None:
    before = _snapshot(run2)
    held(run2)
    code, _, err = cli("train", "--out", run2, "--resume", "--epochs", "3")
    _one_line(code, err, "another aekit process")
    assert _snapshot(run2) == before


def test_a_second_writer_of_a_store_is_refused(cli, tiny_run, tmp_path, held) -> None:
    emb = tmp_path / "emb"
    code, _, err = cli("embed", tiny_run, "--split", "test", "--out", emb)
    assert code == 0, err
    before = _snapshot(emb)
    held(emb)
    for args in (["embed", tiny_run, "--split", "val", "--out", emb, "--append"],
                 ["index", emb, "--kind", "flat"]):  # fmt: skip
        code, _, err = cli(*args)
        _one_line(code, err, "another aekit process")
    assert _snapshot(emb) == before
    code, _, err = cli("search", emb, "--index", "0")  # readers are never locked out
    assert code == 0, err


def test_a_failed_command_leaves_no_empty_folder_behind(cli, tiny_run, tmp_path) -> None:
    code, _, err = cli("embed", tiny_run, "--data", "shapes", "--split", "nope", "--out",
                       tmp_path / "emb")  # fmt: skip
    _one_line(code, err, "nope")
    code, _, err = cli("train", "--data", "shapes", "--train-split", "nope", "--out",
                       tmp_path / "run", *TINY)  # fmt: skip
    _one_line(code, err, "nope")
    assert list(tmp_path.iterdir()) == []


# --- outputs that cannot be written are refused before any work -------------------------------


def test_denoise_into_a_folder_named_like_its_output_is_refused(cli, tiny_run, tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 32), (90, 120, 200)).save(tmp_path / "x.png")
    (tmp_path / "out" / "x_denoised.png").mkdir(parents=True)
    code, out, err = cli("denoise", tiny_run, tmp_path / "x.png", "--out", tmp_path / "out")
    _one_line(code, err, "x_denoised.png is a folder")
    assert ".tmp" not in err and out == ""


@pytest.mark.parametrize("command", ["embed", "train"])
def test_an_out_through_a_dangling_link_is_refused(cli, tiny_run, tmp_path, command) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "gone" / "deep")
    args = {
        "embed": ["embed", tiny_run, "--out", tmp_path / "link"],
        "train": ["train", "--data", "shapes", "--out", tmp_path / "link" / "run", *TINY],
    }
    code, _, err = cli(*args[command])  # fmt: skip
    _one_line(code, err, "does not exist")
    assert "File exists" not in err and not (tmp_path / "gone").exists()


def test_serve_on_a_port_in_use_is_one_line(cli, tiny_run) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, out, err = cli("serve", tiny_run, "--port", taken.getsockname()[1])
    _one_line(code, err, "already in use", "--port")
    assert out == ""


def test_serve_on_an_unknown_host_is_one_line(cli, tiny_run) -> None:
    code, out, err = cli("serve", tiny_run, "--host", "999.1.1.1")
    _one_line(code, err, "--host 999.1.1.1")
    assert out == ""


def test_a_run_stopped_before_its_first_save_says_to_train_again(cli, tmp_path) -> None:
    (tmp_path / "run").mkdir()
    code, _, err = cli("train", "--out", tmp_path / "run", "--resume")
    _one_line(code, err, "config.json is missing", "without --resume")


def test_a_run_without_weights_but_with_a_checkpoint_says_to_resume(cli, copy_of) -> None:
    run = copy_of()
    (run / "model.safetensors").unlink()
    code, _, err = cli("eval", run)
    _one_line(code, err, f"aekit train --out {run} --resume")
    code, _, err = cli("train", "--out", run, "--resume")
    assert code == 0, err
    code, _, err = cli("eval", run)
    assert code == 0, err
