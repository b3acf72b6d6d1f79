"""The drift monitor (issue 29): is the model still reading the films it was made for?

For each site and each model version it watches four signals, per week (the charts) and over
the last ``MONITOR_WINDOW_FILMS`` films (the alarms):

- the gate's feature distance: the share of films beyond the training films' 95th percentile,
  against the validation films' share (the distance was fitted on the training films, so
  even new films of the same hospitals sit further: 21% of the shipped bundle's validation
  films are beyond it), and a two-sample KS test against the validation films' distances
  (their quantiles, kept in the bundle);
- the prediction mix against the validation films' mix (total variation, chi-square);
- the mean confidence against the validation films';
- agreement and kappa with the radiologists' final labels, against the earlier films (or
  the validation films while there are too few earlier ones), with intervals.

``monitor_check`` measures, stores the weeks and the latest status of each signal, and opens
or closes alarms; an alarm's opening and closing are audit events. Celery beat runs it every
``MONITOR_CHECK_EVERY_SECONDS`` and ``manage.py monitor`` on demand; the agreement page,
/metrics and the command read what it stored (``monitor_report``).
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Case, F, Value, When
from django.utils import timezone
from django.utils.formats import date_format

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.review.agreement import NOT_READABLE, midnight, monday
from xrayweb.review.drift import drop_test, kappa_interval, ks_against_reference, mix_test
from xrayweb.review.models import DriftAlarm, DriftSignal, DriftStatus, DriftWeek
from xrayweb.review.stats import wilson
from xrayweb.studies.models import ReviewState

CHECK_LOCK = 0x58524D4F  # the advisory lock's key ("XRMO")


@dataclass(frozen=True)
class Rules:
    """The alarm rules' thresholds (settings MONITOR_*)."""

    window: int = 80
    min_films: int = 30
    min_reviewed: int = 30
    p_value: float = 0.001
    distance_share: float = 0.35
    mix_shift: float = 0.25
    confidence_drop: float = 0.10
    agreement_drop: float = 0.10
    baseline_films: int = 100

    @classmethod
    def from_settings(cls) -> "Rules":
        return cls(
            window=settings.MONITOR_WINDOW_FILMS,
            min_films=settings.MONITOR_MIN_FILMS,
            min_reviewed=settings.MONITOR_MIN_REVIEWED,
            p_value=settings.MONITOR_P_VALUE,
            distance_share=settings.MONITOR_DISTANCE_SHARE,
            mix_shift=settings.MONITOR_MIX_SHIFT,
            confidence_drop=settings.MONITOR_CONFIDENCE_DROP,
            agreement_drop=settings.MONITOR_AGREEMENT_DROP,
            baseline_films=settings.MONITOR_BASELINE_FILMS,
        )


@dataclass(frozen=True)
class Film:
    """One prediction as the monitor sees it."""

    at: datetime  # when the study arrived
    distance: float | None
    readable: bool
    label: str
    confidence: float
    truth: str | None  # the final label of a readable film with a final reading


@dataclass
class Status:
    signal: str
    films: int
    value: float | None = None
    baseline: float | None = None
    p_value: float | None = None
    firing: bool = False
    since: datetime | None = None
    detail: dict = field(default_factory=dict)


def reference_of(version: ModelVersion) -> dict:
    """The version's drift reference (training.gate.reference), {} when its bundle has none."""
    return version.drift_reference or {}


def films_read(*, since: datetime) -> dict[tuple[str, int], list[Film]]:
    """Every prediction of a study that arrived since ``since``, by (site, model version),
    oldest first (one query)."""
    readable = Case(
        When(NOT_READABLE, then=Value(False)), default=Value(True), output_field=BooleanField()
    )
    rows = (
        Prediction.objects.filter(study__created_at__gte=since)
        .annotate(readable=readable)
        .order_by("study__created_at", "id")
        .values_list(
            "study__site",
            "model_version_id",
            "study__created_at",
            "feature_distance",
            "readable",
            "label",
            "confidence",
            "study__final_label",
            "study__review_state",
        )
    )
    groups: dict[tuple[str, int], list[Film]] = defaultdict(list)
    for site, version, at, distance, ok, label, confidence, final, state in rows:
        ok = bool(ok)
        truth = final if ok and state == ReviewState.FINAL and final else None
        groups[(site, version)].append(Film(at, distance, ok, label, confidence, truth))
    return groups


