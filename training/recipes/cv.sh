#!/usr/bin/env bash
# 5-fold patient-grouped cross-validation of the issue-14 way of seeing films (equalize +
# render + content crop + Shenzhen with tuberculosis partial), on the same cheaper recipe
# as cv-baseline-recipe.json (one MobileNetV2, 160 px, 8 epochs): the card's CV table.
# From the repository root, after var/shenzhen.csv exists (training/README.md).
set -euo pipefail
EV=classifier/models/evaluation
.venv/bin/python -m training cv --manifest ../shared/data/cxr/manifest.csv \
  --manifest var/shenzhen.csv --folds 5 --arch mobilenet_v2 --epochs 8 --input-size 160 \
  --intensity equalize --render --crop content --not-covid-labels tuberculosis \
  --json "$EV/cv-issue14-recipe.json" > "$EV/cv-issue14-recipe.txt"
