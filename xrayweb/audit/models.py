from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from xrayweb.audit.chain import chain_link


def user_names(user) -> tuple[str, str]:
    """(username, full name) of ``user`` now, to be kept with a row; ("", "") for none."""
    if user is None or not getattr(user, "pk", None):
        return "", ""
    return user.get_username(), user.get_full_name().strip()


class AppendOnlyError(Exception):
    """Readings and audit events are history: rows are added, never changed or removed."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} cannot be updated")

    def delete(self):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} cannot be deleted")

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        if any(o.pk is not None for o in objs):
            raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} cannot be replaced")
        with transaction.atomic(using=self.db):
            chain_link(objs, head_model=ChainHead, name=self.model.CHAIN)
            return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, *args, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} cannot be updated")


class ChainHead(models.Model):
    """The last link of each chain: how many rows were written and the last row's hash."""

    name = models.CharField(max_length=32, primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.name} at {self.seq}"


class ChainedModel(models.Model):
    """History in a hash chain. UPDATE and DELETE are refused through every path the
    application has (instance save and delete, queryset update, delete, bulk_update), and on
    PostgreSQL by a trigger as well; INSERT links the row into chain ``CHAIN``."""

    CHAIN = ""

    seq = models.PositiveBigIntegerField(unique=True, null=True, editable=False)
    chain_hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError(f"{self._meta.verbose_name_plural} cannot be updated")
        with transaction.atomic(using=kwargs.get("using")):
            chain_link([self], head_model=ChainHead, name=self.CHAIN)
            super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{self._meta.verbose_name_plural} cannot be deleted")


class AuditEvent(ChainedModel):
    """Who viewed or changed what, when, from where."""

    CHAIN = "audit"

    class Action(models.TextChoices):
        STUDY_UPLOAD = "study.upload"
        STUDY_VIEW = "study.view"
        # A list of studies read (the worklist, the API's list: the ids on the page) and a
        # study's image, heatmap or lung mask read (thumbnails are in the list's row).
        STUDY_LIST = "study.list"
        STUDY_MEDIA = "study.media"
        STUDY_REVEAL = "study.reveal"  # the model's output shown on a not-assessable study
        REVIEW_CREATE = "review.create"
        EXPORT_CSV = "export.csv"
        EXPORT_DICOM = "export.dicom"
        # A radiologist's confirmation that no text is burned into a film's pixels.
        BURNED_IN_CHECK = "study.burned_in_check"
        MODEL_ACTIVATE = "model.activate"
        MODEL_REGISTER = "model.register"
        PREDICTION_RECORD = "prediction.record"  # by a worker: actor is the system
        STUDY_FAILED = "study.failed"
        AUDIT_READ = "audit.read"
        # The DICOM node: an association (accepted or refused, with the calling AE title), an
        # instance it did not store (refused, or a duplicate answered with success), and each
        # attempt to deliver a result to a destination (and an admin's resend).
        DICOM_ASSOCIATION = "dicom.association"
        DICOM_INSTANCE = "dicom.instance"
        DICOM_DELIVERY = "dicom.delivery"
        # Changes to who may do what: an account (role, active, password, names), an API
        # token (created, revoked), a DICOM destination. Signals write them, whoever changes
        # the row (admin, API, a command); the actor is the signed-in user, if any.
        USER_CHANGE = "user.change"
        TOKEN_CHANGE = "token.change"
        DESTINATION_CHANGE = "destination.change"
        # Sign-in (issue 29): each login (local or from the directory) and each refused one,
        # and what the directory did to an account (linked, roles or site set, removed by
        # the periodic check, restored).
        USER_LOGIN = "user.login"
        USER_LOGIN_FAILED = "user.login_failed"
        USER_DIRECTORY = "user.directory"
        # The drift monitor (issue 29): an alarm opened by a check, and closed by a later one.
        MONITOR_ALARM = "monitor.alarm"
        MONITOR_CLEARED = "monitor.cleared"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    # Who acted, as of the act (renaming the account later does not re-attribute history);
    # chained with the rest of the row.
    actor_username = models.CharField(
        max_length=150, blank=True, default="", db_default="", editable=False
    )
    actor_name = models.CharField(
        max_length=300, blank=True, default="", db_default="", editable=False
    )
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    # A string reference: audit sits below studies and never imports it.
    study = models.ForeignKey(
        "studies.Study",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Set before the row is hashed (auto_now_add would set it after).
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id} on study {self.study_id}"


class ChainCheck(models.Model):
    """One run of the chain verification (``audit_verify``, by hand or on the Celery beat
    schedule): when, and the first break if any. The newest one is what /healthz and the
    audit log page show admins."""

    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    rows = models.JSONField(default=dict)  # chain -> rows checked
    problem = models.TextField(blank=True)
    via = models.CharField(max_length=16)  # "schedule" or "command"

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"chains {'intact' if self.ok else 'BROKEN'} at {self.checked_at:%Y-%m-%d %H:%M}"
