"""``python -m training card``: the model card, its metadata part printed, or (``--evaluation``)
the whole card written from the evaluation outputs."""

from pathlib import Path

from classifier import DEFAULT_BUNDLE


def add_parser(sub) -> None:
    card = sub.add_parser(
        "card",
        help="the model card: the metadata part printed, or (--evaluation) the whole card written",
    )
    card.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    card.add_argument("--command", dest="reproduce", default="", help="the command that made it")
    card.add_argument(
        "--evaluation",
        type=Path,
        help="write the whole card (to --out) from the evaluation outputs in this folder, "
        "e.g. classifier/models/evaluation; without it, print the metadata part",
    )
    card.add_argument("--out", type=Path, default=DEFAULT_BUNDLE.parent / "MODEL_CARD.md")
    card.set_defaults(run=run)


def run(args) -> int:
    if not args.evaluation:
        from training.evaluation.card import model_card

        print(model_card(args.bundle, args.reproduce))
        return 0
    from training.evaluation.card_document import REPRODUCE, card_document_write

    lines = card_document_write(
        evaluation=args.evaluation,
        bundle=args.bundle,
        out=args.out,
        reproduce=args.reproduce or REPRODUCE,
    )
    print(f"wrote {args.out} ({lines} lines)")
    return 0
