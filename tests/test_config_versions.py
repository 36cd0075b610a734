"""config.json has a format version; runs saved by earlier formats load, evaluate and resume.

``tests/data/run_v1`` is a run folder written by aekit before the version key (format 1: gaussian
noise in the model's value scale, ``gaussian:0.2`` on the conv model's [-1, 1]); it was trained
for 1 epoch with ``--noise gaussian:0.2 --base-channels 4 --latent-dim 8 --limit 64``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import aekit
from aekit.training.runs import CONFIG_VERSION, load_checkpoint, load_config, migrate

OLD_RUN = Path(__file__).parent / "data" / "run_v1"


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(OLD_RUN, tmp_path / "run"))


def test_a_format_1_run_loads_with_its_noise_in_pixel_units(old_run: Path) -> None:
    assert "version" not in json.loads((old_run / "config.json").read_text())
    cfg = load_config(old_run)
    assert cfg.train.noise == "gaussian:25.5"  # 0.2 on [-1, 1] is sigma 25.5 of 255
    assert cfg.model.arch == "conv" and cfg.model.latent_dim == 8
    model = aekit.load(old_run)
    assert model.config == cfg.model


def test_a_format_1_run_evaluates_and_resumes(cli, old_run: Path) -> None:
    code, out, err = cli("eval", old_run, "--json")
    assert code == 0, err
    # sigma 25.5 of 255 is an MSE of 0.01 before clipping: about 20 dB (clipping helps a little)
    assert 19.5 < json.loads(out)["noisy_psnr"] < 21.5
    code, _, err = cli("train", "--out", old_run, "--resume", "--epochs", "2")
    assert code == 0, err
    saved = json.loads((old_run / "config.json").read_text())
    assert saved["version"] == CONFIG_VERSION and saved["train"]["noise"] == "gaussian:25.5"
    assert load_checkpoint(old_run)["epoch"] == 2
    assert load_config(old_run).train.noise == "gaussian:25.5"  # not converted twice


def test_a_keras_format_1_level_is_converted_by_its_own_range() -> None:
    raw = json.loads((OLD_RUN / "config.json").read_text())
    raw["model"]["arch"] = "keras"
    assert migrate(raw)["train"]["noise"] == "gaussian:51.0"  # 0.2 on [0, 1]
    raw["train"]["noise"] = "mask:0.3"  # fractions of pixels need no conversion
    assert migrate(raw)["train"]["noise"] == "mask:0.3"


@pytest.mark.parametrize("version,words", [(99, "newer aekit"), ("2", "not a config format"),
                                           (0, "not a config format")])  # fmt: skip
def test_an_unknown_format_is_named(cli, old_run: Path, version, words) -> None:
    raw = json.loads((old_run / "config.json").read_text())
    (old_run / "config.json").write_text(json.dumps({"version": version, **raw}))
    code, _, err = cli("eval", old_run)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "config.json is damaged" in err and words in err
