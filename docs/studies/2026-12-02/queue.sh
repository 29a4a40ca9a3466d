#!/usr/bin/env bash
# Runs after the 4x4 study: path demo with controls (3 and 4 nodes), then 9x9 Sudoku.
set -x
cd /work/main
export PATH=/work/main/.venv/bin:$PATH
while pgrep -f "order_controls.py --size 4" >/dev/null; do sleep 10; done
for s in 0 1 2; do
  /usr/bin/time -f "wall %e s" dvar demo --controls --seed $s --out /work/studies/path3/seed$s > /work/studies/path3-seed$s.log 2>&1
done
for s in 0 1 2; do
  /usr/bin/time -f "wall %e s" dvar demo --controls --nodes 4 --id-count 8 --steps 12000 --seed $s --out /work/studies/path4/seed$s > /work/studies/path4-seed$s.log 2>&1
done
python scripts/order_controls.py --size 9 --givens 31:36 --steps 500 --model mini --train-size 20000 --test-size 200 --out /work/studies/sudoku9 > /work/studies/sudoku9.log 2>&1
