#!/usr/bin/env bash
# Train the model to ship on a lent GPU in one device call (issue 11): fresh seed-15 training scans
# rendered on the machine's cores, then `jobs/train.py --config configs/ship_gpu.yaml` on Ray Train
# (one GPU worker, no MLflow), cut off in time for its checkpoints to come back under $OUT.
# Prepare here first (both in .git/info/exclude; the call carries about 58 MB with the tree):
#   NO_MLFLOW=1 ../shared/tools/device-wheels .whl          # Ray, lasio: the GPU image lacks them
#   rm -rf .las && cp -r ../shared/data/las .las             # the LAS curves the generator draws
# then, through the device tool: run `bash jobs/gpu_ship.sh` with carry [".whl", ".las"], timeout_s 600.
# Dry run on a CPU: NO_WHEELS=1 PATH=$PWD/.venv/bin:$PATH N=12 EPOCHS=1 \
#   SET="scale.use_gpu=false scale.cpus_per_worker=1 train.physical_batch=2" bash jobs/gpu_ship.sh
# Knobs (environment): N scans to render (default 1000), EPOCHS (default from the config),
# BUDGET_S, the seconds this script may take in all (default 570).
# Back under $OUT: setup.log, synth.log, train.log, and the checkpoints Ray kept (the best 4 by
# validation) as epoch_NNNN/checkpoint.pt (weights, optimiser state, the epochs' metrics). Then, here:
# `veernet evaluate --set train-style --checkpoint <files_at>/epoch_NNNN`.
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/veernet-gpu-ship}
N=${N:-1000}
BUDGET_S=${BUDGET_S:-570}
mkdir -p "$OUT"
if [ -z "${NO_WHEELS:-}" ]; then  # NO_WHEELS=1: a dry run here, on the project's .venv first in PATH
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > "$OUT/setup.log" 2>&1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c "import torch, ray; print(torch.__version__, ray.__version__, torch.cuda.get_device_name(0))"
  python3 -m veernet_ray.trace; } >> "$OUT/setup.log" 2>&1
LAS=.las; [ -d "$LAS" ] || LAS=../shared/data/las
echo "== synth: $N seed scans, seed 15 ($(( $(date +%s) - T0 )) s in)" | tee -a "$OUT/setup.log"
python3 jobs/synth.py runs/data/ship-gpu --preset seed --width 640,1536 --n "$N" --seed 15 --las-dir "$LAS" \
  --split 0.96,0.04,0 --workers "$(nproc)" --quiet > "$OUT/synth.log" 2>&1 || { echo "synth failed"; tail "$OUT/synth.log"; }
LEFT=$(( BUDGET_S - ($(date +%s) - T0) - 25 ))
echo "== train: ${LEFT} s left for it" | tee -a "$OUT/setup.log"
# SET: more config overrides, e.g. SET="scale.use_gpu=false" for a dry run on a CPU
SETS=(${SET:-}); [ -n "${EPOCHS:-}" ] && SETS+=("train.epochs=$EPOCHS")
EXTRA=(); [ ${#SETS[@]} -gt 0 ] && EXTRA=(--set "${SETS[@]}")
timeout "$LEFT" python3 jobs/train.py --config configs/ship_gpu.yaml "${EXTRA[@]}" > "$OUT/train.log" 2>&1
echo "   train rc $? after $(( $(date +%s) - T0 )) s" | tee -a "$OUT/setup.log"
for d in runs/ray/ship-gpu/epoch_*; do  # each as $OUT/epoch_NNNN/checkpoint.pt (the device tool brings back 8 files)
  [ -f "$d/checkpoint.pt" ] && mkdir -p "$OUT/$(basename "$d")" && cp "$d/checkpoint.pt" "$OUT/$(basename "$d")/"
done
ls -la "$OUT" | tee -a "$OUT/setup.log"
grep -E "epoch [0-9]+/|val_|done" "$OUT/train.log" | tail -20
