import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from xrayweb.inference.renderings import RENDERINGS, rendering_agreement


class Command(BaseCommand):
    help = (
        "Label agreement of a bundle across the renderings a hospital sends (DICOM with and "
        "without a window, gamma, JPEG quality, black border, size) on a folder of films."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bundle", type=Path, help="default: the shipped bundle")
        parser.add_argument("--images", type=Path, required=True, help="a folder of PNG/JPEG")
        parser.add_argument("--json", type=Path)

    def handle(self, *args, **opts):
        from classifier import DEFAULT_BUNDLE

        films = sorted(
            p for p in opts["images"].glob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"}
        )
        if not films:
            raise CommandError(f"no PNG or JPEG films in {opts['images']}")
        report = rendering_agreement(bundle=opts["bundle"] or DEFAULT_BUNDLE, films=films)
        self.stdout.write(f"{report['films']} films, agreement {report['agreement']:.3f}")
        for name in RENDERINGS:
            self.stdout.write(f"  {name:<28}{report['per_rendering'][name]:.3f}")
        if opts["json"]:
            opts["json"].write_text(json.dumps(report, indent=2))
