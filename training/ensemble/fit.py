"""A full training run: split by patient, train members, calibrate on validation, evaluate on
test, save a bundle that carries its config, seeds, data summary and metrics."""

from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from classifier import DEFAULT_CLASSES as PRODUCT_CLASSES
from classifier.bundle import load_bundle_members, load_gate, load_segmenter, save_bundle
from classifier.conformal import prediction_sets
from classifier.device import resolve_device, use_bf16
from classifier.ensemble import decide
from classifier.errors import BundleError
from classifier.metadata import BundleMetadata, MemberSpec
from training.data.artifacts import ArtifactAugment
from training.data.datasets import RenderAugment, XrayDataset, make_augment
from training.data.manifests import Record, records_sha256, refuse_external, split_by_patient
from training.ensemble.calibration import fit_member_weights, fit_temperature, fit_threshold, soften
from training.ensemble.config import TrainConfig
from training.ensemble.conformal import coverage_table, fit_conformal
from training.ensemble.loop import member_name, predict_logits, seed_everything, train_member
from training.evaluation.metrics import binary_aucs, classification_report, report_with_sources

DEFAULT_CLASSES = list(PRODUCT_CLASSES)
NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.from_numpy(logits / temperature).softmax(1).numpy()


def _counts(records: list[Record]) -> dict:
    return {
        "images": len(records),
        "patients": len({r.patient_id for r in records}),
        "labels": dict(Counter(r.label for r in records)),
        "sources": dict(Counter(r.source for r in records)),
    }


def ensemble_outputs(member_logits, specs, ensemble_temperature, classes, thresholds):
    member_probs = [_softmax(z, s.temperature) for z, s in zip(member_logits, specs, strict=True)]
    total = sum(s.weight for s in specs)
    probs = sum(p * (s.weight / total) for p, s in zip(member_probs, specs, strict=True))
    probs = soften(probs, ensemble_temperature)
    predicted = decide(torch.from_numpy(probs), classes, thresholds).numpy()
    return member_probs, probs, predicted


def calibrate(member_logits, y, specs, classes, cfg: TrainConfig):
    """Member temperatures, member weights, ensemble temperature, covid19 threshold (val)."""
    if cfg.calibrate:
        specs = [
            MemberSpec(s.name, s.arch, s.head, s.weight, fit_temperature(z, y))
            for s, z in zip(specs, member_logits, strict=True)
        ]
        member_probs = [
            _softmax(z, s.temperature) for z, s in zip(member_logits, specs, strict=True)
        ]
        weights = fit_member_weights(member_probs, y, classes)
        specs = [
            MemberSpec(s.name, s.arch, s.head, w, s.temperature)
            for s, w in zip(specs, weights, strict=True)
        ]
        _, probs, _ = ensemble_outputs(member_logits, specs, 1.0, classes, {})
        ensemble_temperature = fit_temperature(np.log(np.clip(probs, 1e-12, 1.0)), y)
    else:
        ensemble_temperature = 1.0
    thresholds = {}
    if cfg.covid_sensitivity is not None and "covid19" in classes:
        _, probs, _ = ensemble_outputs(member_logits, specs, ensemble_temperature, classes, {})
        k = classes.index("covid19")
        threshold = fit_threshold(probs, y, k, cfg.covid_sensitivity, cfg.covid_min_specificity)
        # Only ever lower the bar below the argmax's implicit one; never raise it.
        if threshold is not None and threshold < 0.5:
            thresholds["covid19"] = threshold
    return specs, ensemble_temperature, thresholds


def dataset_options(cfg: TrainConfig, segmenter=None) -> dict:
    """How every dataset of a run sees its films: the bundle's normalization, intensity and
    crop (the Predictor's), and the partial labels."""
    return {
        **NORMALIZATION,
        "size": cfg.input_size,
        "intensity": cfg.intensity,
        "crop": cfg.crop,
        "crop_margin": cfg.crop_margin,
        "segmenter": segmenter,
        "not_covid_labels": tuple(cfg.not_covid_labels),
    }


def training_extras(cfg: TrainConfig, records: list[Record]) -> dict:
    """What the training split's items carry for the extra loss terms and the lungs-only
    augmentation: lung masks for ``cam_lungs`` and ``lungs_only``, source indices for
    ``adversary``."""
    extras: dict = {}
    if cfg.cam_lungs or cfg.lungs_only:
        extras["lung_masks"] = True
    if cfg.lungs_only:
        extras["lungs_only"] = cfg.lungs_only
    if cfg.adversary:
        extras["sources"] = sorted({r.source for r in records})
    return extras


