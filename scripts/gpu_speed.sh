#!/usr/bin/env bash
# The GPU speed figures of docs/benchmarks.md in one short call (3 to 8 minutes on an H100/H200;
# each of the four parts is capped at 2 minutes):
# this project's training iteration against the reference-style one (eager fp32 NCHW, per-
# parameter Adam, host reads per step), paper widths, eager and compiled (CUDA graphs), then the
# GPU tests if pytest is there. Everything goes to $OUT/speed.txt (small).
#   OUT=/tmp/out bash scripts/gpu_speed.sh            # on the GPU machine
#   OUT=/tmp/out PY=.venv/bin/python DEVICE=cpu ITERS=1 SCALE=8 bash scripts/gpu_speed.sh   # rehearsal
set -uo pipefail
PY=${PY:-python3}
OUT=${OUT:?set OUT to the folder that comes back}
DEVICE=${DEVICE:-cuda}
ITERS=${ITERS:-30}
SCALE=${SCALE:-1}
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$OUT"
log="$OUT/speed.txt"
bench() {  # STAGE BATCH COMPILE
  timeout 120 "$PY" benchmarks/bench_vs_reference.py --device "$DEVICE" --stage "$1" --batch "$2" \
    --compile "$3" --iters "$ITERS" --warmup 5 --scale "$SCALE" >> "$log" 2>&1 \
    || echo "bench stage $1 compile $3: failed or timed out" >> "$log"
}
{ command -v nvidia-smi >/dev/null && nvidia-smi -L; date; } >> "$log" 2>&1
bench 1 64 off
bench 1 64 reduce-overhead
bench 2 16 off
if "$PY" -c "import pytest" 2>/dev/null && [ "$DEVICE" = cuda ]; then
  timeout 120 "$PY" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider >> "$log" 2>&1 \
    || echo "gpu tests: failures or timeout (above)" >> "$log"
else
  echo "gpu tests: pytest not installed here or not on CUDA; skipped" >> "$log"
fi
tail -c 20000 "$log" > "$log.tmp" && mv "$log.tmp" "$log"
