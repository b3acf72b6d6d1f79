from dataclasses import dataclass, field

from classifier.metadata import seeing_problem

STRATEGIES = ("finetune", "freeze", "features")
BALANCES = ("loss", "sampler", "source")
CAM_EMPTY = ("outside", "free")


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in the bundle it produces."""

    archs: list[str] = field(default_factory=lambda: ["mobilenet_v2", "vgg11_bn"])
    epochs: list[int] = field(default_factory=lambda: [12, 12])
    # "finetune": train everything; "freeze": freeze the first `freeze_layers` feature blocks
    # (the papers' layer cutoff); "features": frozen backbone, cached features, head only.
    strategy: str = "finetune"
    freeze_layers: int = 0
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    # Early stopping on validation macro AUC, only in the second half of the schedule: at the
    # peak learning rate the validation AUC is noisy and would stop runs too soon.
    patience: int = 6
    input_size: int = 224
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # "loss": class-weighted loss; "sampler": class-balanced sampling; "source": sampling
    # balanced over classes and, tempered by source_power, over sources within a class.
    balance: str = "loss"
    source_power: float = 0.5
    augment: bool = True
    rotation: float = 10.0
    zoom: float = 0.1
    shear: float = 5.0
    brightness: float = 0.2
    contrast: float = 0.2
    hflip: bool = False  # anatomy is not mirror-symmetric
    # Renderings a film may arrive in: window, gamma, black borders, JPEG quality, resolution
    # (training.data.RenderAugment), applied before the intensity normalisation.
    render: bool = False
    # The marks the collections differ by (training.artifacts): text and side markers,
    # captions, arrows and circles, tubes and leads, crops and borders, vendor processing.
    artifacts: bool = False
    # Probability that a training film is shown with only its predicted lungs, everything
    # outside them at the normalisation mean: the Predictor's occlusion check
    # (``Predictor.lungs_only``) as an augmentation, so the lungs alone must carry the call.
    # Needs ``segmenter``; 0: off.
    lungs_only: float = 0.0
    intensity: str = "as_is"  # classifier.metadata.INTENSITIES
    crop: str = "none"  # classifier.metadata.CROPS; "lungs" needs ``segmenter``
    crop_margin: float = 0.1
    # Labels outside the classes that are certainly not covid19 (e.g. tuberculosis): trained
    # with -log(1 - p(covid19)), which says "not covid19" without choosing among the others.
    not_covid_labels: list[str] = field(default_factory=list)
    # Exponential moving average of the weights (and batch-norm statistics), e.g. 0.999; 0: off.
    ema: float = 0.0
    # Weight of a penalty on the share of each training film's Grad-CAM map (for its class)
    # outside the predicted lungs. Needs ``segmenter``; 0: off.
    cam_lungs: float = 0.0
    # How the penalty counts a map with no positive evidence: "outside" (wholly outside the
    # lungs, plus a term that lifts the map's best lung cell) or "free" (costs nothing).
    cam_empty: str = "outside"
    # Weight of a gradient-reversal adversary that predicts a film's ``source`` from the pooled
    # features and the class: the backbone is pushed to carry no collection cue beyond what the
    # class explains. 0: off.
    adversary: float = 0.0
    calibrate: bool = True  # member and ensemble temperatures, member weights
    # Conformal prediction sets' thresholds (classifier.conformal), fitted on validation.
    conformal: bool = True
    covid_sensitivity: float | None = 0.95  # fit a covid19 threshold for this; None: argmax
    covid_min_specificity: float = 0.95  # ...but never below this validation specificity
    device: str = "auto"
    precision: str = "auto"
    init: str | None = None  # torchvision weights name, a local .pth, or a bundle
    segmenter: str | None = None  # a lung segmenter file or bundle: the new bundle carries it
    # A bundle with a "not assessable" gate: the new bundle carries its network, with the
    # feature distance and thresholds refitted for the new ensemble (training.gate.refit_gate).
    gate: str | None = None
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if len(self.epochs) == 1 and len(self.archs) > 1:
            self.epochs = self.epochs * len(self.archs)
        if len(self.epochs) != len(self.archs):
            raise ValueError("give one epoch count, or one per architecture")
        if self.balance not in BALANCES:
            raise ValueError(f"balance must be one of {BALANCES}, not {self.balance!r}")
        problem = seeing_problem(self.intensity, self.crop, bool(self.segmenter))
        if problem:
            raise ValueError(problem)
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ValueError("crop margin must be between 0 and 1")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError("ema must be in [0, 1): a decay such as 0.999, or 0 for off")
        self._check_objectives()
        clash = set(self.not_covid_labels) & set(self.classes or [])
        if clash:
            raise ValueError(f"not-covid labels that are also classes: {sorted(clash)}")

    def _check_objectives(self) -> None:
        """The heatmap, adversary and lungs-only options, and what each needs."""
        if self.cam_empty not in CAM_EMPTY:
            raise ValueError(f"cam_empty must be one of {CAM_EMPTY}, not {self.cam_empty!r}")
        if self.cam_lungs < 0 or self.adversary < 0:
            raise ValueError("cam_lungs and adversary are weights: 0 (off) or more")
        if not 0.0 <= self.lungs_only <= 1.0:
            raise ValueError("lungs_only is a probability: between 0 (off) and 1")
        if self.lungs_only and not self.segmenter:
            raise ValueError("lungs_only needs a lung segmenter (--segmenter)")
        if self.lungs_only and not self.augment:
            raise ValueError("lungs_only is an augmentation: not with augmentation off")
        if self.cam_lungs and not self.segmenter:
            raise ValueError("cam_lungs needs a lung segmenter (--segmenter)")
        if (self.cam_lungs or self.adversary) and self.strategy == "features":
            raise ValueError("cam_lungs and adversary train the backbone: not with features")


@dataclass
class SegmentConfig:
    """A lung-segmentation run (``python -m training segment``); stored in its output."""

    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    input_size: int = 128
    epochs: int = 25
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment: bool = True
    rotation: float = 10.0
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    threshold: float = 0.5
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("train the segmenter for at least one epoch")
        step = 2 ** (len(self.widths) - 1)
        if len(self.widths) < 2 or self.input_size % step:
            raise ValueError(
                f"a {len(self.widths)}-level U-Net needs an input size divisible by {step}"
            )
