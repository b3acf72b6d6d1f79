"""``python -m training calibrate``: refit a bundle's calibration and thresholds."""

from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.cli.common import manifest_option, records_read


def add_parser(sub) -> None:
    cal = sub.add_parser("calibrate", help="refit a bundle's calibration and thresholds")
    cal.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    manifest_option(cal, help="the manifest(s) the bundle was trained on")
    cal.add_argument("--out", type=Path, help="default: overwrite --bundle")
    cal.add_argument("--covid-sensitivity", type=float, default=None)
    cal.add_argument("--covid-min-specificity", type=float, default=None)
    cal.set_defaults(run=run)


def run(args) -> int:
    from training.ensemble.fit import recalibrate
    from training.evaluation.report import format_report

    changes = {
        key: value
        for key, value in {
            "covid_sensitivity": args.covid_sensitivity,
            "covid_min_specificity": args.covid_min_specificity,
        }.items()
        if value is not None
    }
    out = args.out or args.bundle
    meta = recalibrate(args.bundle, records_read(args.manifest), out, **changes)
    print(format_report(meta.metrics["ensemble"]))
    print(f"wrote {out}")
    return 0
