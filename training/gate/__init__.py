"""The "not assessable" gate: training it, its negatives and its evaluation."""
