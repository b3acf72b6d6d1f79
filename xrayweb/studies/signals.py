"""What the studies app tells the apps above it, which it never imports."""

from django.dispatch import Signal

# Sent once a new study is committed (by study_create), with ``study_id``. Inference connects
# to it and enqueues the prediction (xrayweb.inference.apps).
study_uploaded = Signal()
