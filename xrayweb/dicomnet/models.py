from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def ae_title_check(value: str) -> str:
    """An AE title: 1 to 16 characters of the DICOM default repertoire, no backslash."""
    value = (value or "").strip()
    if not 1 <= len(value) <= 16 or not value.isascii() or not value.isprintable() or "\\" in value:
        raise ValidationError(
            f"AE title {value!r} must be 1 to 16 printable ASCII characters, no backslash."
        )
    return value


class Destination(models.Model):
    """Where results go: a PACS (or any DICOM node) by C-STORE, or a DICOMweb server by
    STOW-RS. Managed in the Django admin and with `manage.py dicom_destinations`."""

    class Kind(models.TextChoices):
        CSTORE = "cstore", "C-STORE"
        STOW = "stow", "STOW-RS"

    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    ae_title = models.CharField(max_length=16, blank=True, validators=[ae_title_check])
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    stow_url = models.URLField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def address(self) -> str:
        if self.kind == self.Kind.STOW:
            return self.stow_url
        return f"{self.ae_title}@{self.host}:{self.port}"

    def clean(self) -> None:
        if self.kind == self.Kind.CSTORE:
            missing = [f for f in ("ae_title", "host", "port") if not getattr(self, f)]
            if missing:
                raise ValidationError(f"A C-STORE destination needs {', '.join(missing)}.")
            if self.stow_url:
                raise ValidationError("A C-STORE destination has no STOW-RS URL.")
        elif self.kind == self.Kind.STOW:
            if not self.stow_url:
                raise ValidationError("A STOW-RS destination needs its URL.")
            from xrayweb.dicomnet.scu import DeliveryError, stow_url_check

            try:
                stow_url_check(self.stow_url)
            except DeliveryError as exc:
                raise ValidationError(str(exc)) from exc
            if self.ae_title or self.host or self.port:
                raise ValidationError("A STOW-RS destination has no AE title, host or port.")


class Delivery(models.Model):
    """One result object for one destination, and where its sending stands. The object's UIDs
    are stable per prediction (or reading), so sending it again is harmless."""

    class Kind(models.TextChoices):
        MODEL_SR = "model_sr", "AI result (SR)"
        OVERLAY = "overlay", "heatmap overlay (Secondary Capture)"
        READING_SR = "reading_sr", "radiologist's reading (SR)"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    destination = models.ForeignKey(
        Destination, on_delete=models.PROTECT, related_name="deliveries"
    )
    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="deliveries")
    prediction = models.ForeignKey(
        "inference.Prediction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    review = models.ForeignKey(
        "review.Review", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "kind", "prediction"],
                condition=models.Q(prediction__isnull=False),
                name="one_delivery_per_prediction_object",
            ),
            models.UniqueConstraint(
                fields=["destination", "kind", "review"],
                condition=models.Q(review__isnull=False),
                name="one_delivery_per_reading_object",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of study {self.study_id} to {self.destination}"
