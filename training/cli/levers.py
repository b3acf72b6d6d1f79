"""``python -m training levers``: recipe settings on and off, over seeds."""

from pathlib import Path

from training.cli.common import csv_list, manifest_option, records_read, train_config, train_options
from training.data.manifests import read_manifest


def add_parser(sub) -> None:
    lev = sub.add_parser("levers", help="recipe settings on and off, over seeds")
    manifest_option(lev)
    lev.add_argument(
        "--lungs", type=Path, required=True, help="the lungs/ manifest (Shenzhen, Montgomery)"
    )
    lev.add_argument(
        "--setting",
        action="append",
        required=True,
        help="name:key=value,...  (TrainConfig fields; shenzhen=none|normal|all)",
    )
    lev.add_argument("--seeds", type=lambda v: [int(x) for x in csv_list(v)], default=[0, 1, 2])
    lev.add_argument("--json", type=Path, help="written after every run")
    lev.add_argument(
        "--segmenter", type=Path, help="a lung segmenter (for crop=lungs and the CAM fraction)"
    )
    train_options(lev)
    lev.set_defaults(run=run)


def run(args) -> int:
    from training.evaluation.levers import format_levers, lever_runs, parse_setting

    settings = dict(parse_setting(text) for text in args.setting)
    result = lever_runs(
        records_read(args.manifest),
        read_manifest(args.lungs),
        train_config(args),
        settings,
        seeds=args.seeds,
        out=args.json,
    )
    print(format_levers(result))
    return 0
