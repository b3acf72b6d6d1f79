from django.conf import settings
from django.db import models

from xrayweb.inference.models import Prediction
from xrayweb.studies.models import Study


class AppendOnlyError(Exception):
    """Reviews are history: rows are added, never changed or removed."""


class ReviewQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("reviews cannot be updated")

    def delete(self):
        raise AppendOnlyError("reviews cannot be deleted")


class Review(models.Model):
    """One radiologist reading. The newest row for a study is its current label."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    label = models.CharField(max_length=64)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Provenance: the prediction shown when the label was given, and the review it replaced.
    prediction = models.ForeignKey(Prediction, null=True, on_delete=models.PROTECT)
    agrees_with_model = models.BooleanField(null=True)
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )

    objects = ReviewQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.label} for study {self.study_id} by {self.reviewer_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("reviews cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("reviews cannot be deleted")
