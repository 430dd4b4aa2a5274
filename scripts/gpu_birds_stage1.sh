#!/usr/bin/env bash
# Birds Stage-I on one lent GPU: three runs side by side, each stopped by a training-time budget,
# then what comes back goes to $OUT (the device tool returns at most 8 files of 16 MiB):
#   NAME.g.safetensors.part-aa/-ab   the model-best generator in fp16 (no text encoder: 20 MB)
#   logs.tar.gz                      every run's stats.jsonl, log, metric file and last grid
#
# Prepare on this machine (docs/training.md, "On a GPU"), then carry .gpu:
#   stackgan data pack DATA --out .gpu/birds.pack --sizes 64,76 --format jpeg
#   stackgan text-encoder train --data DATA --out .gpu/birds-text-b16k.safetensors --buckets 16384
# On the GPU machine (the device tool runs this from the repository root):
#   bash scripts/gpu_birds_stage1.sh
# Rehearsal on a CPU, tiny and short:
#   PY=.venv/bin/python OUT=/tmp/out MIN=0.2 DEVICE=cpu \
#     EXTRA="--set model.ngf=16 --set model.ndf=16 --set train.tick_iters=5" bash scripts/gpu_birds_stage1.sh
# Back here: python scripts/gpu_collect.py --from OUT_FOLDER --encoder .gpu/birds-text-b16k.safetensors
set -euo pipefail
PY=${PY:-python3}
OUT=${OUT:?set OUT to the folder that comes back}
MIN=${MIN:-7}            # training minutes per run (the three share the GPU)
DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-}
CFG=configs/v1_birds_stage1_gpu.yaml
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p runs "$OUT"
command -v nvidia-smi >/dev/null && nvidia-smi -L || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

run() {  # NAME, then --set overrides
  local name=$1; shift
  # shellcheck disable=SC2086
  "$PY" -m stackgan train "$CFG" --set train.device="$DEVICE" --set train.time_budget_min="$MIN" \
    $EXTRA "$@" --run-dir "runs/$name" --overwrite > "runs/$name.log" 2>&1
}
run birds-m3 --set loss.match_weight=3 &
run birds-m10 --set loss.match_weight=10 &
run birds-m0 --set loss.match_weight=0 &
status=0
for job in $(jobs -p); do wait "$job" || status=1; done

for name in birds-m3 birds-m10 birds-m0; do
  dir=runs/$name
  src=$dir/model-best.safetensors
  [ -f "$src" ] || src=$dir/model.safetensors
  [ -f "$src" ] || { echo "$name: no export (see its log)"; tail -5 "runs/$name.log"; continue; }
  "$PY" - "$src" "$OUT/$name.g.safetensors" <<'PY'
import json, sys
from safetensors.torch import save_file
from stackgan.checkpoint import TEXT_PREFIX, export_training_config, load_export, model_spec
state, cfg = load_export(sys.argv[1])
tensors = {k: v.half().contiguous() for k, v in state.items() if not k.startswith(TEXT_PREFIX)}
meta = {"model_spec": json.dumps(model_spec(cfg)),
        "training_config": export_training_config(sys.argv[1]) or ""}
save_file(tensors, sys.argv[2], metadata=meta)
PY
  split -b 15m "$OUT/$name.g.safetensors" "$OUT/$name.g.safetensors.part-"
  rm "$OUT/$name.g.safetensors"
  cp "$(ls "$dir"/samples/grid-*.png | tail -1)" "$dir/last-grid.png" 2>/dev/null || true
done
tar czf "$OUT/logs.tar.gz" runs/*.log runs/*/stats.jsonl runs/*/metric-*.jsonl runs/*/last-grid.png \
  runs/*/config.yaml 2>/dev/null || true
ls -la "$OUT"
exit $status
