#!/usr/bin/env bash
# The shipped bundle's "not assessable" gate (issue 15), from the repository root:
#   bash training/recipes/gate.sh
# Trains the gate network on the bundle's own split of its films plus the non-frontal
# images (real laterals and CT of ../shared/data/not-cxr, and generated kinds), fits the
# feature distance and thresholds, measures every kind with the gate trained on all kinds
# and leave-one-kind-out, installs the bundle with its gate and rewrites the card.
set -euo pipefail
PY=.venv/bin/python
EV=classifier/models/evaluation
mkdir -p var/gate
$PY -m training import lungs ../shared/data/lungs --out var/shenzhen.csv --source shenzhen
$PY -m training import lungs ../shared/data/lungs --out var/montgomery.csv --source montgomery
START=$(date +%s)
$PY -m training gate --bundle classifier/models/default.safetensors \
  --manifest ../shared/data/cxr/manifest.csv --manifest var/shenzhen.csv \
  --external var/montgomery.csv --not-cxr ../shared/data/not-cxr/manifest.csv \
  --out var/gate/default.safetensors --json "$EV/gate.json" ${EXTRA:-} | tee "$EV/gate.txt"
echo "gate: $(( $(date +%s) - START )) s wall on $(lscpu | sed -n 's/^Model name: *//p')" \
  | tee -a "$EV/gate.txt"
cp var/gate/default.safetensors classifier/models/default.safetensors
