#!/usr/bin/env bash
# Backward-decoding share of each 4-node MDM: the demo's decoder (topk, one token per step) and noise 0.
export PATH=/work/main/.venv/bin:$PATH OMP_NUM_THREADS=1
s=$1; d=/work/studies/path4/seed$s
dvar analyze $d/runs/mdm --data $d/data/test.jsonl --steps 5 --out $d/analysis-topk > $d/analysis-topk.log 2>&1
dvar analyze $d/runs/mdm --data $d/data/test.jsonl --steps 5 --decoder-arg noise=0 --out $d/analysis-noise0 > $d/analysis-noise0.log 2>&1
grep "backward" $d/analysis-topk.log $d/analysis-noise0.log
