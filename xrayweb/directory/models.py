from django.conf import settings
from django.db import models


class DirectoryAccount(models.Model):
    """A user who signs in from the hospital directory (LDAP), not with a local password.
    The directory decides their roles and site at every sign-in, and the periodic check
    (``directory_check``) turns the account off when the directory no longer lists them in
    a role group. A local account (no row here) is never taken over by a directory entry
    of the same name: break-glass admins stay local."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account"
    )
    dn = models.CharField(max_length=512)
    checked_at = models.DateTimeField(null=True, blank=True)
    # Set when the check turned the account off (gone from the directory, or from every role
    # group); cleared when the directory lets them in again. An account an admin turned off
    # here (is_active False, removed_at empty) stays off whatever the directory says.
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.dn})"
