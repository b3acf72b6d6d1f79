from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from xrayweb.accounts.roles import CAN_MANAGE_MODELS, user_has_any_role
from xrayweb.errors import ApplicationError


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class Command(BaseCommand):
    help = (
        "Train a new model version from manifest CSVs (file,label,patient_id) and/or the "
        "radiologist-confirmed labels in the database, and register it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--manifest", type=Path, action="append", default=[])
        parser.add_argument(
            "--no-reviews", action="store_true", help="do not train on radiologist-confirmed labels"
        )
        parser.add_argument(
            "--activate", action="store_true", help="make the new version the one the worker uses"
        )
        parser.add_argument("--user", help="admin account recorded as having run the training")
        parser.add_argument("--name", default="")
        parser.add_argument("--arch", type=_csv, default=["mobilenet_v2", "vgg11_bn"])
        parser.add_argument("--epochs", type=int, default=12)
        parser.add_argument("--input-size", type=int, default=224)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="auto")

    def handle(self, *args, **opts):
        from training.loop import TrainConfig  # torch: only when the command actually runs
        from xrayweb.inference.retraining import model_retrain

        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None or not user_has_any_role(user, CAN_MANAGE_MODELS):
                raise CommandError(f"{opts['user']!r} is not an admin; only admins may retrain.")
        config = TrainConfig(
            archs=opts["arch"],
            epochs=[opts["epochs"]] * len(opts["arch"]),
            input_size=opts["input_size"],
            batch_size=opts["batch_size"],
            seed=opts["seed"],
            device=opts["device"],
        )
        try:
            version = model_retrain(
                manifests=opts["manifest"],
                from_reviews=not opts["no_reviews"],
                config=config,
                user=user,
                activate=opts["activate"],
                name=opts["name"],
                progress=opts["verbosity"] > 0,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        metrics = version.metrics.get("ensemble", {})
        self.stdout.write(
            f"Registered {version.name} ({version.sha256[:12]}): "
            f"{version.metrics.get('split')} accuracy={metrics.get('accuracy')} "
            f"macro_auc={metrics.get('macro_auc')}" + (" [active]" if version.is_active else "")
        )