def scored(records: list[Record], cfg: TrainConfig) -> list[Record]:
    """The rows with a class label (validation, test and calibration use only these)."""
    return [r for r in records if r.label not in cfg.not_covid_labels]


def package(*, specs, logits, y_val, eval_set, split, classes, cfg, training) -> BundleMetadata:
    """Calibrate on validation logits, evaluate on the evaluation set, build the metadata."""
    specs, ensemble_t, thresholds = calibrate(logits["val"], y_val, specs, classes, cfg)
    member_probs, probs, predicted = ensemble_outputs(
        logits["eval"], specs, ensemble_t, classes, thresholds
    )
    y = eval_set.targets.numpy()
    conformal = {}
    if cfg.conformal:
        _, val_probs, _ = ensemble_outputs(logits["val"], specs, ensemble_t, classes, thresholds)
        conformal = fit_conformal(val_probs, y_val, classes)
    metrics = {
        "split": split,
        "ensemble": report_with_sources(
            y, probs, classes, [r.source for r in eval_set.records], y_pred=predicted
        ),
        "ensemble_argmax": classification_report(y, probs, classes, n_boot=0),
        "binary": binary_aucs(y, probs, classes),
        "conformal_coverage": coverage_table(
            prediction_sets(probs, classes, conformal),
            [classes[i] for i in y],
            {"class": [classes[i] for i in y], "source": [r.source for r in eval_set.records]},
        ),
        "members": {
            s.name: classification_report(y, p, classes, n_boot=0)
            for s, p in zip(specs, member_probs, strict=True)
        },
    }
    return BundleMetadata(
        classes=classes,
        members=specs,
        input_size=cfg.input_size,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training=training,
        metrics=metrics,
        ensemble_temperature=ensemble_t,
        decision_thresholds=thresholds,
        intensity=cfg.intensity,
        crop=cfg.crop,
        crop_margin=cfg.crop_margin,
        conformal=conformal,
        **NORMALIZATION,
    )


def recalibrate(bundle: Path, records: list[Record], out: Path, **changes) -> BundleMetadata:
    """Refit calibration and thresholds of a trained bundle with the current rules (and any
    config ``changes``), on the validation split its own seed gives, then re-evaluate on test.
    The weights are unchanged; the data must be the data it was trained on."""
    meta, members = load_bundle_members(bundle)
    training = dict(meta.training)
    if records_sha256(records) != training["data_sha256"]:
        raise ValueError("these are not the data the bundle was trained on (hash differs)")
    config = {**training["config"], **changes}
    cfg = TrainConfig(**config)
    splits = split_by_patient(records, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed)
    device = resolve_device(cfg.device)
    bf16 = use_bf16(device, cfg.precision)
    segmenter = load_segmenter(bundle)
    data = {
        name: XrayDataset(
            scored(splits[name], cfg), meta.classes, **dataset_options(cfg, segmenter)
        )
        for name in ("val", "test")
    }
    options = {"device": device, "bf16": bf16, "batch_size": cfg.batch_size}
    logits = {"val": [], "eval": []}
    specs = []
    for spec in meta.members:
        model = members[spec.name].to(device)
        logits["val"].append(predict_logits(model, data["val"], **options))
        logits["eval"].append(predict_logits(model, data["test"], **options))
        members[spec.name] = model.cpu()
        specs.append(MemberSpec(name=spec.name, arch=spec.arch, head=spec.head))
    training["config"] = asdict(cfg)
    training["recalibrated"] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "from_created_at": meta.created_at,
        "changes": changes,
    }
    new = package(
        specs=specs,
        logits=logits,
        y_val=data["val"].targets.numpy(),
        eval_set=data["test"],
        split="test",
        classes=meta.classes,
        cfg=cfg,
        training=training,
    )
    save_bundle(out, members, new, segmenter=segmenter)
    gate = load_gate(bundle)
    if gate is not None:
        _with_gate(out, gate, train=splits["train"], val=splits["val"])
    return new


def _with_gate(out: Path, gate, *, train, val, frontal=(), refused=()) -> None:
    """Rewrite the bundle at ``out`` with ``gate`` refitted for its ensemble."""
    from training.gate.train import refit_gate

    gate = refit_gate(out, gate, train=train, val=val, frontal=frontal, refused=refused)
    meta, members = load_bundle_members(out)
    save_bundle(out, members, meta, segmenter=load_segmenter(out), gate=gate)


def class_list(records: list[Record], classes: list[str] | None = None) -> list[str]:
    """The classes a model of these records predicts: ``classes`` if given, else the four
    default ones when the labels fit them, else the labels sorted."""
    labels = {r.label for r in records}
    chosen = classes or (DEFAULT_CLASSES if labels <= set(DEFAULT_CLASSES) else sorted(labels))
    unknown = labels - set(chosen)
    if unknown:
        raise ValueError(f"labels not in the class list: {sorted(unknown)}")
    return list(chosen)


