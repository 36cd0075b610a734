#!/usr/bin/env bash
# The GPU checks in one call, for a GPU machine lent for minutes (BENCHMARKS.md, "GPU"):
#   1. the machine and versions;
#   2. the whole test suite with CUDA available (CUDA-only tests included; the browser test skips
#      where playwright is missing);
#   3. bench/train_speed.py: the tutorial's loop vs `aekit train` on a 50,000-image CIFAR-sized
#      set built from the real CIFAR-10 sample (tiled; 1,000 other images held out), every model
#      family at batch 1024 (and the vae compiled);
#   4. bench/search.py: exact search (torch, on the GPU) vs faiss flat (SEARCH_SIZES, 1M);
#   5. bench/roofline.py on the GPU (the loop against its raw step, per family) and
#      bench/bf16_inference.py (eval, embed, denoise: bf16 against float32) on a short unet run.
# Usage, in the repository root: bash bench/gpu_check.sh OUT_DIR
# Offline machines: wheels in .whl/ (aekit's dependencies the machine lacks) are installed into
# /tmp/site first; real data is read from ../shared/data, else from .gpu/data (a copy of it).
# Each step has its own time limit, so a slow one does not lose the others' results.
# Environment: VARIANTS (train_speed's --variants), REPEATS (its --repeats), SEARCH_SIZES
# (bench/search.py's --sizes; "none" skips the search step), SEARCH_METHODS (its --methods),
# SUITE_S, TRAIN_S, SEARCH_S, ROOF_S, INFER_S (each step's time limit in seconds).
source "$(dirname "$0")/gpu_env.sh" "${1:-gpu-out}"

echo "== 1. machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY - <<'EOF' | tee "$OUT/machine.txt"
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(), "bf16", torch.cuda.is_bf16_supported())
try:
    from torch.utils._triton import has_triton
    print("triton", has_triton())
except ImportError as e:
    print("triton: no", e)
EOF

echo "== 2. test suite with CUDA"
XDIST=$($PY -c "import xdist" 2>/dev/null && echo "-n 8 --dist loadfile")
timeout ${SUITE_S:-200} $PY -m pytest -q -p no:cacheprovider $XDIST --maxfail=30 --durations=12 2>&1 \
    | tee "$OUT/pytest.txt" | tail -n 60

echo "== 3. training speed"
$PY - <<'EOF'
import numpy as np
x = np.load("../shared/data/cifar10-sample.npz")["x_train"]
train, test = x[:-1000], x[-1000:]
reps = -(-50_000 // len(train))
np.savez("/tmp/cifar50k.npz", x_train=np.concatenate([train] * reps)[:50_000], x_test=test)
print("cifar50k: 50000 train (tiled from", len(train), "real images), 1000 held out")
EOF
B=aekit:batch_size=1024:lr=0.004
FAMILIES="$B:compile=false,$B:arch=resnet:base_channels=48:compile=false,\
$B:arch=unet:base_channels=32:compile=false,$B:arch=vae:compile=false,$B:arch=vae,\
$B:compile_mode=reduce-overhead"
timeout ${TRAIN_S:-250} $PY bench/train_speed.py --data npz:/tmp/cifar50k.npz --epochs 2 --repeats "${REPEATS:-1}" \
    --variants "${VARIANTS:-seed,$FAMILIES}" \
    --out "$OUT/train_speed_gpu.json" 2>&1 | tee "$OUT/train_speed.txt" | grep -v "^\s*$" | tail -n 40

echo "== 4. search"
[ "${SEARCH_SIZES:-}" = none ] || timeout ${SEARCH_S:-90} $PY bench/search.py --sizes "${SEARCH_SIZES:-1m}" --methods "${SEARCH_METHODS:-exact,flat}" --repeats 3 \
    2>&1 | tail -n 20
cp bench/results/search.json "$OUT/search_gpu.json" 2>/dev/null

echo "== 5. the loop against its raw step; bf16 in eval, embed and denoise"
timeout ${ROOF_S:-150} $PY bench/roofline.py --device cuda --repeats 2 --limit 8192 \
    --out "$OUT/roofline_gpu.json" 2>&1 | grep "^repeat"
timeout ${INFER_S:-120} bash -c "$PY -m aekit train /tmp/bf16-unet --data shapes --arch unet \
    --noise gaussian:25 --epochs 2 --limit 4096 >/dev/null && $PY bench/bf16_inference.py \
    /tmp/bf16-unet --photos ../shared/data/photos/Kodak24 --out $OUT/bf16_inference_gpu.json" \
    2>&1 | tail -n 40
echo "== done"
