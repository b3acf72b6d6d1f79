"""Training and evaluation for the classifier bundle: pure PyTorch, never Django."""
