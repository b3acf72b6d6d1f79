from argparse import ArgumentTypeError

from django.core.management.base import BaseCommand, CommandError

from xrayweb.inference.models import ModelVersion
from xrayweb.review.models import DriftSignal
from xrayweb.review.monitoring import monitor_check, monitor_report


def _f(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ArgumentTypeError("give 1 week or more")
    return number


def _interval(detail: dict) -> str:
    """Agreement's Wilson interval and kappa with its interval, where measured."""
    if not detail.get("ci"):
        return "-"
    text = f"{detail['ci'][0]:.2f}-{detail['ci'][1]:.2f}"
    if detail.get("kappa") is not None:
        text += f"; kappa {detail['kappa']:.2f}"
        if detail.get("kappa_ci"):
            text += f" ({detail['kappa_ci'][0]:.2f}-{detail['kappa_ci'][1]:.2f})"
    return text


class Command(BaseCommand):
    help = (
        "The drift monitor: check every site and model version now (alarms opened or closed, "
        "and audited), then print the open alarms, each signal over the last films, and the "
        "weeks. For cron; --exit-code makes an open alarm exit with status 1."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-check", action="store_true", help="print the last check only")
        parser.add_argument("--model-version", default="", help="only this model version")
        parser.add_argument("--site", default="", help="only this site")
        parser.add_argument("--weeks", type=_positive, default=8, help="weeks printed (latest)")
        parser.add_argument("--exit-code", action="store_true", help="exit 1 on an open alarm")

    def handle(self, *args, **options) -> None:
        version = None
        if options["model_version"]:
            version = ModelVersion.objects.filter(name=options["model_version"]).first()
            if version is None:
                raise CommandError(f"no model version {options['model_version']!r}")
        if not options["no_check"]:
            counts = monitor_check()
            self.stdout.write(
                f"checked {counts['groups']} site and model version pairs: "
                f"{counts['opened']} alarms opened, {counts['closed']} closed"
            )
        report = monitor_report(version=version, site=options["site"])
        if report["checked_at"] is None:
            self.stdout.write("no check has measured anything yet (no predictions)")
            return
        self.stdout.write(f"last check: {report['checked_at']:%Y-%m-%d %H:%M %Z}")
        self.stdout.write("")
        self.stdout.write("Open alarms:" if report["sentences"] else "No open alarm.")
        for sentence in report["sentences"]:
            self.stdout.write(f"  {sentence}")
        self.stdout.write("")
        self.stdout.write("Over the last films:")
        self.stdout.write(
            f"  {'model version':<24}{'site':<14}{'signal':<30}{'films':>6}{'value':>8}"
            f"{'against':>9}{'p':>9}  {'95% interval':<30}alarm"
        )
        labels = dict(DriftSignal.choices)
        for s in report["statuses"]:
            self.stdout.write(
                f"  {s.version_name:<24}{s.site or '-':<14}{labels[s.signal]:<30}"
                f"{s.films:>6}{_f(s.value):>8}{_f(s.baseline):>9}{_f(s.p_value, '.1e'):>9}  "
                f"{_interval(s.detail):<30}" + ("FIRING" if s.firing else "")
            )
        weeks = sorted({w.week for w in report["weeks"]})[-options["weeks"] :]
        self.stdout.write("")
        self.stdout.write(f"Weeks ({len(weeks)} latest):")
        self.stdout.write(
            f"  {'week':<12}{'model version':<24}{'site':<14}{'films':>6}{'beyond p95':>11}"
            f"{'KS p':>9}{'mix shift':>10}{'conf':>6}{'read':>6}{'agree':>7}{'kappa':>7}"
        )
        for w in report["weeks"]:
            if w.week not in weeks:
                continue
            beyond = w.beyond / w.measured if w.measured else None
            agree = w.agreed / w.reviewed if w.reviewed else None
            self.stdout.write(
                f"  {w.week.isoformat():<12}{w.version_name:<24}{w.site or '-':<14}"
                f"{w.films:>6}{_f(beyond, '.0%'):>11}{_f(w.distance_p, '.1e'):>9}"
                f"{_f(w.mix_shift):>10}{_f(w.confidence):>6}{w.reviewed:>6}{_f(agree):>7}"
                f"{_f(w.kappa):>7}"
            )
        if options["exit_code"] and report["sentences"]:
            raise SystemExit(1)
