#!/bin/bash
# Lent-GPU session 3, call 2: worker throughput probe, teacher continued from call 1 (its refiner placed at
# parla/assets/default/refiner.safetensors for the transfer, the rest in gpu_teacher/), the refiner_mode arms,
# and the CUDA reference timing.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
python3 scripts/gpu_pack.py unpack gpu_pack14 runs/gdata || exit 1
timeout 25 python3 scripts/gpu_prof.py 12 32
mkdir -p runs/gt && cp gpu_teacher/* runs/gt/ && cp parla/assets/default/refiner.safetensors runs/gt/
T0=$(date +%s)
timeout ${TEACHER_S:-320} python3 -m parla train teacher --data runs/gdata -o runs/gt --resume --steps 100000 \
  --batch 32 --workers 14 --device cuda -q 2>&1 | tail -3
echo "teacher wall $(( $(date +%s) - T0 )) s"; tail -2 runs/gt/log.csv; grep '"step"' runs/gt/state.json
cp runs/gt/refiner.safetensors runs/gt/discriminator.safetensors $OUT/
tar cf $OUT/teacher_meta.tar -C runs/gt state.json config.json log.csv loss.png $(cd runs/gt && ls samples/*.png | tail -1)
git checkout -q parla/assets/default/refiner.safetensors 2>/dev/null || echo "no git: cuda timing uses the carried teacher"
timeout 40 python3 benchmarks/cuda_reference.py --device cuda --out $OUT/cuda_reference.json 2>&1 | tail -8
timeout ${RM_S:-150} python3 benchmarks/refiner_mode.py --data runs/gdata --phase train --device cuda --workers 14 \
  --steps ${RM_STEPS:-1000} --batch 16 --out runs/rm 2>&1 | tail -4
tar cf $OUT/refiner_mode.tar -C runs/rm $(cd runs/rm && ls train_times.json */refiner.safetensors */state.json */config.json */log.csv)
ls -la $OUT
