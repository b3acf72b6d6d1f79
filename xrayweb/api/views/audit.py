"""The audit trail for admins: GET /api/audit/events/."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated

from xrayweb.accounts.roles import CAN_READ_AUDIT_LOG, user_has_any_role
from xrayweb.api.pagination import ApiPagination
from xrayweb.audit.addresses import client_ip
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.selectors import audit_events
from xrayweb.audit.services import audit_record


class CanReadAuditLog(BasePermission):
    message = "Only admins may read the audit trail."

    def has_permission(self, request, view) -> bool:
        return user_has_any_role(request.user, CAN_READ_AUDIT_LOG)


class AuditQuerySerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices, required=False)
    actor = serializers.CharField(
        max_length=150, required=False, help_text="The acting user's username."
    )
    study = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, required=False, help_text="A study's id."
    )
    since = serializers.DateTimeField(required=False, help_text="Events at or after (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Events before (ISO 8601).")

    def validate(self, attrs):
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError("'since' must be before 'until'.")
        return attrs


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    study = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "study", "ip", "detail", "seq"]
        read_only_fields = fields


class AuditEventListApi(ListAPIView):
    """GET (admins): the audit trail, newest first, paginated; filter by action, actor,
    study and time. Reading it is itself audited."""

    permission_classes = [IsAuthenticated, CanReadAuditLog]
    serializer_class = AuditEventSerializer
    pagination_class = ApiPagination

    def get_queryset(self):
        query = AuditQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        where = query.validated_data
        audit_record(
            actor=self.request.user,
            action=AuditEvent.Action.AUDIT_READ,
            detail={k: str(v) for k, v in where.items()},
            ip=client_ip(self.request),
        )
        return audit_events(
            action=where.get("action", ""),
            actor=where.get("actor", ""),
            study_id=where.get("study"),
            since=where.get("since"),
            until=where.get("until"),
        )

    @extend_schema(parameters=[AuditQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
