#!/usr/bin/env bash
# Issue 13's GPU measurements in one device call: everything a lent H100/H200 session needs to
# measure, writing its logs under $OUT (the device tool brings them back). Prepare here first:
#   NO_MLFLOW=1 ../shared/tools/device-wheels .whl && echo /.whl/ >> .git/info/exclude   # 43 MB
# then, through the device tool (carry .whl), in one call (a session has 15 minutes of device time):
#   bash bench/gpu_session.sh all        # about 9 minutes: profiles, training regimes,
#                                        # inference over 256 seed scans, the compiled grid
# (2026-11-28: the first call with a warm-up start used about 5.3 minutes of the session's 15 for
# 4.8 minutes of run; a second call right after found the machine warm)
# or, by part (one call may run at most 600 s):
#   bash bench/gpu_session.sh train_profile  # about 6 minutes: "all" without inference
#   bash bench/gpu_session.sh train      # about 7 minutes: memory at the widest log, training regimes
#   bash bench/gpu_session.sh infer      # about 5 minutes: inference over 256 seed scans
# OUT is set by the device tool.
# Each step has its own time limit, so one slow step cannot eat the session; every step's output
# lands in $OUT/<step>.log whatever happens to the next.
set -uo pipefail
PART=${1:-all}
OUT=${OUT:-/tmp/veernet-gpu}
mkdir -p "$OUT"
# setup's output goes to one file: the device tool brings back at most 8 files from $OUT
SETUP="$OUT/setup.log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  > "$SETUP" 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{ nvidia-smi; git log -1 --format='commit %H %s' 2>/dev/null; } >> "$SETUP" 2>&1
python3 -c "import torch, ray, numba; print(torch.__version__, ray.__version__, numba.__version__, torch.cuda.get_device_name(0))" \
  >> "$SETUP" 2>&1
# the tracer's Numba kernels compile once into trace/__pycache__ (~10 s), not in every write task at once
python3 -m veernet_ray.trace >> "$SETUP" 2>&1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee -a "$OUT/steps.log"
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "   rc $? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/steps.log"
}
if [ "$PART" = all ]; then
  # the whole issue-13 measurement in one call (under 10 minutes; 7 log files), most valuable first, so a slow
  # step leaves the earlier ones' figures: each regime's row is printed as it finishes.
  # H200 runs so far: bench/gpu-logs/ and bench/RESULTS.md; what they asked next: bench/NOTES.md.
  # 2026-11-28 measured the widest log's memory and native against sliced GroupNorm; open: the grid
  # in NCHW (no GroupNorm copies), inference with pinned, cropped copies back, the compile's length
  step profile 50 python3 bench/gpu_profile.py --top 12   # where a step's and the actor's time goes
  step train 180 python3 bench/train_throughput.py --preset seed --n 128 --naive-n 48 --batch 16 \
    --effective-batch 16 --epochs 3 --regimes naive,grid,grid_nchw
  label=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  step infer_grid 120 python3 bench/infer_throughput.py --n 256 --preset seed --batch-size 16 --naive-n 24 \
    --batching grid --device-label "$label"
  # what each scan's region (GroupNorm and attention over the scan, not the cell) costs on the GPU
  step valid_region 30 python3 bench/valid_region.py --device cuda --batch 8 --rounds 5
  # 2026-11-28: the compiled regime's warm-up pass had not ended after 121 s (8 cells)
  step train_compile ${COMPILE_S:-150} python3 bench/train_throughput.py --preset seed --n 64 --batch 16 \
    --effective-batch 16 --epochs 3 --regimes compiled,grid
elif [ "$PART" = train_profile ]; then
  # everything in "all" but inference (a second call in a session whose first measured it)
  step profile 50 python3 bench/gpu_profile.py --top 12
  step train 230 python3 bench/train_throughput.py --preset seed --n 128 --naive-n 48 --batch 16 \
    --effective-batch 16 --epochs 3 --regimes widest,naive,grid,grid_sliced,grid_nchw
  step valid_region 30 python3 bench/valid_region.py --device cuda --batch 8 --rounds 5
  step train_compile ${COMPILE_S:-100} python3 bench/train_throughput.py --preset seed --n 64 --batch 16 \
    --effective-batch 16 --epochs 3 --regimes compiled,grid
elif [ "$PART" = train ]; then
  # memory at the widest log (640 x 12,800), batches 1/4/8/16, checkpointing off/on; then naive,
  # buckets and grid over seed-size logs (warm-up pass reported apart)
  step train 200 python3 bench/train_throughput.py --preset seed --n 128 --batch 16 --effective-batch 16 \
    --epochs 3 --regimes naive,grid,widest,buckets
  # the same with the grid compiled, one static-shape graph per cell (compile time = its warm-up pass)
  step train_compile 220 python3 bench/train_throughput.py --preset seed --n 64 --batch 16 --effective-batch 16 \
    --epochs 2 --regimes grid,compiled
else
  # inference end to end, 256 seed scans: the naive loop (timed on 64) against the Ray Data pipeline
  label=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  step infer_grid 170 python3 bench/infer_throughput.py --n 256 --preset seed --batch-size 16 --naive-n 64 \
    --batching grid --device-label "$label"
  step infer_buckets 130 python3 bench/infer_throughput.py --n 256 --preset seed --batch-size 16 --naive-n 64 \
    --batching buckets --device-label "$label"
fi
cat "$OUT/steps.log"
