#!/usr/bin/env bash
# The one prepared device run of issue #35: on a CUDA machine, the GPU tests, then the engine bench of each task on
# paper-random (the paper's architectures, random weights), eager first and then each GPU lever alone, one process
# per task; one JSON per (task, lever) under OUT, the device named in each.
#
#   bench/gpu_run.sh OUT [PEAK_TFLOPS]     # on the GPU machine (e.g. OUT=bench/results/cuda, 989 for an H100)
#   bench/gpu_run.sh --dry OUT             # the same on the CPU with tiny models and 2 steps (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [[ "${1:-}" == "--dry" ]]; then
  DRY=1; shift
else
  DRY=0
fi
OUT=${1:?usage: bench/gpu_run.sh [--dry] OUT [PEAK_TFLOPS]}
PEAK=${2:-}
mkdir -p "$OUT"
if [[ $DRY == 1 ]]; then
  ARGS=(--profile tiny --device cpu --trials 2 --steps 3 --threads 1)
  LEVERS=(eager gpu-nms bf16-weights)
else
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use --dry')"
  make test-gpu 2>&1 | tee "$OUT/test_gpu.log"
  ARGS=(--profile paper-random --device cuda --trials 8 ${PEAK:+--peak-tflops "$PEAK"})
  LEVERS=(eager attention-flash attention-efficient gpu-nms bf16-weights compile cuda-graphs)
fi
for task in classification detection generation; do
  "$PY" bench/engine_speed.py --task "$task" "${ARGS[@]}" --levers "${LEVERS[@]}" --out-dir "$OUT"
done
ls "$OUT"
