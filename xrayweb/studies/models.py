import uuid

from django.conf import settings
from django.db import models


def study_image_path(instance: "Study", filename: str) -> str:
    # Generated names only: the client's file name is kept as data, never as a path.
    return f"studies/{uuid.uuid4().hex}.{instance.image_format.lower()}"


class Study(models.Model):
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

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"Study {self.pk} ({self.accession})"