def _matrix(pairs: list[tuple[str, str]], classes: list[str]) -> list[list[int]]:
    labels = list(classes) + sorted({x for pair in pairs for x in pair} - set(classes))
    counts = Counter(pairs)
    return [[counts.get((t, p), 0) for p in labels] for t in labels]


def _distance(films: list[Film], ref: dict, rules: Rules) -> Status:
    measured = [f for f in films if f.distance is not None][-rules.window :]
    status = Status(DriftSignal.DISTANCE, len(measured))
    if not ref.get("val_distance_quantiles"):
        status.detail = {"why": "the model's bundle has no drift reference"}
        return status
    status.baseline = ref["val_beyond_p95"]
    if len(measured) < rules.min_films:
        return status
    p95 = ref["distance_p95"]
    beyond = sum(f.distance > p95 for f in measured)
    _, p = ks_against_reference(
        [f.distance for f in measured], ref["val_distance_quantiles"], ref["films"]["val"]
    )
    status.value, status.p_value = beyond / len(measured), p
    status.firing = status.value >= rules.distance_share and p < rules.p_value
    status.since = measured[0].at
    status.detail = {"beyond": beyond, "p95": p95}
    return status


def _mix(films: list[Film], ref: dict, rules: Rules) -> list[Status]:
    readable = [f for f in films if f.readable][-rules.window :]
    mix = Status(DriftSignal.MIX, len(readable))
    confidence = Status(DriftSignal.CONFIDENCE, len(readable))
    if not ref.get("val_mix"):
        mix.detail = confidence.detail = {"why": "the model's bundle has no drift reference"}
        return [mix, confidence]
    confidence.baseline = ref["val_confidence"]
    if len(readable) < rules.min_films:
        return [mix, confidence]
    counts = Counter(f.label for f in readable)
    mix.value, mix.p_value = mix_test(counts, ref["val_mix"])
    mix.baseline = 0.0
    mix.firing = mix.value >= rules.mix_shift and mix.p_value < rules.p_value
    n = len(readable)
    val = ref["val_mix"]
    moved = max(val | counts, key=lambda c: abs(counts[c] / n - val.get(c, 0)))
    mix.detail = {
        "mix": {c: counts[c] / n for c in sorted(counts)},
        "moved": moved,
        "share": counts[moved] / n,
        "val_share": ref["val_mix"].get(moved, 0.0),
    }
    confidence.value = sum(f.confidence for f in readable) / n
    confidence.firing = confidence.baseline - confidence.value >= rules.confidence_drop
    mix.since = confidence.since = readable[0].at
    return [mix, confidence]


def _agreement(films: list[Film], ref: dict, classes: list[str], rules: Rules) -> Status:
    reviewed = [f for f in films if f.truth]
    window, earlier = reviewed[-rules.window :], reviewed[: -rules.window]
    status = Status(DriftSignal.AGREEMENT, len(window))
    if len(earlier) >= rules.baseline_films:
        before = (sum(f.label == f.truth for f in earlier), len(earlier))
        source = "earlier films"
    elif ref.get("val_agreement") is not None and ref.get("val_agreement_films"):
        n = ref["val_agreement_films"]
        before, source = (round(ref["val_agreement"] * n), n), "validation films"
    else:
        before, source = None, ""
    if before is not None:
        status.baseline = before[0] / before[1]
    if len(window) < rules.min_reviewed:
        return status
    agreed = sum(f.label == f.truth for f in window)
    status.value = agreed / len(window)
    kappa, kappa_ci = kappa_interval(_matrix([(f.truth, f.label) for f in window], classes))
    status.detail = {
        "agreed": agreed,
        "ci": wilson(agreed, len(window)),
        "kappa": kappa,
        "kappa_ci": kappa_ci,
        "baseline_from": source,
        "baseline_films": before[1] if before else 0,
        "baseline_ci": wilson(*before) if before else None,
    }
    status.since = window[0].at
    if before is not None:
        status.p_value = drop_test(before, (agreed, len(window)))
        status.firing = (
            status.baseline - status.value >= rules.agreement_drop
            and status.p_value < rules.p_value
        )
    return status


