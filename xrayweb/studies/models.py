import uuid

from django.conf import settings
from django.db import models


def study_image_path(instance: "Study", filename: str) -> str:
    # Generated names only: the client's file name is kept as data, never as a path.
    return f"studies/{uuid.uuid4().hex}.{instance.image_format.lower()}"


class ReviewState(models.TextChoices):
    UNREAD = "unread"
    SECOND_READ = "second_read", "awaiting second read"
    ARBITRATION = "arbitration"
    FINAL = "final"


class Study(models.Model):
    ReviewState = ReviewState

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    patient_id = models.CharField(max_length=64, db_index=True)
    accession = models.CharField(max_length=64, db_index=True)
    image = models.FileField(upload_to=study_image_path, max_length=255)
    image_format = models.CharField(max_length=8)
    image_width = models.PositiveIntegerField()
    image_height = models.PositiveIntegerField()
    image_sha256 = models.CharField(max_length=64)
    original_filename = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="uploaded_studies"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    status_changed_at = models.DateTimeField(auto_now_add=True)
    failure_reason = models.TextField(blank=True)
    # Where and how the image was taken: the audit dashboard slices by both.
    site = models.CharField(max_length=64, blank=True, db_index=True)
    view = models.CharField(max_length=32, blank=True, db_index=True)

    # Kept in step by the inference and review services, so the worklist filters and sorts on
    # indexed columns: the newest prediction, and where the radiologists' reading stands.
    current_prediction = models.ForeignKey(
        "inference.Prediction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    review_state = models.CharField(
        max_length=12, choices=ReviewState.choices, default=ReviewState.UNREAD, db_index=True
    )
    final_label = models.CharField(max_length=64, blank=True, db_index=True)
    finalized_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"Study {self.pk} ({self.accession})"
