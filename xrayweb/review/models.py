from django.conf import settings
from django.db import models

from xrayweb.inference.models import Prediction
from xrayweb.studies.models import Overrule, Study


class AppendOnlyError(Exception):
    """Reviews and audit events are history: rows are added, never changed or removed."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} cannot be updated")

    def delete(self):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} cannot be deleted")


class AppendOnlyModel(models.Model):
    """Refuses UPDATE and DELETE through every path the application has: instance save and
    delete, queryset update, delete and bulk_update (which updates through a queryset)."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError(f"{self._meta.verbose_name_plural} cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{self._meta.verbose_name_plural} cannot be deleted")


class Review(AppendOnlyModel):
    """One radiologist reading. Which reading is final is kept on the study (final_label)."""

    class Kind(models.TextChoices):
        READ = "read"  # an independent read (first or second)
        ARBITRATION = "arbitration"  # settles two reads that disagree
        AMENDMENT = "amendment"  # a later change to a final label

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    label = models.CharField(max_length=64, blank=True)  # blank: a not-diagnostic reading
    # The reader's answer about the image: as the gate says, assessable after all (the gate
    # refused it wrongly), or not diagnostic (no label; counts neither way against the model).
    assessability = models.CharField(
        max_length=16, choices=Overrule.choices, blank=True, default=""
    )
    comment = models.TextField(blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.READ)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Provenance: the prediction shown when the label was given, and the review it replaced.
    prediction = models.ForeignKey(Prediction, null=True, on_delete=models.PROTECT)
    agrees_with_model = models.BooleanField(null=True)
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.label} for study {self.study_id} by {self.reviewer_id}"


class AuditEvent(AppendOnlyModel):
    """Who viewed or changed which study, and when."""

    class Action(models.TextChoices):
        STUDY_UPLOAD = "study.upload"
        STUDY_VIEW = "study.view"
        STUDY_REVEAL = "study.reveal"  # the model's output shown on a not-assessable study
        REVIEW_CREATE = "review.create"
        EXPORT_CSV = "export.csv"
        EXPORT_DICOM = "export.dicom"
        MODEL_ACTIVATE = "model.activate"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    study = models.ForeignKey(
        Study, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id} on study {self.study_id}"
