#!/usr/bin/env bash
# Every GPU measurement of docs/performance.md in two device calls of under 10 minutes each:
#
#   bash benchmarks/gpu_session.sh steps   # sync check, steps against their floor, vs MultiVae
#   bash benchmarks/gpu_session.sh grid    # the paired-MNIST paper grid, 12 cells at once
#   bash benchmarks/gpu_session.sh compile # the steps with torch.compile'd networks, two modes
#
# Expects MNIST's raw files in .data/MNIST/raw and, for MultiVae, its wheels and the ones the
# GPU image lacks in .whl (both git-ignored: name them in the device call's `carry`). Writes
# each benchmark's output to $OUT (default /tmp/out). DEVICE=cpu runs the same on a CPU, with
# SMALL=1 for a quick dry run of the script itself.
set -euo pipefail
stage=${1:?stage: steps, grid or compile}
device=${DEVICE:-cuda}
out=${OUT:-/tmp/out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 DMVAE_DATA=${DMVAE_DATA:-$PWD/.data}
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >/dev/null
  export PYTHONPATH=/tmp/site
fi
small=${SMALL:-0}
steps=$([ "$small" = 1 ] && echo 1 || echo 20)
window=$([ "$small" = 1 ] && echo 30 || echo 240)
warmup=$([ "$small" = 1 ] && echo 8 || echo 60)
cd benchmarks
case $stage in
  steps)
    if [ "$device" != cpu ]; then
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
      python3 gpu_sync_check.py | tee "$out/sync_check.txt"
    fi
    python3 bench_models.py --device "$device" --steps "$steps" --K 30 \
      --models dmvae mvae mmvae mopoe mmvaeplus | tee "$out/bench_models.txt"
    python3 vs_multivae.py --device "$device" --steps "$steps" --block 5 | tee "$out/vs_multivae.txt"
    ;;
  grid)
    python3 grid_rate.py --device "$device" --window "$window" --warmup "$warmup" \
      --out /tmp/grid-rate | tee "$out/grid_rate.txt"
    ;;
  compile)
    for mode in default reduce-overhead; do
      python3 bench_models.py --device "$device" --steps "$steps" --models dmvae mvae \
        --compile "$mode" | tee "$out/bench_models_compile_$mode.txt"
    done
    ;;
  *)
    echo "unknown stage $stage: steps, grid or compile" >&2
    exit 2
    ;;
esac