def statuses_measure(
    films: list[Film], version: ModelVersion, rules: Rules | None = None
) -> list[Status]:
    """The four signals over the last films of one site and model version."""
    rules = rules or Rules.from_settings()
    ref = reference_of(version)
    return [
        _distance(films, ref, rules),
        *_mix(films, ref, rules),
        _agreement(films, ref, list(version.classes), rules),
    ]


def weeks_measure(films: list[Film], version: ModelVersion, rules: Rules | None = None) -> list:
    """One row per week (the Monday): the same signals over that week's films."""
    rules = rules or Rules.from_settings()
    ref = reference_of(version)
    by_week: dict[date, list[Film]] = defaultdict(list)
    for film in films:
        by_week[monday(film.at)].append(film)
    rows = []
    for week, group in sorted(by_week.items()):
        measured = [f.distance for f in group if f.distance is not None]
        readable = [f for f in group if f.readable]
        reviewed = [f for f in readable if f.truth]
        row = {
            "week": week,
            "films": len(group),
            "measured": len(measured),
            "beyond": 0,
            "distance_p": None,
            "readable": len(readable),
            "mix": dict(Counter(f.label for f in readable)),
            "mix_shift": None,
            "confidence": sum(f.confidence for f in readable) / len(readable) if readable else None,
            "reviewed": len(reviewed),
            "agreed": sum(f.label == f.truth for f in reviewed),
            "kappa": None,
            "kappa_low": None,
            "kappa_high": None,
        }
        if ref.get("val_distance_quantiles") and measured:
            row["beyond"] = sum(d > ref["distance_p95"] for d in measured)
            if len(measured) >= rules.min_films:
                row["distance_p"] = ks_against_reference(
                    measured, ref["val_distance_quantiles"], ref["films"]["val"]
                )[1]
        if ref.get("val_mix") and readable:
            row["mix_shift"] = mix_test(row["mix"], ref["val_mix"])[0]
        if reviewed:
            kappa, ci = kappa_interval(
                _matrix([(f.truth, f.label) for f in reviewed], list(version.classes))
            )
            row["kappa"] = kappa
            row["kappa_low"], row["kappa_high"] = ci if ci else (None, None)
        rows.append(row)
    return rows


def _site(site: str) -> str:
    return f"Site {site}" if site else "Films without a site"


def _clause(signal: str, value: float, baseline: float | None, detail: dict) -> str:
    if signal == DriftSignal.DISTANCE:
        return (
            f"{value:.0%} of films are further from the training films than 95% of them were "
            f"({baseline:.0%} of the validation films were)"
        )
    if signal == DriftSignal.MIX:
        return (
            f"the prediction mix is {value:.0%} away from the validation films' "
            f"({detail['moved']}: {detail['share']:.0%} of films against {detail['val_share']:.0%})"
        )
    if signal == DriftSignal.CONFIDENCE:
        return f"the mean confidence fell from {baseline:.2f} to {value:.2f}"
    return f"agreement fell from {baseline:.2f} ({detail['baseline_from']}) to {value:.2f}" + (
        f", kappa {detail['kappa']:.2f}" if detail.get("kappa") is not None else ""
    )


