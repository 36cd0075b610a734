"""Which parts ``combined`` should add up: mean one-class AUROC of each sum of standardised
parts, recomputed from the per-image scores ``bench/anomaly.py`` saves (``parts-*.npz``).

    python bench/anomaly_combos.py bench/results/anomaly        # every dataset and recipe there
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from aekit.anomaly.methods import PARTS, spread_stats, standardise


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("folder", type=Path)
    ns = p.parse_args()
    combos = [c for n in (1, 2, 3) for c in itertools.combinations(PARTS, n)]
    table: dict[tuple[str, str], dict[tuple[str, ...], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for path in sorted(ns.folder.glob("parts-*.npz")):
        dataset, tag, c = re.fullmatch(r"parts-(\w+)-(.+)-(\d+)\.npz", path.name).groups()
        z = np.load(path)
        anomalous = z["labels"] != int(c)
        z_scores = {k: standardise(z[k], spread_stats(z[f"heldout_{k}"])) for k in PARTS}
        for combo in combos:
            score = sum(z_scores[k] for k in combo)
            table[dataset, tag][combo].append(100 * roc_auc_score(anomalous, score))
    names = [" + ".join(c) for c in combos]
    print("| dataset | recipe | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for (dataset, tag), row in sorted(table.items()):
        cells = [f"{np.mean(row[c]):.1f}" for c in combos]
        print(f"| {dataset} | {tag} ({len(row[combos[0]])} classes) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
