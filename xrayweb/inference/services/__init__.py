"""Inference services by sub-domain: registry (model versions), claims (who predicts
which study), predictions (recording results). Promotion lives with retraining."""
