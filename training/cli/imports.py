"""``python -m training import``: a manifest from a public collection's layout."""

from pathlib import Path

from training.cli.common import csv_list
from training.data.manifests import write_manifest


def add_parser(sub) -> None:
    imp = sub.add_parser("import", help="build a manifest from a public collection's layout")
    imp.add_argument("layout", choices=["covid-chestxray", "kermany", "imagefolder", "lungs"])
    imp.add_argument("root", type=Path)
    imp.add_argument("--out", type=Path, required=True)
    imp.add_argument(
        "--source",
        type=csv_list,
        default=[],
        help="keep only rows of these sources (e.g. shenzhen, or montgomery)",
    )
    imp.set_defaults(run=run)


def run(args) -> int:
    from training.data import importers

    records = importers.IMPORTERS[args.layout](args.root)
    if args.source:
        records = [r for r in records if r.source in args.source]
        if not records:
            raise ValueError(f"no rows of source(s) {', '.join(args.source)}")
    write_manifest(args.out, records, relative_to=args.out.parent)
    print(f"wrote {len(records)} rows to {args.out}")
    return 0
