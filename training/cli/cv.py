"""``python -m training cv``: patient-grouped k-fold cross-validation of a recipe, or (``--by
location``) each hospital or collection held out in turn."""

import json
from pathlib import Path

from training.cli.common import csv_list, manifest_option, records_read, train_config, train_options


def add_parser(sub) -> None:
    cv = sub.add_parser("cv", help="patient-grouped k-fold cross-validation of a recipe")
    manifest_option(cv)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument(
        "--by",
        choices=["patient", "location"],
        default="patient",
        help="patient: k folds of patients; location: leave one hospital/collection out",
    )
    cv.add_argument(
        "--groups", type=csv_list, default=None, help="with --by location: only these groups"
    )
    cv.add_argument(
        "--min-covid",
        type=int,
        default=14,
        help="with --by location: hold out the groups with at least this many covid19 films",
    )
    cv.add_argument("--json", type=Path)
    cv.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    cv.add_argument(
        "--segmenter", type=Path, help="a lung segmenter (for crop=lungs and --cam-lungs)"
    )
    train_options(cv)
    cv.set_defaults(run=run)


def run(args) -> int:
    records = records_read(args.manifest)
    if args.by == "location":
        from training.evaluation.holdout import format_holdout, leave_group_out

        result = leave_group_out(
            records, train_config(args), groups=args.groups, min_covid=args.min_covid
        )
        formatted = format_holdout
    else:
        from training.evaluation.cv import cross_validate
        from training.evaluation.report import format_cv

        result = cross_validate(
            records, train_config(args), folds=args.folds, n_boot=args.bootstrap
        )
        formatted = format_cv
    result["manifests"] = [str(m) for m in args.manifest]
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(formatted(result))
    return 0
