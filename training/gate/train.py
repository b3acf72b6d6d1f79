"""Train and fit the "not assessable" gate (classifier.gate) for a trained bundle.

The corpus: the bundle's own frontal films (split as the bundle split them, so the gate's
validation and test films are the ensemble's) and non-frontal images (training.negatives),
split by patient or source group. Every image goes once through the bundle's Predictor,
which gives the deterministic checks, the ensemble's pooled features and the lung masks;
the gate network then trains on small grey copies. The feature distance is fitted on the
training split's frontal films, every threshold on the validation split's.
"""

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.covariance import ledoit_wolf_shrinkage
from torchvision.transforms import v2

from classifier import load_bundle
from classifier.bundle import Gate
from classifier.gate import (
    KINDS,
    FeatureDistance,
    GateSpec,
    gate_input,
    gate_net,
    lung_reasons,
)
from classifier.preprocess import content_box, crop, gray_batch, to_gray_array
from training.data.datasets import load_gray
from training.data.manifests import Record, split_by_patient
from training.ensemble.loop import seed_everything
from training.gate.negatives import Negative
from training.gate.reference import REFERENCE_FILMS, drift_reference

FRONTAL = "frontal_cxr"
STORE_SIZE = 80  # grey copies are kept at this size; training crops them to the input size
LUNG_KEYS = ("lung_area", "lung_left", "lung_right", "lung_balance")


@dataclass
class Corpus:
    """Images with their evaluation kind, gate label, split and source, and what the
    bundle's Predictor measured on each."""

    images: list[Image.Image]
    kinds: list[str]  # "frontal_cxr" or a training.negatives kind
    labels: list[str]  # classifier.gate.KINDS
    splits: list[str]  # train, val, test, external
    sources: list[str]
    checks: list[list[str]] = field(default_factory=list)
    features: np.ndarray | None = None
    lungs: list[dict | None] = field(default_factory=list)
    small: torch.Tensor | None = None  # Nx1xSxS grey copies, for training
    inputs: torch.Tensor | None = None  # the gate network's input, as the Predictor makes it
    # The frontal films' true labels ("" for the rest), and the ensemble's label and its
    # probability for every image (the drift monitor's reference: training.gate.reference).
    truth: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # the bundle's, set by measure()

    def where(self, *, split: str | None = None, kind: str | None = None) -> np.ndarray:
        keep = np.ones(len(self.kinds), dtype=bool)
        if split is not None:
            keep &= np.array(self.splits) == split
        if kind is not None:
            keep &= np.array(self.kinds) == kind
        return np.flatnonzero(keep)


def _hashed_split(group: str, val: float, test: float) -> str:
    unit = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if unit < test else "val" if unit < test + val else "train"


def build_corpus(
    films: list[Record],
    negatives: list[Negative],
    *,
    config: dict,
    external: list[Record] = (),
) -> Corpus:
    """``films``: the frontal films the bundle was trained on, split with its own ``config``
    (seed, fractions); ``external``: frontal films of hospitals nobody trained on."""
    val, test = config["val_fraction"], config["test_fraction"]
    splits = split_by_patient(films, val=val, test=test, seed=config["seed"])
    by_patient = {r.patient_id: name for name, rows in splits.items() for r in rows}
    rows = [(r, name) for name, rs in splits.items() for r in rs]
    rows += [(r, "external") for r in external]
    corpus = Corpus([], [], [], [], [])
    for record, split in rows:
        corpus.images.append(load_gray(record.path))
        corpus.kinds.append(FRONTAL)
        corpus.labels.append(FRONTAL)
        corpus.splits.append(split)
        corpus.sources.append(record.source or "unknown")
        corpus.truth.append(record.label)
    for item in negatives:
        corpus.images.append(item.image)
        corpus.kinds.append(item.kind)
        corpus.labels.append(item.label)
        corpus.splits.append(by_patient.get(item.group) or _hashed_split(item.group, val, test))
        corpus.sources.append(item.group)
        corpus.truth.append("")
    return corpus


