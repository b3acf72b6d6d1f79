from django.conf import settings
from django.db import models
from django.utils import timezone

from xrayweb.audit.models import ChainedModel
from xrayweb.inference.models import ModelVersion, Prediction
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


class DriftSignal(models.TextChoices):
    """What the drift monitor watches (xrayweb.review.monitoring)."""

    DISTANCE = "distance", "feature distance"
    MIX = "mix", "prediction mix"
    CONFIDENCE = "confidence", "mean confidence"
    AGREEMENT = "agreement", "agreement with radiologists"


class _SiteAndVersion(models.Model):
    """What the drift monitor keeps apart: a site ("" for films without one) and a model
    version."""

    site = models.CharField(max_length=64, blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        abstract = True


class _Signal(_SiteAndVersion):
    signal = models.CharField(max_length=16, choices=DriftSignal.choices)

    class Meta:
        abstract = True


class DriftWeek(_SiteAndVersion):
    """One week of one site under one model version, as the drift monitor measured it."""

    week = models.DateField()  # the Monday
    films = models.PositiveIntegerField()
    # Films with a feature distance, and how many are beyond the training films' 95th
    # percentile; the KS test's p-value against the validation films.
    measured = models.PositiveIntegerField(default=0)
    beyond = models.PositiveIntegerField(default=0)
    distance_p = models.FloatField(null=True)
    # Readable films (as the agreement dashboard counts them): their predicted labels and
    # mean confidence, and the mix's distance from the validation mix.
    readable = models.PositiveIntegerField(default=0)
    mix = models.JSONField(default=dict)
    mix_shift = models.FloatField(null=True)
    confidence = models.FloatField(null=True)
    # Readable films with a final reading, how many the model agreed with, and kappa.
    reviewed = models.PositiveIntegerField(default=0)
    agreed = models.PositiveIntegerField(default=0)
    kappa = models.FloatField(null=True)
    kappa_low = models.FloatField(null=True)
    kappa_high = models.FloatField(null=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["week", "site"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "model_version", "week"], name="one_drift_week_per_site_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.site or '-'} / {self.model_version_id} / week of {self.week}"


class DriftStatus(_Signal):
    """The latest check of one signal for one site and model version: the value over the last
    MONITOR_WINDOW_FILMS films, what it is compared with, and whether the rule fires."""

    films = models.PositiveIntegerField()
    value = models.FloatField(null=True)
    baseline = models.FloatField(null=True)
    p_value = models.FloatField(null=True)
    firing = models.BooleanField(default=False)
    detail = models.JSONField(default=dict)
    checked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["site", "model_version", "signal"], name="one_drift_status_per_signal"
            )
        ]

    def __str__(self) -> str:
        return f"{self.site or '-'} / {self.model_version_id} / {self.signal}: {self.value}"


class DriftAlarm(_Signal):
    """An alarm, from the check where its rule first fired to the check where it stopped
    firing. ``since``: the first film of the window in which it first fired."""

    since = models.DateTimeField()
    fired_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "model_version", "signal"],
                condition=models.Q(cleared_at__isnull=True),
                name="one_open_drift_alarm",
            )
        ]

    def __str__(self) -> str:
        return f"{self.site or '-'} / {self.model_version_id} / {self.signal} since {self.since}"
