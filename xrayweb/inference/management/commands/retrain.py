from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.ensemble.config import STRATEGIES, TrainConfig
from xrayweb.accounts.selectors import admin_named
from xrayweb.errors import ApplicationError


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class Command(BaseCommand):
    help = (
        "Train a new model version on the radiologist-confirmed labels in the database and any "
        "manifest CSVs, evaluate it against the active version on the locked evaluation set, "
        "and register it; --activate promotes it if the gate passes (or with --force)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--manifest", type=Path, action="append", default=[])
        parser.add_argument(
            "--no-reviews", action="store_true", help="do not train on radiologist-confirmed labels"
        )
        parser.add_argument(
            "--activate", action="store_true", help="promote the new version if it passes the gate"
        )
        parser.add_argument(
            "--force", action="store_true", help="with --activate: promote even if the gate fails"
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="send the job to the Celery 'training' queue (a GPU worker)",
        )
        parser.add_argument("--user", help="admin account recorded as having run the training")
        parser.add_argument("--name", default="")
        parser.add_argument("--arch", type=_csv, default=["mobilenet_v2", "vgg11_bn"])
        parser.add_argument("--epochs", type=int, default=12)
        parser.add_argument("--strategy", choices=STRATEGIES, default="finetune")
        parser.add_argument("--freeze-layers", type=int, default=0)
        parser.add_argument(
            "--init", default=None, help="torchvision weights name, a local .pth, or a bundle"
        )
        parser.add_argument("--input-size", type=int, default=224)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="auto")

    def handle(self, *args, **opts):
        user = None
        if opts["user"] or opts["activate"]:
            try:
                user = admin_named(username=opts["user"], doing="retrain and activate")
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
        config = {
            "archs": opts["arch"],
            "epochs": [opts["epochs"]],
            "strategy": opts["strategy"],
            "freeze_layers": opts["freeze_layers"],
            "init": opts["init"],
            "input_size": opts["input_size"],
            "batch_size": opts["batch_size"],
            "seed": opts["seed"],
            "device": opts["device"],
        }
        try:
            TrainConfig(**config)  # validate here, before anything is queued or trained
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        job = {
            "manifests": [str(m.resolve()) for m in opts["manifest"]],
            "from_reviews": not opts["no_reviews"],
            "config": config,
            "user_id": user.pk if user else None,
            "activate": opts["activate"],
            "force": opts["force"],
            "name": opts["name"],
        }
        if opts["queue"]:
            from xrayweb.inference.tasks import retrain_model

            result = retrain_model.delay(job)
            self.stdout.write(f"Queued retraining as task {result.id} on the 'training' queue.")
            return
        from xrayweb.inference.retraining import model_retrain_job

        try:
            version = model_retrain_job(job, progress=opts["verbosity"] > 0)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        locked = version.locked_metrics
        self.stdout.write(
            f"Registered {version.name} ({version.sha256[:12]}): locked set n={locked['n']} "
            f"accuracy={locked['accuracy']:.3f} macro_auc={locked['macro_auc']} "
            f"covid19_sensitivity={locked['covid19_sensitivity']}. Gate: {version.gate['reason']}."
            + (" [active]" if version.is_active else "")
        )
