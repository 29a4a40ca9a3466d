#!/usr/bin/env bash
cd /work/main
while pgrep -f "data.answer_order=random out_dir=/work/studies/sudoku9/seed1" >/dev/null; do sleep 5; done
r=/work/studies/sudoku9/seed1/runs/ar-random
OMP_NUM_THREADS=1 .venv/bin/dvar eval $r --data /work/studies/sudoku9/seed1/data/test.jsonl --out $r/eval/greedy > /work/studies/sudoku9/seed1/eval-ar-random.log 2>&1
.venv/bin/python -c "
import sys; sys.argv=['x']
sys.path.insert(0,'scripts')
from pathlib import Path
import order_controls as oc
print(oc.summarize(Path('/work/studies/sudoku9'), [0,1]))" > /work/studies/sudoku9/results.md
