#!/usr/bin/env bash
# The last levers of issue 14, on the lever table's cheap recipe and seeds (see the card):
# the Grad-CAM-outside-the-lungs penalty and the source adversary, each on top of the shipped
# recipe (equalize + render + content crop + Shenzhen with tuberculosis partial), the third
# seed of source balance, and EMA again with its batch-norm statistics recomputed. From the
# repository root, after the manifests of training/README.md exist. Writes classifier/models/evaluation/levers-debias*.json.
set -euo pipefail
PY=.venv/bin/python
EV=classifier/models/evaluation
BASE="intensity=equalize,render=1,crop=content,shenzhen=all"
COMMON=(--manifest ../shared/data/cxr/manifest.csv --lungs var/lungs.csv
  --segmenter classifier/models/default.safetensors --arch mobilenet_v2 --epochs 5
  --input-size 112)
$PY -m training levers "${COMMON[@]}" --seeds "${SEEDS:-0,1,2}" --json "$EV/levers-debias.json" \
  --setting "equalize+shenzhen+cam-lungs:$BASE,cam_lungs=${CAM_LUNGS:-1}" \
  --setting "equalize+shenzhen+adversary:$BASE,adversary=${ADVERSARY:-0.3}"
$PY -m training levers "${COMMON[@]}" --seeds 2 --json "$EV/levers-debias-seed-2.json" \
  --setting "equalize+shenzhen+source-balance:$BASE,balance=source"
# EMA with batch-norm statistics recomputed for the averaged weights (the first EMA runs, which
# averaged the running statistics, scored AUC 0.5: levers-seeds-0-1.json)
$PY -m training levers "${COMMON[@]}" --seeds "${SEEDS:-0,1,2}" --json "$EV/levers-ema-bn.json" \
  --setting "equalize+shenzhen+ema-bn:$BASE,ema=0.99"
