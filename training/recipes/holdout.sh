#!/usr/bin/env bash
# Leave one hospital out (issue 26): each ieee8023 country with 14+ covid19 films, and
# actualmed and figure1 whole, held out in turn; one model per group trained on every other
# film. The lever recipe (one mobilenet_v2, 112 px, 5 epochs) on this bundle's way of seeing
# films; SETTING adds training options, NAME names the output, HOLD (comma-separated) runs
# only those groups. From the repository root,
# after var/shenzhen.csv exists (training/README.md):
#   NAME=baseline SETTING="--cam-empty free" bash training/recipes/holdout.sh
set -euo pipefail
EV=classifier/models/evaluation
NAME=${NAME:-baseline}
.venv/bin/python -m training cv --by location --manifest ../shared/data/cxr/manifest.csv \
  --manifest var/shenzhen.csv --segmenter classifier/models/default.safetensors \
  --arch mobilenet_v2 --epochs "${EPOCHS:-5}" --input-size "${SIZE:-112}" --seed "${SEED:-0}" \
  --intensity equalize --render --crop content --not-covid-labels tuberculosis --cam-lungs 1 \
  ${HOLD:+--groups "$HOLD"} ${SETTING:-} --json "$EV/holdout-$NAME.json" > "$EV/holdout-$NAME.txt"