def measure(corpus: Corpus, predictor, *, batch: int = 32) -> Corpus:
    """What the bundle's Predictor (loaded without its gate) sees in every image: exactly the
    deterministic checks, features and lung statistics that its gate will judge, and the gate
    network's input as the Predictor makes it."""
    checks, features, lungs = [], [], []
    corpus.predicted, corpus.confidence = [], []
    corpus.classes = list(predictor.meta.classes)
    for start in range(0, len(corpus.images), batch):
        chunk = corpus.images[start : start + batch]
        for result in predictor.predict(chunk, cam=False, features=True):
            corpus.predicted.append(result.label)
            corpus.confidence.append(result.probabilities[result.label])
            checks.append(list(result.assessment.reasons))
            features.append(result.features)
            scores = result.assessment.scores
            lungs.append({k: scores[k] for k in LUNG_KEYS} if "lung_area" in scores else None)
    corpus.checks, corpus.lungs = checks, lungs
    corpus.features = np.stack(features).astype(np.float32)
    crops = [crop(a, content_box(a)) for a in (to_gray_array(img) for img in corpus.images)]
    corpus.small = gray_batch(crops, STORE_SIZE)
    corpus.inputs = gray_batch(crops, GateSpec().input_size)
    return corpus


def fit_distance(features: np.ndarray, rank: int = 128) -> FeatureDistance:
    """Mahalanobis under the Ledoit-Wolf shrunk covariance of ``features`` (frontal films
    only), kept exactly along its top ``rank`` principal directions."""
    x = torch.as_tensor(features, dtype=torch.float64)
    mean = x.mean(0)
    centred = x - mean
    n, dim = centred.shape
    alpha = float(ledoit_wolf_shrinkage(centred.numpy(), assume_centered=True))
    _, sing, vt = torch.linalg.svd(centred, full_matrices=False)
    eig = sing.square() / n
    mu = float(eig.sum()) / dim  # trace / dim
    rank = min(rank, len(eig) - 1)
    tail_eig = float(eig[rank:].sum()) / (dim - rank)
    distance = FeatureDistance(dim, rank)
    distance.mean.copy_(mean.float())
    distance.basis.copy_(vt[:rank].T.float())
    distance.scale.copy_(((1 - alpha) * eig[:rank] + alpha * mu).float())
    distance.tail.fill_((1 - alpha) * tail_eig + alpha * mu)
    return distance.eval()


def _border(image: torch.Tensor) -> torch.Tensor:
    """Black or white bands of up to 12% on each side, back at the same size: what a
    content crop may leave of a film's letterboxing."""
    side = image.shape[-1]
    pads = [int(side * float(f)) for f in torch.empty(4).uniform_(0, 0.12)]
    value = float(torch.randint(0, 2, (1,)))
    padded = F.pad(image[None], pads, value=value)
    return F.interpolate(padded, size=image.shape[-2:], mode="bilinear", antialias=True)[0]


def _augment(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    resized_crop = v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.85, 1.18), antialias=True)
    out = []
    for image in batch:
        if torch.rand(1, generator=generator) < 0.3:
            image = _border(image)
        image = resized_crop(v2.functional.rotate(image, float(torch.empty(1).uniform_(-8, 8))))
        if torch.rand(1, generator=generator) < 0.5:
            image = image.flip(-1)
        gamma = float(torch.empty(1).uniform_(0.7, 1.4))
        out.append(image.clamp(0, 1) ** gamma)
    return torch.stack(out)


