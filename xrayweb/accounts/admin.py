"""API tokens in the Django admin: who holds one and since when. Nobody sees a key here (the
key is the row's id, so the list has no links or checkboxes) or mints one for another user:
DRF's own TokenAdmin did both, so an admin could act as anyone through the API. To cut a user
off, deactivate the account (token authentication refuses inactive users); users revoke their
own token with DELETE /api/auth/token/."""

import rest_framework.authtoken.admin  # noqa: F401  (registers DRF's TokenAdmin, replaced here)
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from rest_framework.authtoken.models import TokenProxy

from xrayweb.accounts.models import Membership

admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created"]
    list_display_links = None
    actions = None
    fields = ["user", "created"]
    readonly_fields = ["user", "created"]
    search_fields = ["user__username"]

    def has_add_permission(self, request):
        return False  # a user gets their own token by signing in (POST /api/auth/token/)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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
