#!/usr/bin/env bash
# One prepared GPU benchmark (under 8 minutes on one H100), results under $OUT:
#   1. training throughput, dvar vs the Hugging Face GPT-2 stack, tiny and base, bf16,
#      lengths 164 (sudoku) and 64 (countdown 4), MDM and AR  -> throughput.{txt,json}
#   2. time to accuracy: tiny MDM trained on 100k generated sudoku, evaluated on 1k
#      held-out puzzles at intervals (topk, T=20)             -> tta/{eval_log.jsonl,summary.json}
# Needs a Python with a CUDA torch and `transformers` (pip install -e '.[bench]').
#
#   OUT=bench-out bash benchmarks/gpu.sh
#   DVAR_BENCH_SMALL=1 OUT=/tmp/gpu-smoke bash benchmarks/gpu.sh   # CPU smoke test (8 min, 2 busy cores)
# Optional: BENCH_COMPILE=1 adds base/164/MDM with torch.compile; TTA_SECONDS (default 150)
# is the training-time budget of part 2 (~1 min of evaluations come on top); PYTHON picks
# the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
if [[ "${DVAR_BENCH_SMALL:-0}" == 1 ]]; then
  # Reduced sizes so that the whole script runs on a CPU in minutes.
  sizes="micro"; batch=8; steps=1; rounds=2; n_train=2000; n_test=100; model=micro
  train_batch=32; eval_every=25; max_steps=2000; time_limit=60; compile=false
else
  sizes="tiny base"; batch=64; steps=10; rounds=4; n_train=100000; n_test=1000; model=tiny
  train_batch=256; eval_every=250; max_steps=10000; time_limit=${TTA_SECONDS:-150}; compile=false
fi
start=$(date +%s)
{ nvidia-smi || true; "$PY" -c "import torch; print('torch', torch.__version__)" || true
  "$PY" -c "import transformers; print('transformers', transformers.__version__)" || true; } \
  > "$OUT/environment.txt" 2>&1

# 1. Throughput (both stacks alternate in rounds; ratio = dvar / hf tokens/s). A failure
#    here (e.g. no transformers on the machine) must not cost part 2.
if ! "$PY" benchmarks/train_throughput.py --sizes $sizes --lengths 164 64 --batch $batch \
  --dtype bf16 --objectives mdm ar --steps $steps --rounds $rounds \
  --json "$OUT/throughput.json" 2>&1 | sed '/loss_type/d' | tee "$OUT/throughput.txt"; then
  echo "throughput benchmark failed (see $OUT/throughput.txt)"
fi
if [[ "${BENCH_COMPILE:-0}" == 1 ]]; then  # optional: torch.compile both (about a minute more)
  "$PY" benchmarks/train_throughput.py --sizes base --lengths 164 --batch $batch --dtype bf16 \
    --objectives mdm --steps $steps --rounds $rounds --warmup 3 --compile \
    --json "$OUT/throughput_compiled.json" 2>&1 | sed '/loss_type/d' | tee "$OUT/throughput_compiled.txt" || true
fi
echo "throughput done after $(( $(date +%s) - start )) s"

# 2. Time to accuracy on sudoku. Test puzzles are kept out of the training data.
data="$OUT/data"
"$PY" -m dvar generate sudoku --n $n_train --seed 0 --out "$data/train.jsonl" > "$OUT/generate.txt"
"$PY" -m dvar generate sudoku --n $n_test --seed 1 --unique --exclude "$data/train.jsonl" \
  --out "$data/test.jsonl" >> "$OUT/generate.txt"
echo "data done after $(( $(date +%s) - start )) s"
rm -rf "$OUT/tta"
"$PY" -m dvar train task=sudoku objective=mdm model=$model seed=0 out_dir="$OUT/tta" \
  data.train="$data/train.jsonl" data.valid="$data/test.jsonl" data.cutoff=164 \
  train.batch_size=$train_batch train.lr=1e-3 train.max_steps=$max_steps \
  train.time_limit=$time_limit train.eval_every=$eval_every train.eval_size=$n_test \
  train.log_every=50 train.compile=$compile decode.batch_size=500 \
  arch.positions=learned+rope 2>&1 | tr '\r' '\n' | sed '/^train mdm/d' | tee "$OUT/tta.txt"
"$PY" - "$OUT/tta/eval_log.jsonl" "$OUT/tta/summary.json" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
summary = {"evals": [{k: r.get(k) for k in ("step", "train_seconds", "val_accuracy", "val_loss")}
                     for r in rows]}
for goal in (0.95, 0.99):
    hit = next((r for r in rows if r.get("val_accuracy", 0) >= goal), None)
    summary[f"seconds_to_{int(goal * 100)}"] = hit and hit["train_seconds"]
    summary[f"step_to_{int(goal * 100)}"] = hit and hit["step"]
print(json.dumps(summary, indent=1))
json.dump(summary, open(sys.argv[2], "w"), indent=1)
EOF
echo "gpu.sh done after $(( $(date +%s) - start )) s; results in $OUT/"