def fit(
    records: list[Record],
    out: Path,
    cfg: TrainConfig,
    *,
    progress: bool = True,
    data_sources: list[dict] | None = None,
    test_records: list[Record] | None = None,
    gate_frontal: list[Record] = (),
    gate_refused: list[Record] = (),
) -> BundleMetadata:
    """Train, calibrate and evaluate an ensemble; write the bundle to ``out``.

    ``test_records`` (e.g. a locked evaluation set) replace the random test split. With
    ``cfg.gate`` the bundle carries that bundle's gate, refitted; ``gate_frontal`` and
    ``gate_refused`` are films radiologists found assessable after all, or not diagnostic.
    """
    refuse_external(records)
    segmenter = None
    if cfg.segmenter:
        segmenter = load_segmenter(Path(cfg.segmenter))
        if segmenter is None:
            raise BundleError(f"{cfg.segmenter} holds no lung segmenter")
    seed_everything(cfg.seed)
    classes = class_list(scored(records, cfg), cfg.classes)
    if test_records is not None:
        leaked = {r.patient_id for r in records} & {r.patient_id for r in test_records}
        if leaked:
            raise ValueError(f"{len(leaked)} evaluation patient(s) are also in the training data")
    test_fraction = 0.0 if test_records is not None else cfg.test_fraction
    splits = split_by_patient(records, val=cfg.val_fraction, test=test_fraction, seed=cfg.seed)
    if test_records is not None:
        splits["test"] = test_records
    # Partial-label rows train; validation and test score the classes.
    splits["val"], splits["test"] = scored(splits["val"], cfg), scored(splits["test"], cfg)
    if not splits["train"] or not splits["val"]:
        raise ValueError("too few patients for a train/validation split")
    device = resolve_device(cfg.device)
    bf16 = use_bf16(device, cfg.precision)
    augment = make_augment(
        rotation=cfg.rotation,
        zoom=cfg.zoom,
        shear=cfg.shear,
        brightness=cfg.brightness,
        contrast=cfg.contrast,
        hflip=cfg.hflip,
    )
    training_split = cfg.augment and cfg.render
    data = {
        name: XrayDataset(
            rs,
            classes,
            augment=augment if cfg.augment and name == "train" else None,
            render=RenderAugment() if training_split and name == "train" else None,
            artifacts=(
                ArtifactAugment(seed=cfg.seed)
                if cfg.augment and cfg.artifacts and name == "train"
                else None
            ),
            **dataset_options(cfg, segmenter),
            **(training_extras(cfg, rs) if name == "train" else {}),
        )
        for name, rs in splits.items()
        if rs
    }
    eval_set = data.get("test", data["val"])
    specs, histories, logits = [], {}, {"val": [], "eval": []}
    options = {"device": device, "bf16": bf16, "batch_size": cfg.batch_size}
    members = {}
    for arch, epochs in zip(cfg.archs, cfg.epochs, strict=True):
        name = member_name(arch)
        seed_everything(cfg.seed)
        model, histories[name] = train_member(
            arch,
            classes,
            data["train"],
            data["val"],
            epochs,
            cfg,
            device=device,
            bf16=bf16,
            progress=progress,
        )
        logits["val"].append(predict_logits(model, data["val"], **options))
        logits["eval"].append(predict_logits(model, eval_set, **options))
        members[name] = model.cpu()
        specs.append(MemberSpec(name=name, arch=arch, head="pooled"))
    training = {
        "config": asdict(cfg),
        "device": str(device),
        "bf16": bf16,
        "torch": torch.__version__,
        "data_sha256": records_sha256(records),
        "data_sources": data_sources or [],
        "splits": {name: _counts(rs) for name, rs in splits.items()},
        # "random": the seeded split of these records; "given": test_records were passed.
        "test_split": "given" if test_records is not None else "random",
        "history": histories,
    }
    meta = package(
        specs=specs,
        logits=logits,
        y_val=data["val"].targets.numpy(),
        eval_set=eval_set,
        split="test" if "test" in data else "val",
        classes=classes,
        cfg=cfg,
        training=training,
    )
    save_bundle(out, members, meta, segmenter=segmenter)
    if cfg.gate:
        gate = load_gate(Path(cfg.gate))
        if gate is None:
            raise BundleError(f"{cfg.gate} holds no gate")
        _with_gate(
            out,
            gate,
            train=splits["train"],
            val=splits["val"],
            frontal=gate_frontal,
            refused=gate_refused,
        )
    return meta
