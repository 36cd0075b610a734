#!/usr/bin/env bash
# The torchrun checks for a GPU machine (issue 13), in one call:
#   1. one GPU: torchrun --nproc_per_node 1 trains (NCCL is not needed for one process, but the
#      launch, the device cuda:LOCAL_RANK and the run folder are the real path), resumes, embeds;
#   2. every GPU of the machine (when there are 2 or more): the same with NCCL;
#   3. tests/test_distributed.py and tests/test_data_wds.py with CUDA visible (the tests pin
#      --device cpu for their gloo runs, so they check that a GPU machine does not change them).
# Usage, in the repository root: bash bench/gpu_torchrun.sh OUT_DIR
source "$(dirname "$0")/gpu_env.sh" "${1:-gpu-out}"
TR="$PY -m torch.distributed.run --standalone"
N=$($PY -c "import torch; print(torch.cuda.device_count())")
echo "== GPUs: $N" | tee "$OUT/torchrun.txt"
for procs in 1 $([ "$N" -ge 2 ] && echo "$N"); do
    RUN="$OUT/ddp-$procs"
    echo "== $procs process(es)" | tee -a "$OUT/torchrun.txt"
    timeout 300 $TR --nproc_per_node "$procs" -m aekit train --data shapes --epochs 2 \
        --batch-size 256 --out "$RUN" 2>&1 | grep -v "^W" | tee -a "$OUT/torchrun.txt"
    timeout 300 $TR --nproc_per_node "$procs" -m aekit train --resume --epochs 3 --out "$RUN" \
        2>&1 | grep -v "^W" | tee -a "$OUT/torchrun.txt"
    timeout 300 $TR --nproc_per_node "$procs" -m aekit embed "$RUN" --out "$OUT/emb-$procs" \
        2>&1 | grep -v "^W" | tee -a "$OUT/torchrun.txt"
    cp "$RUN/metrics.jsonl" "$OUT/metrics-$procs.jsonl"
done
echo "== tests" | tee -a "$OUT/torchrun.txt"
timeout 600 $PY -m pytest -q tests/test_distributed.py tests/test_data_wds.py 2>&1 \
    | tail -15 | tee -a "$OUT/torchrun.txt"
