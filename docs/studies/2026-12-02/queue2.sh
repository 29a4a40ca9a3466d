#!/usr/bin/env bash
# path demo with controls, 4 nodes, after the 3-node seed 2 run finishes
set -x
cd /work/main
export PATH=/work/main/.venv/bin:$PATH
while [ ! -f /work/studies/path3/seed2/results.md ]; do sleep 10; done
for s in 0 1 2; do
  /usr/bin/time -f "wall %e s" dvar demo --controls --nodes 4 --id-count 8 --steps 12000 --seed $s --out /work/studies/path4/seed$s > /work/studies/path4-seed$s.log 2>&1
done
