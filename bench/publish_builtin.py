"""Make a finished run one of aekit's built-in models (``builtin:NAME``): its weights, sha256,
model card and config go into ``src/aekit/models/weights/`` (``aekit.training.publish``).

    python bench/publish_builtin.py RUN --name unet-color-blind --default-for 3 \
        --summary "blind unet for gaussian noise 0-50, trained 60 min on CBSD432 (2 CPU cores)"
"""

from __future__ import annotations

import argparse

from aekit.training.publish import publish_builtin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--name", required=True)
    ap.add_argument("--summary", required=True, help="one line: what it is, its training")
    ap.add_argument("--default-for", type=int, choices=(1, 3), default=None,
                    help="the default denoiser of gray (1) or colour (3) photos")  # fmt: skip
    ap.add_argument("--default-for-jpeg", type=int, choices=(1, 3), default=None,
                    help="the default denoiser of gray (1) or colour (3) JPEG files")  # fmt: skip
    ns = ap.parse_args()
    entry = publish_builtin(ns.run, ns.name, ns.summary, ns.default_for,
                            default_for_jpeg=ns.default_for_jpeg)  # fmt: skip
    print(f"published {entry.describe()}\n  {entry.weights} sha256 {entry.sha256}")


if __name__ == "__main__":
    main()
