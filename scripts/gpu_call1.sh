#!/bin/bash
# Lent-GPU session 3, call 1: continue the teacher from the bundled step-2000 weights on CUDA, then train the two
# arms of benchmarks/refiner_mode.py. Inputs: gpu_pack14/ (scripts/gpu_pack.py pack runs/data gpu_pack14 --crf 14)
# and gpu_teacher/ (runs/teacher without optim.pt and the refiner, which is the bundled one).
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
python3 scripts/gpu_pack.py unpack gpu_pack14 runs/gdata || exit 1
mkdir -p runs/gt && cp gpu_teacher/* runs/gt/ && cp parla/assets/default/refiner.safetensors runs/gt/
T0=$(date +%s)
timeout ${TEACHER_S:-300} python3 -m parla train teacher --data runs/gdata -o runs/gt --resume --steps 100000 \
  --batch 32 --workers 12 --device cuda -q 2>&1 | tail -3
echo "teacher wall $(( $(date +%s) - T0 )) s"; tail -2 runs/gt/log.csv; grep '"step"' runs/gt/state.json
cp runs/gt/refiner.safetensors runs/gt/discriminator.safetensors $OUT/
tar cf $OUT/teacher_meta.tar -C runs/gt state.json config.json log.csv loss.png $(cd runs/gt && ls samples/*.png | tail -1)
timeout ${RM_S:-200} python3 benchmarks/refiner_mode.py --data runs/gdata --phase train --device cuda --workers 12 \
  --steps ${RM_STEPS:-1500} --batch 16 --out runs/rm 2>&1 | tail -4
tar cf $OUT/refiner_mode.tar -C runs/rm train_times.json $(cd runs/rm && ls */refiner.safetensors */state.json */config.json */log.csv)
ls -la $OUT