def alarm_sentence(site: str, version_name: str, alarms: list) -> str:
    """One sentence for the open alarms of one site and model version, e.g. "Site B (model
    v3): since 3 March, 31% of films are further from the training films than 95% of them
    were (9% of the validation films were); agreement fell from 0.86 to 0.71."."""
    since = min(a.since for a in alarms)
    clauses = [
        _clause(a.signal, a.detail["value"], a.detail["baseline"], a.detail)
        for a in sorted(alarms, key=lambda a: list(DriftSignal.values).index(a.signal))
    ]
    day = date_format(timezone.localtime(since).date(), "j F")
    return f"{_site(site)} (model {version_name}): since {day}, " + "; ".join(clauses) + "."


def _audit_detail(site: str, version: ModelVersion, status: Status) -> dict:
    return {
        "site": site,
        "model_version": version.name,
        "signal": status.signal,
        "value": status.value,
        "baseline": status.baseline,
        "p_value": status.p_value,
        "films": status.films,
    }


@transaction.atomic
def monitor_check(*, now: datetime | None = None, rules: Rules | None = None) -> dict:
    """Measure every site and model version with films in the last MONITOR_WEEKS weeks; store
    the weeks and each signal's status; open an alarm (and audit it) where a rule fires and
    none is open, close one (and audit it) where its rule no longer fires. A signal with too
    few films leaves its alarm as it was. Returns counts."""
    now = now or timezone.now()
    rules = rules or Rules.from_settings()
    _check_lock()
    groups = films_read(since=lookback_start(now))
    versions = ModelVersion.objects.in_bulk({v for _, v in groups})
    open_alarms = {
        (a.site, a.model_version_id, a.signal): a
        for a in DriftAlarm.objects.filter(cleared_at__isnull=True)
    }
    opened = closed = 0
    for (site, version_id), films in groups.items():
        version = versions[version_id]
        for row in weeks_measure(films, version, rules):
            week = row.pop("week")
            DriftWeek.objects.update_or_create(
                site=site,
                model_version=version,
                week=week,
                defaults=row | {"computed_at": now},
            )
        for status in statuses_measure(films, version, rules):
            detail = status.detail | {"value": status.value, "baseline": status.baseline}
            DriftStatus.objects.update_or_create(
                site=site,
                model_version=version,
                signal=status.signal,
                defaults={
                    "films": status.films,
                    "value": status.value,
                    "baseline": status.baseline,
                    "p_value": status.p_value,
                    "firing": status.firing,
                    "detail": detail,
                    "checked_at": now,
                },
            )
            alarm = open_alarms.get((site, version_id, status.signal))
            if status.firing and alarm is None:
                alarm = DriftAlarm.objects.create(
                    site=site,
                    model_version=version,
                    signal=status.signal,
                    since=status.since,
                    fired_at=now,
                    detail=detail,
                )
                audit_record(
                    actor=None,
                    action=AuditEvent.Action.MONITOR_ALARM,
                    detail=_audit_detail(site, version, status)
                    | {"sentence": alarm_sentence(site, version.name, [alarm])},
                )
                opened += 1
            elif alarm is not None and status.value is not None and not status.firing:
                _alarm_close(alarm, now, _audit_detail(site, version, status))
                closed += 1
            elif alarm is not None and status.firing:
                alarm.detail = detail
                alarm.save(update_fields=["detail"])
    # A site and version with no film left in the lookback (the site stopped sending films,
    # the version was replaced): its signals say nothing any more, and its alarms close.
    quiet = "no films in the last MONITOR_WEEKS weeks"
    DriftStatus.objects.exclude(checked_at=now).update(
        films=0, value=None, p_value=None, firing=False, detail={"why": quiet}, checked_at=now
    )
    for key, alarm in open_alarms.items():
        if key[:2] in groups:
            continue
        detail = {
            "site": alarm.site,
            "model_version": alarm.model_version.name,
            "signal": alarm.signal,
            "why": quiet,
        }
        _alarm_close(alarm, now, detail)
        closed += 1
    return {"groups": len(groups), "opened": opened, "closed": closed}


