from django.conf import settings
from django.db import models


class Preferences(models.Model):
    """A user's own settings, remembered across sessions and machines."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    # Single-key shortcuts on the review page (digits, J/K, C, +, -, 0, ?): a speech-input or
    # keyboard user may need them off (WCAG 2.1.4). Keys in the focused image view stay on.
    shortcuts = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"preferences of {self.user}"


class Membership(models.Model):
    """Where a user works. Staff (uploaders) see only their site's studies, and what they
    upload is filed under it; staff with no site see only their own uploads. Radiologists and
    admins read every site. Directory sign-in (issue 29) will set it from a group."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    site = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.user} at {self.site or 'no site'}"
