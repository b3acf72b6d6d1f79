from django.core.management.base import BaseCommand, CommandError

from xrayweb.accounts.selectors import admin_named
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.services.registry import model_version_activate


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


class Command(BaseCommand):
    help = "List model versions with their locked-set metrics, or activate (roll back to) one."

    def add_arguments(self, parser):
        parser.add_argument("--activate", metavar="VERSION", help="name of the version to activate")
        parser.add_argument("--user", help="with --activate: the admin account doing it (audited)")

    def handle(self, *args, activate: str | None, user: str | None, **options):
        if activate:
            version = ModelVersion.objects.filter(name=activate).first()
            if version is None:
                raise CommandError(f"no model version named {activate!r}")
            try:
                actor = admin_named(username=user, doing="activate a model version")
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            model_version_activate(version=version, actor=actor, via="command")
            self.stdout.write(f"{version.name} is now active.")
            return
        self.stdout.write(
            f"{'':2}{'name':<28}{'created':<18}{'by':<12}{'locked n':>9}"
            f"{'macro AUC':>11}{'covid sens':>11}  gate"
        )
        for v in ModelVersion.objects.select_related("created_by").order_by("created_at", "id"):
            locked = v.locked_metrics or {}
            gate = v.gate.get("reason", "") if v.gate else ""
            self.stdout.write(
                f"{'*' if v.is_active else ' ':2}{v.name:<28}{v.created_at:%Y-%m-%d %H:%M}  "
                f"{v.created_by.username if v.created_by else '-':<12}"
                f"{locked.get('n', '-'):>9}{_fmt(locked.get('macro_auc')):>11}"
                f"{_fmt(locked.get('covid19_sensitivity')):>11}  {gate}"
            )
