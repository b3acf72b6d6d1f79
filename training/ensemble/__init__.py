"""The ensemble: its training config, the epoch loop and its objectives, fit, calibration and
conformal sets."""
