"""A Markdown model card, rendered from a bundle's own metadata (nothing typed by hand)."""

from pathlib import Path

from classifier import read_metadata
from training.evaluation.report import number as _f


def _ci(values) -> str:
    return "–" if not values else f"{values[0]:.3f}–{values[1]:.3f}"


def _class_table(report: dict) -> list[str]:
    lines = [
        "| class | n | sensitivity | specificity | PPV | F1 | AUC | AUC 95% CI |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in report["per_class"].items():
        lines.append(
            f"| {name} | {m['n']} | {_f(m['sensitivity'])} | {_f(m['specificity'])} | "
            f"{_f(m['ppv'])} | {_f(m['f1'])} | {_f(m['auc'])} | {_ci(m['auc_ci'])} |"
        )
    return lines


def _conformal_lines(conformal: dict) -> list[str]:
    if not conformal:
        return ["- **Prediction sets:** none (no conformal calibration in this bundle)."]
    cal = conformal["calibration"]
    levels = ", ".join(
        f"{key}: " + ", ".join(f"{c} {q:.3f}" for c, q in per_class.items())
        for key, per_class in conformal["thresholds"].items()
    )
    return [
        f"- **Prediction sets:** split conformal ({conformal['method'].upper()} score 1 − p), "
        f"fitted on the {cal['split']} split ({cal['n']} films), class-conditional for "
        f"{', '.join(conformal['mondrian']) or 'no class'}; thresholds on 1 − p per level: "
        f"{levels}."
    ]


def _segmenter_lines(seg: dict) -> list[str]:
    if not seg:
        return ["- **Lung segmenter:** none (predictions carry no lung mask)."]
    test, t = seg["metrics"]["test"], seg["training"]
    splits = "; ".join(
        f"{k} {v['images']} ({', '.join(f'{s} {n}' for s, n in v['sources'].items())})"
        for k, v in t["splits"].items()
    )
    per_source = ", ".join(
        f"{k} {v['dice_mean']:.3f} (n={v['n']})" for k, v in test["per_source"].items()
    )
    minutes = sum(h["seconds"] for h in t["history"]) / 60
    return [
        f"- **Lung segmenter:** U-Net, widths {seg['config']['widths']}, {seg['input_size']} px, "
        f"threshold {seg['threshold']}, created {seg['created_at']}; trained "
        f"{len(t['history'])} epochs ({minutes:.0f} min, device {t['device']}, bf16 {t['bf16']}) "
        f"on {', '.join(str(s.get('manifest', s)) for s in t['data_sources'])} (sha256 "
        f"`{t['data_sha256'][:16]}…`), split by patient: {splits}. "
        f"**{seg['metrics']['split'].capitalize()} Dice {test['dice_mean']:.3f}** (95% CI "
        f"{_ci(test['dice_ci'])}, median {test['dice_median']:.3f}, min {test['dice_min']:.3f}; "
        f"{per_source}), at each mask's own 256 px.",
    ]


def _drift_lines(gate: dict) -> list[str]:
    ref = (gate or {}).get("reference") or {}
    if not ref:
        return ["- **Drift monitor's reference:** none (the monitor cannot judge this bundle)."]
    mix = ", ".join(f"{c} {v:.0%}" for c, v in ref["val_mix"].items())
    agreement = _f(ref["val_agreement"])
    return [
        f"- **Drift monitor's reference** (`python -m training gate-reference`, "
        f"{ref['measured_at']}, {ref['precision']}): the training films' feature distance, 95th "
        f"percentile {ref['distance_p95']:.0f} ({ref['films']['train']} films); the "
        f"validation films ({ref['films']['val']}): {ref['val_beyond_p95']:.0%} beyond it, "
        f"predictions {mix}, mean confidence {ref['val_confidence']:.3f}, agreement with "
        f"their labels {agreement} ({ref['val_agreement_films']} films with one of the classes).",
    ]


def model_card(bundle: Path, command: str = "") -> str:
    meta = read_metadata(bundle)
    t, cfg = meta.training, meta.training["config"]
    e, m = meta.metrics["ensemble"], meta.metrics
    splits = t["splits"]
    minutes = {k: sum(h["seconds"] for h in v) / 60 for k, v in t["history"].items()}
    epochs = {k: len(v) for k, v in t["history"].items()}
    members = ", ".join(
        f"{s.name}: torchvision `{s.arch}`, weight {s.weight:.2f}, temperature {s.temperature:.2f}"
        for s in meta.members
    )
    cvr = e["covid_vs_rest"]
    lines = [
        f"`{bundle.name}`, created {meta.created_at}, {bundle.stat().st_size / 1e6:.0f} MB "
        "(float16 weights).",
        "",
        f"- **Members:** {members}. Soft voting, then ensemble temperature "
        f"{meta.ensemble_temperature:.2f}; decision thresholds "
        f"{ {k: round(v, 3) for k, v in meta.decision_thresholds.items()} or 'none (argmax)' }.",
        f"- **Training:** strategy `{cfg['strategy']}` from "
        f"{'scratch' if not cfg['init'] else cfg['init']}, {cfg['input_size']} px, AdamW (lr "
        f"{cfg['lr']}, weight decay {cfg['weight_decay']}), cosine schedule with "
        f"{cfg['warmup_epochs']:g} warm-up epoch, class balance by `{cfg['balance']}`, "
        f"augmentation ±{cfg['rotation']:g}° rotation, ±{cfg['zoom']:.0%} zoom, {cfg['shear']:g}° "
        f"shear, brightness/contrast ±{cfg['brightness']:.0%}/{cfg['contrast']:.0%}, horizontal "
        f"flip {'on' if cfg['hflip'] else 'off'}; early stopping on validation macro AUC "
        f"(patience {cfg['patience']}). Epochs run: "
        + ", ".join(f"{k} {epochs[k]}" for k in epochs)
        + f"; seed {cfg['seed']}; device {t['device']}, bf16 {t['bf16']}, torch {t.get('torch')}."
        + " Training time: "
        + ", ".join(f"{k} {minutes[k]:.0f} min" for k in minutes)
        + ".",
        f"- **What the model sees:** intensity `{meta.intensity}`, crop `{meta.crop}`"
        + (f" (margin {meta.crop_margin:g})" if meta.crop == "lungs" else "")
        + f"; rendering augmentation {'on' if cfg.get('render') else 'off'}"
        + f"; collection-mark augmentation {'on' if cfg.get('artifacts') else 'off'}"
        + (f"; lungs-only augmentation p {cfg['lungs_only']:g}" if cfg.get("lungs_only") else "")
        + (
            f"; partial labels (not covid19) {', '.join(cfg['not_covid_labels'])}"
            if cfg.get("not_covid_labels")
            else ""
        )
        + (f"; weight EMA {cfg['ema']:g}" if cfg.get("ema") else "")
        + (
            f"; penalty on Grad-CAM outside the lungs {cfg['cam_lungs']:g}, an empty map "
            + (
                "costing nothing"
                if cfg.get("cam_empty", "free") == "free"
                else "counted as outside"
            )
            if cfg.get("cam_lungs")
            else ""
        )
        + (f"; source adversary {cfg['adversary']:g}" if cfg.get("adversary") else "")
        + ".",
        f"- **Calibration (validation split):** member temperatures, member weights (grid search "
        f"on macro AUC), ensemble temperature, and a covid19 threshold aiming at validation "
        f"sensitivity {cfg['covid_sensitivity']} without validation specificity below "
        f"{cfg.get('covid_min_specificity', 0.0)}: "
        + (
            f"threshold {meta.decision_thresholds['covid19']:.3f}."
            if "covid19" in meta.decision_thresholds
            else "no threshold below the argmax's met that floor, so the argmax decides."
        ),
        *_conformal_lines(meta.conformal),
        f"- **Data:** {', '.join(str(s.get('manifest', s)) for s in t['data_sources'])} (images "
        f"and labels sha256 `{t['data_sha256'][:16]}…`), split by patient: "
        + "; ".join(
            f"{k} {v['images']} images / {v['patients']} patients" for k, v in splits.items()
        )
        + ". No patient is in two splits.",
    ]
    lines += _segmenter_lines(meta.segmenter)
    lines += _drift_lines(meta.gate)
    if command:
        lines.append(f"- **Reproduce:** `{command}`")
    lines += [
        "",
        f"**{m['split'].capitalize()} split, {e['n']} images of unseen patients:** accuracy "
        f"{_f(e['accuracy'])}, macro one-vs-rest AUC {_f(e['macro_auc'])}, ECE {_f(e['ece'])}; "
        f"normal vs pneumonia AUC {_f(m['binary'].get('normal_vs_pneumonia_auc'))}, bacterial vs "
        f"viral AUC {_f(m['binary'].get('bacterial_vs_viral_auc'))}.",
        "",
        f"The papers' 2-class table, covid19 vs rest: accuracy {_f(cvr['accuracy'])}, sensitivity "
        f"{_f(cvr['sensitivity'])}, specificity {_f(cvr['specificity'])}.",
        "",
        *_class_table(e),
        "",
        "Confusion matrix (rows true, columns predicted; "
        + ", ".join(e["confusion_matrix"]["labels"])
        + "): "
        + "; ".join(str(r) for r in e["confusion_matrix"]["matrix"])
        + ".",
        "",
        "Without the covid19 threshold (plain argmax): accuracy "
        f"{_f(m['ensemble_argmax']['accuracy'])}, covid19 sensitivity "
        f"{_f(m['ensemble_argmax']['per_class']['covid19']['sensitivity'])}, specificity "
        f"{_f(m['ensemble_argmax']['per_class']['covid19']['specificity'])}. Members alone: "
        + "; ".join(
            f"{k} accuracy {_f(v['accuracy'])}, macro AUC {_f(v['macro_auc'])}"
            for k, v in m["members"].items()
        )
        + ".",
        "",
        "Per source (the collections differ in age and hospital as well as in disease):",
        "",
        "| source | n | accuracy | macro AUC | ECE | classes present |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for source, sub in e["per_source"].items():
        present = ", ".join(f"{c} {v['n']}" for c, v in sub["per_class"].items() if v["n"])
        lines.append(
            f"| {source} | {sub['n']} | {_f(sub['accuracy'])} | {_f(sub['macro_auc'])} |"
            f" {_f(sub['ece'])} | {present} |"
        )
    return "\n".join(lines)
