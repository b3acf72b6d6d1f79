import json as jsonlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from xrayweb.inference.models import ModelVersion
from xrayweb.inference.selectors import model_version_active


class Command(BaseCommand):
    help = "Evaluate the active model version (or --model NAME) on a manifest CSV."

    def add_arguments(self, parser):
        parser.add_argument("--manifest", type=Path, required=True)
        parser.add_argument("--model", help="a registered version's name; default: the active one")
        parser.add_argument("--json", type=Path)
        parser.add_argument("--plots", type=Path)

    def handle(self, *args, **opts):
        from training.data.manifests import ManifestError, read_manifest
        from training.evaluation.evaluate import evaluate_bundle
        from training.evaluation.report import format_report  # torch: only when it runs

        name = opts["model"]
        chosen = ModelVersion.objects.filter(name=name).first() if name else model_version_active()
        if chosen is None:
            raise CommandError(f"no model version {name!r}" if name else "no active version")
        manifest, plots, json_path = opts["manifest"], opts["plots"], opts["json"]
        try:
            report = evaluate_bundle(Path(chosen.bundle_path), read_manifest(manifest), plots=plots)
        except (ManifestError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{chosen.name}:\n{format_report(report)}")
        if json_path:
            json_path.write_text(_dumps(report))


def _dumps(report: dict) -> str:
    return jsonlib.dumps(report, indent=2)
