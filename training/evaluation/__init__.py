"""Evaluation: metrics, evaluate, cross-validation, levers, hold-out groups, occlusion, plots,
the report tables and the model card."""
