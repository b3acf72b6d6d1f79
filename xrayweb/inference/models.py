from django.conf import settings
from django.db import models

from xrayweb.studies.models import Study


class ModelVersion(models.Model):
    """A registered model bundle. Versions are never deleted; one at most is active."""

    name = models.CharField(max_length=64, unique=True)
    bundle_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, unique=True)
    classes = models.JSONField()
    members = models.JSONField()
    metrics = models.JSONField(default=dict, blank=True)
    training = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    # Metrics on the locked evaluation set when it was trained, and the promotion decision:
    # {"promoted": bool, "forced": bool, "reason": str, "candidate": {...}, "active": {...}}.
    locked_metrics = models.JSONField(default=dict, blank=True)
    gate = models.JSONField(default=dict, blank=True)
    # What the drift monitor compares this version's new films with, from its bundle's
    # not-assessable gate (training.gate.reference); {} for a bundle without one.
    drift_reference = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model"
            )
        ]

    def __str__(self) -> str:
        return self.name


class PatientAssignment(models.Model):
    """Each patient, once seen by retraining, is assigned for good to training or to the locked
    evaluation set. The locked set therefore only grows, and only with new patients."""

    class Split(models.TextChoices):
        TRAIN = "train"
        LOCKED = "locked"

    patient_key = models.CharField(max_length=128, unique=True)
    split = models.CharField(max_length=8, choices=Split.choices)
    assigned_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.patient_key}: {self.split}"


class Prediction(models.Model):
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT)
    bundle_sha256 = models.CharField(max_length=64)
    label = models.CharField(max_length=64)
    probabilities = models.JSONField()
    member_probabilities = models.JSONField()
    # Columns for filtering and the audit: the ensemble's probability of its label, and
    # whether every member's own top class is that label.
    confidence = models.FloatField(default=0.0, db_index=True)
    members_agree = models.BooleanField(null=True, db_index=True)
    # {"fused": "heatmaps/…png", "<member>": "heatmaps/…png"}: media paths of colour heatmaps.
    heatmaps = models.JSONField(default=dict)
    cam_layers = models.JSONField(default=dict)
    # "masks/…png": the predicted lung fields at the heatmaps' size, and the share of the fused
    # Grad-CAM's mass inside them. Blank and null for predictions made without a segmenter
    # (older rows, a bundle that has none).
    lung_mask = models.CharField(max_length=255, blank=True, default="")
    cam_lung_fraction = models.FloatField(null=True, blank=True)
    # Whether the model may be believed on this image: {"assessable", "reasons" (the DICOM
    # header's scope first, then the gate's), "scores", "checked_by" (model version name),
    # "flags" (e.g. low confidence: a flag, never a refusal)}. The column copies "assessable"
    # for filtering; both are empty for predictions made before the gate.
    assessment = models.JSONField(default=dict, blank=True)
    assessable = models.BooleanField(null=True, db_index=True)
    # The gate's feature distance (assessment["scores"]["feature_distance"]) as a column, for
    # the drift monitor; null without a gate or a distance.
    feature_distance = models.FloatField(null=True, blank=True)
    # Conformal prediction sets, as the classifier gave them: {"0.90": ["covid19", …], "0.95":
    # […]}, most probable first; {} for a bundle without conformal calibration. The column is
    # the size of the 0.90 set for the worklist's sort, null with no set or on a film that is
    # not assessable (xrayweb.inference.conformal).
    prediction_sets = models.JSONField(default=dict, blank=True)
    set_size = models.PositiveSmallIntegerField(null=True, blank=True, db_index=True)
    # Compute time of the predict() call that served this study, and how many studies it served.
    duration_ms = models.PositiveIntegerField()
    batch_size = models.PositiveSmallIntegerField(default=1)
    # From upload to stored result: what the person waiting for it saw.
    latency_ms = models.PositiveIntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "model_version"], name="one_prediction_per_study_and_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} for study {self.study_id} by {self.model_version_id}"

    @property
    def member_labels(self) -> dict[str, str]:
        return {name: max(p, key=p.get) for name, p in self.member_probabilities.items() if p}
