"""Markdown tables for the evaluation's lung, adult non-COVID and external sections, and for
cross-validation: printed by the commands and pasted into the model card as they are."""


def number(value) -> str:
    """A figure as every table prints it: three decimals, or "–" when there is none."""
    return "–" if value is None else f"{value:.3f}"


_f = number


def rate_text(entry: dict | None) -> str:
    """A rate with its count and Wilson interval: "0.900 (9/10; 0.596–0.982)"."""
    if not entry or entry["rate"] is None:
        return "–"
    low, high = entry["ci"]
    return f"{entry['rate']:.3f} ({entry['k']}/{entry['n']}; {low:.3f}–{high:.3f})"


def _quartile_rows(table: dict) -> list[str]:
    return [
        f"| {key} | {q['n']} | {_f(q['median'])} | {_f(q['q1'])}–{_f(q['q3'])} |"
        for key, q in table.items()
    ]


def lung_tables(report: dict) -> list[str]:
    lungs = report.get("lungs")
    if not lungs:
        return []
    lines = []
    for key, title in (
        ("cam_lung_fraction", "Share of the fused Grad-CAM's mass inside the predicted lungs"),
        ("lung_area_fraction", "Predicted lung area as a share of the image"),
    ):
        table = lungs[key]
        lines += [
            f"**{title}** (median, quartiles):",
            "",
            "| group | n | median | quartiles |",
            "| --- | --- | --- | --- |",
            *_quartile_rows({"all": table["all"]}),
            *_quartile_rows({f"class {k}": v for k, v in table["per_class"].items()}),
            *_quartile_rows({f"source {k}": v for k, v in table["per_source"].items()}),
            "",
        ]
    return lines


def not_covid_table(title: str, table: dict) -> list[str]:
    lines = [
        f"**{title}** (share not called covid19, with Wilson 95% interval):",
        "",
        "| group | not called covid19 |",
        "| --- | --- |",
        f"| all | {rate_text(table['all'])} |",
    ]
    lines += [f"| {k} | {rate_text(v)} |" for k, v in table["per_source_label"].items()]
    return [*lines, ""]


