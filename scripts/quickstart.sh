#!/usr/bin/env bash
# The pipeline end to end at CPU scale, in about five minutes on 2 cores: generate 4x4
# Sudoku data, train an MDM and an AR model of the same size, evaluate both with the
# verifier. Everything lands in ./dvar-quickstart/. (The paper's path-planning demo,
# `dvar demo`, is planned; see the README.)
set -euo pipefail
out=${1:-dvar-quickstart}
rm -rf "$out/runs" "$out/eval"  # a re-run starts over
mkdir -p "$out"
dvar generate sudoku --size 4 --givens 8:12 --n 3000 --seed 0 --out "$out/data/train.jsonl"
dvar generate sudoku --size 4 --givens 8:12 --n 300 --seed 1 --unique \
  --exclude "$out/data/train.jsonl" --out "$out/data/test.jsonl"
for objective in mdm ar; do
  dvar train task=sudoku objective=$objective model=mini seed=0 \
    data.train="$out/data/train.jsonl" data.valid_size=64 out_dir="$out/runs/$objective" \
    train.max_steps=600 train.batch_size=32 train.lr=3e-3 train.log_every=50 train.eval_size=32
  dvar eval "$out/runs/$objective" --data "$out/data/test.jsonl" --out "$out/eval/$objective"
done
echo "done: $out/ (data/, runs/{mdm,ar}/, eval/{mdm,ar}/metrics.json)"
