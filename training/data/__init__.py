"""Data: manifests and patient-level splits, datasets and augmentation, and the importers of
the public collections."""
