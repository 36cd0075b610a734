# Sourced by the GPU scripts (bench/gpu_check.sh, bench/gpu_denoise.sh) with OUT_DIR as $1: the
# output folder, $PY, aekit's source on PYTHONPATH, wheels in .whl/ (what an offline machine
# lacks) installed into /tmp/site, and real data from ../shared/data, else .gpu/data (a copy).
set -u
OUT=${1:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ ! -d ../shared/data ] && [ -d .gpu/data ]; then
    mkdir -p ../shared && cp -r .gpu/data ../shared/data
fi
