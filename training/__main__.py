"""``python -m training <command>``: one module per subcommand in training/cli/, each with an
``add_parser(sub)`` that names its ``run(args)``."""

import argparse
import sys

from training.cli import (
    attach_segmenter,
    calibrate,
    card,
    contact_sheet,
    cv,
    evaluate,
    gate,
    gate_reference,
    imports,
    levers,
    segment,
    train,
)
from training.data.manifests import ManifestError

# In the order `--help` lists them.
COMMANDS = (
    train, cv, levers, evaluate, calibrate, card, imports, segment, contact_sheet,
    attach_segmenter, gate, gate_reference,
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