def train_net(
    corpus: Corpus,
    rows: np.ndarray,
    spec: GateSpec,
    *,
    epochs: int = 12,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
):
    """The gate network on ``rows`` of the corpus, class-weighted cross-entropy, AdamW with a
    one-cycle schedule, on the CPU threads torch has."""
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    net = gate_net(spec)
    targets = torch.tensor([spec.kinds.index(corpus.labels[i]) for i in rows])
    counts = torch.bincount(targets, minlength=len(spec.kinds)).float()
    weights = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()), 0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(rows) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    images = corpus.small[torch.as_tensor(rows)]
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(rows), generator=generator)
        for start in range(0, len(rows), batch_size):
            pick = order[start : start + batch_size]
            x = gate_input(_augment(images[pick], spec.input_size, generator))
            loss = F.cross_entropy(net(x), targets[pick], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


@torch.inference_mode()
def kind_probs(net, corpus: Corpus, spec: GateSpec) -> np.ndarray:
    """p(kind) for every image of the corpus, from the input the Predictor would give it."""
    if corpus.inputs.shape[-1] != spec.input_size:
        raise ValueError("the corpus was measured for another gate input size")
    return net(gate_input(corpus.inputs)).softmax(1).numpy()


# Margins on the lung-field thresholds beyond what the validation films span: other
# hospitals collimate tighter or wider (Montgomery's lungs fill up to 40% of its films).
LUNG_MARGIN = {
    "min_lung_area": 0.7,
    "max_lung_area": 1.3,
    "min_lung_side": 0.5,
    "min_lung_balance": 0.7,
}


def choose_thresholds(
    spec: GateSpec,
    p_frontal: np.ndarray,
    distance: np.ndarray,
    lungs: list[dict | None],
    *,
    keep: float = 0.98,
    per_layer: float = 0.995,
) -> GateSpec:
    """Thresholds on the validation frontal films: each learned layer keeps ``per_layer`` of
    them (the network at most asks for p >= 0.5), loosened until all layers together keep at
    least ``keep``."""
    stats = [s for s in lungs if s is not None]
    side = np.array([min(s["lung_left"], s["lung_right"]) for s in stats])
    area = np.array([s["lung_area"] for s in stats])
    balance = np.array([s["lung_balance"] for s in stats])
    tail = 1 - per_layer
    while True:
        chosen = replace(
            spec,
            min_frontal=float(min(0.5, np.quantile(p_frontal, tail))),
            max_distance=float(np.quantile(distance, 1 - tail)),
            min_lung_side=_margin("min_lung_side", side, tail),
            min_lung_area=_margin("min_lung_area", area, tail),
            max_lung_area=_margin("max_lung_area", area, 1 - tail),
            min_lung_balance=_margin("min_lung_balance", balance, tail),
        )
        kept = learned_keep(chosen, p_frontal, distance, lungs)
        if kept.mean() >= keep or tail < 1e-4:
            return chosen
        tail /= 2


def _margin(key: str, values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q) * LUNG_MARGIN[key]) if len(values) else None


def learned_keep(spec: GateSpec, p_frontal, distance, lungs) -> np.ndarray:
    """Which images the learned layers (network, distance, lungs) keep."""
    kept = (p_frontal >= spec.min_frontal) & (distance <= spec.max_distance)
    lung_ok = np.array([s is None or not lung_reasons(spec, s) for s in lungs])
    return kept & lung_ok


def fit_gate(
    corpus: Corpus, *, exclude: str | None = None, epochs: int = 12, seed: int = 0
) -> tuple[Gate, dict]:
    """Train the network (without the kind ``exclude``), fit the distance and thresholds;
    returns the gate and every image's scores under it."""
    spec = GateSpec(kinds=list(KINDS))
    train = corpus.where(split="train")
    if exclude is not None:
        train = train[np.array(corpus.kinds)[train] != exclude]
    net = train_net(corpus, train, spec, epochs=epochs, seed=seed)
    frontal_train = corpus.where(split="train", kind=FRONTAL)
    distance_model = fit_distance(corpus.features[frontal_train])
    with torch.inference_mode():
        distance = distance_model(torch.as_tensor(corpus.features)).numpy()
    probs = kind_probs(net, corpus, spec)
    val = corpus.where(split="val", kind=FRONTAL)
    spec = choose_thresholds(spec, probs[val, 0], distance[val], [corpus.lungs[i] for i in val])
    if min(len(frontal_train), len(val)) >= REFERENCE_FILMS and corpus.predicted:
        spec = replace(spec, reference=corpus_reference(corpus, distance, frontal_train, val))
    scores = {"probs": probs, "distance": distance}
    return Gate(spec, net, distance_model), scores


