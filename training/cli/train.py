"""``python -m training train``: train a bundle from manifest CSV(s)."""

from pathlib import Path

from training.cli.common import manifest_option, records_read, train_config, train_options


def add_parser(sub) -> None:
    train = sub.add_parser("train", help="train a bundle from manifest CSV(s)")
    manifest_option(train)
    train.add_argument("--out", type=Path, required=True)
    train.add_argument(
        "--segmenter",
        type=Path,
        help="a lung segmenter file or a bundle with one: the new bundle carries it",
    )
    train.add_argument(
        "--gate",
        type=Path,
        help="a bundle with a not-assessable gate: the new bundle carries it, refitted",
    )
    train_options(train)
    train.set_defaults(run=run)


def run(args) -> int:
    from training.ensemble.fit import fit
    from training.evaluation.report import format_report

    sources = [{"manifest": str(m)} for m in args.manifest]
    meta = fit(records_read(args.manifest), args.out, train_config(args), data_sources=sources)
    print(format_report(meta.metrics["ensemble"]))
    print(f"wrote {args.out}")
    return 0
