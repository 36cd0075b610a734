"""anomalib's own Draem on the Magnetic Tile Defects folders, as a peer of ``bench/inspection.py``.

anomalib needs torchvision, which aekit's CPU torch cannot import: run this in a separate venv,
never aekit's (see BENCHMARKS.md for the one used)::

    python -m venv /tmp/anomalib-venv
    /tmp/anomalib-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 anomalib==2.7.0
    /tmp/anomalib-venv/bin/python bench/peer_anomalib.py --time-limit 30 \\
        --out bench/results/inspection_peer_anomalib.json

Its Draem as anomalib ships it (images resized to 256x256, its own Perlin anomalies and
augmentations), trained for ``--time-limit`` minutes of wall clock on the CPU, then tested on
``test/`` (good vs every defect): image AUROC, pixel AUROC and PRO (AUPRO to 30% FPR) from
anomalib's own metrics, on its 256x256 maps and masks. DRAEM's textures come from the DTD set,
which cannot be downloaded here: ``--textures`` names the folder used instead."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "anomaly" / "magnetic-tile"
TEXTURES = HERE.parent.parent / "shared" / "data" / "photos" / "CBSD432"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA, help="a folder in MVTec AD's layout")
    p.add_argument("--textures", type=Path, default=TEXTURES, help="DRAEM's anomaly textures")
    p.add_argument("--time-limit", type=float, default=30.0, help="training minutes")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/anomalib-peer"))
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    ns = p.parse_args()

    import torch
    from anomalib.data import Folder
    from anomalib.engine import Engine
    from anomalib.metrics import AUPRO, AUROC, Evaluator
    from anomalib.models import Draem

    torch.manual_seed(0)
    kinds = sorted(d.name for d in (ns.data / "test").iterdir() if d.is_dir() and d.name != "good")
    datamodule = Folder(
        name=ns.data.name,
        root=ns.data,
        normal_dir="train/good",
        abnormal_dir=[f"test/{k}" for k in kinds],
        normal_test_dir="test/good",
        mask_dir=[f"ground_truth/{k}" for k in kinds],
        extensions=(".jpg", ".png"),
        train_batch_size=8,  # DRAEM's; anomalib's default of 32 at 256x256 ran out of 24 GB
        eval_batch_size=8,
        num_workers=2,
        val_split_mode="same_as_test",  # the whole test split is scored (validation is off)
        seed=0,
    )
    evaluator = Evaluator(test_metrics=[
        AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
        AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", fpr_limit=0.3, strict=False),
    ])  # fmt: skip
    model = Draem(dtd_dir=ns.textures, evaluator=evaluator)
    minutes = int(ns.time_limit)
    seconds = round((ns.time_limit - minutes) * 60)
    engine = Engine(accelerator="cpu", devices=1, max_epochs=-1, default_root_dir=ns.workdir,
                    max_time=f"00:00:{minutes:02d}:{seconds:02d}", logger=False,
                    limit_val_batches=0, num_sanity_val_steps=0)  # fmt: skip
    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    trained = (time.perf_counter() - start) / 60
    start = time.perf_counter()
    results = engine.test(model=model, datamodule=datamodule)[0]
    tested = time.perf_counter() - start
    count = len(datamodule.test_data)
    out = {
        "peer": "anomalib Draem", "data": str(ns.data), "textures": str(ns.textures),
        "minutes": trained, "epochs": engine.trainer.current_epoch,
        "image_auroc": 100 * results["image_AUROC"], "pixel_auroc": 100 * results["pixel_AUROC"],
        "pro": 100 * results["pixel_AUPRO"], "images_per_second": count / tested,
        "torch": torch.__version__,
    }  # fmt: skip
    print(json.dumps(out, indent=1))
    if ns.out is not None:
        ns.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
