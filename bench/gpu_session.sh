#!/usr/bin/env bash
# Issue 13's GPU measurements in one device call: everything a lent H100/H200 session needs to
# measure, writing its logs under $OUT (the device tool brings them back). Prepare here first:
#   ../shared/tools/device-wheels .whl && echo .whl >> .git/info/exclude
# then, through the device tool (carry .whl; about 8-9 minutes on an H200):
#   bash bench/gpu_session.sh            # OUT is set by the device tool
# Each step has its own time limit, so one slow step cannot eat the session; every step's output
# lands in $OUT/<step>.log whatever happens to the next.
set -uo pipefail
OUT=${OUT:-/tmp/veernet-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  > "$OUT/install.log" 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi > "$OUT/nvidia-smi.log" 2>&1
python3 -c "import torch, ray; print(torch.__version__, ray.__version__, torch.cuda.get_device_name(0))" > "$OUT/versions.log" 2>&1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee -a "$OUT/steps.log"
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "   rc $? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/steps.log"
}
# 1. memory at the widest log (640 x 12,800), batches 1/4/8/16, checkpointing off/on; then the
#    training regimes over seed-size logs: naive, buckets, grid, grid compiled (the compile's time
#    is the grid regime's warm-up pass)
step train 270 python3 bench/train_throughput.py --preset seed --n 128 --batch 16 --effective-batch 16 \
  --epochs 3 --compile --widest
# 2. LiveBytes' CPU-side count of the same model, for the planner's correction (no GPU needed; quick)
step memory_count 60 python3 bench/activation_memory.py
# 3. inference end to end, 256 seed scans, naive loop against the Ray Data pipeline, grid and buckets
step infer_grid 150 python3 bench/infer_throughput.py --n 256 --preset seed --batch-size 16 --naive-n 64 --batching grid \
  --decode-cpus 0.5 --write-cpus 0.5 --device-label "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
step infer_buckets 120 python3 bench/infer_throughput.py --n 256 --preset seed --batch-size 16 --naive-n 64 --batching buckets \
  --decode-cpus 0.5 --write-cpus 0.5 --device-label "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
cat "$OUT/steps.log"
