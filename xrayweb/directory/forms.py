from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from xrayweb.directory.backend import UNREACHABLE


class DirectoryLoginForm(AuthenticationForm):
    """The login form, which says so when the hospital directory could not be reached,
    instead of blaming the password (local accounts still sign in then)."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            if getattr(self.request, "directory_refusal", None) == UNREACHABLE:
                self.directory_unreachable = True
                raise ValidationError(
                    "The hospital directory cannot be reached just now, so hospital accounts "
                    "cannot sign in; try again in a few minutes, or call IT. Local accounts "
                    "still work.",
                    code="directory_unreachable",
                ) from None
            raise
