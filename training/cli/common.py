"""What the subcommands share: list arguments, the recipe's options and the config they
make, and reading the rows of several manifests."""

from pathlib import Path

from classifier.metadata import CROPS, INTENSITIES
from training.data.manifests import Record, read_manifest
from training.ensemble.config import BALANCES, CAM_EMPTY, STRATEGIES, TrainConfig


def csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def manifest_option(parser, *, required: bool = True, help: str | None = None) -> None:
    """``--manifest``, given once per manifest (every subcommand that reads rows takes it)."""
    parser.add_argument(
        "--manifest",
        type=Path,
        action="append",
        required=required,
        default=None if required else [],
        help=help,
    )


def records_read(manifests: list[Path]) -> list[Record]:
    """Every row of these manifests, in order."""
    return [record for manifest in manifests for record in read_manifest(manifest)]


def train_options(train) -> None:
    """The recipe's options, shared by train, cv and levers (TrainConfig's fields)."""
    train.add_argument("--arch", type=csv_list, default=["mobilenet_v2", "vgg11_bn"])
    train.add_argument(
        "--epochs",
        type=lambda v: [int(x) for x in csv_list(v)],
        default=[12],
        help="one value for all members or one per member",
    )
    train.add_argument("--strategy", choices=STRATEGIES, default="finetune")
    train.add_argument(
        "--freeze-layers",
        type=int,
        default=0,
        help="with --strategy freeze: how many feature blocks to freeze",
    )
    train.add_argument(
        "--init",
        default=None,
        help="torchvision weights name, a local .pth, or a bundle to start from",
    )
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--patience", type=int, default=6)
    train.add_argument("--input-size", type=int, default=224)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--balance", choices=BALANCES, default="loss")
    train.add_argument(
        "--source-power",
        type=float,
        default=0.5,
        help="with --balance source: 0 = class balance only, 1 = sources equal within a class",
    )
    train.add_argument("--hflip", action="store_true", help="add horizontal flips (off: anatomy)")
    train.add_argument(
        "--render",
        action="store_true",
        help="augment renderings: window, gamma, resolution, JPEG quality, black borders",
    )
    train.add_argument(
        "--artifacts",
        action="store_true",
        help="augment with what the collections differ by: markers, text, captions, arrows, "
        "tubes, crops and borders, vendor processing",
    )
    train.add_argument(
        "--lungs-only",
        type=float,
        default=0.0,
        metavar="P",
        help="show a training film with only its predicted lungs (the rest at the mean grey) "
        "with probability P; needs --segmenter",
    )
    train.add_argument("--intensity", choices=INTENSITIES, default="as_is")
    train.add_argument("--crop", choices=CROPS, default="none")
    train.add_argument("--crop-margin", type=float, default=0.1)
    train.add_argument(
        "--not-covid-labels",
        type=csv_list,
        default=[],
        help="labels outside the classes that are certainly not covid19 (e.g. tuberculosis)",
    )
    train.add_argument("--ema", type=float, default=0.0, help="weight EMA decay; 0: off")
    train.add_argument(
        "--cam-lungs",
        type=float,
        default=0.0,
        help="weight of the penalty on class activation outside the lungs (needs --segmenter)",
    )
    train.add_argument(
        "--cam-empty",
        choices=CAM_EMPTY,
        default="outside",
        help="the penalty counts an empty map as wholly outside the lungs, or as free",
    )
    train.add_argument(
        "--adversary",
        type=float,
        default=0.0,
        help="weight of a gradient-reversal head on the source, given the class; 0: off",
    )
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--no-calibrate", action="store_true")
    train.add_argument(
        "--covid-sensitivity",
        type=float,
        default=0.95,
        help="fit a covid19 threshold for this validation sensitivity; 0: argmax",
    )
    train.add_argument("--device", default="auto")
    train.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])


def train_config(args) -> TrainConfig:
    return TrainConfig(
        archs=args.arch,
        epochs=args.epochs,
        strategy=args.strategy,
        freeze_layers=args.freeze_layers,
        init=args.init,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        input_size=args.input_size,
        seed=args.seed,
        balance=args.balance,
        source_power=args.source_power,
        hflip=args.hflip,
        render=args.render,
        artifacts=args.artifacts,
        lungs_only=args.lungs_only,
        intensity=args.intensity,
        crop=args.crop,
        crop_margin=args.crop_margin,
        not_covid_labels=args.not_covid_labels,
        ema=args.ema,
        cam_lungs=args.cam_lungs,
        cam_empty=args.cam_empty,
        adversary=args.adversary,
        augment=not args.no_augment,
        calibrate=not args.no_calibrate,
        covid_sensitivity=args.covid_sensitivity or None,
        device=args.device,
        precision=args.precision,
        segmenter=str(args.segmenter) if getattr(args, "segmenter", None) else None,
        gate=str(args.gate) if getattr(args, "gate", None) else None,
    )
