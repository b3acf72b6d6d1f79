#!/usr/bin/env bash
# The shipped bundle, from the data to the model card (issues 14 and 26). From the repository
# root:
#   bash training/recipes/ship.sh
# Trains the recipe the card's lever tables chose, with conformal prediction sets fitted on
# validation, then the gate again for the new ensemble's features (gate.sh); evaluates
# it on its own patient-disjoint test split, the held-out Shenzhen patients and Montgomery
# (never trained on), with the occlusion check, empty heatmaps and set coverage; measures
# rendering agreement and speed, installs the bundle and rewrites the card. The lung
# segmenter comes from the bundle being replaced (python -m training segment made it).
set -euo pipefail
PY=.venv/bin/python
EV=classifier/models/evaluation
CXR=../shared/data/cxr/manifest.csv
NEW=var/ship/default.safetensors
mkdir -p var/ship
$PY -m training import lungs ../shared/data/lungs --out var/shenzhen.csv --source shenzhen
$PY -m training import lungs ../shared/data/lungs --out var/montgomery.csv --source montgomery
cp classifier/models/default.safetensors var/ship/segmenter-source.safetensors
RECIPE=(--arch mobilenet_v2,vgg11_bn --epochs "${EPOCHS:-12,10}" --input-size "${SIZE:-224}"
  --intensity equalize --render --crop content --not-covid-labels tuberculosis
  --cam-lungs "${CAM_LUNGS:-1}" ${EXTRA:-})
START=$(date +%s)
$PY -m training train --manifest "$CXR" --manifest var/shenzhen.csv --out "$NEW" \
  --segmenter var/ship/segmenter-source.safetensors "${RECIPE[@]}" 2> var/ship/train.log \
  | tee "$EV/train.txt"
echo "train: $(( $(date +%s) - START )) s wall, recipe ${RECIPE[*]}" | tee -a "$EV/train.txt"
$PY -m training evaluate --bundle "$NEW" --test-split-of "$CXR" --test-split-of var/shenzhen.csv \
  --manifest var/montgomery.csv --occlusion --json "$EV/test-and-external.json" \
  | tee "$EV/test-and-external.txt"
$PY -m training evaluate --bundle "$NEW" --test-split-of "$CXR" --test-split-of var/shenzhen.csv \
  --manifest var/montgomery.csv --no-cam --tta 0.92,1.08 --json "$EV/test-and-external-tta.json" \
  > "$EV/test-and-external-tta.txt"
DJANGO_SETTINGS_MODULE=xrayweb.settings $PY manage.py renderings --bundle "$NEW" \
  --images tests/data/cxr_sample/images --json "$EV/renderings.json" | tee "$EV/renderings.txt"
cp "$NEW" classifier/models/default.safetensors
$PY -m classifier.bench --images 16 --image-dir tests/data/cxr_sample/images --json "classifier/benchmarks/$(date +%F)-cpu-issue26-bundle.json"
bash training/recipes/gate.sh
$PY -m training card --evaluation "$EV"