def _alarm_close(alarm: DriftAlarm, now: datetime, detail: dict) -> None:
    alarm.cleared_at = now
    alarm.save(update_fields=["cleared_at"])
    audit_record(actor=None, action=AuditEvent.Action.MONITOR_CLEARED, detail=detail)


def lookback_start(now: datetime) -> datetime:
    """The Monday, at midnight in the current time zone, MONITOR_WEEKS weeks before ``now``'s:
    the monitor reads whole weeks only."""
    return midnight(monday(now) - timedelta(weeks=settings.MONITOR_WEEKS))


def _check_lock() -> None:
    """One check at a time (Celery beat and `manage.py monitor` may meet): PostgreSQL holds
    an advisory lock until the check's transaction ends; SQLite lets one writer in anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHECK_LOCK])


def monitor_report(*, version: ModelVersion | None = None, site: str = "") -> dict:
    """What the last check stored (three queries): the open alarms as sentences, each
    signal's status, and the weekly rows, for ``version`` (all when None) and ``site``."""
    where = {}
    if version is not None:
        where["model_version"] = version
    if site:
        where["site"] = site
    # The version's name only: a model version row carries large JSON (metrics, reference).
    name = F("model_version__name")
    alarms = list(
        DriftAlarm.objects.filter(cleared_at__isnull=True, **where).annotate(version_name=name)
    )
    by_group: dict[tuple[str, str], list] = defaultdict(list)
    for alarm in alarms:
        by_group[(alarm.site, alarm.version_name)].append(alarm)
    statuses = list(
        DriftStatus.objects.filter(**where)
        .annotate(version_name=name)
        .order_by("model_version__name", "site", "signal")
    )
    since = monday(lookback_start(timezone.now()))
    weeks = list(
        DriftWeek.objects.filter(week__gte=since, **where)
        .annotate(version_name=name)
        .order_by("week", "model_version__name", "site")
    )
    checked = max((s.checked_at for s in statuses), default=None)
    return {
        "checked_at": checked,
        "sentences": [
            alarm_sentence(site_, name, group) for (site_, name), group in sorted(by_group.items())
        ],
        "alarms": alarms,
        "statuses": statuses,
        "weeks": weeks,
    }


def monitor_series(report: dict, version: ModelVersion | None) -> dict:
    """The weekly rows of one model version as chart series, one per site: {"weeks": [...],
    signal: {"series": [...], "reference": float or None, "reference_label": str}}."""
    # One version's weeks only: two versions' rows for the same site and week would overwrite
    # each other in one line.
    rows = [w for w in report["weeks"] if version is not None and w.model_version_id == version.pk]
    weeks = sorted({w.week for w in rows})
    names = [w.isoformat() for w in weeks]
    sites = sorted({w.site for w in rows})
    ref = reference_of(version) if version is not None else {}
    rules = Rules.from_settings()

    def series(value, films) -> list[dict]:
        return [
            {
                "name": _site(site),
                "values": {w.week.isoformat(): value(w) for w in rows if w.site == site},
                "n": {w.week.isoformat(): films(w) for w in rows if w.site == site},
            }
            for site in sites
        ]

    return {
        "weeks": names,
        DriftSignal.DISTANCE: {
            "series": series(
                lambda w: w.beyond / w.measured if w.measured else None, lambda w: w.measured
            ),
            "reference": ref.get("val_beyond_p95"),
            "reference_label": "validation films",
        },
        DriftSignal.MIX: {
            "series": series(lambda w: w.mix_shift, lambda w: w.readable),
            "reference": rules.mix_shift,
            "reference_label": "alarm threshold",
        },
        DriftSignal.CONFIDENCE: {
            "series": series(lambda w: w.confidence, lambda w: w.readable),
            "reference": ref.get("val_confidence"),
            "reference_label": "validation films",
        },
        DriftSignal.AGREEMENT: {
            "series": series(
                lambda w: w.agreed / w.reviewed if w.reviewed else None, lambda w: w.reviewed
            ),
            "reference": ref.get("val_agreement"),
            "reference_label": "validation films",
        },
    }
