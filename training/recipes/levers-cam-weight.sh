#!/usr/bin/env bash
# The CAM penalty's weight: 3 against levers-debias.sh's 1, same recipe and seeds.
set -euo pipefail
BASE="intensity=equalize,render=1,crop=content,shenzhen=all"
.venv/bin/python -m training levers --manifest ../shared/data/cxr/manifest.csv \
  --lungs var/lungs.csv --segmenter classifier/models/default.safetensors --arch mobilenet_v2 \
  --epochs 5 --input-size 112 --seeds "${SEEDS:-0,1,2}" \
  --json classifier/models/evaluation/levers-cam-weight.json \
  --setting "equalize+shenzhen+cam-lungs-3:$BASE,cam_lungs=3"
