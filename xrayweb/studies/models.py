import uuid

from django.conf import settings
from django.db import models


def study_image_path(instance: "Study", filename: str) -> str:
    # Generated names only: the client's file name is kept as data, never as a path.
    return f"studies/{uuid.uuid4().hex}.{instance.image_format.lower()}"


def study_display_path(instance: "Study", filename: str) -> str:
    return f"studies/{uuid.uuid4().hex}-display.png"


def study_thumbnail_path(instance: "Study", filename: str) -> str:
    return f"studies/{uuid.uuid4().hex}-thumb.png"


def study_original_path(instance: "Study", filename: str) -> str:
    # Originals are never served as they are: only de-identified, through the export.
    return f"originals/{uuid.uuid4().hex}.dcm"


class ReviewState(models.TextChoices):
    UNREAD = "unread"
    SECOND_READ = "second_read", "awaiting second read"
    ARBITRATION = "arbitration"
    FINAL = "final"


class Assessability(models.TextChoices):
    """Whether the model's output may be shown as a diagnosis: the gate's verdict on the
    current prediction (with the DICOM header's scope), unless the latest final reading
    overruled it."""

    UNCHECKED = "unchecked", "not checked"  # no prediction yet, or one made before the gate
    ASSESSABLE = "assessable"
    NOT_ASSESSABLE = "not_assessable", "not assessable"
    NOT_DIAGNOSTIC = "not_diagnostic", "not diagnostic"


class Overrule(models.TextChoices):
    """A reading's answer about the image itself; blank: as the gate says."""

    NONE = "", "as the gate says"
    ASSESSABLE = "assessable", "assessable after all"
    NOT_DIAGNOSTIC = "not_diagnostic", "not diagnostic"


HIDDEN_ASSESSABILITY = (Assessability.NOT_ASSESSABLE, Assessability.NOT_DIAGNOSTIC)


def assessability_effective(*, gate: bool | None, overrule: str) -> str:
    """The study's state from the gate's verdict (None: not checked) and the latest final
    reading's overrule ("" when it had none)."""
    if overrule:
        return Overrule(overrule).value
    if gate is None:
        return Assessability.UNCHECKED
    return Assessability.ASSESSABLE if gate else Assessability.NOT_ASSESSABLE


class Study(models.Model):
    ReviewState = ReviewState
    Assessability = Assessability

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
    # How many times a worker has claimed this study; past INFERENCE_MAX_ATTEMPTS it fails.
    attempts = models.PositiveSmallIntegerField(default=0)
    # The task that holds the claim: its retries may take the study back even when the
    # database dropped before it could be released.
    claimed_by = models.CharField(max_length=64, blank=True)
    # Predicted alone from now on: it was in a batch whose worker stopped, so it may be the
    # film that crashed it, and it must not take healthy batch-mates down with it.
    isolated = models.BooleanField(default=False)
    # De-identified export: a radiologist looked at the image and confirmed that no text is
    # burned into the pixels (needed when the header does not say BurnedInAnnotation "NO").
    burned_in_checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    burned_in_checked_at = models.DateTimeField(null=True, blank=True)
    # DICOM uploads: the original file, a full-range display image with the file's own window
    # (level, width on its 0..255 scale), and header fields. PNG/JPEG uploads leave them empty.
    original = models.FileField(upload_to=study_original_path, max_length=255, blank=True)
    display_image = models.FileField(upload_to=study_display_path, max_length=255, blank=True)
    # A small PNG for the worklist, made once at upload (never per request).
    thumbnail = models.FileField(upload_to=study_thumbnail_path, max_length=255, blank=True)
    window_level = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    patient_age = models.CharField(max_length=16, blank=True)
    study_instance_uid = models.CharField(max_length=64, blank=True, db_index=True)
    series_instance_uid = models.CharField(max_length=64, blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    study_date = models.CharField(max_length=8, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    manufacturer = models.CharField(max_length=64, blank=True)
    # The model was trained on frontal chest X-rays: anything else is not assessable (the
    # reasons become part of the prediction's assessment, first).
    out_of_scope = models.BooleanField(default=False, db_index=True)
    scope_warning = models.TextField(blank=True)
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
    # The latest final reading's answer about the image, and the resulting effective state.
    assessability_overrule = models.CharField(
        max_length=16, choices=Overrule.choices, blank=True, default=""
    )
    assessability = models.CharField(
        max_length=16,
        choices=Assessability.choices,
        default=Assessability.UNCHECKED,
        db_index=True,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "studies"
        constraints = [
            models.UniqueConstraint(
                fields=["sop_instance_uid"],
                condition=~models.Q(sop_instance_uid=""),
                name="one_study_per_sop_instance",
            )
        ]

    def __str__(self) -> str:
        return f"Study {self.pk} ({self.accession})"
