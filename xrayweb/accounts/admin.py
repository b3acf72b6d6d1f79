"""API tokens in the Django admin: who holds one, since when, until when. Nobody sees a key
here (only its SHA-512 digest is stored, django-rest-knox) or mints one for another user:
DRF's and knox's own admins could mint one for anyone, so an admin could act as anyone
through the API. An admin may revoke a token (delete it; audited). To cut a user off,
deactivate the account (token authentication refuses inactive users)."""

import knox.admin  # noqa: F401  (registers knox's AuthTokenAdmin, replaced here)
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from knox.models import AuthToken

from xrayweb.accounts.models import Membership

admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created", "expiry"]
    list_display_links = None
    fields = ["user", "created", "expiry"]
    readonly_fields = fields
    search_fields = ["user__username"]

    def has_add_permission(self, request):
        return False  # a user gets their own token by signing in (POST /api/auth/token/)

    def has_change_permission(self, request, obj=None):
        return False


class MembershipInline(admin.StackedInline):
    """The site a user works at, on the user's page (staff see only that site's studies)."""

    model = Membership
    can_delete = False
    fields = ["site"]


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class UserAdmin(DjangoUserAdmin):
    inlines = [MembershipInline]
