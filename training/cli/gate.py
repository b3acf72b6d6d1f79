"""``python -m training gate``: train, measure and attach the "not assessable" gate."""

import json
from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.cli.common import manifest_option, records_read


def add_parser(sub) -> None:
    gate = sub.add_parser(
        "gate", help="train and measure the not-assessable gate, and write it into a bundle"
    )
    gate.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    manifest_option(
        gate, help="the manifest(s) the bundle was trained on: its own split of them is used"
    )
    gate.add_argument(
        "--external", type=Path, action="append", default=[], help="frontal films never trained on"
    )
    gate.add_argument("--not-cxr", type=Path, required=True, help="a not-cxr manifest")
    gate.add_argument("--out", type=Path, required=True)
    gate.add_argument("--json", type=Path)
    gate.add_argument("--epochs", type=int, default=12)
    gate.add_argument("--per-kind", type=int, default=200, help="films made into each kind")
    gate.add_argument("--synthetic", type=int, default=200, help="noise, blank, text: each")
    gate.add_argument("--variants", type=int, default=25, help="views of each package image")
    gate.add_argument("--no-loko", action="store_true", help="skip leave-one-kind-out")
    gate.add_argument("--seed", type=int, default=0)
    gate.set_defaults(run=run)


def run(args) -> int:
    from training.gate.evaluate import format_gate, make_gate

    report = make_gate(
        args.bundle,
        records_read(args.manifest),
        not_cxr=args.not_cxr,
        out=args.out,
        external=records_read(args.external),
        epochs=args.epochs,
        per_kind=args.per_kind,
        synthetic_count=args.synthetic,
        variants=args.variants,
        loko=not args.no_loko,
        seed=args.seed,
    )
    print(format_gate(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0
