from django.core.management.base import BaseCommand, CommandError

from xrayweb.dicomnet.models import Destination
from xrayweb.dicomnet.services import destination_add, destination_remove
from xrayweb.errors import ApplicationError


class Command(BaseCommand):
    help = "Where results (SR, Secondary Capture) are sent: add, list or remove destinations."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="a C-STORE (--ae-title --host --port) or STOW-RS one")
        add.add_argument("--name", required=True)
        add.add_argument("--ae-title", default="")
        add.add_argument("--host", default="")
        add.add_argument("--port", type=int)
        add.add_argument("--stow-url", default="", help="the STOW-RS URL, …/studies")
        add.add_argument("--disabled", action="store_true")
        sub.add_parser("list")
        remove = sub.add_parser("remove")
        remove.add_argument("--name", required=True)

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _add(self, *, name, ae_title, host, port, stow_url, disabled, **_) -> None:
        if stow_url and (ae_title or host or port):
            raise CommandError("Give either --stow-url or --ae-title/--host/--port, not both.")
        destination = destination_add(
            name=name,
            ae_title=ae_title,
            host=host,
            port=port,
            stow_url=stow_url,
            enabled=not disabled,
        )
        self.stdout.write(
            f"added {destination.name}: {destination.get_kind_display()} {destination.address}"
        )

    def _list(self, **_) -> None:
        destinations = Destination.objects.all()
        if not destinations:
            self.stdout.write("no destinations")
        for d in destinations:
            state = "enabled" if d.enabled else "disabled"
            self.stdout.write(f"{d.name}\t{d.get_kind_display()}\t{d.address}\t{state}")

    def _remove(self, *, name, **_) -> None:
        if destination_remove(name=name):
            self.stdout.write(f"removed {name}")
        else:
            self.stdout.write(
                f"{name} was disabled, not removed: results were sent to it, and its "
                "deliveries stay in the history"
            )