def corpus_reference(corpus: Corpus, distance, train: np.ndarray, val: np.ndarray) -> dict:
    """The drift monitor's reference from a measured corpus: the training frontal films'
    distances, and the validation frontal films' distances, predictions and labels."""
    return drift_reference(
        train_distance=distance[train],
        val_distance=distance[val],
        val_labels=[corpus.predicted[i] for i in val],
        val_confidence=np.array([corpus.confidence[i] for i in val]),
        val_truth=[corpus.truth[i] for i in val],
        classes=corpus.classes,
    )


def refit_gate(
    bundle: Path,
    gate: Gate,
    *,
    train: list[Record],
    val: list[Record],
    frontal: list[Record] = (),
    refused: list[Record] = (),
) -> Gate:
    """The gate of another version, refitted for the ensemble in ``bundle``: its network
    kept, the feature distance refitted on the training split's films and the thresholds
    on the validation split's. Radiologists' answers join in: films they found assessable
    after all (``frontal``) join both fits, and the share of films they called not
    diagnostic (``refused``) that the refitted gate refuses is recorded."""
    predictor = load_bundle(bundle, device="cpu", gate=False)
    fit_rows = list(train) + list(frontal)
    keep_rows = list(val) + list(frontal)
    fit_set = _measured(predictor, fit_rows, gate)
    keep_set = _measured(predictor, keep_rows, gate)
    distance_model = fit_distance(fit_set["features"])
    with torch.inference_mode():
        distance = distance_model(torch.as_tensor(keep_set["features"])).numpy()
        fit_distances = distance_model(torch.as_tensor(fit_set["features"])).numpy()
    spec = choose_thresholds(gate.spec, keep_set["probs"][:, 0], distance, keep_set["lungs"])
    reference = {}  # the drift monitor's: too few films to stand for the training films
    if len(fit_rows) >= REFERENCE_FILMS and len(keep_rows) >= REFERENCE_FILMS:
        reference = drift_reference(
            train_distance=fit_distances,
            val_distance=distance,
            val_labels=keep_set["predicted"],
            val_confidence=np.array(keep_set["confidence"]),
            val_truth=[r.label for r in keep_rows],
            classes=list(predictor.meta.classes),
        )
    refit = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "films": len(fit_rows),
        "validation_films": len(keep_rows),
        "assessable_after_all": len(frontal),
    }
    if refused:
        out = _measured(predictor, list(refused), gate)
        with torch.inference_mode():
            d = distance_model(torch.as_tensor(out["features"])).numpy()
        kept = learned_keep(spec, out["probs"][:, 0], d, out["lungs"]) & ~out["checked"]
        refit["not_diagnostic"] = {"n": len(refused), "refused": int((~kept).sum())}
    # The figures measured by `training gate` describe the thresholds it chose, not these.
    spec = replace(
        spec,
        training={**spec.training, "refit": refit},
        metrics={"before_refit": gate.spec.metrics} if gate.spec.metrics else {},
        reference=reference,
    )
    return Gate(spec, gate.net, distance_model)


def _measured(predictor, records: list[Record], gate: Gate) -> dict:
    corpus = Corpus([load_gray(r.path) for r in records], [], [], [], [])
    measure(corpus, predictor)
    probs = kind_probs(gate.net, corpus, gate.spec)
    checked = np.array([bool(c) for c in corpus.checks])
    return {
        "features": corpus.features,
        "probs": probs,
        "lungs": corpus.lungs,
        "checked": checked,
        "predicted": corpus.predicted,
        "confidence": corpus.confidence,
    }
