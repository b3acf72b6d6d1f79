from django.conf import settings
from django.db import models
from django.utils import timezone

from xrayweb.audit.models import ChainedModel
from xrayweb.inference.models import Prediction
from xrayweb.studies.models import Overrule, Study


class Review(ChainedModel):
    """One radiologist reading. Which reading is final is kept on the study (final_label)."""

    CHAIN = "review"

    class Kind(models.TextChoices):
        READ = "read"  # an independent read (first or second)
        ARBITRATION = "arbitration"  # settles two reads that disagree
        AMENDMENT = "amendment"  # a later change to a final label

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    # The reader as of the reading (the SR and exports print it; a later rename changes
    # nothing here). Chained with the rest of the row.
    reviewer_username = models.CharField(
        max_length=150, blank=True, default="", db_default="", editable=False
    )
    reviewer_name = models.CharField(
        max_length=300, blank=True, default="", db_default="", editable=False
    )
    label = models.CharField(max_length=64, blank=True)  # blank: a not-diagnostic reading
    # The reader's answer about the image: as the gate says, assessable after all (the gate
    # refused it wrongly), or not diagnostic (no label; counts neither way against the model).
    assessability = models.CharField(
        max_length=16, choices=Overrule.choices, blank=True, default=""
    )
    comment = models.TextField(blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.READ)
    # Set before the row is hashed (auto_now_add would set it after).
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
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
