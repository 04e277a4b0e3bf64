#!/bin/bash
# Continue the teacher on a lent GPU machine (the device tool), then optionally time the CUDA reference and train
# the refiner_mode arms. Carry gpu_pack14/ (python scripts/gpu_pack.py pack runs/data gpu_pack14 --crf 14) and
# gpu_teacher/ (the run folder minus optim.pt and the refiner, which travels as parla/assets/default/refiner.safetensors).
# Results land in $OUT. Session 3 ran it three times (docs/training.md, run t-c):
#   1: WORKERS=12 TEACHER_S=300 RM_S=200 RM_STEPS=1500   (forked workers then: 0.57 s/step)
#   2: WORKERS=14 TEACHER_S=320 PROBE=1 CUDA_REF=1 RM_S=150 RM_STEPS=1000
#   3: WORKERS=14 TEACHER_S=330 RM_S=140 RM_STEPS=2000  (spawned single-thread workers: 14.5 steps/s)
# Session 12 (the tracked tree had grown to 44 MiB, so the data travels at CRF 18, 18 MB, 40.9 dB; the run folder
# is seeded from the bundled teacher by `python scripts/gpu_pack.py seed parla/assets/default gpu_teacher`, which
# has no discriminator: the resume starts a fresh one):
#   PACK=gpu_pack18 TEACHER_S=420 RM_S=0
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
W=${WORKERS:-14}
python3 scripts/gpu_pack.py unpack "${PACK:-gpu_pack14}" runs/gdata || exit 1
[ "${PROBE:-0}" = 1 ] && timeout 25 python3 scripts/gpu_prof.py "$W" 32
mkdir -p runs/gt && cp gpu_teacher/* runs/gt/ && cp parla/assets/default/refiner.safetensors runs/gt/
T0=$(date +%s)
timeout "${TEACHER_S:-330}" python3 -m parla train teacher --data runs/gdata -o runs/gt --resume --steps 100000 \
  --batch 32 --workers "$W" --device cuda -q 2>&1 | tail -3
echo "teacher wall $(( $(date +%s) - T0 )) s"; tail -2 runs/gt/log.csv; grep '"step"' runs/gt/state.json
cp runs/gt/refiner.safetensors runs/gt/discriminator.safetensors "$OUT"/
tar cf "$OUT"/teacher_meta.tar -C runs/gt state.json config.json log.csv loss.png $(cd runs/gt && ls samples/*.png | tail -3)
[ "${CUDA_REF:-0}" = 1 ] && timeout 40 python3 benchmarks/cuda_reference.py --device cuda --out "$OUT"/cuda_reference.json
[ "${RM_S:-140}" = 0 ] && { ls -la "$OUT"; exit 0; }
timeout "${RM_S:-140}" python3 benchmarks/refiner_mode.py --data runs/gdata --phase train --device cuda --workers "$W" \
  --steps "${RM_STEPS:-2000}" --batch 16 --out runs/rm 2>&1 | tail -4
tar cf "$OUT"/refiner_mode.tar -C runs/rm $(cd runs/rm && ls train_times.json */refiner.safetensors */state.json */config.json */log.csv)
ls -la "$OUT"
