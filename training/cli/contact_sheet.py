"""``python -m training contact-sheet``: lung contours on films of each source (PNG)."""

import json
from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.cli.common import manifest_option, records_read


def add_parser(sub) -> None:
    sheet = sub.add_parser("contact-sheet", help="lung contours on films of each source (PNG)")
    sheet.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    manifest_option(sheet)
    sheet.add_argument("--out", type=Path, required=True, help="a folder")
    sheet.add_argument("--per-source", type=int, default=24)
    sheet.add_argument("--seed", type=int, default=0)
    sheet.add_argument("--json", type=Path, help="the lung-area table as JSON")
    sheet.set_defaults(run=run)


def run(args) -> int:
    from training.lungs.contact import contact_sheets

    paths, table = contact_sheets(
        args.bundle,
        records_read(args.manifest),
        args.out,
        per_source=args.per_source,
        seed=args.seed,
    )
    print("| source/label | n | lung area median | quartiles |")
    print("| --- | --- | --- | --- |")
    for key, q in table["per_source_label"].items():
        print(f"| {key} | {q['n']} | {q['median']:.3f} | {q['q1']:.3f}–{q['q3']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    for path in paths:
        print(f"wrote {path}")
    return 0
