#!/usr/bin/env bash
# The GPU machine's checks for anomaly detection (BENCHMARKS.md, "Anomaly detection"), one call:
#   1. in the background, a sweep of training recipes through bench/anomaly.py (the one-class
#      protocol on MNIST and the CIFAR-10 sample), several at once on the one GPU: which family,
#      code size, noise and epochs score best (the chosen recipe is then timed on the 2-core CPU);
#   2. the anomaly, web, training and photo-denoising tests with CUDA.
# Usage, in the repository root: bash bench/gpu_anomaly.sh OUT_DIR (wheels in .whl/, data in
# ../shared/data or .gpu/data, as bench/gpu_check.sh). Environment: SWEEP_S, SUITE_S.
source "$(dirname "$0")/gpu_env.sh" "${1:-gpu-out}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
nproc | tee -a "$OUT/machine.txt"
sweep() {  # sweep TAG DATASET aekit-train-options...
    local tag=$1 ds=$2
    shift 2
    OMP_NUM_THREADS=1 timeout "${SWEEP_S:-330}" $PY bench/anomaly.py --dataset "$ds" --tag "$tag" \
        --train "$* --no-compile" --out /tmp/anomaly > "$OUT/sweep-$ds-$tag.txt" 2>&1
}
sweep r32 mnist --arch resnet --latent-dim 32 --epochs 40 &
sweep r16e80 mnist --arch resnet --latent-dim 16 --epochs 80 &
sweep r64 mnist --arch resnet --latent-dim 64 --epochs 40 &
sweep vae32 mnist --arch vae --latent-dim 32 --epochs 40 &
sweep r32n50 mnist --arch resnet --latent-dim 32 --epochs 40 --noise gaussian:50 &
sweep r32 cifar10 --arch resnet --latent-dim 32 --epochs 40 &
sweep r128 cifar10 --arch resnet --latent-dim 128 --epochs 40 &
sweep r16 cifar10 --arch resnet --latent-dim 16 --epochs 40 &
sweep r32e80f cifar10 --arch resnet --latent-dim 32 --epochs 80 --augment hflip &
sweep vae32 cifar10 --arch vae --latent-dim 32 --epochs 40 &
sweep r64n25 cifar10 --arch resnet --latent-dim 64 --epochs 40 --noise gaussian:25 &
sweep conv64 cifar10 --arch conv --latent-dim 64 --epochs 40 &
echo "== tests with CUDA"
XDIST=$($PY -c "import xdist" 2>/dev/null && echo "-n 4 --dist loadfile")
timeout "${SUITE_S:-270}" $PY -m pytest -v -p no:cacheprovider $XDIST \
    tests/test_anomaly.py tests/test_web_api.py tests/test_train.py tests/test_photo_denoise.py \
    > "$OUT/pytest.txt" 2>&1
tail -n 25 "$OUT/pytest.txt"
echo "== waiting for the sweep"
wait
mkdir -p "$OUT/parts"
cp /tmp/anomaly/*.json "$OUT/" 2>/dev/null
cp /tmp/anomaly/parts-*.npz "$OUT/parts/" 2>/dev/null
grep -h '^| \*\*mean' "$OUT"/sweep-*.txt
for f in "$OUT"/sweep-*.txt; do echo "$f: $(grep -c '^{"class"' "$f") classes"; done
echo "== done"
