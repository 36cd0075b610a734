#!/usr/bin/env bash
# The GPU machine's checks for photo denoising, in one call (BENCHMARKS.md, "Photo denoising"):
#   1. in the background, on the machine's CPU cores: CBM3D (colour) and BM3D (gray) on Kodak24
#      at sigma 15, 25, 50 (bench/denoise.py --methods cbm3d|bm3d --jobs N): their PSNR and SSIM;
#      their speed is measured on the 2-core CPU, not here;
#   2. the photo-denoising, unet, model-contract, training and web tests with CUDA;
#   3. patch training on the GPU: `aekit train --patch-size 64` on Kodak24 for one minute.
# Usage, in the repository root: bash bench/gpu_denoise.sh OUT_DIR  (wheels in .whl/, data in
# ../shared/data or .gpu/data, as bench/gpu_check.sh). Environment: JOBS, SUITE_S.
source "$(dirname "$0")/gpu_env.sh" "${1:-gpu-out}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
nproc | tee -a "$OUT/machine.txt"
K=../shared/data/photos/Kodak24
(OMP_NUM_THREADS=1 $PY bench/denoise.py --photos $K --methods cbm3d --jobs "${JOBS:-12}" \
    --out "$OUT/cbm3d.json" > "$OUT/cbm3d.txt" 2>&1
 OMP_NUM_THREADS=1 $PY bench/denoise.py --photos $K --gray --methods bm3d --jobs "${JOBS:-12}" \
    --out "$OUT/bm3d_gray.json" > "$OUT/bm3d.txt" 2>&1) &
CLASSIC=$!
echo "== tests with CUDA"
timeout ${SUITE_S:-240} $PY -m pytest -v -p no:cacheprovider -n 4 --dist loadfile \
    tests/test_photo_denoise.py tests/test_unet.py tests/test_model_contract.py \
    tests/test_train.py tests/test_web_api.py > "$OUT/pytest.txt" 2>&1
tail -n 25 "$OUT/pytest.txt"
echo "== patch training on the GPU"
timeout 120 $PY -m aekit train --data folder:$K --arch unet --noise gaussian:25 --patch-size 64 \
    --time-limit 1 --out /tmp/gpu-photo 2>&1 | tail -n 3 | tee "$OUT/train.txt"
cp /tmp/gpu-photo/metrics.jsonl "$OUT/gpu_train_metrics.jsonl" 2>/dev/null
echo "== waiting for (C)BM3D"
wait $CLASSIC
cat "$OUT/cbm3d.txt" "$OUT/bm3d.txt"
echo "== done"