def external_table(external: dict) -> list[str]:
    lines = [
        f"**External: {external['note']}** (Wilson 95% intervals):",
        "",
        "| source/label | n | not called covid19 | called its own label | called |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, entry in external["per_source_label"].items():
        called = ", ".join(f"{k} {v}" for k, v in sorted(entry["called"].items()))
        lines.append(
            f"| {key} | {entry['not_covid19']['n']} | {rate_text(entry['not_covid19'])} | "
            f"{rate_text(entry.get('correct', {}))} | {called} |"
        )
    return [*lines, ""]


def format_evaluation(report: dict) -> str:
    lines = []
    if report.get("unscored_labels"):
        lines += [
            "Rows with labels none of the bundle's classes, left out of the classification "
            "report (adult ones are scored as not covid19 in the adult table): "
            + ", ".join(f"{k} {v}" for k, v in report["unscored_labels"].items()),
            "",
        ]
    lines += lung_tables(report)
    if "adult_non_covid" in report:
        lines += not_covid_table(
            "Adult non-COVID specificity (not external)", report["adult_non_covid"]
        )
    if "external" in report:
        lines += external_table(report["external"])
    lines += evidence_tables(report)
    return "\n".join(lines).rstrip()


CV_SOURCE_KEYS = ("accuracy", "covid19_sensitivity", "not_covid19")


def format_cv(result: dict) -> str:
    p = result["pooled"]

    def row(name: str, key: str) -> str:
        v = p[key]
        return f"| {name} | {_f(v['value'])} | {_f(v['ci'][0])}–{_f(v['ci'][1])} |"

    lines = [
        f"{result['folds']}-fold patient-grouped cross-validation, {p['n']} images, "
        f"{p['patients']} patients, {p['covid19']} covid19 films (out-of-fold predictions "
        f"pooled; 95% intervals from {result['n_boot']} bootstrap resamples of patients).",
        "",
        "| metric | pooled | 95% CI |",
        "| --- | --- | --- |",
        row("covid19 sensitivity", "covid19_sensitivity"),
        row("covid19 specificity", "covid19_specificity"),
        row("covid19 AUC (vs rest)", "covid19_auc"),
        row("macro AUC (one vs rest)", "macro_auc"),
        row("accuracy", "accuracy"),
        "",
        "| fold | test images | covid19 | sensitivity | specificity | covid19 AUC | macro AUC "
        "| minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in result["per_fold"]:
        lines.append(
            f"| {f['fold']} | {f['n']} | {f['covid19']} | {_f(f['covid19_sensitivity'])} | "
            f"{_f(f['covid19_specificity'])} | {_f(f['covid19_auc'])} | {_f(f['macro_auc'])} | "
            f"{f['seconds'] / 60:.1f} |"
        )
    if result.get("per_source"):
        lines += [
            "",
            "Out-of-fold calls per source (95% Wilson intervals; not covid19: the films that are "
            "not covid19, partial labels included):",
            "",
            "| source | films | accuracy | covid19 sensitivity | not called covid19 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for source, e in result["per_source"].items():
            cells = [rate_text(e[k]) if e[k] else "–" for k in CV_SOURCE_KEYS]
            lines.append(f"| {source} | {e['n']} | " + " | ".join(cells) + " |")
    cfg = result["config"]
    lines += [
        "",
        f"Recipe per fold: {', '.join(cfg['archs'])}, {cfg['input_size']} px, epochs "
        f"{cfg['epochs']}, seed {cfg['seed']}; device {result['device']}, bf16 "
        f"{result['bf16']}; {result['seconds'] / 60:.1f} min in all.",
    ]
    return "\n".join(lines)


def evidence_tables(report: dict) -> list[str]:
    """Empty heatmaps per member, conformal coverage and the occlusion check, where present."""
    lines = []
    empty = report.get("empty_maps")
    if empty:
        lines += [
            "**Empty heatmaps** (no positive Grad-CAM evidence for the called class):",
            "",
            "| map | empty |",
            "| --- | --- |",
        ]
        lines += [f"| {k} | {rate_text(v['all'])} |" for k, v in empty.items() if "all" in v]
        zeroed = empty.get("cam_lung_fraction_empty_as_zero")
        if zeroed:
            lines += [
                "",
                f"Fused CAM share in the lungs with empty maps counted as 0: median "
                f"{_f(zeroed['median'])} (quartiles {_f(zeroed['q1'])}–{_f(zeroed['q3'])}, "
                f"n={zeroed['n']}).",
            ]
        lines.append("")
    lines += coverage_lines(report.get("conformal_coverage") or {})
    occlusion = report.get("occlusion")
    if occlusion:
        variants = [("film greyed before the intensity step", occlusion)]
        if "input" in occlusion:
            variants.append(("model input greyed after it", occlusion["input"]))
        lines += [
            "**Occlusion check** (all but the predicted lungs greyed out; label unchanged):",
            "",
            "| source | " + " | ".join(name for name, _ in variants) + " |",
            "| --- | " + " | ".join("---" for _ in variants) + " |",
            "| all | " + " | ".join(rate_text(v["all"]) for _, v in variants) + " |",
        ]
        for source in occlusion["per_source"]:
            cells = [rate_text(v["per_source"].get(source)) for _, v in variants]
            lines.append(f"| {source} | " + " | ".join(cells) + " |")
        lines.append("")
        for name, v in variants:
            changed = ", ".join(f"{k} {n}" for k, n in v["changed"].items()) or "none"
            lines.append(f"Changed calls, {name}: {changed}.")
        lines += [f"Films without predicted lungs: {occlusion['no_lungs_found']}.", ""]
    return lines


def coverage_lines(coverage: dict) -> list[str]:
    """Conformal coverage per level, class and source, with the mean set size."""
    if not coverage:
        return []
    lines = [
        "**Conformal coverage** (true label in the set; mean set size):",
        "",
        "| level | group | coverage | mean size |",
        "| --- | --- | --- | --- |",
    ]
    for level, table in coverage.items():
        rows = [("all", table["all"])]
        for grouping in ("class", "source"):
            rows += [(f"{grouping} {k}", v) for k, v in table.get(grouping, {}).items()]
        lines += [
            f"| {level} | {name} | {rate_text(e)} | {_f(e['mean_size'])} |" for name, e in rows
        ]
    return [*lines, ""]


def holdout_table(result: dict) -> list[str]:
    """One leave-one-hospital-out run, a row per held-out group (Markdown)."""
    lines = [
        "| held out | films | covid19 found | missed covid19 called | its other films not "
        "covid19 | test split specificity | 90% set coverage (held out) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["groups"]:
        missed = ", ".join(f"{k} {v}" for k, v in row["missed_called"].items()) or "–"
        held = row["coverage"]["held"].get("0.90", {}).get("all")
        lines.append(
            f"| {row['group']} | {row['n']} | {rate_text(row['covid19_sensitivity'])} | {missed} "
            f"| {rate_text(row['held_not_covid19'])} | {rate_text(row['test_specificity'])} | "
            f"{rate_text(held)} |"
        )
    pooled = result["pooled"]
    lines.append(
        f"| **all groups** | {sum(r['n'] for r in result['groups'])} | "
        f"{rate_text(pooled['covid19_sensitivity'])} | | | mean "
        f"{_f(pooled['mean_test_specificity'])}, min {_f(pooled['min_test_specificity'])} | |"
    )
    return [*lines, ""]


def holdout_levers_table(results: dict[str, dict]) -> list[str]:
    """Leave-one-hospital-out runs side by side: covid19 found per held-out group, pooled and
    in the worst group, and the test-split specificity (Markdown)."""
    names = list(results)
    groups = [g["group"] for g in results[names[0]]["groups"]]
    lines = [
        "| setting | " + " | ".join(groups) + " | all groups | worst | test spec. mean (min) |",
        "| --- | " + " | ".join("---" for _ in groups) + " | --- | --- | --- |",
    ]
    for name in names:
        by_group = {g["group"]: g for g in results[name]["groups"]}
        cells = [
            _f((by_group.get(g, {}).get("covid19_sensitivity") or {}).get("rate")) for g in groups
        ]
        pooled = results[name]["pooled"]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {rate_text(pooled['covid19_sensitivity'])} | "
            f"{_f(pooled['worst_group_sensitivity'])} | {_f(pooled['mean_test_specificity'])} "
            f"({_f(pooled['min_test_specificity'])}) |"
        )
    return [*lines, ""]


def _fmt8(value) -> str:
    return f"{value:8.3f}" if isinstance(value, float) else f"{'-':>8}"


def format_report(report: dict) -> str:
    lines = [
        f"n={report['n']} accuracy={report['accuracy']:.3f} "
        f"macro_auc={_fmt8(report['macro_auc']).strip()} ece={_fmt8(report['ece']).strip()}"
    ]
    lines.append(
        f"{'class':<22}{'n':>5}{'sens':>8}{'spec':>8}{'ppv':>8}{'f1':>8}{'auc':>8}  auc 95% CI"
    )
    for name, m in report["per_class"].items():
        ci = "–" if m["auc_ci"] is None else f"{m['auc_ci'][0]:.3f}–{m['auc_ci'][1]:.3f}"
        lines.append(
            f"{name:<22}{m['n']:>5}"
            + "".join(_fmt8(m[k]) for k in ("sensitivity", "specificity", "ppv", "f1", "auc"))
            + f"  {ci}"
        )
    cvr = report.get("covid_vs_rest")
    if cvr:
        lines.append(
            "covid19 vs rest: " + ", ".join(f"{k} {_fmt8(v).strip()}" for k, v in cvr.items())
        )
    for source, sub in report.get("per_source", {}).items():
        lines.append(
            f"  source {source:<12} n={sub['n']:<5} accuracy={sub['accuracy']:.3f} "
            f"macro_auc={_fmt8(sub['macro_auc']).strip()}"
        )
    return "\n".join(lines)
