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
